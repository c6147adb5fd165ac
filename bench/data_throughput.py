"""Data throughput on this machine: `seedr1 prep` samples/s and input-pipeline batches/s.

    .venv/bin/python bench/data_throughput.py [--num-train 64] [--batch-size 8] [--batches 20] [--workers 2] \
        [--frame-format png]

Synthesises a dataset (seconds), preps the train split (decord decode, 2 fps sampling, 252x252 resize, PNG,
TFRecords), then times `seedr1_jax.data.train_batches` (PNG decode, patchify, prompt, tokenize, M-RoPE) after
a warm-up batch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num-train", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--frame-format", default="png", choices=("png", "jpeg"))
    args = ap.parse_args()

    from data_prep import prep, synth
    from seedr1_jax import data

    with tempfile.TemporaryDirectory() as tmp:
        root, out = os.path.join(tmp, "data"), os.path.join(tmp, "tfr")
        t0 = time.perf_counter()
        synth.generate(root, num_train=args.num_train, num_val=1, seed=0)
        t_synth = time.perf_counter() - t0
        rep = prep.prepare(root, "train", out, workers=args.workers, progress=False, frame_format=args.frame_format)
        # the report's time includes TFDS's shuffle/write and process start-up: that is what a user waits for
        prep_rate = rep["written"] / rep["seconds"]

        cfg = data.default_config()
        cfg.tfrecord_dir, cfg.split, cfg.batch_size = out, "train", args.batch_size
        it = data.train_batches(cfg, process_index=0, process_count=1)
        t0 = time.perf_counter()
        next(it)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        dt = time.perf_counter() - t0

    print(f"cpu cores: {os.cpu_count()}")
    print(f"synth: {args.num_train} train samples (+ val/lvb/cot) in {t_synth:.1f}s")
    print(
        f"prep:  {rep['written']} samples in {rep['seconds']:.1f}s with {rep['workers']} workers "
        f"= {prep_rate:.1f} samples/s"
    )
    print(
        f"pipeline: first batch {t_first:.1f}s (startup), then {args.batches / dt:.2f} batches/s "
        f"= {args.batches * args.batch_size / dt:.1f} samples/s (batch {args.batch_size}, T=1024, S=9 segments)"
    )


if __name__ == "__main__":
    main()
