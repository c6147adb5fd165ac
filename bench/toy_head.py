"""Where the toy's time goes: the 152k-vocabulary head. Prints the `toy` preset's parameter count and the head's
share, then the head's matmul (hidden states x the tied embedding, fp32 accumulation, the row max as decoding
takes it) at a decode step's rows (`--decode-rows`, an evaluation batch) and a GRPO update's (`--update-rows`,
8 prompts x G 4 x 96 columns), in fp32 (the toy's dtype) and in bf16, alternated on the same inputs; best and
median of `--repeats` and the bf16 / fp32 ratio. Then greedy decoding's pick over the [rows, 151936] logits
(`--pick-rows`, an evaluation batch): XLA's argmax against `sampler.greedy_pick` (top_k(1) on CPU), alternated.
Measured: docs/performance.md, the Benchmarks table.

    python bench/toy_head.py [--decode-rows 16 --update-rows 3072 --pick-rows 16,96 --repeats 5]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from seedr1_jax.models.config import preset  # noqa: E402
from seedr1_jax.models.families import model_class  # noqa: E402
from seedr1_jax.rl.sampler import greedy_pick  # noqa: E402


def head_program(dtype):
    return jax.jit(
        lambda h, w: jnp.einsum("nd,vd->nv", h.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32).max(
            -1
        )
    )


def alternate(progs: dict, args, repeats: int) -> dict:
    """Each program once to compile, then `repeats` rounds of all of them in turn -> name -> seconds."""
    for p in progs.values():
        jax.block_until_ready(p(*args))
    times = {name: [] for name in progs}
    for _ in range(repeats):
        for name, p in progs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(p(*args))
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decode-rows", type=int, default=16)
    ap.add_argument("--update-rows", type=int, default=3072)
    ap.add_argument("--pick-rows", default="16,96")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    cfg = preset("toy")
    t = cfg.text
    model = model_class(cfg)(cfg, rngs=nnx.Rngs(0))
    total = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    head = t.vocab_size * t.hidden_size
    print(
        f"toy: {total / 1e6:.1f} M parameters, the tied {t.vocab_size} x {t.hidden_size} embedding/head "
        f"{head / 1e6:.1f} M = {100 * head / total:.0f}%; the fp32 head is {head * 4 / 2**20:.0f} MiB, read once per "
        "decode step"
    )
    del model
    key = jax.random.key(0)
    w = jax.random.normal(key, (t.vocab_size, t.hidden_size), jnp.float32)
    for rows in (a.decode_rows, a.update_rows):
        h = jax.random.normal(jax.random.fold_in(key, rows), (rows, t.hidden_size), jnp.float32)
        progs = {name: head_program(dt) for name, dt in (("fp32", jnp.float32), ("bf16", jnp.bfloat16))}
        times = alternate(progs, (h, w), a.repeats)
        f, b = (min(times[n]) for n in ("fp32", "bf16"))
        print(
            f"{rows:5d} rows: fp32 best {1e3 * f:.1f} ms (median {1e3 * statistics.median(times['fp32']):.1f}), "
            f"bf16 best {1e3 * b:.1f} ms (median {1e3 * statistics.median(times['bf16']):.1f}); bf16 / fp32 {b / f:.2f}"
        )

    for rows in (int(r) for r in a.pick_rows.split(",")):
        logits = jax.random.normal(jax.random.fold_in(key, 10_000 + rows), (rows, t.vocab_size), jnp.float32)
        progs = {"argmax": jax.jit(lambda x: jnp.argmax(x, axis=-1).astype(jnp.int32)), "pick": jax.jit(greedy_pick)}
        assert (progs["argmax"](logits) == progs["pick"](logits)).all()
        times = alternate(progs, (logits,), a.repeats)
        m, p = (min(times[n]) for n in ("argmax", "pick"))
        print(f"{rows:5d} rows: argmax best {1e3 * m:.1f} ms, greedy_pick best {1e3 * p:.1f} ms; ratio {p / m:.2f}")


if __name__ == "__main__":
    main()
