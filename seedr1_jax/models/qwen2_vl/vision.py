"""Qwen2-VL vision tower: 3-D patch embedding, 2-D rotary, pre-norm blocks, 2x2 patch merger.

The tower works on *segments*: one segment is the h*w patches of one temporal patch of one image or
video, and attention never crosses a segment (transformers restricts it the same way with
`cu_seqlens`). Segments are laid out as a padded [Nseg, L, P] array, so a batch of 252x252 inputs
(all segments 18*18 = 324 patches) runs as dense blocked attention with no masking at all.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.models.config import ModelConfig
from seedr1_jax.models.layers import LayerNorm, Linear, activation, apply_rope, attention, remat
from seedr1_jax.parallel.sharding import BATCH, constrain


class VisionBlock(nnx.Module):
    """Pre-norm block: LayerNorm, attention with 2-D rotary, LayerNorm, fc1-act-fc2 (families override the norm and
    the feed-forward: `norm_cls`, also the merger's, `make_mlp`, `ffn`)."""

    norm_cls = LayerNorm

    def __init__(self, cfg: ModelConfig, *, rngs, stack=()):
        v = cfg.vision
        pd, dt = jnp.dtype(cfg.param_dtype), jnp.dtype(cfg.dtype)
        kw = dict(rngs=rngs, stack=stack, param_dtype=pd, dtype=dt)
        self.norm1 = self.norm_cls(v.embed_dim, eps=1e-6, rngs=rngs, stack=stack, param_dtype=pd)
        self.norm2 = self.norm_cls(v.embed_dim, eps=1e-6, rngs=rngs, stack=stack, param_dtype=pd)
        self.attn = nnx.Dict(
            qkv=Linear(v.embed_dim, 3 * v.embed_dim, axes=("embed", "qkv"), bias=True, **kw),
            proj=Linear(v.embed_dim, v.embed_dim, axes=("heads", "embed"), bias=True, **kw),
        )
        self.mlp = self.make_mlp(v.embed_dim, v.mlp_dim, **kw)
        self.num_heads = v.num_heads
        self.act = v.hidden_act
        self.dtype = dt

    @staticmethod
    def make_mlp(dim, hidden, **kw):
        return nnx.Dict(
            fc1=Linear(dim, hidden, axes=("embed", "mlp"), bias=True, **kw),
            fc2=Linear(hidden, dim, axes=("mlp", "embed"), bias=True, **kw),
        )

    def ffn(self, x):
        return self.mlp["fc2"](activation(self.act)(self.mlp["fc1"](x)))

    def __call__(self, x, cos, sin, mask):
        """x: [S, L, E]; cos/sin: f32[S, L, 1, Hd]; mask: bool[S, L, L] or None."""
        s, l, e = x.shape
        qkv = self.attn["qkv"](self.norm1(x)).reshape(s, l, 3, self.num_heads, e // self.num_heads)
        q, k, v = apply_rope(qkv[:, :, 0], cos, sin), apply_rope(qkv[:, :, 1], cos, sin), qkv[:, :, 2]
        if mask is None:
            mask = jnp.ones((s, l, l), bool)
        o = attention(q, k, v, mask, dtype=self.dtype).reshape(s, l, e)
        x = x + self.attn["proj"](o)
        return x + self.ffn(self.norm2(x))


class VisionTower(nnx.Module):
    """pixel patches -> merged vision tokens in the language model's width (families override `block_cls`, whose
    `norm_cls` the merger's ln_q uses too, `layer_masks`, and Qwen3-VL `patch_bias`, `embed_patches`, `make_merger`,
    `merge` and `deepstack`)."""

    block_cls = VisionBlock
    patch_bias = False

    def __init__(self, cfg: ModelConfig, *, rngs):
        v = cfg.vision
        pd, dt = jnp.dtype(cfg.param_dtype), jnp.dtype(cfg.dtype)
        self.cfg = cfg
        self.patch_embed = Linear(
            v.patch_dim,
            v.embed_dim,
            axes=("patch", "embed"),
            bias=self.patch_bias,
            rngs=rngs,
            param_dtype=pd,
            dtype=dt,
        )
        self.blocks = self.block_cls(cfg, rngs=rngs, stack=(v.depth,))
        self.merger = self.make_merger(cfg, rngs=rngs, param_dtype=pd, dtype=dt)

    def make_merger(self, cfg: ModelConfig, **kw):
        v = cfg.vision
        merged = v.embed_dim * v.spatial_merge_size**2
        return nnx.Dict(
            ln_q=self.block_cls.norm_cls(v.embed_dim, eps=1e-6, rngs=kw["rngs"], param_dtype=kw["param_dtype"]),
            mlp_0=Linear(merged, merged, axes=("mlp", "mlp2"), bias=True, **kw),
            mlp_2=Linear(merged, v.out_dim, axes=("mlp", "embed"), bias=True, **kw),
        )

    def merge(self, x):
        """Block output [S, L, E] -> merged tokens [S, L / m^2, D]."""
        s, l, _ = x.shape
        x = self.merger["ln_q"](x).reshape(s, l // self.cfg.vision.spatial_merge_size**2, -1)
        return self.merger["mlp_2"](jax.nn.gelu(self.merger["mlp_0"](x), approximate=False))

    def embed_patches(self, pixels, hw_pos):
        """Patches [S, L, P] -> [S, L, E] (Qwen3-VL adds its learned position embedding)."""
        return self.patch_embed(pixels)

    def deepstack(self, k: int, x):
        """The k-th DeepStack feature of block output x (families without DeepStack have none to give)."""
        raise NotImplementedError

    def layer_masks(self, hw_pos, mask):
        """Per-block attention masks: (scanned xs, xs -> mask of that block). Qwen2-VL: one mask for all."""
        return None, lambda _: mask

    def rotary(self, hw_pos):
        """hw_pos: int32[S, L, 2] (row, col of each patch) -> cos, sin f32[S, L, 1, Hd]."""
        hd = self.cfg.vision.head_dim
        inv = 1.0 / (self.cfg.vision.rope_theta ** (jnp.arange(0, hd // 2, 2, dtype=jnp.float32) / (hd // 2)))
        ang = hw_pos[..., :, None].astype(jnp.float32) * inv  # [S, L, 2, Hd/4]
        ang = ang.reshape(*hw_pos.shape[:-1], -1)  # [h freqs, w freqs]
        ang = jnp.concatenate([ang, ang], axis=-1)[..., None, :]
        return jnp.cos(ang), jnp.sin(ang)

    def __call__(self, pixels, hw_pos, valid=None):
        """Encode segments.

        pixels: float[S, L, P] patches (P = C*tps*p*p, in the processor's order);
        hw_pos: int32[S, L, 2]; valid: bool[S, L] or None (all valid).
        Returns merged tokens [S, L / m^2, D] in the compute dtype.
        """
        return self.features(pixels, hw_pos, valid)[0]

    def features(self, pixels, hw_pos, valid=None):
        """`__call__`'s merged tokens, and the DeepStack features [K, S, L / m^2, D] of the blocks in
        `deepstack_visual_indexes` (None without them)."""
        v = self.cfg.vision
        x = self.embed_patches(pixels, hw_pos)
        cos, sin = self.rotary(hw_pos)
        mask = None if valid is None else (valid[:, :, None] & valid[:, None, :])
        per_layer, pick = self.layer_masks(hw_pos, mask)
        graphdef, state = nnx.split(self.blocks)

        def body(h, xs):
            layer_state, layer_xs = xs
            h = constrain(h, BATCH, None, None)
            return nnx.merge(graphdef, layer_state)(h, cos, sin, pick(layer_xs)), None

        taps, lo = {}, 0  # block index -> its output; the scan is split after each DeepStack block
        for hi in sorted({i + 1 for i in v.deepstack_visual_indexes} | {v.depth}):
            part = (state, per_layer)
            if (lo, hi) != (0, v.depth):
                part = jax.tree.map(lambda a, lo=lo, hi=hi: a[lo:hi], part)
            x, _ = jax.lax.scan(remat(body, self.cfg.remat_policy), x, part)
            taps[hi - 1], lo = x, hi
        # in block order, each through the merger of its place in the list (transformers' order for any list)
        ds = v.deepstack_visual_indexes
        deep = [self.deepstack(ds.index(i), taps[i]) for i in sorted(set(ds))]
        return self.merge(x), (jnp.stack(deep) if deep else None)


def segment_layout(grid_thw, merge: int):
    """Host-side layout for a flat list of images/videos (transformers' `pixel_values` order).

    grid_thw: int[n, 3]. Returns (gather int32[S, L], hw_pos int32[S, L, 2], valid bool[S, L],
    merged_rows int64[M]) where `gather` indexes the flat patch rows (padding -> 0), and `merged_rows`
    picks the valid rows of the flattened merged output [S * L / m^2] in transformers' order.
    """
    grid = np.asarray(grid_thw, np.int64).reshape(-1, 3)
    lens = [int(h * w) for t, h, w in grid for _ in range(int(t))]
    hw = [hw_positions(int(h), int(w), merge) for t, h, w in grid for _ in range(int(t))]
    lmax = max(lens)
    gather = np.zeros((len(lens), lmax), np.int32)
    pos = np.zeros((len(lens), lmax, 2), np.int32)
    valid = np.zeros((len(lens), lmax), bool)
    start = 0
    for i, n in enumerate(lens):
        gather[i, :n] = np.arange(start, start + n)
        pos[i, :n] = hw[i]
        valid[i, :n] = True
        start += n
    m2 = merge * merge
    merged_rows = np.nonzero(valid[:, ::m2].reshape(-1))[0]
    return gather, pos, valid, merged_rows


def hw_positions(h: int, w: int, merge: int) -> np.ndarray:
    """(row, col) of each patch of one temporal slice, in the processor's 2x2-block-major order."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    blk = (h // merge, merge, w // merge, merge)
    rows = rows.reshape(blk).transpose(0, 2, 1, 3).reshape(-1)
    cols = cols.reshape(blk).transpose(0, 2, 1, 3).reshape(-1)
    return np.stack([rows, cols], axis=-1)
