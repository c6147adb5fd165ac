"""synth -> prep -> input pipeline round trip: batch layout, options/answers, per-process epochs, model forward."""

import json
import os

import jax
import numpy as np
import pytest

from data_prep import prep, synth
from seedr1_jax import data
from seedr1_jax.models import processor as P
from seedr1_jax.models.config import ConfigError, ModelConfig

S, L, PD = 9, 324, 1176


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(root, num_train=6, num_val=3, seed=5)
    out = str(tmp_path_factory.mktemp("tfr"))
    for split in ("train", "lvb", "train_cot"):
        assert prep.prepare(root, split, out, workers=1, progress=False)["skipped"] == 0
    return root, out


def _cfg(out, split="train", **kw):
    c = data.default_config()
    c.tfrecord_dir, c.split, c.batch_size = out, split, 2
    c.update(kw)
    return c


def _annotations(root, name):
    with open(os.path.join(root, "annotations", name)) as f:
        return [json.loads(x) for x in f]


def test_train_batch_layout(prepared):
    root, out = prepared
    b = next(data.train_batches(_cfg(out), process_index=0, process_count=1))
    s_b = b["pixels"].shape[1]  # up to the last segment a row uses: no segment that no row uses is encoded
    assert s_b == 1 + max((b["input_ids"][i] == P.VIDEO_PAD_ID).sum() // 81 for i in range(2)) <= S
    assert b["input_ids"].shape == (2, 1024) and b["input_ids"].dtype == np.int32
    assert b["attention_mask"].shape == (2, 1024) and b["attention_mask"].dtype == np.int32
    assert b["positions"].shape == (3, 2, 1024) and b["positions"].dtype == np.int32
    assert b["pixels"].shape == (2, s_b, L, PD) and b["pixels"].dtype == np.float32
    assert b["hw_pos"].shape == (2, s_b, L, 2) and b["hw_pos"].dtype == np.int32
    assert b["vision_index"].shape == (2, 1024) and b["vision_index"].dtype == np.int32
    assert "loss_mask" not in b
    recs = {str(r["sample_id"]): r for r in _annotations(root, "training_6k.jsonl")}
    for i in range(2):
        ids, m, vi = b["input_ids"][i], b["attention_mask"][i], b["vision_index"][i]
        n_real = int(m.sum())
        assert (ids[: 1024 - n_real] == P.PAD_ID).all() and m[: 1024 - n_real].sum() == 0 and m[-n_real:].all()
        opts = b["options"][i].split("\n")
        assert len(opts) == b["num_options"][i] == 4
        assert opts[P.LETTERS.index(b["answer"][i])] == b["answer_text"][i] == recs[b["sample_id"][i]]["answer"]
        assert set(opts) - {b["answer_text"][i]} <= set(recs[b["sample_id"][i]]["negative_answers"])
        nv, ni = (ids == P.VIDEO_PAD_ID).sum(), (ids == P.IMAGE_PAD_ID).sum()
        assert ni == 81 and nv % 81 == 0
        assert vi[ids == P.IMAGE_PAD_ID].tolist() == list(range(81))
        assert vi[ids == P.VIDEO_PAD_ID].tolist() == list(range(81, 81 + nv))
        assert (vi[(ids != P.VIDEO_PAD_ID) & (ids != P.IMAGE_PAD_ID)] == -1).all()
        # the image segment first, then the used video segments; those past the clip are zeros
        used = nv // 81
        assert b["pixels"][i, 0].any() and not b["pixels"][i, 1 + used :].any()
        assert all(b["pixels"][i, s].any() for s in range(1, 1 + used))
        # the model-side M-RoPE computed on the whole padded row equals ours
        from seedr1_jax.models.qwen2_vl.model import get_rope_index

        grids = dict(image_grid_thw=[[1, 18, 18]], video_grid_thw=[[used, 18, 18]] if used else None)
        pos, _ = get_rope_index(ModelConfig(), ids[None], m[None], **grids)
        assert np.array_equal(pos[:, 0], b["positions"][:, i])
        assert b["prompt"][i].endswith("<|im_start|>assistant\n")


def test_qwen2_5_vl_rows_carry_each_clips_absolute_time(prepared):
    """With a Qwen2.5-VL model config, a row's video tokens sit at int(k * seconds_per_patch * tokens_per_second) in
    time, seconds_per_patch = 2 / (n / total_frames * fps) from the clip itself (qwen-vl-utils' sampled rate)."""
    import decord

    from seedr1_jax.models.config import preset

    root, out = prepared
    cfg = preset("tiny_qwen2_5_vl")
    b = next(data.train_batches(_cfg(out, batch_size=6), model_cfg=cfg, process_index=0, process_count=1))
    plain = next(data.train_batches(_cfg(out, batch_size=6), process_index=0, process_count=1))
    recs = {str(r["sample_id"]): r for r in _annotations(root, "training_6k.jsonl")}
    stretched = 0
    for i in range(6):
        ids, pos = b["input_ids"][i], b["positions"][:, i]
        vid = ids == P.VIDEO_PAD_ID
        n = int(vid.sum()) // 81 * 2
        if not n:  # an image-only sample
            continue
        rec = recs[b["sample_id"][i]]
        vr = decord.VideoReader(os.path.join(root, "videos", rec["video_source"], rec["video_basename"]))
        seconds = np.float32(2 / (n / len(vr) * vr.get_avg_fps()))
        start = pos[1, vid][0]  # the first video token's row index = the block's offset
        want = [start + int(np.float32(k * seconds) * np.float32(2.0)) for k in range(n // 2) for _ in range(81)]
        assert pos[0, vid].tolist() == want
        stretched += want[-1] != start + n // 2 - 1
        after = np.nonzero(vid)[0][-1] + 1
        assert pos[0, after] == pos[:, :after][:, b["attention_mask"][i][:after] == 1].max() + 1
        # everything but the video's time is Qwen2-VL's
        assert np.array_equal(pos[1:, vid], plain["positions"][1:, i][:, vid])
    assert stretched  # the clips' rates are not all 1 s per patch


@pytest.fixture(scope="module")
def prepared_256(prepared, tmp_path_factory):
    """The same synthetic train split prepared at 256 pixels (`seedr1 prep --frame-size 256`), for 16-pixel patches."""
    root, _ = prepared
    out = str(tmp_path_factory.mktemp("tfr256"))
    rep = prep.prepare(root, "train", out, workers=1, progress=False, frame_size=256)
    assert rep["skipped"] == 0 and rep["frame_size"] == 256
    return out


def test_qwen3_vl_rows_write_each_frames_timestamp_and_its_pixel_norm(prepared, prepared_256):
    """With a Qwen3-VL model config (the released 16-pixel patches, frames prepared at 256 pixels: 16 x 16 patches,
    64 merged tokens per frame pair) a row's video is one vision block per temporal patch, each after
    `<t seconds>` (transformers' Qwen3VLProcessor timestamps from the clip's sampled frames and rate), inside the
    template's own vision_start/end; the pixels are transformers' patches of the stored frames, normalised with
    Qwen3-VL's mean/std (0.5) instead of CLIP's."""
    import tensorflow_datasets as tfds
    from transformers import Qwen3VLProcessor

    from seedr1_jax.models.config import preset

    root, _ = prepared
    cfg = preset("tiny_qwen3_vl")
    assert cfg.vision.patch_size == 16
    geom = P.geometry(cfg.vision)
    assert (geom.size, geom.grid, geom.tokens, geom.dim) == (256, 16, 64, 1536)
    b = next(data.train_batches(_cfg(prepared_256, batch_size=6), model_cfg=cfg, process_index=0, process_count=1))
    assert b["pixels"].shape[2:] == (256, 1536) and b["hw_pos"].shape[2:] == (256, 2)
    recs = {str(r["sample_id"]): r for r in _annotations(root, "training_6k.jsonl")}
    ds = tfds.builder_from_directory(data.find_split_dir(prepared_256, "train")).as_dataset(split="train")
    stored = {e["sample_id"].decode(): e for e in ds.as_numpy_iterator()}
    tok = P.load_tokenizer()
    seen = 0
    for i in range(6):
        ids = b["input_ids"][i][b["attention_mask"][i] == 1]
        n = int((ids == P.VIDEO_PAD_ID).sum()) // 64 * 2
        e = stored[b["sample_id"][i]]
        assert e["image"].shape[1:] == (256, 256, 3)
        if not n:
            continue
        import decord

        rec = recs[b["sample_id"][i]]
        vr = decord.VideoReader(os.path.join(root, "videos", rec["video_source"], rec["video_basename"]))
        idx = P.frame_indices(len(vr), vr.get_avg_fps())[:n]
        stamps = Qwen3VLProcessor._calculate_timestamps(None, idx, vr.get_avg_fps(), 2)
        assert np.allclose(P.frame_timestamps(idx, vr.get_avg_fps()), stamps)
        block = "".join(f"<{t:.1f} seconds><|vision_start|>" + "<|video_pad|>" * 64 + "<|vision_end|>" for t in stamps)
        text = tok.decode(ids.tolist())
        assert f"<|vision_start|>{block}<|vision_end|>" in text
        # the row's positions are the model's own index of those ids
        from seedr1_jax.models.qwen2_vl.model import get_rope_index

        img = [[1, 16, 16]] if (ids == P.IMAGE_PAD_ID).any() else None
        pos, _ = get_rope_index(cfg, ids[None], None, img, [[n // 2, 16, 16]])
        assert np.array_equal(b["positions"][:, i][:, b["attention_mask"][i] == 1], pos[:, 0])
        # pixels: the processor's patches (= transformers', tests/test_processor.py) of the stored 256-pixel frames
        ours, grid = P.video_patches(e["frames"], "qwen3_vl", geom)
        assert grid.tolist() == [n // 2, 16, 16]
        assert np.abs(b["pixels"][i, 1 : 1 + n // 2].reshape(-1, 1536) - ours).max() <= 1e-5
        seen += 1
    assert seen


def test_frame_size_mismatch_is_refused_before_any_sample_is_read(prepared, prepared_256, tmp_path):
    """Frames prepared at one size and a run that reads another: one ConfigError naming the prepared folder, both
    sizes and the fix (re-prep with --frame-size, or data.frame_size when the stored size fits the patches)."""
    from seedr1_jax.models.config import preset

    root, out = prepared
    q3 = preset("tiny_qwen3_vl")
    with pytest.raises(ConfigError, match=r"holds 252-pixel frames, this run reads 256-pixel .*--frame-size 256`$"):
        next(data.train_batches(_cfg(out), model_cfg=q3, process_index=0, process_count=1))
    with pytest.raises(ConfigError, match=r"holds 256-pixel frames.*--frame-size 252`$"):
        next(data.eval_batches(_cfg(prepared_256), process_index=0, process_count=1))
    with pytest.raises(ConfigError, match=r"reads 224-pixel .*frame_size=224.*or set --config.data.frame_size=252"):
        next(data.train_batches(_cfg(out, frame_size=224), process_index=0, process_count=1))
    with pytest.raises(ConfigError, match=r"data.frame_size=250: .*multiple of 28"):
        next(data.train_batches(_cfg(out, frame_size=250), process_index=0, process_count=1))
    with pytest.raises(ConfigError, match=r"--frame-size 250: use a multiple of 28"):
        prep.prepare(root, "train", str(tmp_path / "bad"), workers=1, progress=False, frame_size=250)
    assert not os.path.exists(tmp_path / "bad" / "seed_bench_r1")
    # make_batch resizes to the model's own size
    b = data.make_batch("q?", ["a", "b"], image=np.zeros((8, 8, 3), np.uint8), model_cfg=q3)
    assert b["pixels"].shape[2:] == (256, 1536) and int((b["input_ids"] == P.IMAGE_PAD_ID).sum()) == 64


def test_pixels_equal_processor_on_stored_frames(prepared):
    """Pipeline patches (tf.data) == processor patches (numpy) on the same decoded JPEG frames."""
    import tensorflow_datasets as tfds

    _, out = prepared
    cfg = _cfg(out, shuffle=False)
    ds = tfds.builder_from_directory(data.find_split_dir(out, "train")).as_dataset(split="train")
    stored = {e["sample_id"].decode(): e for e in ds.as_numpy_iterator()}
    for _, ex in data.examples(cfg, 0, 1, epochs=1, shuffle=False):
        e = stored[ex["sample_id"].decode()]
        n = len(e["frames"])
        if n:
            vid, grid = P.video_patches(e["frames"])
            assert grid.tolist() == [n // 2, 18, 18]
            assert np.abs(ex["pixels"][1 : 1 + n // 2].reshape(-1, PD) - vid).max() <= 1e-5
        img, _ = P.image_patches(e["image"][0])
        assert np.abs(ex["pixels"][0] - img).max() <= 1e-5


def test_each_sample_once_per_epoch_across_two_processes(prepared):
    _, out = prepared
    cfg = _cfg(out, num_epochs=1)
    seen = []
    for pi in range(2):
        for b in data.train_batches(cfg, process_index=pi, process_count=2):
            assert b["input_ids"].shape == (1, 1024)
            seen += list(b["sample_id"])
    assert sorted(seen) == sorted(str(i) for i in range(6))


def test_global_batches_do_not_depend_on_the_process_count(prepared):
    """With data.shards fixed, two processes' batches, concatenated in process order, are the one-process batches
    (ids, options, pixels), from the start and on resumption; a shard count the processes cannot split is refused."""
    _, out = prepared
    cfg = _cfg(out, shards=2, num_epochs=2, seed=4)
    one = list(data.train_batches(cfg, start_step=1, process_index=0, process_count=1))
    two = [list(data.train_batches(cfg, start_step=1, process_index=pi, process_count=2)) for pi in range(2)]
    assert len(one) == len(two[0]) == len(two[1]) == 5  # 2 epochs x 6 samples / 2 per step, from step 1
    rows = lambda b, k: [[x for x in np.atleast_1d(r) if len(x)] if k == "options" else r for r in b[k]]  # noqa: E731
    for b, parts in zip(one, zip(*two)):
        for k in ("sample_id", "options", "answer"):
            assert rows(b, k) == rows(parts[0], k) + rows(parts[1], k), k
        assert np.array_equal(b["input_ids"], np.concatenate([p["input_ids"] for p in parts]))
        for i, p in enumerate(parts):  # each process keeps the segments its rows use (sharding.agree_segments)
            mine, s = b["pixels"][i : i + 1], p["pixels"].shape[1]
            assert np.array_equal(mine[:, :s], p["pixels"]) and not mine[:, s:].any()
    assert {i for b in one for i in b["sample_id"]} == {str(i) for i in range(6)}  # each part's rows, both epochs
    with pytest.raises(ConfigError, match="data.shards=3 must be a multiple of the 2 JAX processes"):
        next(data.train_batches(_cfg(out, shards=3, batch_size=6), process_index=0, process_count=2))


def test_options_seeded_and_reshuffled_per_epoch(prepared):
    _, out = prepared

    def run(seed):
        cfg = _cfg(out, num_epochs=3, seed=seed)
        return [
            (sid, opts, a)
            for b in data.train_batches(cfg, process_index=0, process_count=1)
            for sid, opts, a in zip(b["sample_id"], b["options"], b["answer"])
        ]

    a, b = run(0), run(0)
    assert a == b and len(a) == 18
    per_id = {}
    for sid, opts, _ in a:
        per_id.setdefault(sid, []).append(opts)
    assert all(len(v) == 3 for v in per_id.values())
    assert any(len(set(v)) > 1 for v in per_id.values())  # a new option order in a later pass
    assert run(1) != a
    opts, letter = data.training_options("ans", ["n1", "n2", "n3", "n4", "n5"], 0, 0, "id7")
    assert opts == data.training_options("ans", ["n1", "n2", "n3", "n4", "n5"], 0, 0, "id7")[0]
    assert len(opts) == 4 and opts[P.LETTERS.index(letter)] == "ans"
    # data.option_order="sorted": the same sampled negatives, listed alphabetically
    s_opts, s_letter = data.training_options("ans", ["n1", "n2", "n3", "n4", "n5"], 0, 0, "id7", order="sorted")
    assert s_opts == sorted(opts) and s_opts[P.LETTERS.index(s_letter)] == "ans"
    with pytest.raises(ConfigError, match="data.option_order"):
        data.training_options("ans", ["n1", "n2", "n3"], 0, 0, "id7", order="random")


def test_lvb_and_sft_batches(prepared):
    root, out = prepared
    lvb = {r["id"]: r for r in _annotations(root, "longvideobench_val.jsonl")}
    batches = list(data.eval_batches(_cfg(out, "train"), None, out, split="lvb", process_index=0, process_count=1))
    assert len(batches) == 2 and batches[-1]["valid"].tolist() == [True, False]
    cfg = _cfg(out, "train")
    cfg.eval_batch_size = 3  # evaluation batches of their own size; training's batch_size stays 2
    (one,) = data.eval_batches(cfg, None, out, split="lvb", process_index=0, process_count=1)
    assert one["valid"].tolist() == [True] * 3 and cfg.batch_size == 2
    assert one["sample_id"].tolist() == [s for b in batches for s, v in zip(b["sample_id"], b["valid"]) if v]
    for b in batches:
        for i in range(2):
            r = lvb[b["sample_id"][i]]
            assert b["options"][i].split("\n") == r["candidates"]
            assert b["answer"][i] == "ABCDE"[r["correct_choice"]]
            used = int((b["input_ids"][i] == P.VIDEO_PAD_ID).sum()) // 81  # video only: it starts at segment 0
            assert (b["input_ids"][i] == P.IMAGE_PAD_ID).sum() == 0 and not b["pixels"][i, used:].any()
            assert b["vision_index"][i].max() == used * 81 - 1
    sft = next(data.train_batches(_cfg(out, "train_cot"), process_index=0, process_count=1))
    tok = P.load_tokenizer()
    for i in range(2):
        target = tok.decode(sft["input_ids"][i][sft["loss_mask"][i] == 1])
        assert target.startswith("<think>") and target.endswith("</answer><|im_end|>\n")


def test_global_arrays_and_model_forward(prepared, tmp_path):
    """A batch feeds the model; per-sample layout == the transformers-style flat inputs for each row."""
    from hf_utils import save_hf_model

    from seedr1_jax.models.qwen2_vl.model import Qwen2VL, prepare_inputs
    from seedr1_jax.parallel.sharding import make_mesh

    _, out = prepared
    save_hf_model("b", tmp_path / "hf")
    model = Qwen2VL.from_pretrained(str(tmp_path / "hf"))
    b = next(data.train_batches(_cfg(out, max_prompt_len=900), model.cfg, process_index=0, process_count=1))
    mesh = make_mesh((2, 4, 1))
    g = data.to_global(b, mesh)
    assert isinstance(g["pixels"], jax.Array) and g["pixels"].shape == (2, b["pixels"].shape[1], L, PD)
    assert g["positions"].sharding.spec[1] is not None and isinstance(g["sample_id"], np.ndarray)
    keys = ("input_ids", "positions", "attention_mask", "pixels", "hw_pos", "vision_index")
    h = np.asarray(jax.jit(lambda x: model.forward(**x))({k: g[k] for k in keys}))
    assert np.isfinite(h).all()
    for i in range(2):
        used = int((b["input_ids"][i] == P.VIDEO_PAD_ID).sum()) // 81
        vid = b["pixels"][i, 1 : 1 + used].reshape(-1, PD) if used else None
        flat = prepare_inputs(
            model.cfg,
            b["input_ids"][i : i + 1],
            b["attention_mask"][i : i + 1],
            b["pixels"][i, 0],
            [[1, 18, 18]],
            vid,
            [[used, 18, 18]] if used else None,
        )
        ref = np.asarray(model.forward(**flat))[0]
        m = b["attention_mask"][i] == 1
        assert np.abs(ref[m] - h[i][m]).max() <= 1e-4


def test_take_rows_concatenates_picked_rows_and_pads_segments():
    """Rows of several host batches in the picked order; pixels/hw_pos padded to the most segments any picked
    batch kept, positions batched on dimension 1, a field missing from one batch left out."""
    from seedr1_jax.data.pipeline import take_rows

    def batch(b, s, tag):
        return dict(
            input_ids=np.full((b, 5), tag, np.int32) + np.arange(b)[:, None],
            positions=np.full((3, b, 5), tag, np.int32) + np.arange(b)[None, :, None],
            pixels=np.ones((b, s, 2, 3), np.float32) * tag,
            hw_pos=np.tile(np.arange(s, dtype=np.int32)[None, :, None, None], (b, 1, 2, 2)),
            answer=np.array([f"{tag}{i}".encode() for i in range(b)]),
            **({"loss_mask": np.zeros((b, 5), bool)} if tag == 10 else {}),
        )

    a, b = batch(2, 1, 10), batch(2, 3, 20)
    out = take_rows([a, b], [(1, 1), (0, 0), (1, 0)])
    assert "loss_mask" not in out and list(out["answer"]) == [b"201", b"100", b"200"]
    np.testing.assert_array_equal(out["input_ids"][:, 0], [21, 10, 20])
    np.testing.assert_array_equal(out["positions"][0, :, 0], [21, 10, 20])
    assert out["pixels"].shape == (3, 3, 2, 3) and out["hw_pos"].shape == (3, 3, 2, 2)
    assert (out["pixels"][1, 1:] == 0).all() and (out["pixels"][1, 0] == 10).all()  # zero-padded segments
    np.testing.assert_array_equal(out["hw_pos"][1, :, 0, 0], [0, 0, 0])  # edge-padded positions
    np.testing.assert_array_equal(out["hw_pos"][0, :, 0, 0], [0, 1, 2])


def test_uniform_frame_sampling_keeps_evenly_spread_frames():
    """`data.frame_sampling="uniform"`: a clip stored with 8 frames read at max_frames 4 keeps frames 0, 2, 5, 7
    (linspace over the stored ones), with their `frame_indices`: the same pixels as a clip stored with exactly those
    frames; "first" keeps 0..3. And `data.max_frames=0` (image-only/text-only data) passes the trainer's checks."""
    import tensorflow as tf

    from configs.tiny import get_config
    from seedr1_jax.data.pipeline import vision_fn
    from seedr1_jax.rl import preflight

    rng = np.random.default_rng(0)
    frames = [tf.io.encode_png(rng.integers(0, 255, (252, 252, 3), dtype=np.uint8)).numpy() for _ in range(8)]
    ex = lambda idx: dict(  # noqa: E731
        frames=tf.constant([frames[i] for i in idx]), image=tf.constant([], tf.string),
        frame_indices=tf.constant([3 * i for i in idx], tf.int32),
    )  # fmt: skip
    uniform = vision_fn(4, sampling="uniform")(ex(range(8)))
    assert uniform["frame_indices"].numpy().tolist() == [0, 6, 15, 21] and int(uniform["num_frames"]) == 4
    same = vision_fn(4)(ex([0, 2, 5, 7]))
    assert np.array_equal(uniform["pixels"].numpy(), same["pixels"].numpy())
    first = vision_fn(4)(ex(range(8)))
    assert np.array_equal(first["pixels"].numpy(), vision_fn(4)(ex(range(4)))["pixels"].numpy())
    assert not np.array_equal(first["pixels"].numpy(), same["pixels"].numpy())
    short = vision_fn(4, sampling="uniform")(ex(range(3)))  # fewer than max_frames: an even count of them
    assert short["frame_indices"].numpy().tolist() == [0, 6] and int(short["num_frames"]) == 2
    c = get_config("sft")
    c.data.max_frames, c.data.frame_sampling = 0, "uniform"
    preflight.check_values(c)
    c.data.frame_sampling = "random"
    with pytest.raises(ConfigError, match="data.frame_sampling"):
        preflight.check_values(c)
