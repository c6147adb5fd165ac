"""Qwen2-VL: `vision` (the ViT tower and 2x2 merger), `llm` (the Qwen2 decoder with M-RoPE and KV cache),
`model` (the composed model, M-RoPE index and vision placement, the HF-like API), `hf_names` (HF name table)."""

from seedr1_jax.models.qwen2_vl.model import Qwen2VL

__all__ = ["Qwen2VL"]
