"""The toy's vocabulary subset: a study cell's work with the `toy` preset (151936-token head) against
`toy_synth_vocab` (the ~18.7k ids the synthetic data uses, models/vocab.py), both randomly initialised, on the same
synthetic TFRecords and the quick study's GRPO arm config (8 prompts x G 4, 96 new tokens: a random model writes
all 96, the worst case). Per preset: the GRPO step's rollout / update / whole-step seconds (median over the steps
after the first, which compiles), the SFT arm's step, then greedy evaluation of the L1 split (the second pass,
compiled). Prints the ratios subset / full, measured in the same run. Measured: docs/performance.md, the
Benchmarks table.

    python bench/toy_vocab.py [--workdir DIR] [--steps 4] [--tfrecords DIR]
"""

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PRESETS = ("toy", "toy_synth_vocab")


def train_times(tfr: str, preset: str, steps: int, workdir: str, method: str) -> dict:
    """Median seconds per step after the first (which compiles): GRPO's rollout / update / step, SFT's step."""
    from seedr1_jax.analysis.study import BUDGETS, TUNED, arm_config
    from seedr1_jax.rl import train

    arm = method.upper()
    c = arm_config(method, dict(BUDGETS["quick"], steps=steps), tfr, f"preset:{preset}", 0, TUNED[arm])
    c.train.checkpoint_every = steps
    if train.main(c, workdir) != 0:
        raise SystemExit(f"training {preset} in {workdir} failed")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()][1:]
    keys = ("rollout", "update", "step") if method == "grpo" else ("step",)
    return {f"{method}_{k}": statistics.median(r[f"time_{k}"] for r in rows) for k in keys}


def eval_seconds(tfr: str, preset: str) -> float:
    from flax import nnx

    from seedr1_jax import data
    from seedr1_jax.analysis import evaluate
    from seedr1_jax.analysis.study import BUDGETS, arm_config
    from seedr1_jax.models.config import preset as model_preset
    from seedr1_jax.models.families import build
    from seedr1_jax.models.processor import load_tokenizer

    c = arm_config("grpo", BUDGETS["quick"], tfr, f"preset:{preset}", 0, {})
    model, tok = build(model_preset(preset), nnx.Rngs(0)), load_tokenizer()
    seconds = []
    for _ in range(2):  # the first pass compiles
        t0 = time.perf_counter()
        batches = data.eval_batches(c.data, model.cfg, tfr, split="L1")
        evaluate.evaluate_params(model, batches, tok, max_new_tokens=c.eval.max_new_tokens)
        seconds.append(time.perf_counter() - t0)
    return seconds[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default="")
    ap.add_argument("--tfrecords", default="", help="a study workdir's tfrecords/ (default: prepared here)")
    ap.add_argument("--steps", type=int, default=4)
    a = ap.parse_args()
    from seedr1_jax.analysis.study import BUDGETS, _prepare_data

    work = a.workdir or tempfile.mkdtemp(prefix="toy_vocab_bench_")
    tfr = a.tfrecords or _prepare_data(work, BUDGETS["quick"])[0]
    out = {}
    for preset in PRESETS:
        out[preset] = train_times(tfr, preset, a.steps, os.path.join(work, preset), "grpo")
        out[preset].update(train_times(tfr, preset, a.steps, os.path.join(work, preset + "_sft"), "sft"))
        out[preset]["eval_L1"] = eval_seconds(tfr, preset)
        print(preset, {k: round(v, 2) for k, v in out[preset].items()}, flush=True)
    full, sub = (out[p] for p in PRESETS)
    print("subset / full: " + ", ".join(f"{k} {sub[k] / full[k]:.2f}" for k in full))


if __name__ == "__main__":
    main()
