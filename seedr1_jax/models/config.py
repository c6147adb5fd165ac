"""Architecture configs: frozen dataclasses, named presets and conversion from/to Hugging Face config.json."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax.numpy as jnp

from seedr1_jax.core import fs


class ConfigError(ValueError):
    """A user-facing configuration problem (bad file, bad field); the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    depth: int = 32
    embed_dim: int = 1280
    num_heads: int = 16
    mlp_ratio: float = 4
    hidden_act: str = "quick_gelu"
    in_channels: int = 3
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    out_dim: int = 3584  # HF `vision_config.hidden_size`: the language model's width
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.temporal_patch_size * self.patch_size**2


@dataclasses.dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 152064
    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_layers: int = 28
    num_heads: int = 28
    num_kv_heads: int = 4
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1000000.0
    mrope_section: tuple[int, int, int] = (16, 24, 24)
    hidden_act: str = "silu"
    tie_word_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network, plus how it computes (dtypes, remat)."""

    vision: VisionConfig = VisionConfig()
    text: TextConfig = TextConfig()
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653
    param_dtype: str = "float32"  # master weights
    dtype: str = "float32"  # activations / matmul inputs
    remat_policy: str = "none"  # "none", "full", or any name in jax.checkpoint_policies
    decode_unroll: bool = False  # decoding runs the layers unrolled on per-layer weights and cache (sampler.py)
    hf_dtype: str = "bfloat16"  # dtype written by export (the checkpoint's original dtype after import)

    def replace(self, **kw) -> ModelConfig:
        return dataclasses.replace(self, **kw)

    def validate(self) -> ModelConfig:
        t, v = self.text, self.vision
        if t.hidden_size % t.num_heads:
            raise ConfigError(f"text hidden_size {t.hidden_size} is not divisible by num_heads {t.num_heads}")
        if t.num_heads % t.num_kv_heads:
            raise ConfigError(f"num_attention_heads {t.num_heads} is not a multiple of kv heads {t.num_kv_heads}")
        if 2 * sum(t.mrope_section) != t.head_dim:
            raise ConfigError(
                f"mrope_section {list(t.mrope_section)} must sum to head_dim/2 = {t.head_dim // 2} "
                f"(hidden_size {t.hidden_size} / num_heads {t.num_heads} / 2)"
            )
        if v.embed_dim % v.num_heads or v.head_dim % 4:
            raise ConfigError(f"vision embed_dim {v.embed_dim} / num_heads {v.num_heads} must be a multiple of 4")
        if v.out_dim != t.hidden_size:
            raise ConfigError(f"vision_config.hidden_size {v.out_dim} must equal the text hidden_size {t.hidden_size}")
        for name in ("param_dtype", "dtype", "hf_dtype"):
            if getattr(self, name) not in ("float32", "bfloat16", "float16"):
                raise ConfigError(f"{name}={getattr(self, name)!r}: use float32, bfloat16 or float16")
        return self


def qwen2_vl_2b() -> ModelConfig:
    return ModelConfig(
        vision=VisionConfig(out_dim=1536),
        text=TextConfig(
            vocab_size=151936,
            hidden_size=1536,
            intermediate_size=8960,
            num_layers=28,
            num_heads=12,
            num_kv_heads=2,
            tie_word_embeddings=True,
        ),
    )


def qwen2_vl_7b() -> ModelConfig:
    return ModelConfig()


def qwen2_vl_72b() -> ModelConfig:
    return ModelConfig(
        vision=VisionConfig(out_dim=8192),
        text=TextConfig(
            vocab_size=152064,
            hidden_size=8192,
            intermediate_size=29568,
            num_layers=80,
            num_heads=64,
            num_kv_heads=8,
        ),
    )


def tiny() -> ModelConfig:
    """A 20M-parameter Qwen2-VL with the real vocabulary and special tokens (demo, CPU smoke runs)."""
    return ModelConfig(
        vision=VisionConfig(depth=2, embed_dim=64, num_heads=2, mlp_ratio=2, out_dim=128),
        text=TextConfig(
            vocab_size=151936,
            hidden_size=128,
            intermediate_size=256,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            mrope_section=(4, 6, 6),
            tie_word_embeddings=True,
        ),
        hf_dtype="float32",
    )


def toy() -> ModelConfig:
    """The toy study's base: `tiny` with 4 decoder layers and a 4-block vision tower. At 4 frames the step's compute
    sits in the 152k-vocabulary projection, so the extra depth costs little (docs/results.md, "The toy base")."""
    t = tiny()
    return t.replace(vision=dataclasses.replace(t.vision, depth=4), text=dataclasses.replace(t.text, num_layers=4))


PRESETS = {
    "qwen2_vl_2b": qwen2_vl_2b,
    "qwen2_vl_7b": qwen2_vl_7b,
    "qwen2_vl_72b": qwen2_vl_72b,
    "tiny": tiny,
    "toy": toy,
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


_DTYPE_NAMES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "fp32": "float32"}


def from_hf_config(hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Our config from a Qwen2-VL `config.json` dict (hub flat layout or transformers-5 nested layout)."""
    model_type = hf.get("model_type")
    if model_type != "qwen2_vl":
        raise ConfigError(
            f"{source}: model_type is {model_type!r}, but seedr1-jax implements only 'qwen2_vl' "
            "(Qwen2-VL-2B/7B/72B and their fine-tunes)"
        )
    text = dict(hf)
    if isinstance(hf.get("text_config"), dict):
        text = {**hf, **hf["text_config"]}
    vis = hf.get("vision_config")
    if not isinstance(vis, dict):
        raise ConfigError(f"{source}: missing 'vision_config' section")
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    theta = rope.get("rope_theta", text.get("rope_theta", 1000000.0))
    if text.get("use_sliding_window"):
        raise ConfigError(f"{source}: use_sliding_window=true is not supported (Qwen2-VL checkpoints use false)")

    def need(d, key, where):
        if key not in d:
            raise ConfigError(f"{source}: missing field {where}{key}")
        return d[key]

    tie = bool(hf.get("tie_word_embeddings", False) or text.get("tie_word_embeddings", False))
    num_heads = need(text, "num_attention_heads", "")
    dtype = hf.get("dtype") or hf.get("torch_dtype") or text.get("dtype") or "bfloat16"
    if isinstance(dtype, str):
        dtype = _DTYPE_NAMES.get(dtype.replace("torch.", ""), "bfloat16")
    cfg = ModelConfig(
        vision=VisionConfig(
            depth=need(vis, "depth", "vision_config."),
            embed_dim=need(vis, "embed_dim", "vision_config."),
            num_heads=need(vis, "num_heads", "vision_config."),
            mlp_ratio=vis.get("mlp_ratio", 4),
            hidden_act=vis.get("hidden_act", "quick_gelu"),
            in_channels=vis.get("in_channels", vis.get("in_chans", 3)),
            patch_size=vis.get("patch_size", 14),
            temporal_patch_size=vis.get("temporal_patch_size", 2),
            spatial_merge_size=vis.get("spatial_merge_size", 2),
            out_dim=need(vis, "hidden_size", "vision_config."),
        ),
        text=TextConfig(
            vocab_size=need(text, "vocab_size", ""),
            hidden_size=need(text, "hidden_size", ""),
            intermediate_size=need(text, "intermediate_size", ""),
            num_layers=need(text, "num_hidden_layers", ""),
            num_heads=num_heads,
            num_kv_heads=text.get("num_key_value_heads") or num_heads,
            rms_norm_eps=text.get("rms_norm_eps", 1e-5),
            rope_theta=float(theta),
            mrope_section=tuple(rope.get("mrope_section", (16, 24, 24))),
            hidden_act=text.get("hidden_act", "silu"),
            tie_word_embeddings=tie,
        ),
        image_token_id=hf.get("image_token_id", 151655),
        video_token_id=hf.get("video_token_id", 151656),
        vision_start_token_id=hf.get("vision_start_token_id", 151652),
        vision_end_token_id=hf.get("vision_end_token_id", 151653),
        hf_dtype=dtype,
    )
    for act, where in (
        (cfg.text.hidden_act, "hidden_act"),
        (cfg.vision.hidden_act, "vision_config.hidden_act"),
    ):
        if act not in ("silu", "quick_gelu", "gelu", "gelu_pytorch_tanh"):
            raise ConfigError(f"{source}: {where}={act!r} is not supported")
    try:
        return cfg.validate()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def read_hf_config(hf_dir: str) -> dict[str, Any]:
    path = fs.join(hf_dir, "config.json")
    if not fs.exists(path):
        raise ConfigError(f"{path} not found: pass a Hugging Face Qwen2-VL folder (config.json + *.safetensors)")
    try:
        return json.loads(fs.read_text(path))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); re-download the checkpoint's config.json") from None


