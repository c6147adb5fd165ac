"""Shared primitives: Linear, Embed, RMSNorm, LayerNorm with logical axis names, rotary helpers, attention.

Einsum letters used across the package: B batch, T query length, S key/value length, N query heads,
K kv heads, G query heads per kv head, H head dim, D model width, F mlp width, V vocab, L layers.

Every parameter carries `axes`: a tuple of logical axis names, one per dimension (leading "layers" for
stacked layers); `sharding.py` maps them onto mesh axes with the rules table from the config.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from seedr1_jax.models import quant

_INIT = jax.nn.initializers.normal(0.02)


def _param(rngs: nnx.Rngs | None, shape, axes, dtype, init=_INIT) -> nnx.Param:
    if rngs is None:  # zeros-like placeholder, filled by a loader
        value = jnp.zeros(shape, dtype)
    else:
        value = init(rngs.params(), shape, dtype)
    assert len(axes) == len(shape), (shape, axes)
    return nnx.Param(value, axes=tuple(axes))


def _stack_axes(stack, axes):
    return ("layers",) * len(stack) + tuple(axes)


class LoRAParam(nnx.Param):
    """A LoRA adapter matrix (`models.lora`): trained, while everything else is frozen, when `model.lora.rank` > 0."""


def lora_a_init(key, shape, dtype):
    """PEFT's LoRA A init (kaiming-uniform with a = sqrt(5)): uniform in +-1/sqrt(in), in = shape[-2]."""
    bound = 1.0 / jnp.sqrt(shape[-2]).astype(jnp.float32)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound).astype(dtype)


class Linear(nnx.Module):
    """y = x @ kernel (+ bias) (+ (x @ lora_a) @ lora_b * lora_scale once `add_lora` ran). kernel:
    param_dtype[*stack, in, out]."""

    def __init__(self, din, dout, *, axes, bias, rngs, stack=(), param_dtype=jnp.float32, dtype=jnp.float32):
        self.dtype = dtype
        self.kernel = _param(rngs, (*stack, din, dout), _stack_axes(stack, axes), param_dtype)
        self.bias = (
            _param(rngs, (*stack, dout), _stack_axes(stack, axes[-1:]), param_dtype, jax.nn.initializers.zeros)
            if bias
            else None
        )  # lora_a, lora_b, lora_scale: set by `add_lora` only (absent otherwise)

    def add_lora(self, rank: int, scale: float, key) -> None:
        """Adds a LoRA adapter (`models.lora`): A [*stack, in, rank] as PEFT initialises it, B [*stack, rank,
        out] zero, both in the kernel's dtype and sharded along its in / out axes."""
        *stack, din, dout = self.kernel.shape
        axes = self.kernel.get_metadata()["axes"]
        dt = self.kernel[...].dtype
        self.lora_a = LoRAParam(lora_a_init(key, (*stack, din, rank), dt), axes=(*axes[:-1], None))
        self.lora_b = LoRAParam(jnp.zeros((*stack, rank, dout), dt), axes=(*axes[:-2], None, axes[-1]))
        self.lora_scale = float(scale)

    def quantize_base(self, kind: str) -> None:
        """Replaces the kernel with its `models.quant` codes and scales (a frozen LoRA base; `kind`: int8 or nf4);
        `__call__` dequantizes them to the compute dtype."""
        axes = self.kernel.get_metadata()["axes"]
        codes, scale = quant.quantize(self.kernel[...], kind)
        del self.kernel
        self.kernel_codes = nnx.Param(codes, axes=axes)
        self.kernel_scale = nnx.Param(scale, axes=(*axes[:-2], None, axes[-1]))
        self.quant = kind

    def weight(self):
        """The kernel in the compute dtype (dequantized when `quantize_base` ran)."""
        if hasattr(self, "kernel_codes"):
            return quant.dequantize(self.kernel_codes[...], self.kernel_scale[...], self.quant, self.dtype)
        return self.kernel[...].astype(self.dtype)

    def __call__(self, x):
        x = x.astype(self.dtype)
        y = jnp.matmul(x, self.weight())
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        if hasattr(self, "lora_a"):  # PEFT's order: the base layer (bias included), then the adapter
            a, b = self.lora_a[...].astype(self.dtype), self.lora_b[...].astype(self.dtype)
            y = y + jnp.matmul(jnp.matmul(x, a), b) * jnp.asarray(self.lora_scale, self.dtype)
        return y


