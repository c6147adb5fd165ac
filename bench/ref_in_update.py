"""GRPO at mu = 1, beta > 0: the reference's log-probs as their own program before the update (`grpo.ref_in_update
= False`) vs inside the update program (the default): the update phase's wall time (what `grpo.prepare` runs after
the rollout + the optimizer step), alternated on the same random model, SEED-Bench-R1-shaped prompts (16-frame
252x252 video + image + ~150 text tokens) and sampled completions. Prints best and median of `--repeats` and the
ratio (issue 22, item 6).

    python bench/ref_in_update.py [--prompts 2 --group 8 --new-tokens 32 --width 256 --layers 4 --repeats 5]
"""

import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import rollout_parser  # noqa: E402
from flax import nnx  # noqa: E402
from grpo_step import random_rollout  # noqa: E402

from configs.common import base_config  # noqa: E402
from seedr1_jax.data.batch import GRPOBatch, Prompts  # noqa: E402
from seedr1_jax.rl import grpo, update  # noqa: E402


def variant(model, in_update, g, c, prompts, tokens, mask):
    """step() -> seconds of one update phase (reference log-probs + optimizer step) under one setting."""
    config = base_config()
    config.grpo.group_size, config.grpo.max_new_tokens, config.grpo.beta = g, c, 0.04
    config.model.dtype = config.grpo.ref_dtype = "float32"
    config.grpo.ref_in_update = in_update
    gd, st = nnx.split(model)
    params = st.to_pure_dict()
    tx, _ = update.make_optimizer(config, params, 100)
    progs = grpo.programs(config, gd, nnx.eval_shape(lambda: model), None, ())
    ref = grpo.reference_params(config, params, progs)
    mode = grpo.reference_mode(config)
    fn = jax.jit(update.make_update(gd, tx, grpo.loss, config, reference=mode), donate_argnums=0)
    extra = (ref,) if mode == "argument" else ()
    box = {"state": update.TrainState(params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params))}
    adv = jnp.linspace(-1.0, 1.0, tokens.shape[0]).astype(jnp.float32)

    def step():
        t0 = time.perf_counter()
        fields = grpo.logprob_fields(config, progs, box["state"].params, ref, prompts, tokens)
        upd = GRPOBatch(prompts=prompts, tokens=tokens, mask=mask, advantages=adv,
                        inner_step=jnp.zeros((), jnp.int32), **fields)  # fmt: skip
        box["state"], metrics = fn(box["state"], upd, *extra)
        jax.block_until_ready(metrics)
        return time.perf_counter() - t0, float(metrics["kl"])

    return step


def main():
    ap = rollout_parser(__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    b, g, c = args.prompts, args.group, args.new_tokens
    model, batch, ids, tokens, mask = random_rollout(args)
    print(
        f"model text {args.width}x{args.layers}, vision 128x{args.layers}; {b} prompts x G={g}, {c} new tokens, "
        f"prompt {ids.shape[1]} tokens; fp32, beta 0.04, mu 1; CPU x{jax.device_count()}"
    )
    names = {"own pass": False, "in the update": True}
    runs = {k: variant(model, v, g, c, Prompts.of(batch), tokens, mask) for k, v in names.items()}
    for s in runs.values():
        s()  # compile (the first step: KL 0 at the reference's weights)
    times = {k: [] for k in runs}
    kls = {k: [] for k in runs}
    for _ in range(args.repeats):  # alternate so drift hits both alike
        for k, s in runs.items():
            t, kl = s()
            times[k].append(t)
            kls[k].append(kl)
    print(f"{'update phase':<15} {'best s':>8} {'median s':>9}   KL per step")
    for k in runs:
        print(f"{k:<15} {min(times[k]):8.3f} {np.median(times[k]):9.3f}   {' '.join(f'{x:.3g}' for x in kls[k])}")
    a, i = min(times["own pass"]), min(times["in the update"])
    am, im = np.median(times["own pass"]), np.median(times["in the update"])
    print(f"own pass / in the update = {a / i:.2f}x (best); {am / im:.2f}x (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
