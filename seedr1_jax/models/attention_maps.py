"""Attention probabilities of chosen decoder layers beside the model's own forward: the `seedr1 attention`
diagnostics (analysis/attention.py) and the rollout's attention summary for process rewards (rl/grounding.py) read
them. The decoder's own layers run (so hidden states are exactly the model's); training, eval and rollout programs
do not change.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.models.config import ConfigError
from seedr1_jax.models.layers import attention_probs
from seedr1_jax.models.qwen2_vl.llm import add_deepstack
from seedr1_jax.parallel.sharding import BATCH, constrain


def check_layers(layers, num_layers: int) -> tuple[int, ...]:
    """Layer indices (negative counts from the end) -> sorted unique non-negative ints; ConfigError if out of range."""
    out = []
    for x in layers:
        i = int(x)
        if not -num_layers <= i < num_layers:
            raise ConfigError(f"--layers: layer {x} does not exist; the model has layers 0..{num_layers - 1}")
        out.append(i % num_layers)
    if not out:
        raise ConfigError("--layers: give at least one layer index")
    return tuple(sorted(set(out)))


def _layer_probs(layer, h, cos, sin, mask, query_start: int):
    """This layer's attention probabilities f32[B, N, T - q0, S] for queries from `query_start` on."""
    q, k, _ = layer.qkv(layer.input_layernorm(h), cos, sin)
    return attention_probs(q[:, query_start:], k, mask[:, query_start:], dtype=layer.dtype)


def decoder_attention(text_model, x, positions, mask, layers: tuple[int, ...], query_start: int = 0, deepstack=None):
    """The decoder over embeddings x [B, T, D] (positions int32[3, B, T], mask bool[B, T, T]), collecting the
    attention probabilities of `layers` (sorted ints): returns (normed hidden [B, T, D],
    float32[len(layers), B, N, T - query_start, T])."""
    cos, sin = text_model.rotary(positions)
    graphdef, state = nnx.split(text_model.layers)
    nl = text_model.cfg.text.num_layers
    slot = np.full(nl, -1, np.int32)
    slot[list(layers)] = np.arange(len(layers))
    b, t, _ = x.shape
    n = text_model.cfg.text.num_heads
    buf = jnp.zeros((len(layers), b, n, t - query_start, t), jnp.float32)

    def body(carry, xs):
        (h, buf), (layer_state, s, i) = carry, xs
        h = constrain(h, BATCH, None, None)
        layer = nnx.merge(graphdef, layer_state)
        buf = jax.lax.cond(
            s >= 0,
            lambda buf: buf.at[s].set(_layer_probs(layer, h, cos, sin, mask, query_start)),
            lambda buf: buf,
            buf,
        )
        h, _ = layer(h, cos, sin, mask)
        return (add_deepstack(h, i, deepstack), buf), None

    (x, buf), _ = jax.lax.scan(body, (x, buf), (state, jnp.asarray(slot), jnp.arange(nl)))
    return text_model.norm(x), buf


@functools.partial(nnx.jit, static_argnames=("layers", "query_start"))
def attention_maps(model, inputs: dict, layers: tuple[int, ...], query_start: int = 0):
    """`Qwen2VL.forward` inputs (see `qwen2_vl.prepare_inputs` / `sampler.teacher_forced_inputs`) ->
    attention probabilities float32[len(layers), B, N, T - query_start, T] (all heads).

    layers: sorted layer indices (`check_layers`); query rows start at `query_start` (e.g. the prompt length,
    to keep only the generated tokens' rows). Same mask as `forward`: causal and padding keys masked.
    """
    vis = {k: inputs[k] for k in ("pixels", "hw_pos", "valid", "vision_index") if inputs.get(k) is not None}
    x, deepstack = model.embed(inputs["input_ids"], **vis)
    t = inputs["input_ids"].shape[1]
    mask = jnp.tril(jnp.ones((t, t), bool))[None] & inputs["attention_mask"].astype(bool)[:, None, :]
    _, probs = decoder_attention(model.model, x, inputs["positions"], mask, layers, query_start, deepstack)
    return probs
