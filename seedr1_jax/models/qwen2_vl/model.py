"""The composed Qwen2-VL model, its host-side input preparation (M-RoPE index, vision placement) and HF-like API."""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.models import vocab
from seedr1_jax.models.config import ConfigError, ModelConfig
from seedr1_jax.models.hf_io import load_hf, save_hf
from seedr1_jax.models.qwen2_vl import hf_names
from seedr1_jax.models.qwen2_vl.llm import TextModel
from seedr1_jax.models.qwen2_vl.vision import VisionTower, segment_layout


class Qwen2VL(nnx.Module):
    """Qwen2-VL: `visual` (vision tower), `model` (decoder), `lm_head` (absent with tied embeddings).

    Call it like transformers' `Qwen2VLForConditionalGeneration`:
    `model(input_ids, attention_mask=None, pixel_values=None, image_grid_thw=None,
    pixel_values_videos=None, video_grid_thw=None) -> float32[B, T, V]` (numpy inputs accepted).
    The jittable core is `forward` (see `prepare_inputs` for its inputs). A family that shares the decoder
    subclasses it with its own `family`, `vision_cls` and `hf_table`.
    """

    family = "qwen2_vl"  # HF model_type = ModelConfig.family
    vision_cls = VisionTower

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs | None):
        cfg.validate()
        if cfg.family != self.family:
            raise ConfigError(
                f"{type(self).__name__} builds family {self.family!r}, the config is {cfg.family!r}; "
                "use seedr1_jax.models.build(cfg) or seedr1_jax.from_pretrained(hf_dir)"
            )
        self.cfg = cfg
        self._hf_config_json: str | None = None  # the imported config.json (a string: graphdefs must hash)
        self.visual = self.vision_cls(cfg, rngs=rngs)
        self.model = TextModel(cfg, rngs=rngs)
        if not cfg.text.tie_word_embeddings:
            from seedr1_jax.models.layers import Linear

            self.lm_head = Linear(
                cfg.text.hidden_size,
                cfg.text.vocab_size,
                axes=("embed", "vocab"),
                bias=False,
                rngs=rngs,
                param_dtype=jnp.dtype(cfg.param_dtype),
                dtype=jnp.dtype(cfg.dtype),
            )
        else:
            self.lm_head = None

    @property
    def hf_config(self) -> dict[str, Any] | None:
        """The imported config.json, re-emitted (updated) on export."""
        return None if self._hf_config_json is None else json.loads(self._hf_config_json)

    @hf_config.setter
    def hf_config(self, value: dict[str, Any] | None) -> None:
        self._hf_config_json = None if value is None else json.dumps(value, sort_keys=True)

    # ---- jittable core -------------------------------------------------------------------------
    def embed(self, input_ids, pixels=None, hw_pos=None, valid=None, vision_index=None):
        """Token embeddings with vision tokens placed: [B, T, D].

        Two vision layouts:
        - flat (any image sizes, `prepare_inputs`): pixels [S, L, P], hw_pos int32[S, L, 2], valid bool[S, L]
          or None; vision_index int32[B, T] is the row of the flattened merged output [S * L / m^2].
        - per sample (training batches, shardable over B): pixels [B, S, L, P], hw_pos int32[B, S, L, 2];
          vision_index int32[B, T] is the row within that sample's own merged output [S * L / m^2].
        vision_index is -1 for text tokens.
        Returns (x [B, T, D], deepstack [K, B, T, D] or None: the tower's DeepStack features at the vision tokens,
        zero elsewhere, for the decoder's first K layers (Qwen3-VL)).
        """
        x = self.model.embed_tokens(vocab.rows(self.cfg, input_ids))
        if pixels is None:
            return x, None
        idx = jnp.maximum(vision_index, 0)
        if pixels.ndim == 4:
            b, s, l, p = pixels.shape
            v = None if valid is None else valid.reshape(b * s, l)
            feats, deep = self.visual.features(pixels.reshape(b * s, l, p), hw_pos.reshape(b * s, l, 2), v)

            def place(f):
                return jnp.take_along_axis(f.reshape(b, -1, f.shape[-1]).astype(x.dtype), idx[..., None], axis=1)
        else:
            feats, deep = self.visual.features(pixels, hw_pos, valid)

            def place(f):
                return jnp.take(f.reshape(-1, f.shape[-1]).astype(x.dtype), idx, axis=0)

        is_vision = (vision_index >= 0)[..., None]
        if deep is not None:
            deep = jnp.stack([jnp.where(is_vision, place(d), 0) for d in deep])
        return jnp.where(is_vision, place(feats), x), deep

    def forward(self, input_ids, positions, attention_mask, pixels=None, hw_pos=None, valid=None, vision_index=None):
        """Full-sequence forward (no cache). Returns the final normed hidden states [B, T, D]."""
        x, deepstack = self.embed(input_ids, pixels, hw_pos, valid, vision_index)
        t = input_ids.shape[1]
        mask = jnp.tril(jnp.ones((t, t), bool))[None] & attention_mask.astype(bool)[:, None, :]
        h, _ = self.model(x, positions, mask, deepstack=deepstack)
        return h

    def logits(self, h):
        """h: [..., D] -> float32[..., V] (fp32 accumulation whatever the compute dtype)."""
        dt = jnp.dtype(self.cfg.dtype)
        if self.lm_head is None:
            w = self.model.embed_tokens.embedding[...].astype(dt)
            return jnp.einsum("...d,vd->...v", h.astype(dt), w, preferred_element_type=jnp.float32)
        w = self.lm_head.kernel[...].astype(dt)
        return jnp.einsum("...d,dv->...v", h.astype(dt), w, preferred_element_type=jnp.float32)

    # ---- HF-like API ---------------------------------------------------------------------------
    def __call__(
        self,
        input_ids,
        attention_mask=None,
        pixel_values=None,
        image_grid_thw=None,
        pixel_values_videos=None,
        video_grid_thw=None,
        second_per_grid_ts=None,
    ):
        inputs = prepare_inputs(
            self.cfg,
            input_ids,
            attention_mask,
            pixel_values,
            image_grid_thw,
            pixel_values_videos,
            video_grid_thw,
            second_per_grid_ts,
        )
        return _jit_logits(self, inputs)

    hf_table = staticmethod(hf_names.table)  # HF hub names <-> our parameter paths (models/hf_io.py applies it)

    @classmethod
    def from_pretrained(cls, hf_dir, dtype=None, mesh=None, **overrides) -> Qwen2VL:
        return load_hf(cls, hf_dir, dtype=dtype, mesh=mesh, **overrides)

    def save_pretrained(self, out_dir, dtype=None, max_shard_bytes=5 * 2**30) -> None:
        save_hf(self, out_dir, dtype=dtype, max_shard_bytes=max_shard_bytes)


