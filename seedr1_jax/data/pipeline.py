"""The input pipeline: prepared TFRecords -> fixed-shape training/eval batches in the model's per-sample layout.

tf.data reads this process's share of the split (`tfds.even_splits` by process), shuffles with a seed, decodes
the stored (PNG or JPEG) frames and patchifies them on its worker threads; the host then builds the options, renders and
tokenizes the prompt and assembles the batch. Static shapes (one jit for the whole run):

  input_ids      int32[B, T]        prompt, LEFT-padded with 151643 to T = max_prompt_len
  attention_mask int32[B, T]        1 on real tokens
  positions      int32[3, B, T]     M-RoPE ids (`qwen2_vl.get_rope_index`, padding skipped)
  pixels         float32[B, S, L, P] S = 1 observation-image segment + max_frames/2 video segments (a clip of
                                    n frames fills n/2, the rest are zeros; a sample without an image starts
                                    with its video); L = 324, P = 1176 for 252-pixel frames in 14-pixel patches
                                    (`processor.geometry`: 256 in 16 gives 256, 1536). Image-only batches: S = 1.
  hw_pos         int32[B, S, L, 2]  (row, col) of each patch in its 18x18 grid
  vision_index   int32[B, T]        row of the sample's merged vision output (S * 81 rows) for each vision
                                    pad token, -1 for text (`qwen2_vl.per_sample_inputs` builds it)
  host fields (numpy): sample_id, answer (letter), prompt (rendered text), num_options, options, answer_text,
  domain, evidence (the sampled frames that show the answer's evidence, "1,2,3"; "" where the record has none:
  `evidence_frames`), valid (False on eval padding rows); SFT records add loss_mask int32[B, T] (1 on response tokens).
B is the per-process batch (`batch_size / process_count`); `to_global` makes global jax.Arrays.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import zlib

import ml_collections
import numpy as np

from seedr1_jax.core import fs
from seedr1_jax.models import processor as P
from seedr1_jax.models import vocab
from seedr1_jax.models.config import ConfigError, ModelConfig

log = logging.getLogger(__name__)


__all__ = [
    "CURRENT",
    "build_sample",
    "check_geometry",
    "damaged_tfrecords",
    "default_config",
    "eval_batches",
    "examples",
    "find_split_dir",
    "frame_geometry",
    "is_version",
    "local_batch_size",
    "make_batch",
    "open_split",
    "prepared_splits",
    "stack",
    "stored_frame_size",
    "to_global",
    "train_batches",
    "training_options",
    "vision_fn",
]


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.tfrecord_dir = ""  # `seedr1 prep --out` folder (or the prepared split's version folder itself)
    c.split = "train"  # prepared split to read: train, train_cot, L1, L2, L3 or lvb
    c.batch_size = 8  # prompts per step, global; each JAX process reads batch_size / process_count
    c.eval_batch_size = 0  # prompts per evaluation batch (`eval_batches`), global; 0 = batch_size
    c.max_prompt_len = 1024  # T: every prompt is left-padded to this; longer prompts are skipped (or raise)
    c.max_frames = 16  # video frames per sample at most (the prep setting); S = max_frames / 2 + 1 segments
    # which stored frames a clip with more than max_frames keeps: "first" (the first max_frames) or "uniform" (an
    # even count spread evenly over the stored ones, first and last included: the frame-budget arms)
    c.frame_sampling = "first"
    # frame side in pixels the model reads; 0 = its family's (252 at patch 14, 256 at Qwen3-VL's 16). It must be
    # the size `seedr1 prep --frame-size` stored: checked before any sample is read
    c.frame_size = 0
    c.seed = 0  # shuffling of files/examples and the training-set option order
    c.shuffle = True  # shuffle examples (training); eval reads in file order
    c.shuffle_buffer = 256  # examples held for shuffling (each ~14 MB once patchified; shuffled before decoding)
    c.num_epochs = 0  # passes over the data; 0 repeats forever
    # training: the split is read as this many even parts, each giving batch_size / shards rows of every global
    # batch in part order, the processes reading the parts in turn; 0 = one per process. The data order depends on
    # it, not on how many processes read: fix it (a multiple of every process count you will use) to compare or
    # resume runs across process counts
    c.shards = 0
    c.num_negatives = 3  # training split: negatives sampled per pass, plus the answer, shuffled
    # training split's option order: "shuffle" (the reference) or "sorted" (alphabetical; the toy configs, whose
    # synthetic options differ only in a colour, so that the letter follows from the colour seen)
    c.option_order = "shuffle"
    c.tokenizer = ""  # folder with a Qwen2-VL tokenizer.json; empty uses the bundled Qwen2 BPE
    c.strict = False  # a prompt longer than max_prompt_len raises instead of being skipped and logged
    return c


# ---- reading ---------------------------------------------------------------------------------------
def _stored_split(version_dir: str) -> str:
    """The split name `seedr1 prep` stored in a prepared folder (dataset_info.json `configName`)."""
    info = json.loads(fs.read_text(fs.join(version_dir, "dataset_info.json")))
    return str(info.get("configName") or "")


def is_version(name: str) -> bool:
    """A TFDS version folder name (1.0.0)."""
    return bool(re.fullmatch(r"\d+\.\d+\.\d+", name))


# On an object store (no rename) `seedr1 prep` uploads each build to seed_bench_r1/<split>/builds/<stamp>/<version>
# and then writes this object, naming that folder relative to seed_bench_r1/<split>: one object write, which
# GCS makes atomic, is the switch. A split without it is the local layout, seed_bench_r1/<split>/<version>.
CURRENT = "CURRENT"


def prepared_splits(tfrecord_dir: str) -> dict[str, str]:
    """Split name -> its current version folder, for every split prepared under `seedr1 prep --out DIR`."""
    out = {}
    root = fs.join(tfrecord_dir, "seed_bench_r1")
    for name in fs.listdir(root):
        pointer = fs.join(root, name, CURRENT)
        if fs.exists(pointer):
            build = fs.join(root, name, fs.read_text(pointer).strip())
            if fs.exists(fs.join(build, "dataset_info.json")):
                out[name] = build
                continue
        versions = [v for v in fs.listdir(fs.join(root, name)) if is_version(v)]
        versions = [v for v in versions if fs.exists(fs.join(root, name, v, "dataset_info.json"))]
        if versions:
            out[name] = fs.join(root, name, max(versions, key=lambda v: tuple(map(int, v.split(".")))))
    return out


def find_split_dir(tfrecord_dir: str, split: str, field: str = "data.tfrecord_dir") -> str:
    """The folder of prepared split `split` (holding dataset_info.json), under `seedr1 prep --out DIR` or the
    version folder itself. The split name stored at prep time must equal `split`; anything else is a
    ConfigError naming what the folder holds (`field`: the config field it came from). Local or gs:// (`fs`)."""
    where = f"{field}={tfrecord_dir!r}"
    out = tfrecord_dir or "DIR"
    if tfrecord_dir and fs.exists(fs.join(tfrecord_dir, "dataset_info.json")):  # .../seed_bench_r1/<split>/<ver>
        parts = str(tfrecord_dir).rstrip("/").split("/")
        up = 5 if len(parts) > 3 and parts[-3] == "builds" else 3  # or .../<split>/builds/<stamp>/<ver>
        out = "/".join(parts[:-up]) or "DIR"
    fix = f"run `seedr1 prep --data-root DATA_ROOT --split {split} --out {out}`"
    if not tfrecord_dir:
        raise ConfigError(f"{field} is empty: set --config.{field}=DIR, or {fix} first")
    if not fs.isdir(tfrecord_dir):
        raise ConfigError(f"{where} does not exist; {fix} first")
    if fs.exists(fs.join(tfrecord_dir, "dataset_info.json")):
        stored = _stored_split(tfrecord_dir)
        if stored != split:
            raise ConfigError(f"{where} holds split {stored or '(unnamed)'}, not {split}; {fix}, point {field} there")
        return tfrecord_dir
    found = prepared_splits(tfrecord_dir)
    if split not in found:
        holds = f"holds split(s) {', '.join(sorted(found))}" if found else "holds no prepared split"
        raise ConfigError(f"{where} {holds}, not {split}; {fix}")
    stored = _stored_split(found[split])
    if stored != split:  # a folder renamed or copied by hand
        raise ConfigError(f"{found[split]} holds split {stored or '(unnamed)'}, not {split}; {fix}")
    return found[split]


