"""Qwen2.5-VL's Hugging Face name table: its tower's names, then the Qwen2 decoder's (shared with Qwen2-VL)."""

from __future__ import annotations

from seedr1_jax.models.config import ModelConfig
from seedr1_jax.models.qwen2_vl import hf_names as qwen2_vl


def table(cfg: ModelConfig) -> list[tuple[str, str, str]]:
    rows = [("visual.patch_embed.proj.weight", "visual.patch_embed.kernel", "conv")]
    for n in ("norm1", "norm2"):
        rows.append((f"visual.blocks.{{i}}.{n}.weight", f"visual.blocks.{n}.scale", "copy"))
    for lin in ("attn.qkv", "attn.proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
        rows += [
            (f"visual.blocks.{{i}}.{lin}.weight", f"visual.blocks.{lin}.kernel", "linear"),
            (f"visual.blocks.{{i}}.{lin}.bias", f"visual.blocks.{lin}.bias", "copy"),
        ]
    rows.append(("visual.merger.ln_q.weight", "visual.merger.ln_q.scale", "copy"))
    return rows + qwen2_vl.merger_rows() + qwen2_vl.text_rows(cfg)