@nnx.jit
def _jit_logits(model: Qwen2VL, inputs: dict):
    h = model.forward(**inputs)
    return model.logits(h)


# ---- host-side input preparation -----------------------------------------------------------------
def get_rope_index(
    cfg: ModelConfig, input_ids, attention_mask=None, image_grid_thw=None, video_grid_thw=None, second_per_grid_ts=None
):
    """M-RoPE position ids by the original Qwen2-VL / Qwen2.5-VL algorithm (numpy, host side).

    With `cfg.vision.tokens_per_second` > 0 (Qwen2.5-VL) a video's time index is absolute: temporal patch k sits at
    int(k * second_per_grid_ts[video] * tokens_per_second) (float32, in that order; 1.0 s when not given), as
    the original Qwen2.5-VL computes it; images and Qwen2-VL use k.
    With `cfg.vision.frame_blocks` (Qwen3-VL) each temporal patch of a video is its own vision block (its
    timestamp is text before it), so each consumes a (1, h, w) grid.
    Text after a vision block starts at the maximum position used so far + 1 (transformers 5.x
    instead advances by max(h, w) / merge, which differs when a video's temporal grid is larger).
    input_ids: int[B, T]; attention_mask: int[B, T] or None (padding is skipped, any side).
    Returns (positions int32[3, B, T], deltas int32[B]) with deltas = max position + 1 - T, the offset
    that continues positions during decoding.
    """
    ids = np.asarray(input_ids)
    b, t = ids.shape
    am = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask)
    if cfg.vision.frame_blocks and video_grid_thw is not None:  # one block per temporal patch (Qwen3-VL)
        video_grid_thw = [(1, h, w) for tt, h, w in np.asarray(video_grid_thw).reshape(-1, 3) for _ in range(tt)]
    grids = {
        cfg.image_token_id: iter(np.asarray(image_grid_thw).reshape(-1, 3)) if image_grid_thw is not None else None,
        cfg.video_token_id: iter(np.asarray(video_grid_thw).reshape(-1, 3)) if video_grid_thw is not None else None,
    }
    m = cfg.vision.spatial_merge_size
    tps = cfg.vision.tokens_per_second
    seconds = iter(np.asarray(second_per_grid_ts, np.float32).reshape(-1)) if second_per_grid_ts is not None else None
    positions = np.ones((3, b, t), np.int64)
    deltas = np.zeros((b,), np.int64)
    for i in range(b):
        keep = am[i] == 1
        row = ids[i][keep]
        parts, st, nxt = [], 0, 0
        starts = np.nonzero(row == cfg.vision_start_token_id)[0]
        for s in starts:
            if s + 1 >= len(row) or row[s + 1] not in (cfg.image_token_id, cfg.video_token_id):
                continue
            kind = int(row[s + 1])
            if grids[kind] is None:
                name = "image_grid_thw" if kind == cfg.image_token_id else "video_grid_thw"
                raise ConfigError(f"row {i} has a vision block but {name} was not given")
            try:
                gt, gh, gw = (int(v) for v in next(grids[kind]))
            except StopIteration:
                raise ConfigError(f"row {i}: more vision blocks than grid_thw entries") from None
            ed = s + 1
            text_len = ed - st
            parts.append(np.broadcast_to(np.arange(text_len) + nxt, (3, text_len)))
            lt, lh, lw = gt, gh // m, gw // m
            times = np.arange(lt)
            if tps and kind == cfg.video_token_id:
                sec = np.float32(1.0) if seconds is None else next(seconds, None)
                if sec is None:
                    raise ConfigError(f"row {i}: more videos than second_per_grid_ts entries")
                times = ((times.astype(np.float32) * np.float32(sec)) * np.float32(tps)).astype(np.int64)
            tt, hh, ww = np.meshgrid(times, np.arange(lh), np.arange(lw), indexing="ij")
            vis = np.stack([tt.ravel(), hh.ravel(), ww.ravel()]) + text_len + nxt
            parts.append(vis)
            nxt = int(vis.max()) + 1
            st = ed + lt * lh * lw
        if st < len(row):
            parts.append(np.broadcast_to(np.arange(len(row) - st) + nxt, (3, len(row) - st)))
        pos = np.concatenate(parts, axis=1) if parts else np.zeros((3, 0), np.int64)
        positions[:, i, keep] = pos
        deltas[i] = (pos.max() + 1 if pos.size else 0) - t
    return positions.astype(np.int32), deltas.astype(np.int32)


