"""Stored frames vs the reference preprocessing, for each `seedr1 prep --frame-format`: error and size.

    .venv/bin/python bench/frame_fidelity.py [--num-val 16] [--seed 0]

Synthesises H.264 clips (`seedr1 synth`), preps the L1 and L2 splits as png and as jpeg, reads the frames back
through `seedr1_jax.data`'s pipeline and compares them with the reference (decord + torch bicubic/antialias
resize, RGBA over white + PIL resize for the image; tests/frame_reference.py). Prints one table row per format.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num-val", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    from frame_reference import pipeline_frames, reference_image, reference_video

    from data_prep import prep, synth

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "data")
        synth.generate(root, num_train=1, num_val=args.num_val, seed=args.seed)
        for fmt in ("png", "jpeg"):
            out = os.path.join(tmp, fmt)
            vid, img, nbytes, n, nframes = [], [], 0, 0, 0
            for split in ("L1", "L2"):
                rep = prep.prepare(root, split, out, workers=1, progress=False, frame_format=fmt)
                n += rep["written"]
                files = glob.glob(os.path.join(out, "seed_bench_r1", split, "*", "*.tfrecord*"))
                nbytes += sum(os.path.getsize(f) for f in files)
                with open(os.path.join(root, "annotations", f"validation_{split}.jsonl")) as f:
                    recs = {str(r["sample_id"]): r for r in map(json.loads, f)}
                for sid, (frames, image, _) in pipeline_frames(out, split).items():
                    r = recs[sid]
                    src = r["video_source"]
                    if r["task_progress_metadata"]:
                        ref, _ = reference_video(os.path.join(root, "videos", src, r["video_basename"]))
                        vid.append(np.abs(frames - ref).ravel())
                        nframes += len(frames)
                    ref_img = reference_image(os.path.join(root, "images", src, r["current_observation_basename"]))
                    img.append(np.abs(image - ref_img).ravel())
            vid, img = np.concatenate(vid), np.concatenate(img)
            rows.append((fmt, vid.mean(), vid.max(), img.mean(), img.max(), nbytes / n, n, nframes))
    print("| storage | video mean / max abs diff | image mean / max abs diff | bytes per sample |")
    print("|---|---|---|---|")
    for fmt, vm, vx, im, ix, b, *_ in rows:
        print(f"| {fmt} | {vm:.3f} / {vx:.0f} | {im:.3f} / {ix:.0f} | {b / 1e3:.0f} kB |")
    print(f"({rows[0][6]} samples, {rows[0][7]} video frames, L1 + L2 of `seedr1 synth --seed {args.seed}`)")


if __name__ == "__main__":
    main()
