"""Architecture configs: frozen dataclasses, named presets and conversion from/to Hugging Face config.json."""

from __future__ import annotations

import dataclasses
import json
import os
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
    out_dim: int = 3584  # the language model's width (HF: Qwen2-VL `hidden_size`, Qwen2.5-VL `out_hidden_size`)
    rope_theta: float = 10000.0
    # Qwen2.5-VL's tower (unused by Qwen2-VL): SwiGLU width, window attention, absolute time in M-RoPE
    intermediate_size: int = 0  # 0: embed_dim * mlp_ratio
    window_size: int = 0  # window side in pixels (112: 8 x 8 patches); 0 = every block attends the whole frame
    fullatt_block_indexes: tuple[int, ...] = ()  # blocks that attend the whole frame when window_size > 0
    tokens_per_second: float = 0.0  # 0: video time index = temporal patch index (Qwen2-VL)
    # Qwen3-VL's tower: a learned position table (side x side, bilinearly resized to each grid), blocks whose output
    # also feeds the first decoder layers (DeepStack), and one vision block per temporal patch of a video
    num_position_embeddings: int = 0  # 0: no learned position table
    deepstack_visual_indexes: tuple[int, ...] = ()
    frame_blocks: bool = False  # each temporal patch of a video is its own <vision_start> block (timestamp text)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def mlp_dim(self) -> int:
        return self.intermediate_size or int(self.embed_dim * self.mlp_ratio)


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
    head_size: int = 0  # 0: hidden_size // num_heads (Qwen3 states it: HF `head_dim`)
    qk_norm: bool = False  # RMSNorm over each head's queries and keys, and no qkv bias (the Qwen3 decoder)
    mrope_interleaved: bool = False  # M-RoPE frequencies cycle t, h, w (Qwen3-VL) instead of contiguous sections
    vocab_ids: tuple[int, ...] = ()  # a vocabulary subset: row i is token vocab_ids[i]; () = all (models/vocab.py)

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden_size // self.num_heads


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network, plus how it computes (dtypes, remat)."""

    family: str = "qwen2_vl"  # HF `model_type`: which model class builds it (`seedr1_jax.models.FAMILIES`)
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
        if self.family not in FAMILY_NAMES:
            raise ConfigError(f"family {self.family!r} is not supported; supported: {', '.join(FAMILY_NAMES)}")
        if v.window_size and v.window_size % (v.patch_size * v.spatial_merge_size):
            raise ConfigError(
                f"vision window_size {v.window_size} must be a multiple of patch_size * spatial_merge_size "
                f"= {v.patch_size * v.spatial_merge_size}"
            )
        bad = [i for i in v.fullatt_block_indexes if not 0 <= i < v.depth]
        if bad:
            raise ConfigError(f"vision fullatt_block_indexes {bad} are outside the {v.depth} blocks")
        if not t.head_size and t.hidden_size % t.num_heads:
            raise ConfigError(f"text hidden_size {t.hidden_size} is not divisible by num_heads {t.num_heads}")
        if t.num_heads % t.num_kv_heads:
            raise ConfigError(f"num_attention_heads {t.num_heads} is not a multiple of kv heads {t.num_kv_heads}")
        if 2 * sum(t.mrope_section) != t.head_dim:
            raise ConfigError(
                f"mrope_section {list(t.mrope_section)} must sum to head_dim/2 = {t.head_dim // 2} "
                f"(head_dim {t.head_dim} / 2)"
            )
        if v.num_position_embeddings and int(v.num_position_embeddings**0.5) ** 2 != v.num_position_embeddings:
            raise ConfigError(f"vision num_position_embeddings {v.num_position_embeddings} must be a square")
        bad = [i for i in v.deepstack_visual_indexes if not 0 <= i < v.depth]
        if bad:
            raise ConfigError(f"vision deepstack_visual_indexes {bad} are outside the {v.depth} blocks")
        if len(v.deepstack_visual_indexes) > t.num_layers:
            raise ConfigError(
                f"{len(v.deepstack_visual_indexes)} deepstack_visual_indexes feed more decoder layers than the "
                f"{t.num_layers} there are"
            )
        if v.embed_dim % v.num_heads or v.head_dim % 4:
            raise ConfigError(f"vision embed_dim {v.embed_dim} / num_heads {v.num_heads} must be a multiple of 4")
        if v.out_dim != t.hidden_size:
            raise ConfigError(f"vision_config.hidden_size {v.out_dim} must equal the text hidden_size {t.hidden_size}")
        if t.vocab_ids:
            ids = t.vocab_ids
            if len(ids) != t.vocab_size:
                raise ConfigError(
                    f"text.vocab_ids holds {len(ids)} ids but vocab_size is {t.vocab_size}; make them match"
                )
            if ids[0] < 0 or any(b <= a for a, b in zip(ids, ids[1:])):
                raise ConfigError("text.vocab_ids must be non-negative token ids in increasing order, without repeats")
            vision_ids = (
                self.image_token_id,
                self.video_token_id,
                self.vision_start_token_id,
                self.vision_end_token_id,
            )
            missing = sorted(set(vision_ids) - set(ids))
            if missing:
                raise ConfigError(f"text.vocab_ids lacks the vision token ids {missing}; a subset must keep them")
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


FAMILY_NAMES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")  # HF `model_type`s with a model class


def _qwen2_5_vl(hidden, inter, layers, heads, kv, vocab=152064, tie=False) -> ModelConfig:
    """Qwen2.5-VL: every size shares one 32-block, 1280-wide SwiGLU tower with 112-pixel windows."""
    return ModelConfig(
        family="qwen2_5_vl",
        vision=VisionConfig(
            hidden_act="silu",
            out_dim=hidden,
            intermediate_size=3420,
            window_size=112,
            fullatt_block_indexes=(7, 15, 23, 31),
            tokens_per_second=2.0,
        ),
        text=TextConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=inter,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv,
            tie_word_embeddings=tie,
        ),
    )


def qwen2_5_vl_3b() -> ModelConfig:
    return _qwen2_5_vl(2048, 11008, 36, 16, 2, vocab=151936, tie=True)


def qwen2_5_vl_7b() -> ModelConfig:
    return _qwen2_5_vl(3584, 18944, 28, 28, 4)


def qwen2_5_vl_32b() -> ModelConfig:
    return _qwen2_5_vl(5120, 27648, 64, 40, 8)


def qwen2_5_vl_72b() -> ModelConfig:
    return _qwen2_5_vl(8192, 29568, 80, 64, 8)


def _qwen3_vl(hidden, inter, layers, heads, kv, vision_depth, vision_width, vision_mlp, deepstack, tie) -> ModelConfig:
    """Qwen3-VL (dense): the Qwen3 decoder (q/k norm, head_dim 128) and a 16-pixel-patch tower with DeepStack."""
    return ModelConfig(
        family="qwen3_vl",
        vision=VisionConfig(
            depth=vision_depth,
            embed_dim=vision_width,
            intermediate_size=vision_mlp,
            hidden_act="gelu_pytorch_tanh",
            patch_size=16,
            out_dim=hidden,
            num_position_embeddings=2304,
            deepstack_visual_indexes=deepstack,
            frame_blocks=True,
        ),
        text=TextConfig(
            vocab_size=151936,
            hidden_size=hidden,
            intermediate_size=inter,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv,
            rope_theta=5000000.0,
            mrope_section=(24, 20, 20),
            tie_word_embeddings=tie,
            head_size=128,
            qk_norm=True,
            mrope_interleaved=True,
        ),
    )


def qwen3_vl_2b() -> ModelConfig:
    return _qwen3_vl(2048, 6144, 28, 16, 8, 24, 1024, 4096, (5, 11, 17), tie=True)


def qwen3_vl_4b() -> ModelConfig:
    return _qwen3_vl(2560, 9728, 36, 32, 8, 24, 1024, 4096, (5, 11, 17), tie=True)


def qwen3_vl_8b() -> ModelConfig:
    return _qwen3_vl(4096, 12288, 36, 32, 8, 27, 1152, 4304, (8, 16, 24), tie=False)


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


def toy_synth_vocab() -> ModelConfig:
    """`toy` with a vocabulary subset: the ~18.7k token ids the synthetic generators write (models/toy_vocab.json,
    `python -m data_prep.toy_vocab`) instead of 151936, so the head no longer holds 96% of the parameters. Trains
    and evaluates on synthetic data only; no HF export (models/vocab.py)."""
    with open(os.path.join(os.path.dirname(__file__), "toy_vocab.json")) as f:
        ids = tuple(json.load(f)["ids"])
    t = toy()
    return t.replace(text=dataclasses.replace(t.text, vocab_size=len(ids), vocab_ids=ids))


def tiny_qwen2_5_vl() -> ModelConfig:
    """`tiny` as a Qwen2.5-VL: RMSNorm/SwiGLU tower, 8 x 8-patch windows with block 1 global, absolute time."""
    t = tiny()
    vision = dataclasses.replace(
        t.vision,
        hidden_act="silu",
        intermediate_size=128,
        window_size=112,
        fullatt_block_indexes=(1,),
        tokens_per_second=2.0,
    )
    return t.replace(family="qwen2_5_vl", vision=vision)


def tiny_qwen3_vl() -> ModelConfig:
    """`tiny` as a Qwen3-VL: q/k-norm decoder with interleaved M-RoPE, a 6 x 6 learned position table, DeepStack from
    blocks 0 and 1 into decoder layers 0 and 1, and the released models' 16-pixel patches (it reads 256-pixel frames:
    `seedr1 prep --frame-size 256`)."""
    t = tiny()
    vision = dataclasses.replace(
        t.vision,
        patch_size=16,
        hidden_act="gelu_pytorch_tanh",
        intermediate_size=128,  # tiny's width, stated as Qwen3-VL's config.json does
        mlp_ratio=VisionConfig.mlp_ratio,
        num_position_embeddings=36,
        deepstack_visual_indexes=(0, 1),
        frame_blocks=True,
    )
    text = dataclasses.replace(t.text, head_size=32, qk_norm=True, mrope_interleaved=True, mrope_section=(6, 5, 5))
    return t.replace(family="qwen3_vl", vision=vision, text=text)


PRESETS = {
    "qwen2_vl_2b": qwen2_vl_2b,
    "qwen2_vl_7b": qwen2_vl_7b,
    "qwen2_vl_72b": qwen2_vl_72b,
    "qwen2_5_vl_3b": qwen2_5_vl_3b,
    "qwen2_5_vl_7b": qwen2_5_vl_7b,
    "qwen2_5_vl_32b": qwen2_5_vl_32b,
    "qwen2_5_vl_72b": qwen2_5_vl_72b,
    "qwen3_vl_2b": qwen3_vl_2b,
    "qwen3_vl_4b": qwen3_vl_4b,
    "qwen3_vl_8b": qwen3_vl_8b,
    "tiny": tiny,
    "tiny_qwen2_5_vl": tiny_qwen2_5_vl,
    "tiny_qwen3_vl": tiny_qwen3_vl,
    "toy": toy,
    "toy_synth_vocab": toy_synth_vocab,
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


_DTYPE_NAMES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "fp32": "float32"}


def from_hf_config(hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Our config from a Qwen2-VL or Qwen2.5-VL `config.json` dict (hub flat layout or transformers-5 nested)."""
    model_type = hf.get("model_type")
    if model_type not in FAMILY_NAMES:
        raise ConfigError(
            f"{source}: model_type is {model_type!r}; seedr1-jax implements {', '.join(FAMILY_NAMES)} "
            "(Qwen2-VL-2B/7B/72B, Qwen2.5-VL-3B/7B/32B/72B and their fine-tunes)"
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
        raise ConfigError(f"{source}: use_sliding_window=true is not supported (Qwen-VL checkpoints use false)")

    def need(d, key, where):
        if key not in d:
            raise ConfigError(f"{source}: missing field {where}{key}")
        return d[key]

    vision = _vision_from_hf(model_type, vis, lambda key: need(vis, key, "vision_config."))
    qwen3 = {}
    if model_type == "qwen3_vl":
        if text.get("attention_bias"):
            raise ConfigError(f"{source}: attention_bias=true is not supported (Qwen3-VL checkpoints use false)")
        qwen3 = dict(head_size=need(text, "head_dim", ""), qk_norm=True, mrope_interleaved=True)
    tie = bool(hf.get("tie_word_embeddings", False) or text.get("tie_word_embeddings", False))
    num_heads = need(text, "num_attention_heads", "")
    dtype = hf.get("dtype") or hf.get("torch_dtype") or text.get("dtype") or "bfloat16"
    if isinstance(dtype, str):
        dtype = _DTYPE_NAMES.get(dtype.replace("torch.", ""), "bfloat16")
    cfg = ModelConfig(
        family=model_type,
        vision=vision,
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
            **qwen3,
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


def _vision_from_hf(model_type: str, vis: dict, need) -> VisionConfig:
    common = dict(
        depth=need("depth"),
        num_heads=need("num_heads"),
        in_channels=vis.get("in_channels", vis.get("in_chans", 3)),
        patch_size=vis.get("patch_size", 14),
        temporal_patch_size=vis.get("temporal_patch_size", 2),
        spatial_merge_size=vis.get("spatial_merge_size", 2),
        rope_theta=float((vis.get("rope_parameters") or {}).get("rope_theta", 10000.0)),
    )
    if model_type == "qwen2_vl":
        return VisionConfig(
            embed_dim=need("embed_dim"),
            mlp_ratio=vis.get("mlp_ratio", 4),
            hidden_act=vis.get("hidden_act", "quick_gelu"),
            out_dim=need("hidden_size"),
            **common,
        )
    if model_type == "qwen3_vl":
        return VisionConfig(
            embed_dim=need("hidden_size"),
            intermediate_size=need("intermediate_size"),
            hidden_act=vis.get("hidden_act", "gelu_pytorch_tanh"),
            out_dim=need("out_hidden_size"),
            num_position_embeddings=need("num_position_embeddings"),
            deepstack_visual_indexes=tuple(int(i) for i in vis.get("deepstack_visual_indexes", ())),
            frame_blocks=True,
            **common,
        )
    return VisionConfig(  # qwen2_5_vl: hidden_size is the tower's width, out_hidden_size the LLM's
        embed_dim=need("hidden_size"),
        intermediate_size=need("intermediate_size"),
        hidden_act=vis.get("hidden_act", "silu"),
        out_dim=need("out_hidden_size"),
        window_size=vis.get("window_size", 112),
        fullatt_block_indexes=tuple(int(i) for i in vis.get("fullatt_block_indexes", (7, 15, 23, 31))),
        tokens_per_second=float(vis.get("tokens_per_second", 2)),
        **common,
    )


def read_hf_config(hf_dir: str) -> dict[str, Any]:
    path = fs.join(hf_dir, "config.json")
    if not fs.exists(path):
        raise ConfigError(f"{path} not found: pass a Hugging Face Qwen2-VL folder (config.json + *.safetensors)")
    try:
        return json.loads(fs.read_text(path))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); re-download the checkpoint's config.json") from None


_ARCHITECTURES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}


