"""seedr1_jax.fs on local paths and on a remote filesystem: TensorFlow's in-memory `ram://`, served by the same
tf.io.gfile calls as gs:// (no network). TFRecord reading, split lookup and HF weights are read from ram://
through the real code paths; TFDS reaches ram:// through etils.epath's TensorFlow backend, the backend epath
uses for gs:// when TensorFlow is installed."""

import json
import os
import uuid

import numpy as np
import pytest
from flax import nnx

from seedr1_jax import data
from seedr1_jax.core import fs
from seedr1_jax.models.config import ConfigError, ModelConfig, TextConfig, VisionConfig


def _epath_ram():
    """Lets etils.epath (and so TFDS) open ram:// paths with its TensorFlow backend, as it does gs://."""
    from etils.epath import backend, gpath, register

    if "ram" in gpath._URI_SCHEMES:
        return
    gpath._URI_SCHEMES = gpath._URI_SCHEMES | {"ram"}
    gpath._URI_MAP_ROOT["ram://"] = "/ram/"
    gpath._URI_PREFIXES = (*gpath._URI_PREFIXES, "ram://")
    gpath._PREFIX_TO_BACKEND["ram"] = backend.tf_backend
    register._URI_PREFIXES_TO_CLS["ram://"] = gpath.PosixGPath


@pytest.fixture(params=["local", "ram"])
def root(request, tmp_path):
    return str(tmp_path) if request.param == "local" else f"ram://fs_{uuid.uuid4().hex[:8]}"


def test_roundtrip(root):
    d = fs.join(root, "a", "b")
    fs.makedirs(d)
    assert fs.isdir(d) and fs.listdir(fs.join(root, "a")) == ["b"]
    p = fs.join(d, "log.jsonl")
    fs.append_lines(p, ["one", "two\n"])
    fs.append_lines(p, ["three"])
    assert fs.read_text(p) == "one\ntwo\nthree\n" and fs.isfile(p) and fs.size(p) == 14
    fs.write_bytes(fs.join(d, "x.bin"), b"\x00\x01")
    assert fs.glob(fs.join(root, "a", "*", "*.bin")) == [fs.join(d, "x.bin")]
    with fs.local_file(fs.join(d, "x.bin")) as local:
        assert open(local, "rb").read() == b"\x00\x01"
    fs.copy_tree(fs.join(root, "a"), fs.join(root, "c"))
    assert fs.read_text(fs.join(root, "c", "b", "log.jsonl")) == "one\ntwo\nthree\n"
    fs.rmtree(fs.join(root, "c"))
    assert not fs.exists(fs.join(root, "c"))
    assert fs.absolute("gs://bucket/x") == "gs://bucket/x"


def test_staged_dir_uploads(root):
    out = fs.join(root, "export")
    with fs.staged_dir(out) as local:
        with open(f"{local}/config.json", "w") as f:
            f.write("{}")
    assert fs.read_text(fs.join(out, "config.json")) == "{}"


def test_eval_results_on_remote():
    """eval's resumable JSONL on a remote store: torn last line dropped and repaired, appends rewrite cleanly."""
    import json

    from seedr1_jax.analysis import evaluate

    path = fs.join(f"ram://ev_{uuid.uuid4().hex[:8]}", "run", "eval_L3.jsonl")
    fs.makedirs(path.rsplit("/", 1)[0])
    good = [{"sample_id": "a", "reward": 1.0}, {"sample_id": "b", "reward": 0.0}]
    fs.write_text(path, "".join(json.dumps(r) + "\n" for r in good) + '{"sample_id": "c", "rew')
    rows = evaluate.read_results(path)
    assert [r["sample_id"] for r in rows] == ["a", "b"]
    evaluate._repair(path, rows)
    fs.append_lines(path, [json.dumps({"sample_id": "c", "reward": 1.0})])
    assert [r["sample_id"] for r in evaluate.read_results(path)] == ["a", "b", "c"]
    assert fs.read_text(path).count("\n") == 3


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from data_prep import prep, synth

    base = tmp_path_factory.mktemp("syn")
    root = str(base / "data")
    synth.generate(root, num_train=2, num_val=3, seed=3)
    out = str(base / "tfr")
    assert prep.prepare(root, "L1", out, workers=1, max_frames=4, progress=False)["skipped"] == 0
    return out


