"""Qwen3-VL's Hugging Face name table, in the names its released checkpoints use (`model.visual.*`,
`model.language_model.*`, `lm_head.weight`)."""

from __future__ import annotations

from seedr1_jax.models.config import ModelConfig


def table(cfg: ModelConfig) -> list[tuple[str, str, str]]:
    v = "model.visual"
    rows = [
        (f"{v}.patch_embed.proj.weight", "visual.patch_embed.kernel", "conv"),
        (f"{v}.patch_embed.proj.bias", "visual.patch_embed.bias", "copy"),
        (f"{v}.pos_embed.weight", "visual.pos_embed.embedding", "copy"),
    ]
    for n in ("norm1", "norm2"):
        rows += [
            (f"{v}.blocks.{{i}}.{n}.weight", f"visual.blocks.{n}.scale", "copy"),
            (f"{v}.blocks.{{i}}.{n}.bias", f"visual.blocks.{n}.bias", "copy"),
        ]
    for lin in ("attn.qkv", "attn.proj", "mlp.linear_fc1", "mlp.linear_fc2"):
        rows += [
            (f"{v}.blocks.{{i}}.{lin}.weight", f"visual.blocks.{lin}.kernel", "linear"),
            (f"{v}.blocks.{{i}}.{lin}.bias", f"visual.blocks.{lin}.bias", "copy"),
        ]
    mergers = [(f"{v}.merger", "visual.merger")]
    if cfg.vision.deepstack_visual_indexes:
        mergers.append((f"{v}.deepstack_merger_list.{{i}}", "visual.deepstack_merger"))
    for hf, ours in mergers:
        rows += [(f"{hf}.norm.weight", f"{ours}.norm.scale", "copy"), (f"{hf}.norm.bias", f"{ours}.norm.bias", "copy")]
        for lin in ("linear_fc1", "linear_fc2"):
            rows += [
                (f"{hf}.{lin}.weight", f"{ours}.{lin}.kernel", "linear"),
                (f"{hf}.{lin}.bias", f"{ours}.{lin}.bias", "copy"),
            ]
    t = "model.language_model"
    rows += [
        (f"{t}.embed_tokens.weight", "model.embed_tokens.embedding", "copy"),
        (f"{t}.norm.weight", "model.norm.scale", "copy"),
    ]
    for n in ("input_layernorm", "post_attention_layernorm"):
        rows.append((f"{t}.layers.{{i}}.{n}.weight", f"model.layers.{n}.scale", "copy"))
    for p in ("q_norm", "k_norm"):
        rows.append((f"{t}.layers.{{i}}.self_attn.{p}.weight", f"model.layers.self_attn.{p}.scale", "copy"))
    for p in ("q_proj", "k_proj", "v_proj", "o_proj"):
        rows.append((f"{t}.layers.{{i}}.self_attn.{p}.weight", f"model.layers.self_attn.{p}.kernel", "linear"))
    for p in ("gate_proj", "up_proj", "down_proj"):
        rows.append((f"{t}.layers.{{i}}.mlp.{p}.weight", f"model.layers.mlp.{p}.kernel", "linear"))
    if not cfg.text.tie_word_embeddings:
        rows.append(("lm_head.weight", "lm_head.kernel", "linear"))
    return rows
