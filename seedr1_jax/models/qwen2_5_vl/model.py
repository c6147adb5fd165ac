"""The composed Qwen2.5-VL model: Qwen2-VL's with its own vision tower and HF name table."""

from __future__ import annotations

from seedr1_jax.models.qwen2_5_vl import hf_names
from seedr1_jax.models.qwen2_5_vl.vision import VisionTower
from seedr1_jax.models.qwen2_vl.model import Qwen2VL


class Qwen2_5_VL(Qwen2VL):
    """Call it like transformers' `Qwen2_5_VLForConditionalGeneration` (`second_per_grid_ts` included)."""

    family = "qwen2_5_vl"
    vision_cls = VisionTower
    hf_table = staticmethod(hf_names.table)
