"""The Qwen2 decoder of Qwen2-VL / Qwen2.5-VL (GQA with qkv bias, M-RoPE, SwiGLU, RMSNorm, stacked layers, KV cache),
and, by its config fields, Qwen3-VL's (q/k RMSNorm without qkv bias, interleaved M-RoPE, DeepStack inputs)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.models.config import ModelConfig
from seedr1_jax.models.layers import Embed, Linear, RMSNorm, activation, apply_rope, attention, remat
from seedr1_jax.parallel.sharding import BATCH, constrain


def mrope_axes(t) -> np.ndarray:
    """Which position component (0 t, 1 h, 2 w) drives each of the head_dim / 2 rotary frequencies: contiguous
    sections (Qwen2-VL, Qwen2.5-VL), or interleaved t, h, w, t, h, w, ... with the rest t (Qwen3-VL: frequency j is
    h when j % 3 == 1 and j < 3 * section_h, w when j % 3 == 2 and j < 3 * section_w)."""
    if not t.mrope_interleaved:
        return np.repeat(np.arange(3), t.mrope_section)
    j = np.arange(sum(t.mrope_section))
    axes = np.zeros_like(j)
    axes[(j % 3 == 1) & (j < 3 * t.mrope_section[1])] = 1
    axes[(j % 3 == 2) & (j < 3 * t.mrope_section[2])] = 2
    return axes


def add_deepstack(h, i, deepstack):
    """h + deepstack[i] for the first K layers i (deepstack [K, B, T, D]: vision features at vision tokens, zero
    elsewhere; DeepStack), h unchanged after them or without it."""
    if deepstack is None:
        return h
    k = deepstack.shape[0]
    return h + jnp.where(i < k, deepstack[jnp.minimum(i, k - 1)], 0).astype(h.dtype)


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs, stack=()):
        t = cfg.text
        pd, dt = jnp.dtype(cfg.param_dtype), jnp.dtype(cfg.dtype)
        kw = dict(rngs=rngs, stack=stack, param_dtype=pd, dtype=dt)
        hd = t.head_dim
        bias = not t.qk_norm  # Qwen3 normalises queries and keys instead of biasing them
        self.input_layernorm = RMSNorm(t.hidden_size, eps=t.rms_norm_eps, rngs=rngs, stack=stack, param_dtype=pd)
        self.post_attention_layernorm = RMSNorm(
            t.hidden_size, eps=t.rms_norm_eps, rngs=rngs, stack=stack, param_dtype=pd
        )
        self.self_attn = nnx.Dict(
            q_proj=Linear(t.hidden_size, t.num_heads * hd, axes=("embed", "heads"), bias=bias, **kw),
            k_proj=Linear(t.hidden_size, t.num_kv_heads * hd, axes=("embed", "kv_heads"), bias=bias, **kw),
            v_proj=Linear(t.hidden_size, t.num_kv_heads * hd, axes=("embed", "kv_heads"), bias=bias, **kw),
            o_proj=Linear(t.num_heads * hd, t.hidden_size, axes=("heads", "embed"), bias=False, **kw),
        )
        if t.qk_norm:
            self.self_attn["q_norm"] = RMSNorm(hd, eps=t.rms_norm_eps, rngs=rngs, stack=stack, param_dtype=pd)
            self.self_attn["k_norm"] = RMSNorm(hd, eps=t.rms_norm_eps, rngs=rngs, stack=stack, param_dtype=pd)
        self.mlp = nnx.Dict(
            gate_proj=Linear(t.hidden_size, t.intermediate_size, axes=("embed", "mlp"), bias=False, **kw),
            up_proj=Linear(t.hidden_size, t.intermediate_size, axes=("embed", "mlp"), bias=False, **kw),
            down_proj=Linear(t.intermediate_size, t.hidden_size, axes=("mlp", "embed"), bias=False, **kw),
        )
        self.n, self.k, self.hd = t.num_heads, t.num_kv_heads, hd
        self.act = t.hidden_act
        self.dtype = dt

    def qkv(self, h, cos, sin):
        """Normed input h [B, T, D] -> rotated queries [B, T, N, H], rotated keys and values [B, T, K, H]."""
        b, t, _ = h.shape
        a = self.self_attn
        q = a["q_proj"](h).reshape(b, t, self.n, self.hd)
        k = a["k_proj"](h).reshape(b, t, self.k, self.hd)
        if "q_norm" in a:
            q, k = a["q_norm"](q), a["k_norm"](k)
        v = a["v_proj"](h).reshape(b, t, self.k, self.hd)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def __call__(self, x, cos, sin, mask, kv=None, write_index=None, layer_index=None):
        """x: [B, T, D]; cos/sin: f32[B, T, 1, H]; mask: bool[B, T, S].

        kv: optional cache (k, v) each [B, S, K, H]; the new keys/values are written at `write_index`
        (int32 scalar) and attention runs over the whole cache. With `layer_index` (int32 scalar), kv is instead
        the whole stacked cache [L, B, S, K, H] and this layer's rows are updated in place. Returns (x, new kv
        or None).
        """
        b, t, _ = x.shape
        a = self.self_attn
        q, k, v = self.qkv(self.input_layernorm(x), cos, sin)
        if kv is not None and layer_index is not None:
            kc, vc = kv
            at = (layer_index, 0, write_index, 0, 0)
            kc = jax.lax.dynamic_update_slice(kc, k.astype(kc.dtype)[None], at)
            vc = jax.lax.dynamic_update_slice(vc, v.astype(vc.dtype)[None], at)
            kv = (kc, vc)
            k, v = kc[layer_index], vc[layer_index]
        elif kv is not None:
            kc, vc = kv
            k = jax.lax.dynamic_update_slice(kc, k.astype(kc.dtype), (0, write_index, 0, 0))
            v = jax.lax.dynamic_update_slice(vc, v.astype(vc.dtype), (0, write_index, 0, 0))
            kv = (k, v)
        o = attention(q, k, v, mask, dtype=self.dtype).reshape(b, t, self.n * self.hd)
        x = x + a["o_proj"](o)
        h = self.post_attention_layernorm(x)
        m = self.mlp
        x = x + m["down_proj"](activation(self.act)(m["gate_proj"](h)) * m["up_proj"](h))
        return x, kv


class TextModel(nnx.Module):
    """HF `model.*`: embed_tokens, layers (stacked), norm."""

    def __init__(self, cfg: ModelConfig, *, rngs):
        t = cfg.text
        pd, dt = jnp.dtype(cfg.param_dtype), jnp.dtype(cfg.dtype)
        self.cfg = cfg
        self.embed_tokens = Embed(t.vocab_size, t.hidden_size, rngs=rngs, param_dtype=pd, dtype=dt)
        self.layers = DecoderLayer(cfg, rngs=rngs, stack=(t.num_layers,))
        self.norm = RMSNorm(t.hidden_size, eps=t.rms_norm_eps, rngs=rngs, param_dtype=pd)

    def rotary(self, positions):
        """positions: int32[3, B, T] (temporal, height, width) -> cos, sin f32[B, T, 1, H]."""
        t = self.cfg.text
        hd = t.head_dim
        inv = 1.0 / (t.rope_theta ** (jnp.arange(0, hd, 2, dtype=jnp.float32) / hd))
        section = mrope_axes(t)
        pos = jnp.moveaxis(positions[section], 0, -1).astype(jnp.float32)  # [B, T, H/2]
        ang = pos * inv
        ang = jnp.concatenate([ang, ang], axis=-1)[:, :, None, :]
        return jnp.cos(ang), jnp.sin(ang)

    def per_layer(self):
        """The stacked layers as a list of per-layer states (one copy), for `__call__(layers=...)`."""
        _, state = nnx.split(self.layers)
        return [jax.tree.map(lambda a, i=i: a[i], state) for i in range(self.cfg.text.num_layers)]

    def __call__(self, x, positions, mask, cache=None, write_index=None, in_place=False, layers=None, deepstack=None):
        """x: [B, T, D] embeddings; positions: int32[3, B, T]; mask: bool[B, T, S].

        cache: optional (k, v) each [L, B, S, K, H]. Returns (normed hidden [B, T, D], new cache or None).
        in_place (inference only, e.g. decoding): the cache rides in the layer scan's carry and only the new rows
        are written; by default it is scanned as per-layer inputs/outputs, which rewrites (and copies) the whole
        cache on every call but is what differentiation needs (a carried cache would be saved once per layer).
        layers (inference only): `per_layer()`'s list; cache is then a list of per-layer (k, v) [B, S, K, H] and the
        layers run unrolled on them, so no layer's weights or cache rows are sliced out of a stack (XLA:GPU copies
        such slices on every call).
        deepstack: [K, B, T, D] or None, added to the output of layer k < K (`add_deepstack`; Qwen3-VL's `embed`).
        """
        cos, sin = self.rotary(positions)
        graphdef, state = nnx.split(self.layers)
        if layers is not None:
            new = []
            for i, (layer_state, kv) in enumerate(zip(layers, cache)):
                x = constrain(x, BATCH, None, None)
                x, kv = nnx.merge(graphdef, layer_state)(x, cos, sin, mask, kv, write_index)
                x = add_deepstack(x, i, deepstack)
                new.append(kv)
            return self.norm(x), new
        index = jnp.arange(self.cfg.text.num_layers)
        if in_place:

            def step(carry, xs):
                (h, kv), (layer_state, i) = carry, xs
                h = constrain(h, BATCH, None, None)
                h, kv = nnx.merge(graphdef, layer_state)(h, cos, sin, mask, kv, write_index, i)
                return (add_deepstack(h, i, deepstack), kv), None

            (x, cache), _ = jax.lax.scan(step, (x, cache), (state, index))
            return self.norm(x), cache

        def body(h, xs):
            layer_state, kv, i = xs
            h = constrain(h, BATCH, None, None)
            h, kv = nnx.merge(graphdef, layer_state)(h, cos, sin, mask, kv, write_index)
            return add_deepstack(h, i, deepstack), kv

        x, cache = jax.lax.scan(remat(body, self.cfg.remat_policy), x, (state, cache, index))
        return self.norm(x), cache
