"""Defaults shared by every experiment config: the SEED-Bench-R1 reference recipe (docs/recipe.md), as ConfigDicts."""

from ml_collections import ConfigDict

from seedr1_jax import data


def base_config() -> ConfigDict:
    c = ConfigDict()
    c.algo = "grpo"  # "grpo" or "sft"

    c.model = ConfigDict()
    c.model.init = "preset:qwen2_vl_7b"  # HF folder, `seedr1 import-hf` folder, or preset:<name> (random init)
    c.model.dtype = "bfloat16"  # compute dtype
    c.model.param_dtype = "float32"  # master weights (and Adam state)
    c.model.remat_policy = "full"  # gradient checkpointing per layer: none, full, or a jax.checkpoint_policies name
    # the rollout splits the bf16 weights and the KV cache per layer once and decodes with the layers unrolled: no
    # per-token copies of layer slices (XLA:GPU makes them), at one more copy of the bf16 weights and a longer compile
    c.model.decode_unroll = "auto"  # "on", "off", "auto" = on for GPUs
    c.model.freeze_vision = False  # the reference trains the vision tower too
    # LoRA (off by default: the paper fine-tunes every weight). rank > 0 trains adapters on the linears whose path
    # matches `targets` (re.fullmatch; models/lora.py lists the paths) and freezes the rest: the optimizer state,
    # the gradients and the checkpoints cover the adapters alone; the GRPO reference is the base (adapters off)
    c.model.lora = ConfigDict()
    c.model.lora.rank = 0
    c.model.lora.alpha = 32.0  # the adapter's output is scaled by alpha / rank
    c.model.lora.targets = r"model/layers/(self_attn/[qkvo]_proj|mlp/(gate|up|down)_proj)"  # the LLM's projections
    c.model.lora.base_quant = ""  # QLoRA: "int8" or "nf4" stores the frozen base's decoder linears quantized
    c.model.lora.quant_targets = r"model/layers/.*"  # which base linears base_quant quantizes (models/lora.py)
    # rollouts decode the adapters folded into a compute-dtype copy of the base ("on"), in the path ("off"), or
    # "auto": folded for a quantized base (else it would be dequantized on every decoded token)
    c.model.lora.merge_rollout = "auto"
    c.model.lora.base_dtype = ""  # the frozen base's dtype ("bfloat16" halves it); empty = model.param_dtype

    c.mesh = ConfigDict()
    c.mesh.shape = (1, -1, 1)  # (data, fsdp, tensor); -1 takes the remaining devices
    c.mesh.rules = ()  # logical->mesh axis rules; empty = seedr1_jax.sharding.TRAIN_RULES
    c.mesh.allow_uneven = False  # a rule whose mesh axis does not divide a weight is an error; True replicates it

    c.grpo = ConfigDict()
    c.grpo.group_size = 8  # G completions per prompt
    c.grpo.max_new_tokens = 256
    # > 0: the update skips completion columns every sequence has finished, keeping a multiple of this many
    # (grpo.trim_completions; one update compile per kept length). 0: always max_new_tokens (one compile).
    c.grpo.completion_bucket = 0
    c.grpo.temperature = 1.0
    c.grpo.top_k = 50
    c.grpo.top_p = 1.0
    c.grpo.beta = 0.1  # KL weight; 0 skips the reference model entirely
    c.grpo.kl_clamp = 11.0
    c.grpo.mu = 1  # optimizer steps per rollout batch (>1 enables PPO clipping)
    c.grpo.epsilon_low = 0.2
    c.grpo.epsilon_high = 0.2
    c.grpo.reduction = "sequence"  # sequence (reference), token (DAPO/bnpo), dr_grpo
    c.grpo.importance = "token"  # importance ratio per token (reference) or per sequence (GSPO; grpo.policy_loss)
    c.grpo.rewards = {"accuracy": 1.0}  # name -> weight; GRPO-CARE: {"exact": 1.0, "format": 1.0}
    c.grpo.overlong_buffer = 64  # tokens before max_new_tokens where the `overlong` reward falls from 0 to -1 (DAPO)
    # DAPO's dynamic sampling: roll out further batches of prompts until B groups with unequal rewards are found
    # (at most dynamic_max_rounds batches per step), train on those; the rollouts spent are logged (rollout_prompts)
    c.grpo.dynamic_sampling = False
    c.grpo.dynamic_max_rounds = 3
    c.grpo.reward_noise = 0.0  # probability of flipping each accuracy reward (seeded): the noisy-reward experiment
    # decoder layers whose attention the rollout's summary averages, for rewards that ask for it (`grounding`)
    c.grpo.attention_layers = (-1,)
    # GRPO-CARE (the SEED-Bench-R1 authors' follow-up): a slowly moving reference, ref <- d ref + (1 - d) policy after
    # each step (0 keeps model.init's, the paper's), and the `care_consistency` reward's confidence cap and margin
    c.grpo.ema_ref_decay = 0.0
    c.grpo.care_confidence_cap = 1.0
    c.grpo.care_margin = 0.0
    c.grpo.ref_dtype = "bfloat16"  # frozen reference weights
    # mu = 1, beta > 0: the reference's log-probs run inside the update program (one program and one dispatch
    # fewer per step); False runs them as their own pass before it, as mu > 1 always does (bench/ref_in_update.py)
    c.grpo.ref_in_update = True

    c.sft = ConfigDict()
    c.sft.max_response_len = 512  # trained tokens sit at the end of each (left-padded) row; logits only there

    c.optim = ConfigDict()
    c.optim.lr = 1e-6
    c.optim.schedule = "linear"  # linear decay to 0 (GRPO), cosine (SFT), constant
    c.optim.warmup_ratio = 0.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.weight_decay = 0.0
    c.optim.grad_clip = 1.0  # global norm; 0 disables

    c.train = ConfigDict()
    c.train.num_steps = 750  # 1 epoch of ~6k prompts at 8 prompts per step
    c.train.seed = 0
    c.train.checkpoint_every = 50
    c.train.keep_checkpoints = 3
    c.train.sample_every = 10  # log sampled completions every N steps
    c.train.num_samples_logged = 4
    c.train.on_nonfinite = "stop"  # stop (keep the last good checkpoint) or skip the step

    c.data = data.default_config()  # tfrecord_dir, split, batch_size (prompts/step), max_prompt_len, ...

    c.eval = ConfigDict()
    c.eval.max_new_tokens = 256
    c.eval.repetition_penalty = 1.05  # greedy decoding (docs/recipe.md section 7)
    c.eval.L1 = ""  # a `seedr1 prep --out` folder holding this split; empty = data.tfrecord_dir
    c.eval.L2 = ""
    c.eval.L3 = ""
    c.eval.lvb = ""
    return c


def apply_overrides(c: ConfigDict, overrides: dict, where: str = "overrides") -> ConfigDict:
    """Sets dotted config fields (`{"grpo.beta": 0.1}`) in place and returns `c`. A field the config does not have,
    or a value of another type, raises ConfigError naming `where` and the key (nothing is added silently)."""
    from seedr1_jax.models.config import ConfigError

    for k, v in overrides.items():
        node, *path = c, *str(k).split(".")
        for i, p in enumerate(path):
            if not isinstance(node, ConfigDict) or p not in node:
                raise ConfigError(
                    f"{where}: config has no field {'.'.join(path[: i + 1])!r} (in {k!r}); see configs/common.py "
                    "for the fields"
                )
            if i < len(path) - 1:
                node = node[p]
        try:
            node[path[-1]] = v
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {k}={v!r}: {e}") from None
    return c