def vision_placement(cfg: ModelConfig, input_ids, image_grid_thw, video_grid_thw):
    """Segment layout for images then videos, and the feature row of each vision token.

    Returns a dict with pixels' gather index, hw_pos, valid and vision_index int32[B, T] (see `Qwen2VL.embed`).
    """
    ids = np.asarray(input_ids)
    m2 = cfg.vision.spatial_merge_size**2
    img = np.zeros((0, 3), np.int64) if image_grid_thw is None else np.asarray(image_grid_thw).reshape(-1, 3)
    vid = np.zeros((0, 3), np.int64) if video_grid_thw is None else np.asarray(video_grid_thw).reshape(-1, 3)
    gather, hw_pos, valid, merged_rows = segment_layout(np.concatenate([img, vid]), cfg.vision.spatial_merge_size)
    n_img = int(img.prod(-1).sum()) // m2
    n_vid = int(vid.prod(-1).sum()) // m2
    vision_index = np.full(ids.shape, -1, np.int32)
    for tok, rows, name in (
        (cfg.image_token_id, merged_rows[:n_img], "image"),
        (cfg.video_token_id, merged_rows[n_img : n_img + n_vid], "video"),
    ):
        where = ids == tok
        if where.sum() != len(rows):
            raise ConfigError(
                f"the input has {int(where.sum())} {name} pad tokens but the {name} grid_thw gives {len(rows)} "
                f"{name} features; render the prompt with the processor that made the pixels"
            )
        vision_index[where] = rows
    return dict(gather=gather, hw_pos=hw_pos, valid=valid, vision_index=vision_index)