def damaged_tfrecords(split_dir: str) -> list[str]:
    """The TFRecord shards of a prepared split that do not read to the end (truncated or corrupt): tf.data's
    DataLossError names no file, so on that error each shard is read alone to find the culprit."""
    import tensorflow as tf

    bad = []
    for path in fs.glob(fs.join(split_dir, "*.tfrecord*")):
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.DataLossError:
            bad.append(path)
    return bad


def open_split(cfg, process_index: int, process_count: int):
    """This process's share of the split as raw examples (frames undecoded) and its example count."""
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(find_split_dir(cfg.tfrecord_dir, cfg.split))
    name = next(iter(builder.info.splits))
    part = tfds.even_splits(name, n=process_count, drop_remainder=False)[process_index]
    n_local = builder.info.splits[part].num_examples
    skip = {"frames": tfds.decode.SkipDecoding(), "image": tfds.decode.SkipDecoding()}
    ds = builder.as_dataset(
        split=part,
        shuffle_files=bool(cfg.shuffle),
        decoders=skip,
        read_config=tfds.ReadConfig(shuffle_seed=int(cfg.seed), skip_prefetch=True),
    )
    return ds, n_local


def _patchify_tf(frames, tf, geom: P.Geometry):
    """float32[N, size, size, 3] normalized (N a multiple of the temporal patch) -> float32[N/2, L, P] in the
    processor's order (L = 324, P = 1176 for 252-pixel frames in 14-pixel patches)."""
    n, tp = tf.shape(frames)[0], geom.temporal
    g, m, p = geom.grid // geom.merge, geom.merge, geom.patch
    x = tf.reshape(frames, [n // tp, tp, g, m, p, g, m, p, 3])
    x = tf.transpose(x, [0, 2, 5, 3, 6, 8, 1, 4, 7])  # (t, bh, bw, mh, mw, C, tp, ph, pw)
    return tf.reshape(x, [n // tp, geom.patches, geom.dim])


FRAME_SAMPLING = ("first", "uniform")


def vision_fn(max_frames: int, family: str = "qwen2_vl", geom: P.Geometry = P.QWEN2_GEOMETRY, sampling: str = "first"):
    """tf.data map: encoded frames/image -> `pixels` float32[S, L, P] (normalised as `family`'s processor does,
    patches of `geom`, whose size the stored frames must have) and `num_frames` int32. A clip stored with more
    than `max_frames` frames keeps its first ones, or with `sampling="uniform"` an even number spread evenly over
    them (`frame_indices` follows, so evidence frames and timestamps stay right)."""
    import tensorflow as tf

    mean, std = (tf.constant(x) for x in P.pixel_norm(family))
    spec = tf.TensorSpec([geom.size, geom.size, 3], tf.uint8)

    def decode_one(b):
        # the stored format is read from each image's bytes: PNG (lossless, `prep`'s default) or JPEG, which
        # needs the accurate integer IDCT (TensorFlow's default fast IDCT adds ~0.6 mean error)
        return tf.cond(
            tf.io.is_jpeg(b),
            lambda: tf.io.decode_jpeg(b, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.ensure_shape(tf.io.decode_image(b, channels=3, expand_animations=False), [None, None, 3]),
        )

    def decode(encoded):
        """string[N] PNG/JPEG bytes -> normalized float32[N, size, size, 3]."""
        imgs = tf.map_fn(decode_one, encoded, fn_output_signature=spec)
        return (tf.cast(imgs, tf.float32) * tf.constant(1 / 255, tf.float32) - mean) / std

    def fn(ex):
        ex = dict(ex)
        if sampling == "uniform":
            total = tf.shape(ex["frames"])[0]
            k = tf.minimum(total, max_frames)
            k -= k % geom.temporal
            pick = tf.cast(tf.round(tf.linspace(0.0, tf.cast(tf.maximum(total - 1, 0), tf.float32), k)), tf.int32)
            ex["frames"] = tf.gather(ex["frames"], pick)
            if "frame_indices" in ex:
                ex["frame_indices"] = tf.gather(ex["frame_indices"], pick)
        frames = decode(ex["frames"])[:max_frames]
        n = tf.shape(frames)[0]
        frames = tf.pad(frames, [[0, max_frames - n], [0, 0], [0, 0], [0, 0]])
        video = _patchify_tf(frames, tf, geom)
        img = decode(ex["image"][:1])
        img = tf.cond(
            tf.shape(img)[0] > 0,
            lambda: _patchify_tf(tf.concat([img[:1]] * geom.temporal, 0), tf, geom),
            lambda: tf.zeros([1, geom.patches, geom.dim], tf.float32),
        )
        out = {k: v for k, v in ex.items() if k not in ("frames", "image")}
        out.update(pixels=tf.concat([img, video], 0), num_frames=n, has_image=tf.shape(ex["image"])[0] > 0)
        return out

    return fn


# ---- host-side sample assembly ----------------------------------------------------------------------
def _str(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def training_options(answer: str, negatives, seed: int, epoch: int, sample_id: str, k: int = 3, order="shuffle"):
    """The reference's option construction, seeded: k negatives sampled + the answer, shuffled (or, with
    `order="sorted"`, listed alphabetically).

    Returns (options list[str], ground-truth letter). Depends only on (seed, epoch, sample_id), not on the
    order or the process that reads the sample.
    """
    rng = np.random.default_rng([int(seed), int(epoch), zlib.crc32(sample_id.encode("utf-8"))])
    negs = [negatives[i] for i in rng.choice(len(negatives), size=min(k, len(negatives)), replace=False)]
    opts = [*negs, answer]
    opts = [opts[i] for i in rng.permutation(len(opts))]
    if order == "sorted":
        opts = sorted(opts)
    elif order != "shuffle":
        raise ConfigError(f'data.option_order must be "shuffle" or "sorted", got {order!r}')
    return opts, P.LETTERS[opts.index(answer)]


def frame_geometry(cfg, model_cfg: ModelConfig | None) -> P.Geometry:
    """The frames this run reads: `data.frame_size` (0: the model family's size) in the model's patches; a size
    that does not cut into whole merged patches is a ConfigError naming the field."""
    v = (model_cfg or ModelConfig()).vision
    try:
        return P.geometry(v, int(cfg.get("frame_size", 0) or 0))
    except ValueError as e:
        raise ConfigError(f"data.frame_size={cfg.get('frame_size')}: {e}") from None


def stored_frame_size(split_dir: str) -> int:
    """The frame side `seedr1 prep --frame-size` wrote into a prepared split (its features' image shape)."""
    import tensorflow_datasets as tfds

    return int(tfds.builder_from_directory(split_dir).info.features["frames"].feature.shape[0])


def check_geometry(cfg, model_cfg: ModelConfig | None) -> P.Geometry:
    """The prepared frames fit the model's patches, else a ConfigError saying how (before any sample is read).

    Returns the run's `frame_geometry`, whose size the stored frames have."""
    geom = frame_geometry(cfg, model_cfg)
    split_dir = find_split_dir(cfg.tfrecord_dir, cfg.split)
    stored = stored_frame_size(split_dir)
    if stored != geom.size:
        family = (model_cfg or ModelConfig()).family
        fits = stored % (geom.patch * geom.merge) == 0
        raise ConfigError(
            f"{split_dir} holds {stored}-pixel frames, this run reads {geom.size}-pixel ones ({family}, "
            f"{geom.patch}-pixel patches merged {geom.merge} x {geom.merge}"
            + (f", data.frame_size={cfg.get('frame_size')}" if cfg.get("frame_size") else "")
            + f"): prepare the split again with `seedr1 prep ... --frame-size {geom.size}`"
            + (f", or set --config.data.frame_size={stored}" if fits else "")
        )
    return geom


def evidence_frames(ex: dict):
    """The record's evidence as indices into its sampled frames (sorted list), or None where it has none.

    Optional prepared-record fields, any of: `evidence_frames` as a list of sampled-frame indices, or as
    {"start_frame", "stop_frame"} (inclusive, the clip's own numbering: the synthetic annotations' form), or
    flat `evidence_start_frame` / `evidence_stop_frame` (negative: none). Clip numbers are matched to the
    sampled frames through the record's `frame_indices`.
    """
    ev = ex.get("evidence_frames")
    if isinstance(ev, dict):
        lo, hi = ev.get("start_frame"), ev.get("stop_frame")
    elif ev is not None and np.size(ev):
        return sorted({int(i) for i in np.asarray(ev).reshape(-1)})
    else:
        lo, hi = ex.get("evidence_start_frame"), ex.get("evidence_stop_frame")
    if lo is None or hi is None or int(lo) < 0 or int(hi) < int(lo) or "frame_indices" not in ex:
        return None
    clip = np.asarray(ex["frame_indices"]).reshape(-1)
    return [j for j, f in enumerate(clip) if int(lo) <= int(f) <= int(hi)] or None


def sample_tokens(ex: dict, cfg, tokenizer, vision: tuple, epoch: int = 0):
    """The token ids of one example's prompt (+ its SFT response): (ids int32[T], loss_mask int32[T] (1 on the
    response), prompt text, options, answer letter, answer text). vision: (video grid or None, image grid or None,
    Qwen3-VL frame timestamps or None, spatial merge), which set the vision placeholders' count."""
    vgrid, igrid, stamps, merge = vision
    options = [_str(o) for o in ex["options"]]
    letter, answer = _str(ex["golden_letter"]), _str(ex["answer"])
    user_text = _str(ex["user_text"])
    if user_text:  # SFT: the stored user text verbatim
        text = P.render(P.messages(user_text, vgrid is not None, igrid is not None))
        ids = P.vision_ids(tokenizer, text, vgrid, igrid, stamps, merge)
    else:
        if not options:
            negs = [_str(o) for o in ex["negative_answers"]]
            k, order = int(cfg.num_negatives), cfg.get("option_order", "shuffle")
            options, letter = training_options(answer, negs, cfg.seed, epoch, _str(ex["sample_id"]), k, order)
        ids, text = P.prompt_ids(tokenizer, _str(ex["question"]), options, vgrid, igrid, stamps, merge)
    loss = np.zeros_like(ids)
    response = _str(ex["response"])
    if response:
        ids, loss = P.sft_example(tokenizer, ids, response)
    return ids, loss, text, options, letter, answer


def build_sample(ex: dict, cfg, model_cfg: ModelConfig, tokenizer, epoch: int = 0) -> dict:
    """One decoded example (numpy) -> one batch row; raises ValueError when the prompt exceeds max_prompt_len.

    Row fields: input_ids/attention_mask/vision_index int32[T], positions int32[3, T], pixels float32[S, L, P],
    loss_mask int32[T] (SFT), plus the host fields of the module docstring.
    """
    t_max, n = int(cfg.max_prompt_len), int(ex["num_frames"])
    sid = _str(ex["sample_id"])
    has_img = bool(ex["has_image"])
    geom = frame_geometry(cfg, model_cfg)
    tp, g = geom.temporal, geom.grid
    vgrid = (n // tp, g, g) if n else None
    igrid = (1, g, g) if has_img else None
    stamps = None
    if n and model_cfg.vision.frame_blocks:  # Qwen3-VL: each temporal patch's seconds written before it
        idx = np.asarray(ex.get("frame_indices", ()))[:n]
        stamps = P.frame_timestamps(idx if len(idx) == n else np.arange(n), float(ex.get("video_fps", 0) or 0))
    ids, loss, text, options, letter, answer = sample_tokens(
        ex, cfg, tokenizer, (vgrid, igrid, stamps, geom.merge), epoch
    )
    t_max = t_max or len(ids)  # max_prompt_len 0: no padding (one prompt, `make_batch`)
    if len(ids) > t_max:
        raise ValueError(f"sample {sid}: prompt has {len(ids)} tokens, data.max_prompt_len is {t_max}")
    vocab.check_ids(model_cfg, ids, f"sample {sid}")
    pad = t_max - len(ids)
    ids = np.concatenate([np.full(pad, P.PAD_ID, np.int32), ids]).astype(np.int32)
    mask = np.concatenate([np.zeros(pad, np.int32), np.ones(t_max - pad, np.int32)])
    from seedr1_jax.models.qwen2_vl.model import per_sample_inputs

    s = int(cfg.max_frames) // tp + 1
    pix = np.asarray(ex["pixels"])  # [S, L, P]: the image segment, then the video's (zeros past the clip)
    row = per_sample_inputs(
        model_cfg,
        ids[None],
        mask[None],
        [pix[(0 if has_img else 1) : 1 + n // tp].reshape(-1, pix.shape[-1])],
        [[igrid] if igrid else []],
        [[vgrid] if vgrid else []],
        num_segments=s,
        video_seconds=[[P.second_per_grid(int(ex.get("num_video_frames", 0)), float(ex.get("video_fps", 0)), n)]]
        if vgrid
        else None,
    )
    return dict(
        input_ids=ids,
        attention_mask=mask,
        positions=row["positions"][:, 0],
        pixels=row["pixels"][0] if "pixels" in row else np.zeros_like(pix),
        vision_index=row["vision_index"][0] if "vision_index" in row else np.full(t_max, -1, np.int32),
        loss_mask=np.concatenate([np.zeros(pad, np.int32), loss]).astype(np.int32),
        sample_id=sid,
        answer=letter,
        prompt=text,
        num_options=len(options),
        options="\n".join(options),
        answer_text=answer,
        domain=_str(ex["domain"]),
        evidence=",".join(str(f) for f in evidence_frames(ex) or ()),
        valid=True,
    )


def stack(rows: list[dict], cfg, merge: int = P.MERGE) -> dict:
    """Rows -> a batch dict (module docstring); hw_pos is the same grid x grid layout (18 x 18 for 252-pixel frames in
    14-pixel patches; the side is read from the rows' pixels) for every segment.

    The batch keeps the segments up to the last one any row uses (an image-only batch keeps one, a batch of
    clips shorter than `max_frames` drops the trailing video segments), so the vision tower never encodes a
    segment that no row uses; at most `max_frames / 2 + 1` shapes, one compile each.
    """
    from seedr1_jax.models.qwen2_vl.vision import hw_positions

    b = len(rows)
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0] if k != "positions"}
    out["positions"] = np.stack([r["positions"] for r in rows], axis=1)
    grid = math.isqrt(out["pixels"].shape[2])
    s = max(1, int(out["vision_index"].max()) // (grid * grid // merge**2) + 1)
    if s < out["pixels"].shape[1]:
        out["pixels"] = np.ascontiguousarray(out["pixels"][:, :s])
    hw = hw_positions(grid, grid, merge).astype(np.int32)
    out["hw_pos"] = np.ascontiguousarray(np.broadcast_to(hw, (b, s, *hw.shape)))
    if not any(r["loss_mask"].any() for r in rows):
        out.pop("loss_mask")
    return out


def take_rows(batches: list[dict], picks: list[tuple[int, int]]) -> dict:
    """One host batch of the rows `picks` = [(batch index, row), ...] of `batches` (`stack`'s layout), in that
    order. The segment fields (pixels, hw_pos) are padded to the most segments any picked batch kept (zeros /
    the last segment's positions, never read: `vision_index` points only at real segments); a field that not
    every batch has is left out."""
    keys = [k for k in batches[0] if all(k in b for b in batches)]
    segs = max(np.asarray(batches[i]["pixels"]).shape[1] for i, _ in picks) if "pixels" in keys else 0
    out = {}
    for k in keys:
        parts = []
        for i, j in picks:
            v = np.asarray(batches[i][k])
            row = v[:, j : j + 1] if k == "positions" else v[j : j + 1]
            if k in ("pixels", "hw_pos") and row.shape[1] < segs:
                pad = [(0, 0), (0, segs - row.shape[1])] + [(0, 0)] * (row.ndim - 2)
                row = np.pad(row, pad, mode="constant" if k == "pixels" else "edge")
            parts.append(row)
        out[k] = np.concatenate(parts, axis=1 if k == "positions" else 0)
    return out


# ---- the public builder ------------------------------------------------------------------------------
def make_batch(
    question: str,
    options,
    *,
    video=None,
    image=None,
    model_cfg: ModelConfig | None = None,
    tokenizer=None,
    max_frames: int = 16,
    max_prompt_len: int | None = None,
    frame_size: int = 0,
) -> dict:
    """One prompt (B = 1) as a model batch, built exactly as training and evaluation build theirs.

    video: a clip's path (decord; 2 fps, 4..max_frames frames, docs/recipe.md section 2) or already-sampled
      frames uint8[N, H, W, 3] (an odd last frame is dropped); image: a path or uint8[H, W, 3 or 4]. Both are
      resized to frame_size x frame_size (0: the model family's, 252 at patch 14, 256 at patch 16). options: up
      to five strings (lettered A..E).
    Returns the batch dict of the module docstring (prompt fields + `prompt`, `options`, `answer` = ""), ready
    for `sampler.generate(model, batch, ...)` or `Qwen2VL.forward`.
    """
    from data_prep import media

    model_cfg = ModelConfig() if model_cfg is None else model_cfg
    cfg = ml_collections.ConfigDict(dict(default_config().to_dict(), max_frames=max_frames, frame_size=frame_size))
    geom = frame_geometry(cfg, model_cfg)
    tp, size = geom.temporal, geom.size
    tokenizer = tokenizer or P.load_tokenizer()
    if isinstance(video, str | os.PathLike):
        frames = media.read_video(os.fspath(video), max_frames, size)[0]
    elif video is not None:
        frames = np.stack([P.resize(f, size) for f in np.asarray(video)[: max_frames - max_frames % tp]])
        frames = frames[: len(frames) - len(frames) % tp]
    else:
        frames = np.zeros((0, size, size, 3), np.uint8)
    if isinstance(image, str | os.PathLike):
        img = media.read_image(os.fspath(image), size)
    else:
        img = None if image is None else P.resize(np.asarray(image), size)
    s = max_frames // tp + 1
    pixels = np.zeros((s, geom.patches, geom.dim), np.float32)
    if img is not None:
        pixels[0] = P.image_patches(img, model_cfg.family, geom)[0]
    if len(frames):
        video_px = P.video_patches(frames, model_cfg.family, geom)[0]
        pixels[1 : 1 + len(frames) // tp] = video_px.reshape(-1, *pixels.shape[1:])
    ex = dict.fromkeys(("golden_letter", "answer", "user_text", "response", "domain"), "")  # no label, no SFT
    ex.update(pixels=pixels, num_frames=len(frames), has_image=img is not None, sample_id="0")
    ex.update(question=question, options=list(options), negative_answers=[])
    cfg.max_prompt_len = int(max_prompt_len or 0)
    return stack([build_sample(ex, cfg, model_cfg, tokenizer)], cfg, geom.merge)


# ---- iterators -------------------------------------------------------------------------------------
def _processes(process_index, process_count):
    import jax

    pi = jax.process_index() if process_index is None else int(process_index)
    pc = jax.process_count() if process_count is None else int(process_count)
    return pi, pc


def local_batch_size(cfg, process_count: int) -> int:
    if cfg.batch_size % process_count:
        raise ConfigError(f"data.batch_size={cfg.batch_size} is not divisible by the {process_count} JAX processes")
    return int(cfg.batch_size) // process_count


def examples(
    cfg,
    process_index: int,
    process_count: int,
    start: int = 0,
    epochs=None,
    shuffle=None,
    family: str = "qwen2_vl",
    geom: P.Geometry | None = None,
):
    """Yields (epoch, example) for this process: numpy dicts with `pixels` float32[S, 324, 1176] (for the model
    `family`, in `geom`'s patches; default: Qwen2-VL's at the stored frame size), `num_frames`, `has_image` and the
    text fields (bytes). `start` examples are skipped before decoding (resumption)."""
    import tensorflow as tf

    ds, n_local = open_split(cfg, process_index, process_count)
    if n_local == 0:
        raise ConfigError(f"process {process_index} of {process_count} got no examples of split {cfg.split!r}")
    shuffle = cfg.shuffle if shuffle is None else shuffle
    if shuffle:
        ds = ds.shuffle(int(cfg.shuffle_buffer), seed=int(cfg.seed), reshuffle_each_iteration=True)
    ds = ds.repeat(None if not epochs else int(epochs)).skip(int(start))
    if geom is None:
        geom = P.Geometry(stored_frame_size(find_split_dir(cfg.tfrecord_dir, cfg.split)))
    fn = vision_fn(int(cfg.max_frames), family, geom, cfg.get("frame_sampling", "first"))
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    for i, ex in enumerate(ds.prefetch(2).as_numpy_iterator(), int(start)):
        yield i // n_local, ex


def shards(cfg, process_count: int) -> int:
    """The training split's read parts (`data.shards`, 0 = one per process), checked against the processes."""
    n = int(cfg.get("shards", 0) or process_count)
    if n % process_count or cfg.batch_size % n:
        raise ConfigError(
            f"data.shards={n} must be a multiple of the {process_count} JAX processes and divide "
            f"data.batch_size={cfg.batch_size}; set data.shards to one that is (0 = one per process)"
        )
    return n


def _samples(cfg, model_cfg, tokenizer, part: int, parts: int, start: int, geom: P.Geometry):
    """Built samples of one part of the split, from its example `start`; over-long prompts skipped (module doc)."""
    skipped = 0
    family = (model_cfg or ModelConfig()).family
    for epoch, ex in examples(cfg, part, parts, start, cfg.num_epochs or None, family=family, geom=geom):
        try:
            yield build_sample(ex, cfg, model_cfg, tokenizer, epoch)
        except ConfigError:  # not a long prompt: a token the model's vocabulary subset lacks
            raise
        except ValueError as e:
            if cfg.strict:
                raise ConfigError(f"{e} (data.strict); raise data.max_prompt_len") from None
            skipped += 1
            log.warning("skipping %s (%d skipped so far)", e, skipped)


def train_batches(
    cfg,
    model_cfg: ModelConfig | None = None,
    start_step: int = 0,
    *,
    process_index=None,
    process_count=None,
    tokenizer=None,
):
    """Endless (or `cfg.num_epochs`) stream of this process's batches (module docstring), from step `start_step`:
    rows from each of its parts of the split (`shards`) in turn, batch_size / shards from each.

    A prompt longer than max_prompt_len is skipped with a warning (raises with cfg.strict); resumption skips
    start_step * (batch_size / shards) examples of each part, exact when no sample was skipped.
    """
    model_cfg = ModelConfig() if model_cfg is None else model_cfg
    pi, pc = _processes(process_index, process_count)
    local_batch_size(cfg, pc)
    n = shards(cfg, pc)
    per = int(cfg.batch_size) // n
    tokenizer = tokenizer or P.load_tokenizer(cfg.tokenizer or None)
    mine = range(pi * n // pc, (pi + 1) * n // pc)
    geom = check_geometry(cfg, model_cfg)  # once, before any part is opened
    streams = [_samples(cfg, model_cfg, tokenizer, part, n, start_step * per, geom) for part in mine]
    while True:
        rows = []
        for stream in streams:
            got = list(itertools.islice(stream, per))
            if len(got) < per:  # a finite run (num_epochs) ends at its first short part
                return
            rows += got
        yield stack(rows, cfg, model_cfg.vision.spatial_merge_size)


def eval_batches(
    cfg,
    model_cfg: ModelConfig | None = None,
    tfrecord_dir: str | None = None,
    *,
    split: str | None = None,
    process_index=None,
    process_count=None,
    tokenizer=None,
):
    """One pass in file order; every process yields the same number of batches, the last ones padded with
    rows whose `valid` is False (copies of a real row, to be ignored).

    tfrecord_dir / split override cfg's (eval reads other prepared splits with the training data config).
    """
    import tensorflow_datasets as tfds

    cfg = ml_collections.ConfigDict(cfg.to_dict()) if hasattr(cfg, "to_dict") else cfg  # never edit the caller's
    if tfrecord_dir:
        cfg.tfrecord_dir = tfrecord_dir
    if split:
        cfg.split = split
    cfg.batch_size = cfg.get("eval_batch_size", 0) or cfg.batch_size

    model_cfg = ModelConfig() if model_cfg is None else model_cfg
    pi, pc = _processes(process_index, process_count)
    b = local_batch_size(cfg, pc)
    tokenizer = tokenizer or P.load_tokenizer(cfg.tokenizer or None)
    info = tfds.builder_from_directory(find_split_dir(cfg.tfrecord_dir, cfg.split)).info
    name = next(iter(info.splits))
    most = max(info.splits[s].num_examples for s in tfds.even_splits(name, n=pc, drop_remainder=False))
    n_batches, rows, done = -(-most // b), [], 0
    geom = check_geometry(cfg, model_cfg)
    for _, ex in examples(cfg, pi, pc, epochs=1, shuffle=False, family=model_cfg.family, geom=geom):
        try:
            rows.append(build_sample(ex, cfg, model_cfg, tokenizer))
        except ConfigError:
            raise
        except ValueError as e:
            if cfg.strict:
                raise ConfigError(f"{e} (data.strict); raise data.max_prompt_len") from None
            log.warning("skipping %s", e)
            continue
        if len(rows) == b:
            yield stack(rows, cfg, geom.merge)
            rows, done = [], done + 1
    filler = None
    while done < n_batches:
        if filler is None and not rows:
            return  # nothing at all to pad with
        filler = filler or dict(rows[-1], valid=False)
        rows += [filler] * (b - len(rows))
        yield stack(rows, cfg, geom.merge)
        rows, done = [], done + 1


def to_global(batch: dict, mesh) -> dict:
    """Process-local numpy batch -> global jax.Arrays on `mesh`, batch axis over (data, fsdp); strings stay numpy."""
    from seedr1_jax.parallel.sharding import shard_batch

    return shard_batch(batch, mesh)