def to_hf_config(cfg: ModelConfig, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A hub-style config.json dict merged over `base`: flat text fields + vision_config for the Qwen2 families,
    text_config + vision_config for Qwen3-VL (each as the family's released checkpoints write it)."""
    t, v = cfg.text, cfg.vision
    nested = cfg.family == "qwen3_vl"
    out = {
        k: val for k, val in (base or {}).items() if k not in ("torch_dtype",) + (() if nested else ("text_config",))
    }
    text = dict(
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
    )
    out.update(
        architectures=[_ARCHITECTURES[cfg.family]],
        model_type=cfg.family,
        tie_word_embeddings=t.tie_word_embeddings,
        image_token_id=cfg.image_token_id,
        video_token_id=cfg.video_token_id,
        vision_start_token_id=cfg.vision_start_token_id,
        vision_end_token_id=cfg.vision_end_token_id,
        dtype=cfg.hf_dtype,
    )
    out.pop("rope_parameters", None)
    if nested:
        text.update(
            head_dim=t.head_dim,
            attention_bias=False,
            rope_scaling={"rope_type": "default", "mrope_section": list(t.mrope_section), "mrope_interleaved": True},
            model_type="qwen3_vl_text",
            dtype=cfg.hf_dtype,
        )
        sub = {
            k: val for k, val in (out.get("text_config") or {}).items() if k not in ("rope_parameters", "torch_dtype")
        }
        out["text_config"] = {**sub, **text}
    else:
        out.update(text, use_sliding_window=False)
    vis = dict((base or {}).get("vision_config") or {})
    vis.update(
        depth=v.depth,
        num_heads=v.num_heads,
        hidden_act=v.hidden_act,
        in_channels=v.in_channels,
        patch_size=v.patch_size,
        temporal_patch_size=v.temporal_patch_size,
        spatial_merge_size=v.spatial_merge_size,
        model_type=f"{cfg.family}_vision",
    )
    if cfg.family == "qwen2_vl":
        vis.update(embed_dim=v.embed_dim, mlp_ratio=v.mlp_ratio, hidden_size=v.out_dim)
    else:
        vis.update(hidden_size=v.embed_dim, intermediate_size=v.mlp_dim, out_hidden_size=v.out_dim)
    if cfg.family == "qwen2_5_vl":
        vis.update(
            window_size=v.window_size,
            fullatt_block_indexes=list(v.fullatt_block_indexes),
            # transformers' config class insists on an int where the value is one
            tokens_per_second=int(v.tokens_per_second) if v.tokens_per_second.is_integer() else v.tokens_per_second,
        )
    if cfg.family == "qwen3_vl":
        vis.update(
            num_position_embeddings=v.num_position_embeddings,
            deepstack_visual_indexes=list(v.deepstack_visual_indexes),
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