def per_sample_inputs(
    cfg: ModelConfig,
    input_ids,
    attention_mask,
    pixel_rows,
    image_grids,
    video_grids,
    num_segments=None,
    video_seconds=None,
) -> dict:
    """The per-sample (training-batch) layout of B prompts, shardable over B: the one builder of it.

    input_ids/attention_mask: int[B, T] (left padding expected by the sampler). Per row b: pixel_rows[b]
    float32[N_b, P] (that row's images then videos, transformers' row order; may be empty), image_grids[b] /
    video_grids[b]: lists of (t, h, w) (may be empty). Every temporal slice must have the same h * w (one
    segment length L). num_segments: pad each row to this many segments (default: the most any row has);
    padding segments are zeros and cost one vision-tower slot each. video_seconds[b]: seconds per temporal patch of
    row b's videos (`second_per_grid_ts`; read only by families with absolute time, 1.0 s when not given).
    Returns input_ids/attention_mask int32[B, T], positions int32[3, B, T], pixels float32[B, S, L, P],
    hw_pos int32[B, S, L, 2], vision_index int32[B, T] (row of the sample's merged output, -1 for text); no
    vision fields when no row has any image or video.
    """
    ids = np.asarray(input_ids, np.int32)
    am = np.asarray(attention_mask, np.int32)
    b = ids.shape[0]
    grids = [[*(image_grids[i] or []), *(video_grids[i] or [])] for i in range(b)]
    flat_img = [g for i in range(b) for g in (image_grids[i] or [])]
    flat_vid = [g for i in range(b) for g in (video_grids[i] or [])]
    seconds = None
    if video_seconds is not None:
        seconds = [float(sec) for i in range(b) for sec in (video_seconds[i] or [])]
        if len(seconds) != len(flat_vid):
            raise ConfigError(f"video_seconds gives {len(seconds)} values for {len(flat_vid)} videos")
    positions, _ = get_rope_index(cfg, ids, am, flat_img or None, flat_vid or None, seconds)
    out = dict(input_ids=ids, attention_mask=am, positions=positions)
    if not any(grids):
        return out
    places = [
        vision_placement(cfg, ids[i : i + 1], image_grids[i] or None, video_grids[i] or None) if grids[i] else None
        for i in range(b)
    ]
    real = [p for p in places if p is not None]
    lens = {int(p["gather"].shape[1]) for p in real}
    if len(lens) != 1 or not all(p["valid"].all() for p in real):
        raise ConfigError(f"per-sample layout needs one segment length for every image/video slice; got {sorted(lens)}")
    seg_len = lens.pop()
    s = max(int(p["gather"].shape[0]) for p in real) if num_segments is None else int(num_segments)
    dim = cfg.vision.patch_dim
    pixels = np.zeros((b, s, seg_len, dim), np.float32)
    hw_pos = np.broadcast_to(real[0]["hw_pos"][:1], (b, s, seg_len, 2)).copy()
    vision_index = np.full(ids.shape, -1, np.int32)
    for i, p in enumerate(places):
        if p is None:
            continue
        n = p["gather"].shape[0]
        if n > s:
            raise ConfigError(f"row {i} has {n} vision segments, more than num_segments={s}")
        pixels[i, :n] = np.asarray(pixel_rows[i], np.float32)[p["gather"]]
        hw_pos[i, :n] = p["hw_pos"]
        vision_index[i] = p["vision_index"][0]
    return dict(out, pixels=pixels, hw_pos=hw_pos, vision_index=vision_index)


def prepare_inputs(
    cfg,
    input_ids,
    attention_mask=None,
    pixel_values=None,
    image_grid_thw=None,
    pixel_values_videos=None,
    video_grid_thw=None,
    second_per_grid_ts=None,
) -> dict:
    """transformers-style inputs -> the keyword arguments of `Qwen2VL.forward` (numpy)."""
    ids = np.asarray(input_ids, np.int32)
    if ids.ndim == 1:
        ids = ids[None]
    am = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, np.int32).reshape(ids.shape)
    positions, _ = get_rope_index(cfg, ids, am, image_grid_thw, video_grid_thw, second_per_grid_ts)
    out = dict(input_ids=ids, positions=positions, attention_mask=am)
    flats = [np.asarray(p, np.float32) for p in (pixel_values, pixel_values_videos) if p is not None]
    if flats:
        place = vision_placement(
            cfg,
            ids,
            image_grid_thw if pixel_values is not None else None,
            video_grid_thw if pixel_values_videos is not None else None,
        )
        flat = np.concatenate(flats)
        if flat.shape[-1] != cfg.vision.patch_dim:
            raise ConfigError(
                f"pixel rows have {flat.shape[-1]} values, the vision config expects {cfg.vision.patch_dim}"
            )
        if place["gather"].max() >= len(flat):
            raise ConfigError(f"grid_thw asks for more patches than the {len(flat)} pixel rows given")
        out.update(
            pixels=flat[place["gather"]],
            hw_pos=place["hw_pos"],
            valid=None if place["valid"].all() else place["valid"],
            vision_index=place["vision_index"],
        )
    return out


def param_count(model: Qwen2VL) -> int:
    state = nnx.state(model, nnx.Param)
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(state)))
