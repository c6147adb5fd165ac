"""LoRA vs full fine-tuning on the same random model and SEED-Bench-R1-shaped GRPO batch (16-frame 252x252 video
+ image + ~150 text tokens per prompt): the jitted update's time and memory (XLA's memory analysis of the compiled
program: arguments = train state + batch, temporaries) for full fine-tuning, LoRA and QLoRA (nf4 base); then
the rollout with the adapters applied in the path vs merged into the weights once per rollout (issue 22, item 3).
Variants alternate, best of `--repeats` each. Prints times, memory and ratios.

    python bench/lora_update.py [--prompts 2 --group 4 --new-tokens 32 --width 256 --layers 4 --rank 16]
"""

import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from common import rollout_parser  # noqa: E402
from flax import nnx  # noqa: E402
from grpo_step import random_rollout  # noqa: E402

from configs.common import base_config  # noqa: E402
from seedr1_jax.data.batch import GRPOBatch, Prompts  # noqa: E402
from seedr1_jax.models import lora  # noqa: E402
from seedr1_jax.rl import grpo, sampler, update  # noqa: E402
from seedr1_jax.rl.train import lora_reference  # noqa: E402


def _nbytes(tree) -> int:
    return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def variant(model, config, rank, quant, batch, tokens, mask, g):
    """(step(), compiled memory analysis, state bytes) of one variant's update, ready to time."""
    m = nnx.clone(model)
    if rank:
        lora.attach(m, rank, 2.0 * rank)
        if quant:
            lora.quantize_base(m, quant)
    gd, st = nnx.split(m)
    params, frozen = update.trained_and_frozen(st.to_pure_dict(), bool(rank))
    tx, _ = update.make_optimizer(config, params, 100)
    state = update.TrainState(params=params, opt_state=tx.init(params), frozen=frozen)
    progs = grpo.programs(config, gd, nnx.eval_shape(lambda: m), None, ())
    ref = lora_reference(config, state) if rank else jax.tree.map(jnp.copy, state.params)
    prompts = Prompts.of(batch)
    fields = grpo.logprob_fields(config, progs, state.model_params(), ref, prompts, tokens)
    n = tokens.shape[0]
    upd = GRPOBatch(
        prompts=prompts,
        tokens=tokens,
        mask=mask,
        advantages=jnp.linspace(-1.0, 1.0, n).astype(jnp.float32),
        inner_step=jnp.zeros((), jnp.int32),
        **fields,
    )
    fn = jax.jit(update.make_update(gd, tx, grpo.loss, config))
    compiled = fn.lower(state, upd).compile()
    box = {"state": state}

    def step():
        t0 = time.perf_counter()
        box["state"], metrics = compiled(box["state"], upd)
        jax.block_until_ready(metrics)
        return time.perf_counter() - t0

    return step, compiled.memory_analysis(), _nbytes(state), (gd, state)


def main():
    ap = rollout_parser(__doc__)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.set_defaults(group=4)
    args = ap.parse_args()
    b, g, c = args.prompts, args.group, args.new_tokens
    model, batch, ids, tokens, mask = random_rollout(args)

    config = base_config()
    config.grpo.group_size, config.grpo.max_new_tokens = g, c
    config.model.dtype = config.grpo.ref_dtype = "float32"
    config.grpo.ref_in_update = False  # the update alone, its reference log-probs made before (bench/ref_in_update.py)
    print(
        f"model text {args.width}x{args.layers}, vision 128x{args.layers}; {b} prompts x G={g}, {c} new tokens, "
        f"prompt {ids.shape[1]} tokens; LoRA rank {args.rank} on the LLM's projections; fp32; "
        f"CPU x{jax.device_count()}"
    )
    names = {"full": (0, ""), f"LoRA r{args.rank}": (args.rank, ""), f"QLoRA r{args.rank} nf4": (args.rank, "nf4")}
    runs = {k: variant(model, config, r, q, batch, tokens, mask, g) for k, (r, q) in names.items()}
    times = {k: [] for k in runs}
    for _ in range(args.repeats):  # alternate the variants so drift hits each alike
        for k, (step, *_rest) in runs.items():
            times[k].append(step())
    full = min(times["full"])
    print(f"{'update':<18} {'best s':>8} {'vs full':>8} {'state MiB':>10} {'args MiB':>9} {'temps MiB':>10}")
    for k, (_, mem, state_bytes, _) in runs.items():
        t = min(times[k])
        print(
            f"{k:<18} {t:8.3f} {full / t:7.2f}x {state_bytes / 2**20:10.1f} "
            f"{mem.argument_size_in_bytes / 2**20:9.1f} {mem.temp_size_in_bytes / 2**20:10.1f}"
        )

    # ---- rollout: adapters in the path vs merged into the weights once per rollout ----
    _, _, _, (gd, state) = runs[f"LoRA r{args.rank}"]
    plain_gd = nnx.split(model)[0]
    scale = 2.0

    def in_path(key):
        m = nnx.merge(gd, state.model_params())
        return sampler.generate(m, batch, rng=key, group_size=g, max_new_tokens=c, stop_ids=())["tokens"]

    merge = jax.jit(lambda p: lora.merged(p, scale))

    def merged(key):
        m = nnx.merge(plain_gd, merge(state.model_params()))
        return sampler.generate(m, batch, rng=key, group_size=g, max_new_tokens=c, stop_ids=())["tokens"]

    roll = {"in the path": in_path, "merged per rollout": merged}
    for f in roll.values():
        f(jax.random.key(0)).block_until_ready()  # compile
    rt = {k: [] for k in roll}
    for i in range(args.repeats):
        for k, f in roll.items():
            t0 = time.perf_counter()
            f(jax.random.key(1 + i)).block_until_ready()
            rt[k].append(time.perf_counter() - t0)
    a, m_ = min(rt["in the path"]), min(rt["merged per rollout"])
    print(f"rollout, adapters in the path: {a:.3f}s; merged once per rollout (merge included): {m_:.3f}s; "
          f"merged / in path = {m_ / a:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
