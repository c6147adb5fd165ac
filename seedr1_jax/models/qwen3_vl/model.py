"""The composed Qwen3-VL model: Qwen2-VL's with its own vision tower and HF name table."""

from __future__ import annotations

from seedr1_jax.models.qwen2_vl.model import Qwen2VL
from seedr1_jax.models.qwen3_vl import hf_names
from seedr1_jax.models.qwen3_vl.vision import VisionTower


class Qwen3VL(Qwen2VL):
    """Call it like transformers' `Qwen3VLForConditionalGeneration` (a video is one `<|vision_start|>` block per
    temporal patch, with its timestamp as text between them, as Qwen3-VL's processor writes it)."""

    family = "qwen3_vl"
    vision_cls = VisionTower
    hf_table = staticmethod(hf_names.table)
