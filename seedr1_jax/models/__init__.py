"""Model families and what they share: `layers` (Linear, norms, rotary, attention with logical axes), `config`
(architecture dataclasses, presets, HF config.json conversion), `processor` (frames, patches, chat template,
tokenizer), `hf_io` (safetensors in and out through a family's name table), `hf_extras` (tokenizer/processor
files of an HF folder), `checkpoint` (orbax parameters, import-hf/export-hf, the model a config names),
`families` (HF model_type -> model class), and one folder per family (`qwen2_vl/`: vision tower, decoder, composed
model, HF name table; `qwen2_5_vl/`: its tower and name table on Qwen2-VL's decoder; `qwen3_vl/`: its tower with
DeepStack and its name table, on the decoder with Qwen3's config fields).
Imports from parallel/ and core/ only."""

from __future__ import annotations

from seedr1_jax.models.config import ConfigError, read_hf_config  # noqa: F401
from seedr1_jax.models.families import FAMILIES, abstract_model, build, family, from_pretrained, model_class

__all__ = ["FAMILIES", "abstract_model", "build", "family", "from_pretrained", "model_class"]