def to_hf_config(cfg: ModelConfig, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A hub-style Qwen2-VL config.json dict (flat text fields + vision_config), merged over `base`."""
    t, v = cfg.text, cfg.vision
    out = {k: val for k, val in (base or {}).items() if k not in ("text_config", "torch_dtype")}
    out.update(
        architectures=["Qwen2VLForConditionalGeneration"],
        model_type="qwen2_vl",
        vocab_size=t.vocab_size,
        hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_kv_heads,
        rms_norm_eps=t.rms_norm_eps,
        rope_theta=t.rope_theta,
        rope_scaling={"type": "mrope", "mrope_section": list(t.mrope_section)},
        hidden_act=t.hidden_act,
        tie_word_embeddings=t.tie_word_embeddings,
        image_token_id=cfg.image_token_id,
        video_token_id=cfg.video_token_id,
        vision_start_token_id=cfg.vision_start_token_id,
        vision_end_token_id=cfg.vision_end_token_id,
        use_sliding_window=False,
        dtype=cfg.hf_dtype,
    )
    out.pop("rope_parameters", None)
    vis = dict((base or {}).get("vision_config") or {})
    vis.update(
        depth=v.depth,
        embed_dim=v.embed_dim,
        num_heads=v.num_heads,
        mlp_ratio=v.mlp_ratio,
        hidden_act=v.hidden_act,
        in_channels=v.in_channels,
        patch_size=v.patch_size,
        temporal_patch_size=v.temporal_patch_size,
        spatial_merge_size=v.spatial_merge_size,
        hidden_size=v.out_dim,
        model_type="qwen2_vl_vision",
    )
    out["vision_config"] = vis
    return out


def with_dtypes(cfg: ModelConfig, dtype=None, param_dtype=None) -> ModelConfig:
    upd = {}
    if dtype is not None:
        upd["dtype"] = jnp.dtype(dtype).name
        upd["param_dtype"] = jnp.dtype(dtype).name
    if param_dtype is not None:
        upd["param_dtype"] = jnp.dtype(param_dtype).name
    return dataclasses.replace(cfg, **upd)
