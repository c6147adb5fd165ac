"""Attention diagnostics: where generated tokens look (video frames, image, text), measured and drawn.

The analysis path `attention_maps` runs the decoder's own layers (so hidden states are exactly the model's)
and, beside them, the softmax probabilities of the chosen layers; the training, eval and rollout programs do
not change. `vision_sources` maps each vision token back to its frame pair and merged patch, and the
`seedr1 attention` command (`run`) greedy-decodes like `seedr1 eval`, then makes one teacher-forced pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .config import ConfigError
from .layers import apply_rope, attention_probs
from .sharding import BATCH, constrain

TEXT, IMAGE, VIDEO = 0, 1, 2


# ---- the analysis forward ------------------------------------------------------------------------
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
    b, t, _ = h.shape
    a = layer.self_attn
    x = layer.input_layernorm(h)
    q = a["q_proj"](x[:, query_start:]).reshape(b, t - query_start, layer.n, layer.hd)
    q = apply_rope(q, cos[:, query_start:], sin[:, query_start:])
    k = apply_rope(a["k_proj"](x).reshape(b, t, layer.k, layer.hd), cos, sin)
    return attention_probs(q, k, mask[:, query_start:], dtype=layer.dtype)


def decoder_attention(text_model, x, positions, mask, layers: tuple[int, ...], query_start: int = 0):
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
        (h, buf), (layer_state, s) = carry, xs
        h = constrain(h, BATCH, None, None)
        layer = nnx.merge(graphdef, layer_state)
        buf = jax.lax.cond(
            s >= 0,
            lambda buf: buf.at[s].set(_layer_probs(layer, h, cos, sin, mask, query_start)),
            lambda buf: buf,
            buf,
        )
        h, _ = layer(h, cos, sin, mask)
        return (h, buf), None

    (x, buf), _ = jax.lax.scan(body, (x, buf), (state, jnp.asarray(slot)))
    return text_model.norm(x), buf


@functools.partial(nnx.jit, static_argnames=("layers", "query_start"))
def attention_maps(model, inputs: dict, layers: tuple[int, ...], query_start: int = 0):
    """`Qwen2VL.forward` inputs (see `qwen2_vl.prepare_inputs` / `sampler.teacher_forced_inputs`) ->
    attention probabilities float32[len(layers), B, N, T - query_start, T] (all heads).

    layers: sorted layer indices (`check_layers`); query rows start at `query_start` (e.g. the prompt length,
    to keep only the generated tokens' rows). Same mask as `forward`: causal and padding keys masked.
    """
    vis = {k: inputs[k] for k in ("pixels", "hw_pos", "valid", "vision_index") if inputs.get(k) is not None}
    x = model.embed(inputs["input_ids"], **vis)
    t = inputs["input_ids"].shape[1]
    mask = jnp.tril(jnp.ones((t, t), bool))[None] & inputs["attention_mask"].astype(bool)[:, None, :]
    _, probs = decoder_attention(model.model, x, inputs["positions"], mask, layers, query_start)
    return probs


# ---- vision tokens -> their source ---------------------------------------------------------------
def vision_sources(cfg, input_ids, image_grid_thw=None, video_grid_thw=None) -> dict:
    """Where each token of one row came from (numpy, host side; padding anywhere is fine).

    input_ids int[T]; grid_thw int[n, 3] per image / video in prompt order (patch units, as the processor
    gives them). Returns int32[T] arrays `kind` (TEXT, IMAGE, VIDEO), `block` (which image / video, -1 for
    text), `t` (temporal patch: frames 2t, 2t + 1 of a video), `row`, `col` (cell of the merged grid
    (h / m) x (w / m), m = spatial_merge_size), and `grids`: {(kind, block): (t, h / m, w / m)}.
    Merged tokens are laid out t-major, then row, then col (the processor's order and M-RoPE's).
    """
    ids = np.asarray(input_ids).reshape(-1)
    m = cfg.vision.spatial_merge_size
    grids = {
        cfg.image_token_id: [] if image_grid_thw is None else np.asarray(image_grid_thw).reshape(-1, 3).tolist(),
        cfg.video_token_id: [] if video_grid_thw is None else np.asarray(video_grid_thw).reshape(-1, 3).tolist(),
    }
    kinds = {cfg.image_token_id: IMAGE, cfg.video_token_id: VIDEO}
    out = {k: np.full(ids.shape, -1, np.int32) for k in ("block", "t", "row", "col")}
    out["kind"] = np.zeros(ids.shape, np.int32)
    out["grids"] = {}
    used = {IMAGE: 0, VIDEO: 0}
    for s in np.nonzero(ids == cfg.vision_start_token_id)[0]:
        if s + 1 >= len(ids) or int(ids[s + 1]) not in kinds:
            continue
        tok = int(ids[s + 1])
        kind, b = kinds[tok], used[kinds[tok]]
        if b >= len(grids[tok]):
            raise ConfigError(f"the tokens hold more {'image' if kind == IMAGE else 'video'} blocks than grid_thw rows")
        gt, gh, gw = (int(v) for v in grids[tok][b])
        hm, wm = gh // m, gw // m
        n = gt * hm * wm
        span = slice(s + 1, s + 1 + n)
        if len(ids[span]) != n or not np.all(ids[span] == tok):
            raise ConfigError(f"vision block at token {s}: grid_thw {[gt, gh, gw]} needs {n} pad tokens")
        j = np.arange(n)
        out["kind"][span], out["block"][span] = kind, b
        out["t"][span], out["row"][span], out["col"][span] = j // (hm * wm), j % (hm * wm) // wm, j % wm
        out["grids"][(kind, b)] = (gt, hm, wm)
        used[kind] += 1
    return out


def vision_heat(weights, src: dict) -> dict:
    """Attention mass over the vision tokens, on their source grids.

    weights float[S] (one query's, or a span's mean, distribution over the row's keys); src: `vision_sources`.
    Returns {(kind, block): float[t, h / m, w / m]} (images have t = 1).
    """
    w = np.asarray(weights, np.float64)
    out = {}
    for (kind, b), (gt, hm, wm) in src["grids"].items():
        sel = (src["kind"] == kind) & (src["block"] == b)
        heat = np.zeros((gt, hm, wm))
        np.add.at(heat, (src["t"][sel], src["row"][sel], src["col"][sel]), w[sel])
        out[(kind, b)] = heat
    return out


def heat_to_pixels(heat, cell: int, temporal: int = 2):
    """float[t, hm, wm] merged-grid heat -> float[t * temporal, hm * cell, wm * cell] per frame (cell = m *
    patch_size pixels per merged token; both frames of a temporal patch share its tokens, so its heat)."""
    px = np.kron(np.asarray(heat), np.ones((1, cell, cell)))
    return np.repeat(px, temporal, axis=0)


def unpatchify(segments, grid_hw, cfg):
    """float32[n, h * w, P] normalized patches of n temporal segments (processor order) -> uint8[2n, H, W, 3]."""
    from . import processor as P

    v = cfg.vision
    gh, gw = grid_hw
    m, p, tp = v.spatial_merge_size, v.patch_size, v.temporal_patch_size
    x = np.asarray(segments, np.float32).reshape(-1, gh // m, gw // m, m, m, 3, tp, p, p)
    x = x.transpose(0, 6, 1, 3, 7, 2, 4, 8, 5).reshape(-1, gh * p, gw * p, 3)  # (t, tp, bh, mh, ph, bw, mw, pw, C)
    x = x * P.CLIP_STD + P.CLIP_MEAN
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