class Embed(nnx.Module):
    """Token embedding table: param_dtype[V, D]; also the tied output projection."""

    def __init__(self, vocab, dim, *, rngs, param_dtype=jnp.float32, dtype=jnp.float32):
        self.dtype = dtype
        self.embedding = _param(rngs, (vocab, dim), ("vocab", "embed"), param_dtype)

    def __call__(self, ids):
        return jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)

    def attend(self, x):
        return jnp.einsum("btd,vd->btv", x.astype(self.dtype), self.embedding[...].astype(self.dtype))


class RMSNorm(nnx.Module):
    """Qwen2 RMSNorm: statistics in fp32, cast back, then scale (matches transformers' order)."""

    def __init__(self, dim, *, eps, rngs, stack=(), param_dtype=jnp.float32):
        self.eps = eps
        self.scale = _param(rngs, (*stack, dim), _stack_axes(stack, ("norm",)), param_dtype, jax.nn.initializers.ones)

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return self.scale[...].astype(x.dtype) * xf.astype(x.dtype)


class LayerNorm(nnx.Module):
    def __init__(self, dim, *, eps, rngs, stack=(), param_dtype=jnp.float32):
        self.eps = eps
        ax = _stack_axes(stack, ("norm",))
        self.scale = _param(rngs, (*stack, dim), ax, param_dtype, jax.nn.initializers.ones)
        self.bias = _param(rngs, (*stack, dim), ax, param_dtype, jax.nn.initializers.zeros)

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        mean = jnp.mean(xf, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(x.dtype)


def activation(name: str):
    return {
        "silu": jax.nn.silu,
        "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
        "gelu": lambda x: jax.nn.gelu(x, approximate=False),
        "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    }[name]


def rotate_half(x):
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([-x2, x1], axis=-1)


def apply_rope(x, cos, sin):
    """x: [..., H]; cos/sin broadcastable to x, in fp32. Returns x's dtype."""
    xf = x.astype(jnp.float32)
    return (xf * cos + rotate_half(xf) * sin).astype(x.dtype)


def _softmax_weights(q, k, mask, dtype):
    """float32[B, K, G, T, S] grouped-query attention weights (logits in `dtype`, softmax in fp32)."""
    b, t, n, h = q.shape
    kh = k.shape[2]
    q = q.reshape(b, t, kh, n // kh, h)
    logits = jnp.einsum("btkgh,bskh->bkgts", q.astype(dtype), k.astype(dtype)) * (h**-0.5)
    logits = logits.astype(jnp.float32)
    if mask.ndim == 3:
        mask = mask[:, None, None]
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    return jax.nn.softmax(logits, axis=-1)


def attention(q, k, v, mask, *, dtype):
    """Grouped-query softmax attention.

    q: [B, T, N, H]; k, v: [B, S, K, H]; mask: bool broadcastable to [B, 1, 1, T, S] or [B, T, S].
    Softmax in fp32 (like transformers' eager path). Returns [B, T, N, H].
    """
    b, t, n, h = q.shape
    probs = _softmax_weights(q, k, mask, dtype).astype(dtype)
    out = jnp.einsum("bkgts,bskh->btkgh", probs, v.astype(dtype))
    return out.reshape(b, t, n, h)


def attention_probs(q, k, mask, *, dtype):
    """The softmax probabilities of `attention`: float32[B, N, T, S] (same inputs; heads n = k * G + g).

    For analysis (`attention.py`) only: the model's layers call `attention`, whose program this leaves as is.
    """
    b, t, n, _ = q.shape
    return _softmax_weights(q, k, mask, dtype).reshape(b, n, t, k.shape[1])


def remat(fn, policy: str):
    """Wraps a scan body with jax.checkpoint according to a policy name from the config."""
    if policy in ("none", "", None):
        return fn
    if policy == "full":
        return jax.checkpoint(fn)
    if not hasattr(jax.checkpoint_policies, policy):
        raise ValueError(f"remat_policy={policy!r}: use 'none', 'full' or a name in jax.checkpoint_policies")
    return jax.checkpoint(fn, policy=getattr(jax.checkpoint_policies, policy))
