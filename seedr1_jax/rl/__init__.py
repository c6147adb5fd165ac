"""Post-training algorithms and their loop: `train` (the loop: resume, checkpoints, preemption, metrics),
`update` (train state, optimizer, one sharded jitted update), `grpo` and `sft` (prepare + loss each),
`rewards`, `sampler` (the rollout: vision and prefill once per prompt, shared KV cache), `logprobs` (stop ids,
token log-probs, completion mask), `metrics`, `preflight` (config and input checks, config dump).
Imports from data/, models/, parallel/ and core/."""
