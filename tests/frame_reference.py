"""The reference preprocessing (qwen-vl-utils with the SEED-Bench-R1 settings), written independently of our code.

Video: decord reads the frames `round(linspace(0, total - 1, n))` with n from qwen-vl-utils' `smart_nframes`
(fps 2, 4..16 frames, even), then torchvision's tensor resize to 252x252 (bicubic, antialias), which is
`torch.nn.functional.interpolate` on float, clamped and rounded back to uint8. Image: RGBA composited on white,
then PIL's bicubic resize to 252x252. Also: our stored frames read back through `seedr1_jax.data`'s pipeline.
"""

from __future__ import annotations

import math

import numpy as np

SIDE = 252


def reference_video(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8[n, 252, 252, 3] frames, int64[n] indices) as the reference computes them."""
    import torch

    from data_prep.media import import_decord  # plain `import decord`, minus its global symbols (see there)

    vr = import_decord().VideoReader(path, num_threads=1)
    total, fps = len(vr), vr.get_avg_fps()
    n = total / fps * 2.0
    lo, hi = 4, math.floor(min(16, total) / 2) * 2
    n = math.floor(min(min(max(n, lo), hi), total) / 2) * 2
    idx = torch.linspace(0, total - 1, n).round().long()
    raw = torch.from_numpy(vr.get_batch(idx.tolist()).asnumpy()).permute(0, 3, 1, 2).float()
    out = torch.nn.functional.interpolate(raw, size=(SIDE, SIDE), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(), idx.numpy()


def reference_image(path: str) -> np.ndarray:
    """uint8[252, 252, 3]: RGBA over white (float alpha blend), other modes converted, PIL bicubic resize."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode == "RGBA":
            x = np.asarray(im, np.float64)
            a = x[..., 3:] / 255.0
            rgb = np.round(x[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)
        else:
            rgb = np.asarray(im.convert("RGB"))
    return np.asarray(Image.fromarray(rgb).resize((SIDE, SIDE), Image.Resampling.BICUBIC))


def pipeline_frames(tfrecord_dir: str, split: str, max_frames: int = 16) -> dict:
    """sample_id -> (uint8-range float32[n, 252, 252, 3] video frames, float32[252, 252, 3] image or None,
    frame_indices) recovered from the `seedr1_jax.data` pipeline's patchified, normalized pixels."""
    from seedr1_jax import data

    cfg = data.default_config()
    cfg.tfrecord_dir, cfg.split, cfg.shuffle, cfg.max_frames = tfrecord_dir, split, False, max_frames
    ds, _ = data.open_split(cfg, 0, 1)
    ds = ds.map(data.vision_fn(max_frames))
    mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
    out = {}
    for ex in ds.as_numpy_iterator():
        px = ex["pixels"]  # [1 + S, 324, 1176]: rows (bh, bw, mh, mw), columns (C, tp, 14, 14)
        s = px.shape[0]
        x = px.reshape(s, 9, 9, 2, 2, 3, 2, 14, 14).transpose(0, 6, 1, 3, 7, 2, 4, 8, 5)
        frames = (x.reshape(s * 2, SIDE, SIDE, 3) * std + mean) * 255.0
        n = int(ex["num_frames"])
        img = frames[0] if ex["has_image"] else None  # the image segment comes first, then the video's
        out[ex["sample_id"].decode()] = (frames[2 : 2 + n], img, ex["frame_indices"])
    return out
