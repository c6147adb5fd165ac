"""`seedr1 demo`: the pipeline at toy scale on CPU, on a model and data it makes itself (no network)."""

from __future__ import annotations

import os
import time

import numpy as np
from flax import nnx

from .config import ModelConfig


def tiny_config() -> ModelConfig:
    from .config import tiny

    return tiny()


def _check_roundtrip(a_dir: str, b_dir: str) -> int:
    from .hf_io import _open_checkpoint

    a, b = _open_checkpoint(a_dir), _open_checkpoint(b_dir)
    if sorted(a) != sorted(b):
        raise AssertionError(f"tensor names differ between {a_dir} and {b_dir}")
    for k in a:
        x, y = a[k].get(k), b[k].get(k)
        if x.dtype != y.dtype or x.tobytes() != y.tobytes():
            raise AssertionError(f"tensor {k} differs after the round trip")
    return len(a)


def _synthetic_prompt(cfg: ModelConfig, rng):
    """A SEED-Bench-R1-shaped prompt: 16 frames at 252x252 (grid 8x18x18) + a 252x252 image + text."""
    ids = list(rng.integers(0, 150000, 20))
    ids += [cfg.vision_start_token_id] + [cfg.video_token_id] * 648 + [cfg.vision_end_token_id]
    ids += [cfg.vision_start_token_id] + [cfg.image_token_id] * 81 + [cfg.vision_end_token_id]
    ids += list(rng.integers(0, 150000, 120))
    video = rng.standard_normal((8 * 18 * 18, cfg.vision.patch_dim)).astype(np.float32)
    image = rng.standard_normal((18 * 18, cfg.vision.patch_dim)).astype(np.float32)
    return dict(
        input_ids=np.array([ids]),
        pixel_values=image,
        image_grid_thw=np.array([[1, 18, 18]]),
        pixel_values_videos=video,
        video_grid_thw=np.array([[8, 18, 18]]),
    )


def run(workdir: str) -> int:
    from .checkpoint import export_hf, import_hf
    from .qwen2_vl import Qwen2VL, param_count

    os.makedirs(workdir, exist_ok=True)
    rows, t0 = [], time.time()
    cfg = tiny_config()
    model = Qwen2VL(cfg, rngs=nnx.Rngs(0))
    init_dir = os.path.join(workdir, "hf_init")
    model.save_pretrained(init_dir)
    rows.append(("tiny Qwen2-VL built and saved in HF format", f"{param_count(model) / 1e6:.1f}M params", init_dir))

    ckpt, out = os.path.join(workdir, "ckpt"), os.path.join(workdir, "hf_export")
    import_hf(init_dir, ckpt)
    export_hf(ckpt, out)
    n = _check_roundtrip(init_dir, out)
    rows.append(("HF -> orbax -> HF round trip", f"{n} tensors bit-exact", out))

    inputs = _synthetic_prompt(cfg, np.random.default_rng(0))
    reloaded = Qwen2VL.from_pretrained(out)
    ours = np.asarray(reloaded(**inputs))
    rows.append(
        (
            "forward on video (16x252x252) + image + text",
            f"logits {tuple(ours.shape)}",
            "finite" if np.isfinite(ours).all() else "NON-FINITE",
        )
    )
    try:
        import torch
        from transformers import Qwen2VLForConditionalGeneration
    except ImportError:
        rows.append(("transformers comparison", "skipped", "install the test extra (torch) to run it"))
    else:
        hf = Qwen2VLForConditionalGeneration.from_pretrained(out).eval()
        tin = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
        mm = torch.zeros_like(tin["input_ids"])
        mm[tin["input_ids"] == cfg.image_token_id] = 1
        mm[tin["input_ids"] == cfg.video_token_id] = 2
        with torch.no_grad():
            ref = hf(**tin, mm_token_type_ids=mm).logits.numpy()
        err = float(np.abs(ref - ours).max())
        rows.append(("transformers reload, same logits", f"max abs diff {err:.2e}", "OK" if err <= 1e-4 else "FAIL"))
        if err > 1e-4:
            raise AssertionError(f"logits differ from transformers by {err}")
    w = max(len(r[0]) for r in rows)
    print("\nseedr1 demo (model conversion stage; GRPO training joins this demo when it lands)")
    for r in rows:
        print(f"  {r[0]:<{w}}  {r[1]:<28} {r[2]}")
    print(f"  total {time.time() - t0:.1f}s, workdir {workdir}")
    return 0
