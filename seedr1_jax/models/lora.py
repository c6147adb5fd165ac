"""LoRA adapters on the project's `layers.Linear` (`model.lora`): y = x W (+ b) + (x A) B * alpha / rank.

Our layers are stacked and scanned (`nnx.split`/`merge` inside `jax.lax.scan`), so the adapters are parameters
of the Linear modules themselves, `lora_a` [*stack, in, rank] and `lora_b` [*stack, rank, out], added after
construction to the modules whose path matches `model.lora.targets` (`attach`). They are `layers.LoRAParam`s, a
kind of `nnx.Param`: they shard, scan and checkpoint like every parameter. A starts as PEFT's (kaiming-uniform,
bound 1/sqrt(in)), B at zero, so a fresh adapter leaves the model's output bit for bit unchanged.

On pure-dict parameters (what the train state holds) `partition` splits the adapters from the frozen base and
`combine` joins them again; `merged` folds the adapters into the kernels (export, rollout weights).

QLoRA (`model.lora.base_quant`): `quantize_base` stores the frozen decoder kernels as int8 or nf4 codes
(`models.quant`), dequantized where each layer uses them.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from seedr1_jax.models import quant
from seedr1_jax.models.config import ConfigError
from seedr1_jax.models.layers import Linear, LoRAParam  # noqa: F401 -- LoRAParam: the adapters' kind

ADAPTERS = ("lora_a", "lora_b")
# the language model's attention and MLP projections (PEFT's usual target set for the LLM); the vision tower's
# linears are `visual/blocks/(attn/(qkv|proj)|mlp/(fc1|fc2))`, the merger's `visual/merger/mlp_[02]`
DEFAULT_TARGETS = r"model/layers/(self_attn/[qkvo]_proj|mlp/(gate|up|down)_proj)"
# the base linears `model.lora.base_quant` quantizes: the decoder's (~80% of a 7B model's weights); the vision
# tower, the embedding and the head stay in `base_dtype`
QUANT_TARGETS = r"model/layers/.*"


def enabled(config) -> bool:
    lora = config.model.get("lora")
    return bool(lora is not None and int(lora.rank) > 0)


def merge_rollout(config) -> bool:
    """Whether a LoRA run's rollouts decode merged weights (`model.lora.merge_rollout`: "on", "off", or "auto" =
    on for a quantized base, whose in-path dequantization would run on every decoded token)."""
    if not enabled(config):
        return False
    v = str(config.model.lora.get("merge_rollout", "auto")).lower()
    return bool(config.model.lora.get("base_quant")) if v == "auto" else v in ("on", "true")


def scale(config) -> float:
    return float(config.model.lora.alpha) / int(config.model.lora.rank)


def attach(model, rank: int, alpha: float, targets: str = DEFAULT_TARGETS, seed: int = 0) -> list[str]:
    """Adds rank-`rank` adapters to every `Linear` of `model` whose path ("model/layers/self_attn/q_proj")
    matches `targets` (re.fullmatch); returns those paths. None matching is a ConfigError naming the linears."""
    if int(rank) <= 0:
        raise ConfigError(f"model.lora.rank={rank}: use a positive rank, or 0 for full fine-tuning")
    hit = check_targets(model, targets)
    key = jax.random.key(seed)
    for i, (_, m) in enumerate(hit):
        m.add_lora(int(rank), float(alpha) / int(rank), jax.random.fold_in(key, i))
    return [p for p, _ in hit]


def abstract_policy(config, cfg):
    """The policy the trainer builds, as ShapeDtypeStructs (no memory): the model of `cfg`, with LoRA
    (`model.lora.rank` > 0) its adapters attached and (`base_quant`) its base quantized."""
    from flax import nnx

    from seedr1_jax.models.families import abstract_model, build

    if not enabled(config):
        return abstract_model(cfg)
    lc = config.model.lora

    def make():
        model = build(cfg, nnx.Rngs(0))
        attach(model, lc.rank, lc.alpha, lc.targets)
        if lc.get("base_quant"):
            quantize_base(model, lc.base_quant, lc.get("quant_targets", QUANT_TARGETS))
        return model

    return nnx.eval_shape(make)


def fingerprint(params: dict) -> str:
    """A content hash of pure-dict weights, computed where they live (one pass, no host copy): per leaf the
    wrapping uint32 sum of its bits times odd position weights, then sha256 over (path, dtype, shape, sum). Exact
    integer arithmetic: the same on any device or sharding. `model.json` keeps the LoRA base's, so a changed base
    is refused instead of silently merged with adapters trained on another."""
    import hashlib

    def one(x):
        x = jnp.asarray(x)
        bits = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{x.dtype.itemsize * 8}")).astype(jnp.uint32).ravel()
        return jnp.sum(bits * (2 * jnp.arange(bits.size, dtype=jnp.uint32) + 1), dtype=jnp.uint32)

    h = hashlib.sha256()
    for path, x in sorted(jax.tree_util.tree_leaves_with_path(params), key=lambda t: jax.tree_util.keystr(t[0])):
        h.update(f"{jax.tree_util.keystr(path)}|{x.dtype}|{tuple(x.shape)}|{int(jax.jit(one)(x))};".encode())
    return h.hexdigest()[:16]


def check_targets(model, targets: str, field: str = "model.lora.targets") -> list[tuple[str, object]]:
    """(path, Linear) of every linear layer `targets` matches (re.fullmatch); none is a ConfigError naming them."""
    try:
        rx = re.compile(targets)
    except re.error as e:
        raise ConfigError(f"{field}={targets!r} is not a regular expression: {e}") from None
    linears = [("/".join(map(str, p)), m) for p, m in model.iter_modules() if isinstance(m, Linear)]
    hit = [(p, m) for p, m in linears if rx.fullmatch(p)]
    if not hit:
        names = ", ".join(p for p, _ in linears)
        raise ConfigError(f"{field}={targets!r} matches none of the model's linear layers: {names}")
    return hit


def check_quant(model, kind: str, targets: str) -> list[tuple[str, object]]:
    """The linears `quantize_base` would quantize; a ConfigError for an unknown kind, no match, or (nf4) an odd
    input width."""
    quant.check(kind, 2)
    hit = check_targets(model, targets, "model.lora.quant_targets")
    for path, m in hit:
        quant.check(kind, m.kernel.shape[-2], path)
    return hit


def quantize_base(model, kind: str, targets: str = QUANT_TARGETS, round_trip: bool = False) -> list[str]:
    """Stores the kernels of the linears `targets` matches as `kind` codes and scales (`Linear.quantize_base`);
    with `round_trip`, keeps float kernels holding the dequantized values instead (what the adapters were trained
    against: `load_params` folds them into these). Returns the paths."""
    hit = check_quant(model, kind, targets)
    for _, m in hit:
        if round_trip:
            k = m.kernel[...]
            m.kernel.value = quant.dequantize(*quant.quantize(k, kind), kind, k.dtype)
        else:
            m.quantize_base(kind)
    return [p for p, _ in hit]


# ---- pure-dict parameters ----------------------------------------------------------------------------
def partition(params: dict) -> tuple[dict, dict]:
    """(adapters, base): the nested dict split by leaf name; folders left empty are dropped."""

    def split(d):
        a, b = {}, {}
        for k, v in d.items():
            if isinstance(v, dict):
                va, vb = split(v)
                if va:
                    a[k] = va
                if vb:
                    b[k] = vb
            elif k in ADAPTERS:
                a[k] = v
            else:
                b[k] = v
        return a, b

    return split(params)


def combine(adapters: dict, base: dict) -> dict:
    """The inverse of `partition` (either side may be empty)."""
    if not adapters:
        return base
    if not base:
        return adapters
    out = dict(base)
    for k, v in adapters.items():
        out[k] = combine(v, out.get(k, {})) if isinstance(v, dict) else v
    return out


QUANT_LEAVES = ("kernel_codes", "kernel_scale")  # a quantized base's codes and scales (`Linear.quantize_base`)


def cast_floats(params: dict, dtype) -> dict:
    """Pure-dict parameters (arrays or ShapeDtypeStructs) with their weights in `dtype` (None: unchanged); a
    quantized base's codes and scales stay as they are (`model.lora.base_dtype`, the compute-dtype copies)."""
    if not dtype:
        return params

    def one(k, v):
        if k in QUANT_LEAVES:
            return v
        if isinstance(v, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(v.shape, jnp.dtype(dtype), sharding=v.sharding)
        return v.astype(dtype)

    def walk(d):
        return {k: walk(v) if isinstance(v, dict) else one(k, v) for k, v in d.items()}

    return walk(params)


def float_leaves(params: dict) -> list:
    """The weights of pure-dict parameters, a quantized base's codes and scales left out."""
    out = []

    def walk(d):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v)
            elif k not in QUANT_LEAVES:
                out.append(v)

    walk(params)
    return out


