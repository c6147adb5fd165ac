"""synth and prep: the SEED-Bench-R1 layout, determinism, and every kind of bad input skipped and reported."""

import filecmp
import glob
import json
import os
import shutil

import numpy as np
import pytest

from data_prep import prep, synth
from data_prep.media import read_image
from seedr1_jax.models import processor as P


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(out, num_train=10, num_val=6, seed=3)
    return out


def _read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _written(out, split):
    import tensorflow_datasets as tfds

    from seedr1_jax.data.pipeline import find_split_dir

    b = tfds.builder_from_directory(find_split_dir(out, split))
    ds = b.as_dataset(split=split.lower(), decoders={"frames": tfds.decode.SkipDecoding()})
    return {e["sample_id"].decode(): e for e in ds.as_numpy_iterator()}


def test_synth_layout_and_schemas(root):
    ann = os.path.join(root, "annotations")
    train = _read(os.path.join(ann, "training_6k.jsonl"))
    assert len(train) == 10 and all(len(r["negative_answers"]) >= 3 and r["answer"] for r in train)
    assert any(not r["task_progress_metadata"] for r in train) and any(r["task_progress_metadata"] for r in train)
    for r in train:
        assert os.path.isfile(os.path.join(root, "images", r["video_source"], r["current_observation_basename"]))
        if r["task_progress_metadata"]:
            assert os.path.isfile(os.path.join(root, "videos", r["video_source"], r["video_basename"]))
            assert r["question"].startswith("Considering the progress shown in the video")
        else:
            assert r["question"].startswith("Considering my current observation shown in the image")
    for level, source in ((1, "EpicKitchens"), (2, "Ego4D"), (3, "Ego4D")):
        recs = _read(os.path.join(ann, f"validation_L{level}.jsonl"))
        assert len(recs) == 6 and {r["video_source"] for r in recs} == {source}
        for r in recs:
            assert r[f"choice_{r['golden_choice_idx'].lower()}"] == r["answer"]
            assert isinstance(r["sample_id"], str if level == 3 else int)
            if level == 3:
                assert r["domain"] in synth.DOMAINS and "task_start_frame" in r
    cot = _read(os.path.join(ann, "training_with_cot_6k.jsonl"))
    assert cot and all(r["response"].startswith("<think>") and "<answer>" in r["response"] for r in cot)
    lvb = _read(os.path.join(ann, "longvideobench_val.jsonl"))
    assert all(r["candidates"][r["correct_choice"]] and r["video_path"].startswith("LongVideoBench/") for r in lvb)


def test_synth_answer_is_visible_in_pixels(root):
    """The rule: the correct option names the colour of the square in the observation image."""
    for r in _read(os.path.join(root, "annotations", "validation_L1.jsonl")):
        img = read_image(os.path.join(root, "images", "EpicKitchens", r["current_observation_basename"]))
        dist = {c: np.abs(img.astype(int) - rgb).sum(-1) < 60 for c, rgb in synth.COLORS.items()}
        visible = max(dist, key=lambda c: dist[c].sum())
        assert visible in r["answer"].split()
        assert all(visible not in r[f"choice_{c}"].split() for c in "abcd" if r[f"choice_{c}"] != r["answer"])


def test_synth_is_deterministic(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    synth.generate(a, num_train=3, num_val=2, seed=11)
    synth.generate(b, num_train=3, num_val=2, seed=11)
    files = sorted(os.path.relpath(p, a) for p in glob.glob(os.path.join(a, "**", "*.*"), recursive=True))
    assert len(files) > 10
    assert files == sorted(os.path.relpath(p, b) for p in glob.glob(os.path.join(b, "**", "*.*"), recursive=True))
    for f in files:
        assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False), f


