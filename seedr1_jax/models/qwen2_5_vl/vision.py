"""Qwen2.5-VL's vision tower: Qwen2-VL's, with RMSNorm, a SwiGLU feed-forward (with biases) and window attention.

transformers permutes the patches window by window and attends with `cu_window_seqlens`; here the patches keep
the processor's order and a windowed block attends through a mask that joins the patches of one window (the same
sums, no permutation to undo). Windows tile each frame from its top-left corner in `window_size` pixels
(`window_size // merge // patch` merged tokens a side); the blocks in `fullatt_block_indexes` attend the whole frame.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.models.layers import Linear, RMSNorm, activation
from seedr1_jax.models.qwen2_vl import vision as qwen2_vl


class VisionBlock(qwen2_vl.VisionBlock):
    norm_cls = RMSNorm

    @staticmethod
    def make_mlp(dim, hidden, **kw):
        return nnx.Dict(
            gate_proj=Linear(dim, hidden, axes=("embed", "mlp"), bias=True, **kw),
            up_proj=Linear(dim, hidden, axes=("embed", "mlp"), bias=True, **kw),
            down_proj=Linear(hidden, dim, axes=("mlp", "embed"), bias=True, **kw),
        )

    def ffn(self, x):
        m = self.mlp
        return m["down_proj"](activation(self.act)(m["gate_proj"](x)) * m["up_proj"](x))


class VisionTower(qwen2_vl.VisionTower):
    block_cls = VisionBlock

    def layer_masks(self, hw_pos, mask):
        v = self.cfg.vision
        if not v.window_size:
            return super().layer_masks(hw_pos, mask)
        side = (v.window_size // v.spatial_merge_size // v.patch_size) * v.spatial_merge_size  # in patches
        win_id = (hw_pos[..., 0] // side) * (1 << 16) + hw_pos[..., 1] // side  # [S, L]
        windowed = win_id[:, :, None] == win_id[:, None, :]
        full = jnp.ones_like(windowed) if mask is None else mask
        windowed = windowed & full
        is_full = jnp.asarray(np.isin(np.arange(v.depth), v.fullatt_block_indexes))
        return is_full, lambda f: jnp.where(f, full, windowed)
