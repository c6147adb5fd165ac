"""Soak: the tiny GRPO loop for hundreds of steps with held-out evaluation and checkpoints on, recording the host's
resident memory (RSS) and the live device arrays' bytes after every step. A leak fails it (exit 1).

    python bench/soak.py --steps 500 --out /tmp/soak      # writes soak.json and soak.png in --out

RSS is read after `gc.collect()`: without it the trace is a sawtooth of cyclic garbage that a collection frees (the
first run, before this, fitted 0.33 MB/step through 300 MB swings that fell back at every evaluation).

Leak rule (stated before any run): after warm-up (the first `--warmup` steps: compilation, the first checkpoint and
evaluation), a least-squares line through RSS per step must project less than `--bound-mb` (1024 MB) of growth over
`--horizon` (10,000) steps, i.e. a slope under 0.1 MB per step; the live device bytes must not grow at all after
warm-up (the same params, optimizer state and caches every step). A pod run of 10k steps would first show a slower
leak; this one shows any leak big enough to matter within a day.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_mb() -> float:
    """This process's resident set size in MB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def live_device_mb() -> float:
    """MB held by live jax arrays on this process's devices."""
    import jax

    return sum(x.nbytes for x in jax.live_arrays()) / 2**20


def leak_report(steps, rss, live, warmup: int, horizon: int, bound_mb: float) -> dict:
    """The leak rule of the module docstring over per-step (step, RSS MB, live device MB) samples."""
    import numpy as np

    s, r, d = (np.asarray(v, dtype=np.float64) for v in (steps, rss, live))
    keep = s > warmup
    if keep.sum() < 10:
        raise ValueError(f"only {int(keep.sum())} steps after a warm-up of {warmup}: run more --steps")
    slope, icpt = np.polyfit(s[keep], r[keep], 1)
    dk = d[keep]
    w = max(len(dk) // 10, 1)  # windows' minima: an async checkpoint's copy in flight is not a leak
    live_growth = float(dk[-w:].min() - dk[:w].min())
    out = dict(
        warmup=warmup,
        rss_first=float(r[keep][0]),
        rss_last=float(r[keep][-1]),
        rss_max=float(r.max()),
        rss_slope_mb_per_step=float(slope),
        rss_intercept_mb=float(icpt),
        projected_growth_mb=float(slope * horizon),
        horizon_steps=horizon,
        bound_mb=bound_mb,
        live_device_first_mb=float(dk[:w].min()),
        live_device_growth_mb=live_growth,
    )
    out["leak"] = bool(slope * horizon > bound_mb or live_growth > 1e-6)
    return out


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, rep = result["rows"], result["report"]
    s = np.array([x["step"] for x in rows])
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
    a.plot(s, [x["rss_mb"] for x in rows], lw=1, label="host RSS")
    a.plot(s, rep["rss_slope_mb_per_step"] * s + rep["rss_intercept_mb"], "--", label="fit after warm-up")
    a.axvline(rep["warmup"], color="grey", lw=0.8)
    a.set_xlabel("step")
    a.set_ylabel("MB")
    a.set_title(f"host RSS: {rep['rss_slope_mb_per_step'] * 1000:.2f} MB per 1000 steps after warm-up")
    a.legend()
    b.plot(s, [x["live_device_mb"] for x in rows], lw=1, color="C2")
    b.axvline(rep["warmup"], color="grey", lw=0.8)
    b.set_xlabel("step")
    b.set_ylabel("MB")
    b.set_title(f"live device arrays: {rep['live_device_growth_mb']:+.3f} MB after warm-up")
    fig.suptitle(f"bench/soak.py: tiny GRPO, {len(rows)} steps, eval + checkpoints on ({result['seconds']:.0f}s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--out", required=True)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--horizon", type=int, default=10_000)
    ap.add_argument("--bound-mb", type=float, default=1024.0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--checkpoint-every", type=int, default=50)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from configs.tiny import get_config
    from data_prep import prep, synth
    from seedr1_jax.analysis import evaluate
    from seedr1_jax.rl import train

    t0 = time.time()
    root, tfr, run = (os.path.join(args.out, d) for d in ("data", "tfrecords", "run"))
    if not os.path.exists(os.path.join(tfr, "prep_report_L1.json")):
        synth.generate(root, num_train=64, num_val=16, seed=0)
        for split in ("train", "L1"):
            prep.prepare(root, split, tfr, max_frames=4, workers=1, progress=False)
    c = get_config("grpo")
    c.data.tfrecord_dir = tfr
    c.data.batch_size, c.grpo.group_size, c.grpo.max_new_tokens = 2, 2, 16
    c.eval.max_new_tokens = 16
    c.train.num_steps = args.steps
    c.train.checkpoint_every = args.checkpoint_every
    c.train.keep_checkpoints = 2
    c.train.sample_every = 0
    rows = []

    def record(step, model):
        gc.collect()  # cyclic garbage (models merged for callbacks, tf.data) is not a leak: measure what survives
        rows.append(dict(step=step, rss_mb=rss_mb(), live_device_mb=live_device_mb(), t=time.time() - t0))
        return {"rss_mb": rows[-1]["rss_mb"]}

    ev = evaluate.eval_callback(c, tfr, "L1", every=args.eval_every)
    code = train.main(c, run, callbacks=(ev, record))
    if code != 0:
        print(f"training stopped with exit code {code}", file=sys.stderr)
        return code
    # a resumed soak records only the steps it ran: the rule needs the warm-up and enough steps after it
    report = leak_report([r["step"] for r in rows], [r["rss_mb"] for r in rows],
                         [r["live_device_mb"] for r in rows], args.warmup, args.horizon, args.bound_mb)  # fmt: skip
    result = dict(steps=args.steps, seconds=time.time() - t0, report=report, rows=rows, args=vars(args))
    with open(os.path.join(args.out, "soak.json"), "w") as f:
        json.dump(result, f, indent=1)
    plot(result, os.path.join(args.out, "soak.png"))
    print(json.dumps(report, indent=1))
    print(f"{'LEAK' if report['leak'] else 'no leak'}: written {args.out}/soak.json, soak.png")
    return 1 if report["leak"] else 0


if __name__ == "__main__":
    sys.exit(main())
