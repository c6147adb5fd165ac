"""Qwen3-VL (dense): `vision` (a LayerNorm/GELU tower with 16-pixel patches, a learned position table resized to each
grid, and DeepStack mergers), `hf_names` (its HF name table); the decoder is the shared Qwen2 one with Qwen3's
config fields (q/k norm, no qkv bias, explicit head_dim, interleaved M-RoPE) and DeepStack inputs."""

from seedr1_jax.models.qwen3_vl.model import Qwen3VL

__all__ = ["Qwen3VL"]
