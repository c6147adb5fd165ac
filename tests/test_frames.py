"""Stored frames against the reference preprocessing: lossless by default (mean abs diff < 0.5 on 0..255),
JPEG optional and decoded with the accurate IDCT, RGBA observations composited onto white."""

import glob
import json
import os

import numpy as np
import pytest
from frame_reference import pipeline_frames, reference_image, reference_video
from PIL import Image

from data_prep import prep, synth
from data_prep.media import read_image


def _rgba(path):
    """Rewrites the PNG at `path` as RGBA with a partial alpha gradient (fully opaque to nearly transparent)."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    h, w, _ = rgb.shape
    alpha = np.linspace(255, 20, w).astype(np.uint8)[None, :].repeat(h, 0)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Synthetic H.264 clips (L1) with every observation image turned RGBA; prepared as png and as jpeg."""
    root = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(root, num_train=1, num_val=4, seed=7)
    with open(os.path.join(root, "annotations", "validation_L1.jsonl")) as f:
        recs = {str(r["sample_id"]): r for r in map(json.loads, f)}
    for r in recs.values():
        _rgba(os.path.join(root, "images", r["video_source"], r["current_observation_basename"]))
    outs = {}
    for fmt in ("png", "jpeg"):
        outs[fmt] = str(tmp_path_factory.mktemp(fmt))
        rep = prep.prepare(root, "L1", outs[fmt], workers=1, progress=False, frame_format=fmt)
        assert rep["skipped"] == 0 and rep["frame_format"] == fmt
    return root, recs, outs


def _diffs(root, recs, out):
    """Per-pixel |ours - reference| over every video frame and observation image, as two flat arrays."""
    vid, img = [], []
    got = pipeline_frames(out, "L1")
    assert set(got) == set(recs)
    for sid, (frames, image, idx) in got.items():
        r = recs[sid]
        if r["task_progress_metadata"]:
            ref, ref_idx = reference_video(os.path.join(root, "videos", r["video_source"], r["video_basename"]))
            assert idx.tolist() == ref_idx.tolist() and frames.shape == ref.shape
            vid.append(np.abs(frames - ref).ravel())
        else:
            assert len(frames) == 0
        ref_img = reference_image(os.path.join(root, "images", r["video_source"], r["current_observation_basename"]))
        img.append(np.abs(image - ref_img).ravel())
    assert vid and img
    return np.concatenate(vid), np.concatenate(img)


def test_lossless_frames_match_the_reference(clips):
    root, recs, outs = clips
    vid, img = _diffs(root, recs, outs["png"])
    assert vid.mean() < 0.5, vid.mean()
    assert img.mean() < 0.5 and img.max() <= 2.01, (img.mean(), img.max())  # PIL resize on both sides


def test_jpeg_frames_are_close_and_decoded_with_the_accurate_idct(clips):
    """The JPEG option loses a little (bounded); its decode equals libjpeg's accurate islow IDCT (PIL's)."""
    import tensorflow_datasets as tfds

    from seedr1_jax import data

    root, recs, outs = clips
    vid, img = _diffs(root, recs, outs["jpeg"])
    assert 0 < vid.mean() < 3 and 0 < img.mean() < 3
    # our decode of each stored JPEG == PIL's (islow) decode of the same bytes
    cfg = data.default_config()
    cfg.tfrecord_dir, cfg.split, cfg.shuffle = outs["jpeg"], "L1", False
    raw, _ = data.open_split(cfg, 0, 1)
    got = pipeline_frames(outs["jpeg"], "L1")
    for ex in tfds.as_numpy(raw):
        frames = got[ex["sample_id"].decode()][0]
        for b, ours in zip(ex["frames"], frames):
            assert b[:2] == b"\xff\xd8"
            pil = np.asarray(Image.open(__import__("io").BytesIO(b)).convert("RGB"), np.float32)
            assert np.abs(ours - pil).max() < 1e-3


def test_png_is_the_default_and_larger_than_jpeg(clips):
    _, _, outs = clips
    sizes = {
        fmt: sum(os.path.getsize(p) for p in glob.glob(os.path.join(out, "seed_bench_r1", "L1", "*", "*.tfrecord*")))
        for fmt, out in outs.items()
    }
    assert sizes["png"] > sizes["jpeg"] > 0
    import inspect

    assert inspect.signature(prep.prepare).parameters["frame_format"].default == "png"


def test_rgba_observation_composited_on_white(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (90, 130), dtype=np.uint8)
    alpha[:, :20] = 0  # fully transparent band -> white
    path = str(tmp_path / "obs.png")
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    ours = read_image(path).astype(np.float32)
    ref = reference_image(path)
    assert np.abs(ours - ref).mean() < 0.5
    dropped = np.asarray(Image.fromarray(rgb).resize((252, 252), Image.Resampling.BICUBIC), np.float32)
    assert np.abs(dropped - ref).mean() > 20  # the check would catch an alpha that is ignored
    assert (ours[:, :30] >= 250).all()  # the transparent band is white
