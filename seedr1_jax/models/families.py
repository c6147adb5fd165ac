"""The model families, keyed by HF `model_type` (= `ModelConfig.family`): which class builds a config."""

from __future__ import annotations

from flax import nnx

from seedr1_jax.models.config import FAMILY_NAMES, ConfigError, ModelConfig, read_hf_config
from seedr1_jax.models.qwen2_5_vl import Qwen2_5_VL
from seedr1_jax.models.qwen2_vl import Qwen2VL
from seedr1_jax.models.qwen3_vl import Qwen3VL

FAMILIES = {cls.family: cls for cls in (Qwen2VL, Qwen2_5_VL, Qwen3VL)}
assert tuple(FAMILIES) == FAMILY_NAMES


def model_class(cfg: ModelConfig):
    """The model class of `cfg.family`."""
    if cfg.family not in FAMILIES:
        raise ConfigError(f"family {cfg.family!r} is not supported; supported: {', '.join(FAMILIES)}")
    return FAMILIES[cfg.family]


def build(cfg: ModelConfig, rngs: nnx.Rngs):
    return model_class(cfg)(cfg, rngs=rngs)


def abstract_model(cfg: ModelConfig):
    """The model with ShapeDtypeStruct leaves: no memory, for parameter counts, shardings and loading."""
    return nnx.eval_shape(lambda: build(cfg, nnx.Rngs(0)))


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