def test_tfrecords_read_from_remote_equal_local(prepared, tmp_path):
    """`seedr1 prep --out` on an object store, then training/eval batches read straight from it."""
    from data_prep import prep

    _epath_ram()
    remote = f"ram://tfr_{uuid.uuid4().hex[:8]}"
    data_root = os.path.join(os.path.dirname(prepared), "data")
    rep = prep.prepare(data_root, "L1", remote, workers=1, max_frames=4, progress=False)
    assert rep["skipped"] == 0 and json.loads(fs.read_text(prep.report_path(remote, "L1")))["written"] == 3
    # no rename on object stores: the build is uploaded to a folder of its own, then the CURRENT object names it
    split_root = fs.join(remote, "seed_bench_r1", "L1")
    first = data.find_split_dir(remote, "L1")
    assert first == fs.join(split_root, fs.read_text(fs.join(split_root, data.CURRENT)).strip())
    assert first.startswith(fs.join(split_root, "builds", "")) and first.endswith("/1.0.0")
    prep.prepare(data_root, "L1", remote, workers=1, max_frames=4, progress=False)  # a re-prep switches, then
    second = data.find_split_dir(remote, "L1")  # removes the build no pointer names
    assert second != first and fs.listdir(fs.join(split_root, "builds")) == [second.split("/")[-2]]
    with pytest.raises(ConfigError, match=r"holds split\(s\) L1, not L3"):
        data.find_split_dir(remote, "L3")

    def batches(where):
        c = data.default_config()
        c.tfrecord_dir, c.split, c.batch_size, c.max_frames, c.max_prompt_len = where, "L1", 2, 4, 512
        return list(data.eval_batches(c, None, process_index=0, process_count=1))

    got, want = batches(remote), batches(prepared)
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        assert list(g["sample_id"]) == list(w["sample_id"])
        np.testing.assert_array_equal(g["pixels"], w["pixels"])
        np.testing.assert_array_equal(g["input_ids"], w["input_ids"])


def _small_cfg() -> ModelConfig:
    return ModelConfig(
        vision=VisionConfig(depth=1, embed_dim=32, num_heads=2, mlp_ratio=2, out_dim=64),
        text=TextConfig(
            vocab_size=320,
            hidden_size=64,
            intermediate_size=96,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            mrope_section=(2, 3, 3),
        ),
        image_token_id=300,
        video_token_id=301,
        vision_start_token_id=302,
        vision_end_token_id=303,
        hf_dtype="float32",
    )


def test_hf_weights_and_model_init_from_remote(tmp_path):
    """An index-sharded HF folder on ram:// loads bit-identically to the local copy, through `model.init`."""
    from seedr1_jax.models import checkpoint
    from seedr1_jax.models.hf_io import load_hf, save_hf
    from seedr1_jax.models.qwen2_vl.model import Qwen2VL
    from seedr1_jax.parallel import sharding

    model = Qwen2VL(_small_cfg(), rngs=nnx.Rngs(3))
    model.hf_config = None
    local = str(tmp_path / "hf")
    save_hf(model, local, max_shard_bytes=200_000)  # several shards + model.safetensors.index.json
    assert fs.exists(fs.join(local, "model.safetensors.index.json"))
    remote = f"ram://hf_{uuid.uuid4().hex[:8]}"
    save_hf(model, remote, max_shard_bytes=200_000)  # `export-hf --out` on an object store: the same bytes
    assert sorted(fs.listdir(remote)) == sorted(os.listdir(local))
    for name in os.listdir(local):
        with open(os.path.join(local, name), "rb") as f:
            assert fs.read_bytes(fs.join(remote, name)) == f.read(), name

    config = __import__("configs.common", fromlist=["base_config"]).base_config()
    config.model.init, config.model.dtype, config.model.param_dtype = remote, "float32", "float32"
    config.model.remat_policy = "none"
    got = checkpoint.load_model(config, None, sharding.TRAIN_RULES)  # `model.init` is resolved here
    want = load_hf(Qwen2VL, local)
    flat = lambda m: dict(nnx.to_flat_state(nnx.state(m, nnx.Param)))  # noqa: E731
    g, w = flat(got), flat(want)
    assert g.keys() == w.keys()
    for k in w:
        np.testing.assert_array_equal(np.asarray(g[k].value), np.asarray(w[k].value))


def test_truncated_safetensors_names_the_file(tmp_path):
    from seedr1_jax.models.hf_io import SafetensorsFile, write_safetensors

    path = str(tmp_path / "model.safetensors")
    write_safetensors(path, {"w": np.arange(1000, dtype=np.float32)})
    with open(path, "r+b") as f:
        f.truncate(2000)
    with pytest.raises(ConfigError, match=r"model\.safetensors: truncated safetensors file .*re-download"):
        SafetensorsFile(path)
    remote = f"ram://st_{uuid.uuid4().hex[:8]}/model.safetensors"
    write_safetensors(path, {"w": np.arange(1000, dtype=np.float32)})
    fs.makedirs(remote.rsplit("/", 1)[0])
    fs.copy(path, remote)
    np.testing.assert_array_equal(SafetensorsFile(remote).get("w"), np.arange(1000, dtype=np.float32))


def test_workdir_write_check_leaves_nothing(root):
    from seedr1_jax.rl import preflight

    preflight.check_writable(fs.join(root, "new", "run"))
    assert not fs.exists(fs.join(root, "new"))
    fs.makedirs(fs.join(root, "old"))
    preflight.check_writable(fs.join(root, "old"))
    assert fs.listdir(fs.join(root, "old")) == []
