"""Each model family's logits on this machine's default device (a GPU where there is one) against transformers on
CPU, fp32 with JAX at its highest matmul precision: the "identical on TPU, GPU and CPU" check for a new family.

    python bench/gpu_family_parity.py [--out parity.json]
Tiny random models from tests/hf_utils.py (Qwen2-VL "a", Qwen2.5-VL "a25" and "b25", Qwen3-VL "a3" and "b3");
text, image, video, image + video and left-padded batches. Prints the max abs difference per family and case; exit 1
if any is over 1e-4."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    import torch
    from hf_utils import Prompt, batch, save_hf_model, torch_inputs

    import seedr1_jax
    from seedr1_jax.models.qwen2_vl.model import get_rope_index

    rows = []
    for name in ("a", "a25", "b25", "a3", "b3"):
        with tempfile.TemporaryDirectory() as d:
            hf = save_hf_model(name, d, seed=1)
            ours = seedr1_jax.from_pretrained(d, dtype="float32")
            rng = np.random.default_rng(7)
            P = lambda hf=hf, rng=rng: Prompt(hf.config, rng)  # noqa: E731
            cases = {
                "text": [P().text(12)],
                "image": [P().text(5).image(4, 6).text(7)],
                "video_16x252": [P().text(3).video(8, 18, 18).text(4)],
                "image_video_padded": [P().text(3).image(4, 4).text(9), P().text(2).video(4, 8, 8).text(5)],
            }
            for case, prompts in cases.items():
                inputs = batch(hf.config, prompts)
                grids = inputs.get("image_grid_thw"), inputs.get("video_grid_thw")
                pos, _ = get_rope_index(ours.cfg, inputs["input_ids"], inputs["attention_mask"], *grids)
                with torch.no_grad():
                    t = torch_inputs(hf.config, inputs)
                    ref = hf(**t, position_ids=torch.from_numpy(pos).long()).logits.numpy()
                got = np.asarray(ours(**inputs))
                keep = inputs["attention_mask"].astype(bool)
                err = float(np.abs(got[keep] - ref[keep]).max())
                rows.append(dict(model=name, family=ours.cfg.family, case=case, max_abs_diff=err))
                print(f"{name:4s} {ours.cfg.family:11s} {case:20s} max |ours - transformers| = {err:.2e}", flush=True)
    device = str(jax.devices()[0])
    print("device:", device)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(device=device, rows=rows), f, indent=1)
    return int(any(r["max_abs_diff"] > 1e-4 for r in rows))


if __name__ == "__main__":
    sys.exit(main())