@pytest.fixture(scope="module")
def bad_root(root, tmp_path_factory):
    """A copy of the dataset whose L1 file has one line of each kind of bad input appended."""
    out = str(tmp_path_factory.mktemp("bad") / "data")
    shutil.copytree(root, out)
    ann = os.path.join(out, "annotations", "validation_L1.jsonl")
    good = _read(ann)
    vid = next(r for r in good if r["task_progress_metadata"])
    ek = os.path.join(out, "videos", "EpicKitchens")
    with open(os.path.join(ek, vid["video_basename"]), "rb") as f:
        data = f.read()
    with open(os.path.join(ek, "truncated.mp4"), "wb") as f:
        f.write(data[: len(data) // 2])
    import av

    with av.open(os.path.join(ek, "empty.mp4"), mode="w") as c:  # a container with no frames at all
        st = c.add_stream("libx264", rate=10)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    with open(os.path.join(out, "images", "EpicKitchens", "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)

    def variant(i, **upd):
        r = dict(vid, sample_id=1000 + i, **upd)
        return json.dumps({k: v for k, v in r.items() if v is not None})

    lines = [
        variant(0, video_basename="nope.mp4"),  # missing file
        variant(1, video_basename="truncated.mp4"),  # corrupt/truncated
        variant(2, video_basename="empty.mp4"),  # zero frames
        variant(3, current_observation_basename="broken.png"),  # unreadable image
        '{"sample_id": 1004, "question": "unterminated',  # malformed JSON
        variant(5, question=None),  # missing required field
        variant(6, video_basename="../../../../etc/passwd"),  # escapes DATA_ROOT
        variant(7, choice_e="one option too many"),  # wrong option count
        variant(8, extra_field={"unknown": 1}),  # fine: unknown fields are ignored
    ]
    with open(ann, "a") as f:
        f.write("\n".join(lines) + "\n")
    return out, len(good), [r["sample_id"] for r in good]


EXPECTED = {
    0: "missing file",
    1: "corrupt or truncated video",
    2: "zero frames",
    3: "unreadable image",
    4: "malformed JSON",
    5: "missing required field 'question'",
    6: "escapes DATA_ROOT",
    7: "wrong option count",
}


def test_bad_inputs_are_skipped_and_reported(bad_root, tmp_path):
    data_root, n_good, good_ids = bad_root
    out = str(tmp_path / "tfr")
    assert prep.run(data_root, "L1", out, workers=2) == 0
    rep = json.load(open(prep.report_path(out, "L1")))
    assert rep["written"] == n_good + 1 and rep["skipped"] == len(EXPECTED)
    by_line = {s["line"]: s for s in rep["skips"]}
    for i, reason in EXPECTED.items():
        s = by_line[n_good + 1 + i]
        assert reason in s["reason"], (i, s)
        assert s["file"] == os.path.join("annotations", "validation_L1.jsonl")
    written = _written(out, "L1")
    assert set(written) == {str(x) for x in good_ids} | {"1008"}


def test_strict_turns_a_skip_into_an_error(bad_root, tmp_path, capsys):
    data_root, _, _ = bad_root
    assert prep.run(data_root, "L1", str(tmp_path / "tfr"), strict=True, workers=1) == 1
    assert "--strict" in capsys.readouterr().err


def test_wrong_option_counts_train_and_lvb(root, tmp_path):
    data_root = str(tmp_path / "data")
    shutil.copytree(root, data_root)
    ann = os.path.join(data_root, "annotations")
    train = _read(os.path.join(ann, "training_6k.jsonl"))
    with open(os.path.join(ann, "training_6k.jsonl"), "a") as f:
        f.write(json.dumps(dict(train[0], sample_id=999, negative_answers=["x", "y"])) + "\n")
    lvb = _read(os.path.join(ann, "longvideobench_val.jsonl"))
    with open(os.path.join(ann, "longvideobench_val.jsonl"), "a") as f:
        f.write(json.dumps(dict(lvb[0], id="six", candidates=list("abcdef"))) + "\n")
        f.write(json.dumps(dict(lvb[0], id="escape", video_path="../../x.mp4")) + "\n")
    for split, n in (("train", len(train)), ("lvb", len(lvb))):
        out = str(tmp_path / split)
        rep = prep.prepare(data_root, split, out, workers=1, progress=False)
        assert rep["written"] == n
        reasons = [s["reason"] for s in rep["skips"]]
        if split == "train":
            assert len(reasons) == 1 and "wrong option count" in reasons[0]
        else:
            assert len(reasons) == 2 and "wrong option count" in reasons[0] and "escapes DATA_ROOT" in reasons[1]
        assert len(_written(out, split)) == n


def test_prep_output_is_deterministic_and_complete(root, tmp_path):
    outs = []
    for w in (1, 2):
        out = str(tmp_path / f"w{w}")
        rep = prep.prepare(root, "L2", out, workers=w, progress=False)
        assert rep["skipped"] == 0 and rep["written"] == 6
        outs.append(sorted(glob.glob(os.path.join(out, "seed_bench_r1", "L2", "1.0.0", "*.tfrecord*"))))
    assert outs[0] and [os.path.basename(p) for p in outs[0]] == [os.path.basename(p) for p in outs[1]]
    for a, b in zip(*outs):
        assert filecmp.cmp(a, b, shallow=False)
    ex = _written(str(tmp_path / "w1"), "L2")
    recs = {str(r["sample_id"]): r for r in _read(os.path.join(root, "annotations", "validation_L2.jsonl"))}
    for sid, e in ex.items():
        r = recs[sid]
        assert [o.decode() for o in e["options"]] == [r[f"choice_{c}"] for c in "abcd"]
        assert e["golden_letter"].decode() == r["golden_choice_idx"]
        n = len(e["frames"])
        if r["task_progress_metadata"]:
            assert n >= 2 and n % 2 == 0 and n <= 16
            assert e["frame_indices"].tolist() == P.frame_indices(e["num_video_frames"], e["video_fps"]).tolist()
        else:
            assert n == 0
        assert e["image"].shape == (1, 252, 252, 3)


def _tree_hashes(folder):
    import hashlib

    out = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, folder)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


@pytest.fixture()
def prepared_l1(root, tmp_path):
    """A private copy of the data and a successful L1 prep; returns (data_root, out, hashes of the split)."""
    data_root, out = str(tmp_path / "data"), str(tmp_path / "tfr")
    shutil.copytree(root, data_root)
    assert prep.run(data_root, "L1", out, workers=1) == 0
    split = os.path.join(out, "seed_bench_r1")
    hashes = _tree_hashes(split)
    assert any(k.endswith("dataset_info.json") for k in hashes) and any(".tfrecord" in k for k in hashes)
    return data_root, out, hashes


def _no_leftovers(out):
    names = [n for _, dirs, files in os.walk(out) for n in dirs + files]
    assert not [n for n in names if n.startswith((".prep_", ".old_")) or n == "downloads"], names


@pytest.mark.parametrize("content", ["", "\n\n", '{"broken json\n{"sample_id": 1}\n'])
def test_empty_annotations_keep_previous_split(prepared_l1, capsys, content):
    """An annotation file that is empty (or whose every line is skipped at parse time) is a clear error naming
    the file, the report is written, and the previous split is byte-identical."""
    data_root, out, hashes = prepared_l1
    assert prep.prepared(out, "L1") and not prep.prepared(out, "L2")
    ann_file = os.path.join(data_root, "annotations", "validation_L1.jsonl")
    with open(ann_file, "w") as f:
        f.write(content)
    assert prep.run(data_root, "L1", out, workers=1) == 2
    assert not prep.prepared(out, "L1")  # its report names the error: a caller that skips prepared splits redoes it
    msg = capsys.readouterr().err
    assert "validation_L1.jsonl" in msg and "no usable sample" in msg and "Traceback" not in msg
    assert len(msg.strip().splitlines()) == 1
    assert _tree_hashes(os.path.join(out, "seed_bench_r1")) == hashes
    rep = json.load(open(prep.report_path(out, "L1")))
    assert rep["written"] == 0 and rep["skipped"] == (2 if content.startswith("{") else 0) and "error" in rep
    _no_leftovers(out)
    with pytest.raises(prep.EmptySplitError, match="validation_L1.jsonl"):
        prep.prepare(data_root, "L1", out, workers=1, progress=False)


def test_every_sample_failing_to_decode_keeps_previous_split(prepared_l1):
    """Lines that parse but whose media all fail to decode: the TFDS build yields nothing -> EmptySplitError."""
    data_root, out, hashes = prepared_l1
    ann_file = os.path.join(data_root, "annotations", "validation_L1.jsonl")
    recs = [r for r in _read(ann_file) if r["task_progress_metadata"]]
    with open(os.path.join(data_root, "videos", "EpicKitchens", "garbage.mp4"), "wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 500)
    with open(ann_file, "w") as f:
        f.writelines(json.dumps(dict(r, video_basename="garbage.mp4")) + "\n" for r in recs)
    with pytest.raises(prep.EmptySplitError, match=f"all {len(recs)} record"):
        prep.prepare(data_root, "L1", out, workers=1, progress=False)
    assert _tree_hashes(os.path.join(out, "seed_bench_r1")) == hashes
    rep = json.load(open(prep.report_path(out, "L1")))
    assert rep["skipped"] == len(recs) and all("corrupt" in s["reason"] for s in rep["skips"])
    _no_leftovers(out)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_prep_keeps_previous_split(prepared_l1, monkeypatch, exc):
    data_root, out, hashes = prepared_l1
    calls = []
    real = prep.decode_or_reason

    def dies_on_third(args):
        calls.append(args[0])
        if len(calls) == 3:
            raise exc("interrupted mid-build")
        return real(args)

    monkeypatch.setattr(prep, "decode_or_reason", dies_on_third)
    with pytest.raises(exc, match="interrupted mid-build"):
        prep.prepare(data_root, "L1", out, workers=1, progress=False)
    assert len(calls) == 3
    assert _tree_hashes(os.path.join(out, "seed_bench_r1")) == hashes
    _no_leftovers(out)


def test_successful_reprep_replaces_the_split(prepared_l1):
    """... and removes what a killed (-9) earlier prep left behind, but not a live one's build folder."""
    data_root, out, hashes = prepared_l1
    dead, alive = os.path.join(out, ".prep_L1_999999999_x"), os.path.join(out, f".prep_L1_{os.getpid()}_y")
    for d in (dead, alive):
        os.makedirs(os.path.join(d, "seed_bench_r1"))
    ann_file = os.path.join(data_root, "annotations", "validation_L1.jsonl")
    recs = _read(ann_file)
    with open(ann_file, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs[:2])
    rep = prep.prepare(data_root, "L1", out, workers=1, progress=False)
    assert rep["written"] == 2 and rep["output_dir"] == os.path.join(out, "seed_bench_r1", "L1", "1.0.0")
    assert set(_written(out, "L1")) == {str(r["sample_id"]) for r in recs[:2]}
    assert _tree_hashes(os.path.join(out, "seed_bench_r1")) != hashes
    assert not os.path.exists(dead) and os.path.isdir(alive)
    shutil.rmtree(alive)
    _no_leftovers(out)


def test_cli_prep_frame_format_and_empty_file_exit_code(root, tmp_path, capsys):
    """`seedr1 prep --frame-format jpeg` stores JPEG bytes (png is the default); an empty annotation file exits 2
    with a one-line message naming the file."""
    import tensorflow_datasets as tfds

    from seedr1_jax import cli
    from seedr1_jax.data.pipeline import find_split_dir

    data_root = str(tmp_path / "data")
    shutil.copytree(root, data_root)
    for fmt, magic in (("jpeg", b"\xff\xd8"), ("png", b"\x89PNG")):
        out = str(tmp_path / fmt)
        extra = ["--frame-format", fmt] if fmt == "jpeg" else []
        assert (
            cli.main(["prep", "--data-root", data_root, "--split", "L2", "--out", out, "--workers", "1", *extra]) == 0
        )
        assert json.load(open(prep.report_path(out, "L2")))["frame_format"] == fmt
        b = tfds.builder_from_directory(find_split_dir(out, "L2"))
        skip = {"frames": tfds.decode.SkipDecoding(), "image": tfds.decode.SkipDecoding()}
        for ex in b.as_dataset(split="l2", decoders=skip).as_numpy_iterator():
            assert all(x.startswith(magic) for x in [*ex["frames"], *ex["image"]])
    open(os.path.join(data_root, "annotations", "validation_L2.jsonl"), "w").close()
    capsys.readouterr()
    assert cli.main(["prep", "--data-root", data_root, "--split", "L2", "--out", str(tmp_path / "png")]) == 2
    out = capsys.readouterr()
    assert "validation_L2.jsonl" in out.out + out.err and "Traceback" not in out.out + out.err
