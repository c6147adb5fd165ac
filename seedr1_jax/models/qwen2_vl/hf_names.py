"""Qwen2-VL's Hugging Face name table: hub tensor names <-> our nnx parameter paths, with a transform each."""

from __future__ import annotations

from seedr1_jax.models.config import ModelConfig


# ---- the name table ---------------------------------------------------------------------------
# (HF hub name with {i} for the layer index, our nnx path, transform). Transforms map an HF tensor to
# our layout: "copy" as is, "linear" transposes [out, in] -> [in, out], "conv" flattens the Conv3d patch
# embedding [E, C, t, p, p] -> [C*t*p*p, E].
def table(cfg: ModelConfig) -> list[tuple[str, str, str]]:
    rows = [("visual.patch_embed.proj.weight", "visual.patch_embed.kernel", "conv")]
    for hf, ours in (("norm1", "norm1"), ("norm2", "norm2")):
        rows += [
            (f"visual.blocks.{{i}}.{hf}.weight", f"visual.blocks.{ours}.scale", "copy"),
            (f"visual.blocks.{{i}}.{hf}.bias", f"visual.blocks.{ours}.bias", "copy"),
        ]
    for lin in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
        rows += [
            (f"visual.blocks.{{i}}.{lin}.weight", f"visual.blocks.{lin}.kernel", "linear"),
            (f"visual.blocks.{{i}}.{lin}.bias", f"visual.blocks.{lin}.bias", "copy"),
        ]
    rows += [
        ("visual.merger.ln_q.weight", "visual.merger.ln_q.scale", "copy"),
        ("visual.merger.ln_q.bias", "visual.merger.ln_q.bias", "copy"),
    ]
    return rows + merger_rows() + text_rows(cfg)


def merger_rows() -> list[tuple[str, str, str]]:
    rows = []
    for hf, ours in (("mlp.0", "mlp_0"), ("mlp.2", "mlp_2")):
        rows += [
            (f"visual.merger.{hf}.weight", f"visual.merger.{ours}.kernel", "linear"),
            (f"visual.merger.{hf}.bias", f"visual.merger.{ours}.bias", "copy"),
        ]
    return rows


def text_rows(cfg: ModelConfig) -> list[tuple[str, str, str]]:
    """The Qwen2 decoder and head."""
    rows = [
        ("model.embed_tokens.weight", "model.embed_tokens.embedding", "copy"),
        ("model.norm.weight", "model.norm.scale", "copy"),
    ]
    for n in ("input_layernorm", "post_attention_layernorm"):
        rows.append((f"model.layers.{{i}}.{n}.weight", f"model.layers.{n}.scale", "copy"))
    for p in ("q_proj", "k_proj", "v_proj"):
        rows += [
            (f"model.layers.{{i}}.self_attn.{p}.weight", f"model.layers.self_attn.{p}.kernel", "linear"),
            (f"model.layers.{{i}}.self_attn.{p}.bias", f"model.layers.self_attn.{p}.bias", "copy"),
        ]
    rows.append(("model.layers.{i}.self_attn.o_proj.weight", "model.layers.self_attn.o_proj.kernel", "linear"))
    for p in ("gate_proj", "up_proj", "down_proj"):
        rows.append((f"model.layers.{{i}}.mlp.{p}.weight", f"model.layers.mlp.{p}.kernel", "linear"))
    if not cfg.text.tie_word_embeddings:
        rows.append(("lm_head.weight", "lm_head.kernel", "linear"))
    return rows
