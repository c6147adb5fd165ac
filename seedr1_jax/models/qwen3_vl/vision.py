"""Qwen3-VL's vision tower: Qwen2-VL's blocks (LayerNorm, GELU-tanh feed-forward named linear_fc1/2), a patch
embedding with bias, a learned square position table bilinearly resized (corners aligned) to each frame's patch
grid and added to the patches, a merger named norm/linear_fc1/linear_fc2, and DeepStack: the outputs of the blocks in
`deepstack_visual_indexes` go through their own mergers (LayerNorm after the 2 x 2 shuffle) and are added to the
first decoder layers' hidden states at the vision tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from seedr1_jax.models.layers import Embed, LayerNorm, Linear, activation
from seedr1_jax.models.qwen2_vl import vision as qwen2_vl


class VisionBlock(qwen2_vl.VisionBlock):
    @staticmethod
    def make_mlp(dim, hidden, **kw):
        return nnx.Dict(
            linear_fc1=Linear(dim, hidden, axes=("embed", "mlp"), bias=True, **kw),
            linear_fc2=Linear(hidden, dim, axes=("mlp", "embed"), bias=True, **kw),
        )

    def ffn(self, x):
        return self.mlp["linear_fc2"](activation(self.act)(self.mlp["linear_fc1"](x)))


class PatchMerger(nnx.Module):
    """2 x 2 neighbouring patches -> one token of the decoder's width; the norm before the shuffle (the main merger)
    or after it (the DeepStack mergers)."""

    def __init__(self, cfg, *, post_shuffle: bool, rngs, stack=(), param_dtype, dtype):
        v = cfg.vision
        merged = v.embed_dim * v.spatial_merge_size**2
        kw = dict(rngs=rngs, stack=stack, param_dtype=param_dtype, dtype=dtype)
        self.post_shuffle = post_shuffle
        self.merged = merged
        self.norm = LayerNorm(
            merged if post_shuffle else v.embed_dim, eps=1e-6, rngs=rngs, stack=stack, param_dtype=param_dtype
        )
        self.linear_fc1 = Linear(merged, merged, axes=("mlp", "mlp2"), bias=True, **kw)
        self.linear_fc2 = Linear(merged, v.out_dim, axes=("mlp", "embed"), bias=True, **kw)

    def __call__(self, x):
        """x: [S, L, E] -> [S, L / m^2, D]."""
        s = x.shape[0]
        if self.post_shuffle:
            x = self.norm(x.reshape(s, -1, self.merged))
        else:
            x = self.norm(x).reshape(s, -1, self.merged)
        return self.linear_fc2(jax.nn.gelu(self.linear_fc1(x), approximate=False))


class VisionTower(qwen2_vl.VisionTower):
    block_cls = VisionBlock
    patch_bias = True

    def __init__(self, cfg, *, rngs):
        super().__init__(cfg, rngs=rngs)
        v = cfg.vision
        pd, dt = jnp.dtype(cfg.param_dtype), jnp.dtype(cfg.dtype)
        self.pos_embed = Embed(v.num_position_embeddings, v.embed_dim, rngs=rngs, param_dtype=pd, dtype=dt)
        n = len(v.deepstack_visual_indexes)
        self.deepstack_merger = (
            PatchMerger(cfg, post_shuffle=True, rngs=rngs, stack=(n,), param_dtype=pd, dtype=dt) if n else None
        )

    def make_merger(self, cfg, **kw):
        return PatchMerger(cfg, post_shuffle=False, **kw)

    def merge(self, x):
        return self.merger(x)

    def deepstack(self, k: int, x):
        graphdef, state = nnx.split(self.deepstack_merger)
        return nnx.merge(graphdef, jax.tree.map(lambda a: a[k], state))(x)

    def embed_patches(self, pixels, hw_pos):
        """The patches plus the position table resized to each segment's grid: bilinear with aligned corners
        (source = index * (side - 1) / (size - 1)), 4 taps clamped to the table, as transformers' Qwen3-VL."""
        side = int(round(self.cfg.vision.num_position_embeddings**0.5))
        size = jnp.max(hw_pos, axis=1, keepdims=True) + 1  # [S, 1, 2] the segment's patch rows, cols
        src = hw_pos.astype(jnp.float32) * (side - 1) / jnp.maximum(size - 1, 1).astype(jnp.float32)  # [S, L, 2]
        floor = jnp.floor(src)
        taps = jnp.clip(floor[..., None].astype(jnp.int32) + jnp.arange(2), 0, side - 1)  # [S, L, 2 axes, 2]
        w = jnp.clip(1 - jnp.abs(src[..., None] - floor[..., None] - jnp.arange(2)), 0)
        index = (taps[..., 0, :, None] * side + taps[..., 1, None, :]).reshape(*hw_pos.shape[:-1], 4)
        weight = (w[..., 0, :, None] * w[..., 1, None, :]).reshape(*hw_pos.shape[:-1], 4)
        table = self.pos_embed.embedding[...].astype(jnp.float32)
        pos = jnp.sum(jnp.take(table, index, axis=0) * weight[..., None], axis=-2)
        x = self.patch_embed(pixels)
        return x + pos.astype(x.dtype)
