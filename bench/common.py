"""What the transformers-vs-ours benches share: the random Qwen2-VL config and SEED-Bench-R1-shaped prompts."""

from __future__ import annotations

import argparse

import numpy as np

VIDEO_GRID, IMAGE_GRID = (8, 18, 18), (1, 18, 18)  # 16 frames / temporal patch 2, 252 / 14 = 18


def rollout_parser(doc: str | None = None) -> argparse.ArgumentParser:
    """The rollout benches' shared flags: prompts, group size G, new tokens, text width and layers."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    return ap


def hf_config(width: int, layers: int, vision_width: int, vision_layers: int, kv_heads: int):
    """A random-model transformers Qwen2VLConfig with Qwen2-VL's real vocabulary (151936) and token ids."""
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=151936,
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=layers,
            num_attention_heads=width // 64,
            num_key_value_heads=kv_heads,
            rope_parameters={"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 1e6},
        ),
        vision_config=dict(
            depth=vision_layers,
            embed_dim=vision_width,
            num_heads=max(1, vision_width // 64),
            hidden_size=width,
            mlp_ratio=4,
        ),
    )


def prompt(cfg, rng, lead: int = 20) -> tuple[list[int], np.ndarray, np.ndarray]:
    """One prompt: `lead` text tokens, a 16-frame video (648 tokens), an image (81 tokens), 150 text tokens.

    Returns (ids, image patches f32[324, 1176], video patches f32[2592, 1176])."""
    text = lambda n: list(rng.integers(0, 150000, n))  # noqa: E731
    vs, ve = cfg.vision_start_token_id, cfg.vision_end_token_id
    ids = (
        text(lead)
        + [vs, *[cfg.video_token_id] * (int(np.prod(VIDEO_GRID)) // 4), ve]
        + [vs, *[cfg.image_token_id] * (int(np.prod(IMAGE_GRID)) // 4), ve]
        + text(150)
    )
    video = rng.standard_normal((int(np.prod(VIDEO_GRID)), 1176)).astype(np.float32)
    image = rng.standard_normal((int(np.prod(IMAGE_GRID)), 1176)).astype(np.float32)
    return ids, image, video


def torch_inputs(cfg, ids, image, video, dtype=None) -> dict:
    """transformers inputs of one prompt (ids int[1, T]), with the `mm_token_type_ids` transformers 5 wants."""
    import torch

    dtype = dtype or torch.float32
    t = torch.from_numpy(np.asarray(ids))
    mm = torch.zeros_like(t)
    mm[t == cfg.image_token_id], mm[t == cfg.video_token_id] = 1, 2
    return dict(
        input_ids=t,
        pixel_values=torch.from_numpy(image).to(dtype),
        image_grid_thw=torch.tensor([IMAGE_GRID]),
        pixel_values_videos=torch.from_numpy(video).to(dtype),
        video_grid_thw=torch.tensor([VIDEO_GRID]),
        mm_token_type_ids=mm,
    )
