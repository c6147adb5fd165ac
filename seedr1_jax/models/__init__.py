"""Model families and what they share: `layers` (Linear, norms, rotary, attention with logical axes), `config`
(architecture dataclasses, presets, HF config.json conversion), `processor` (frames, patches, chat template,
tokenizer), `hf_io` (safetensors in and out through a family's name table), `hf_extras` (tokenizer/processor
files of an HF folder), `checkpoint` (orbax parameters, import-hf/export-hf, the model a config names), and one
folder per family (`qwen2_vl/`: vision tower, decoder, composed model, HF name table).
Imports from parallel/ and core/ only."""

from __future__ import annotations

from seedr1_jax.models.config import ConfigError, read_hf_config
from seedr1_jax.models.qwen2_vl import Qwen2VL

FAMILIES = {"qwen2_vl": Qwen2VL}  # HF config.json `model_type` -> model class


def family(hf_config: dict, source: str = "config.json"):
    """The model class for an HF config.json dict; a ConfigError naming what is supported otherwise."""
    kind = hf_config.get("model_type")
    if kind not in FAMILIES:
        raise ConfigError(f"{source}: model_type {kind!r} is not supported; supported: {', '.join(FAMILIES)}")
    return FAMILIES[kind]


def from_pretrained(hf_dir: str, dtype=None, mesh=None, **overrides):
    """The model of an HF folder, of whatever supported family its config.json names (numpy inputs, logits out)."""
    cls = family(read_hf_config(hf_dir), source=f"{hf_dir}/config.json")
    return cls.from_pretrained(hf_dir, dtype=dtype, mesh=mesh, **overrides)
