"""Qwen2.5-VL: `vision` (Qwen2-VL's tower with RMSNorm, SwiGLU and window attention), `hf_names` (its HF name
table); the decoder, M-RoPE (with absolute time: `vision.tokens_per_second`) and input preparation are Qwen2-VL's."""

from seedr1_jax.models.qwen2_5_vl.model import Qwen2_5_VL

__all__ = ["Qwen2_5_VL"]