def switched_off(adapters: dict) -> dict:
    """The adapters with every B zeroed (x A B = 0 exactly, A kept): joined to the base, the base's output."""

    def walk(d):
        return {k: walk(v) if isinstance(v, dict) else jnp.zeros_like(v) if k == "lora_b" else v for k, v in d.items()}

    return walk(adapters)


def merged(params: dict, scale: float, kind: str = "", dtype=None) -> dict:
    """The parameters as a plain model's: every adapter folded into its kernel (W + A B * scale) and removed, a
    quantized base (`kind`) dequantized; those kernels in `dtype` (default: W's; a quantized one's: float32). Stacked
    kernels are merged one layer at a time (`lax.map`), so the temporaries are one layer's, not the model's."""

    def one(w, a, b, dt):  # one layer's kernel
        out = w.astype(jnp.float32)
        if a is not None:
            out = out + jnp.matmul(a.astype(jnp.float32), b.astype(jnp.float32)) * scale
        return out.astype(dt)

    def fold(d):
        quantized = "kernel_codes" in d
        dt = jnp.dtype(dtype) if dtype else jnp.float32 if quantized else d["kernel"].dtype
        a, b = d.get("lora_a"), d.get("lora_b")
        if quantized:
            codes, qscale = d["kernel_codes"], d["kernel_scale"]
            w_of = lambda c, s: quant.dequantize(c, s, kind, jnp.float32)  # noqa: E731
        else:
            codes, qscale = d["kernel"], None
            w_of = lambda c, s: c  # noqa: E731
        if codes.ndim == 2:
            return one(w_of(codes, qscale), a, b, dt)
        args = (codes, qscale, a, b)
        return jax.lax.map(lambda t: one(w_of(t[0], t[1]), t[2], t[3], dt), args)

    def walk(d):
        out = {
            k: walk(v) if isinstance(v, dict) else v
            for k, v in d.items()
            if k not in ADAPTERS and k not in QUANT_LEAVES and k != "kernel"
        }
        if "lora_a" in d or "kernel_codes" in d:
            out["kernel"] = fold(d)
        elif "kernel" in d:
            out["kernel"] = d["kernel"]
        return out

    return walk(params)
