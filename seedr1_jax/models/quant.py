"""A frozen LoRA base stored quantized (`model.lora.base_quant`, QLoRA): int8 with one absmax scale per output
channel, or nf4 (QLoRA's 4-bit NormalFloat, Dettmers et al. 2023) with one absmax per block of up to 64 inputs
per output channel, two codes per byte. The weight is dequantized to the compute dtype where it is used (one layer
at a time inside the layer scan), so what stays resident is the codes and the scales: int8 ~1.0 and nf4 ~0.56
bytes per weight (bf16: 2).

Layout, for a kernel [*stack, in, out]: int8 codes [*stack, in, out] and scale [*stack, 1, out]; nf4 codes
uint8 [*stack, in / 2, out] (input row 2k in the low nibble, 2k + 1 in the high one) and absmax
[*stack, in / block, out] float32."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from seedr1_jax.models.config import ConfigError

KINDS = ("int8", "nf4")
NF4_BLOCK = 64
# QLoRA's NF4 code book (bitsandbytes' values): quantiles of N(0, 1) scaled to [-1, 1], with an exact zero
NF4 = np.asarray(
    [
        -1.0,
        -0.6961928009986877,
        -0.5250730514526367,
        -0.39491748809814453,
        -0.28444138169288635,
        -0.18477343022823334,
        -0.09105003625154495,
        0.0,
        0.07958029955625534,
        0.16093020141124725,
        0.24611230194568634,
        0.33791524171829224,
        0.44070982933044434,
        0.5626170039176941,
        0.7229568362236023,
        1.0,
    ],
    np.float32,
)
_MIDPOINTS = (NF4[1:] + NF4[:-1]) / 2


def nf4_block(din: int) -> int:
    """The nf4 block along the input axis: the largest divisor of `din` up to 64 (64 for every released model)."""
    return max(d for d in range(1, NF4_BLOCK + 1) if din % d == 0)


def check(kind: str, din: int, where: str = "") -> None:
    if kind not in KINDS:
        raise ConfigError(f"model.lora.base_quant={kind!r}: use '' (not quantized) or one of {', '.join(KINDS)}")
    if kind == "nf4" and din % 2:
        raise ConfigError(f"model.lora.base_quant=nf4 packs two inputs per byte; {where} has {din} (odd) inputs")


def quantize(w, kind: str):
    """(codes, scales) of kernel `w` [*stack, in, out]."""
    w = jnp.asarray(w, jnp.float32)
    *stack, din, dout = w.shape
    check(kind, din)
    if kind == "int8":
        scale = jnp.max(jnp.abs(w), axis=-2, keepdims=True) / 127.0
        safe = jnp.where(scale > 0, scale, 1.0)
        return jnp.clip(jnp.round(w / safe), -127, 127).astype(jnp.int8), scale
    block = nf4_block(din)
    blocks = w.reshape(*stack, din // block, block, dout)
    absmax = jnp.max(jnp.abs(blocks), axis=-2)  # [*stack, in / block, out]
    x = blocks / jnp.where(absmax > 0, absmax, 1.0)[..., None, :]
    codes = jnp.searchsorted(jnp.asarray(_MIDPOINTS), x).astype(jnp.uint8)  # the nearest code's index
    codes = codes.reshape(*stack, din // 2, 2, dout)
    return codes[..., 0, :] | (codes[..., 1, :] << 4), absmax


def dequantize(codes, scale, kind: str, dtype):
    """The kernel [*stack, in, out] in `dtype` from `quantize`'s (codes, scales)."""
    if kind == "int8":
        return (codes.astype(jnp.float32) * scale).astype(dtype)
    *stack, half, dout = codes.shape
    pair = jnp.stack([codes & 0xF, codes >> 4], axis=-2).reshape(*stack, 2 * half, dout)  # unpack: in order
    x = jnp.asarray(NF4)[pair.astype(jnp.int32)]
    nblocks = scale.shape[-2]
    x = x.reshape(*stack, nblocks, 2 * half // nblocks, dout) * scale[..., None, :]
    return x.reshape(*stack, 2 * half, dout).astype(dtype)


def bytes_per_weight(kind: str, din: int = 4096) -> float:
    """Resident bytes per base weight (codes + scales), for the memory estimates."""
    if kind == "int8":
        return 1.0 + 4.0 / din
    return 0.5 + 4.0 / nf4_block(din)
