"""User mistakes through the `seedr1` command: exit code 2, a one/two-line message naming the file or field and
the fix, no traceback (unless --debug), checked before any model loads, and no half-made workdir left behind."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from data_prep import prep, synth
from seedr1_jax import cli
from seedr1_jax.rl import preflight

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config", "configs/tiny.py"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(root, num_train=2, num_val=3, seed=11)
    tfr = str(tmp_path_factory.mktemp("tfr"))
    assert prep.prepare(root, "L1", tfr, workers=1, max_frames=4, progress=False)["skipped"] == 0
    return root, tfr


@pytest.fixture(autouse=True)
def _no_model_load(monkeypatch):
    """Every case here must fail before a model is built: building one is an error in these tests."""
    from seedr1_jax.models import checkpoint
    from seedr1_jax.rl import train

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the inputs were validated")

    for module in (train, checkpoint):  # load_model lives in one of them (and may be imported into the other)
        if hasattr(module, "load_model"):
            monkeypatch.setattr(module, "load_model", refuse)
    monkeypatch.chdir(ROOT)


def _run(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "error: " in err, err
    lines = [x for x in err[err.index("seedr1 ") :].splitlines() if x.strip()]  # after any progress bar
    assert len(lines) <= 3, err  # the message (1-2 lines) + the --debug hint
    return err


def test_missing_config_file(tmp_path, capsys):
    err = _run(capsys, ["train", "--config", "configs/nope.py", "--workdir", str(tmp_path / "w")])
    assert "configs/nope.py not found" in err and "configs/tiny.py" in err
    assert not (tmp_path / "w").exists()


def test_unknown_config_key(tmp_path, capsys):
    err = _run(capsys, ["train", *TINY, "--workdir", str(tmp_path / "w"), "--config.nonexistent_key=1"])
    assert "--config.nonexistent_key" in err and "configs/tiny.py has no field" in err
    err = _run(capsys, ["train", *TINY, "--workdir", str(tmp_path / "w"), "--config.optim.lrr=1"])
    assert "has no field 'optim.lrr'" in err and "lr" in err


def test_bad_config_value_type(tmp_path, capsys):
    err = _run(capsys, ["train", *TINY, "--workdir", str(tmp_path / "w"), "--config.optim.lr=abc"])
    assert "--config.optim.lr=abc" in err and "could not convert" in err


def test_bad_config_value(prepared, tmp_path, capsys):
    _, tfr = prepared
    argv = ["train", *TINY, "--workdir", str(tmp_path / "w"), f"--config.data.tfrecord_dir={tfr}"]
    err = _run(capsys, [*argv, "--config.data.split=L1", "--config.grpo.group_size=1"])
    assert "config.grpo.group_size=1" in err and ">= 2" in err
    err = _run(capsys, [*argv, "--config.data.option_order=random"])
    assert "config.data.option_order='random'" in err and "sorted" in err
    err = _run(capsys, [*argv, "--config.data.split=L1", "--config.model.init=preset:nope"])
    assert "config.model.init='preset:nope'" in err and "qwen2_vl_7b" in err
    err = _run(capsys, [*argv, "--config.data.split=L1", f"--config.model.init={tmp_path / 'nomodel'}"])
    assert "nomodel" in err and "does not exist" in err
    err = _run(capsys, [*argv, "--config.model.lora.rank=-1"])
    assert "config.model.lora.rank=-1" in err and "rank > 0" in err
    err = _run(capsys, [*argv, "--config.model.lora.rank=4", "--config.model.lora.targets=model/layers/qproj"])
    assert "matches none of the model's linear layers" in err and "model/layers/self_attn/q_proj" in err
    err = _run(capsys, [*argv, "--config.model.lora.rank=4", "--config.model.lora.base_quant=int4"])
    assert "config.model.lora.base_quant='int4'" in err and "nf4" in err
    err = _run(capsys, [*argv, "--config.model.lora.rank=4", "--config.model.lora.base_quant=nf4",
                        "--config.model.lora.quant_targets=visual/nothing"])  # fmt: skip
    assert "model.lora.quant_targets='visual/nothing' matches none" in err
    assert not (tmp_path / "w").exists()


def test_missing_tfrecord_dir_leaves_no_workdir(tmp_path, capsys):
    work = tmp_path / "new" / "run"
    err = _run(capsys, ["train", *TINY, "--workdir", str(work), f"--config.data.tfrecord_dir={tmp_path / 'nope'}"])
    assert f"data.tfrecord_dir='{tmp_path / 'nope'}' does not exist" in err and "seedr1 prep" in err
    assert not (tmp_path / "new").exists()


def test_train_split_not_prepared(prepared, tmp_path, capsys):
    _, tfr = prepared
    err = _run(capsys, ["train", *TINY, "--workdir", str(tmp_path / "w"), f"--config.data.tfrecord_dir={tfr}"])
    assert "holds split(s) L1, not train" in err and "--split train" in err


def test_read_only_workdir(prepared, tmp_path, capsys):
    _, tfr = prepared
    if os.geteuid() == 0:  # root writes through permission bits; /sys is read-only for everyone
        work = "/sys/kernel/seedr1_test/run"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        work = str(ro / "run")
    argv = ["train", *TINY, "--workdir", work, f"--config.data.tfrecord_dir={tfr}", "--config.data.split=L1"]
    err = _run(capsys, argv)
    assert f"--workdir {work} is not writable" in err
    assert not os.path.exists(work)


def test_valid_inputs_pass_and_leave_nothing(prepared, tmp_path):
    _, tfr = prepared
    cfg = cli._config_from_argv("configs/tiny.py", [f"--config.data.tfrecord_dir={tfr}", "--config.data.split=L1"])
    preflight.validate_train(cfg, str(tmp_path / "a" / "b"))
    assert not (tmp_path / "a").exists()


def test_eval_reads_only_the_named_split(prepared, tmp_path, capsys):
    _, tfr = prepared
    base = ["eval", *TINY, "--workdir", str(tmp_path / "w")]
    err = _run(capsys, [*base, "--split", "L3", f"--config.data.tfrecord_dir={tfr}"])
    assert f"data.tfrecord_dir='{tfr}' holds split(s) L1, not L3" in err and "--split L3" in err
    version = os.path.join(tfr, "seed_bench_r1", "L1", "1.0.0")  # pointing at the split folder itself
    err = _run(capsys, [*base, "--split", "L3", f"--config.data.tfrecord_dir={version}"])
    assert "holds split L1, not L3" in err
    err = _run(capsys, [*base, "--split", "L3", f"--config.data.tfrecord_dir={tfr}", f"--config.eval.L3={version}"])
    assert "eval.L3=" in err and "holds split L1, not L3" in err
    # a folder renamed by hand: the stored name decides
    fake = tmp_path / "renamed"
    shutil.copytree(tfr, fake)
    os.rename(fake / "seed_bench_r1" / "L1", fake / "seed_bench_r1" / "L3")
    err = _run(capsys, [*base, "--split", "L3", f"--config.data.tfrecord_dir={fake}"])
    assert "holds split L1, not L3" in err
    err = _run(capsys, [*base, "--split", "L1", f"--config.data.tfrecord_dir={tfr}"])  # right split, no model
    assert "holds no model (model.json)" in err and not (tmp_path / "w").exists()


def test_truncated_tfrecord_names_the_file(prepared, tmp_path, capsys):
    from flax import nnx

    from seedr1_jax.models.checkpoint import save_params
    from seedr1_jax.models.config import tiny
    from seedr1_jax.models.qwen2_vl.model import Qwen2VL

    _, tfr = prepared
    bad = tmp_path / "tfr"
    shutil.copytree(tfr, bad)
    (shard,) = (bad / "seed_bench_r1" / "L1" / "1.0.0").glob("*.tfrecord*")
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    ckpt = str(tmp_path / "ckpt")
    save_params(ckpt, Qwen2VL(tiny(), rngs=nnx.Rngs(0)))
    argv = ["eval", *TINY, "--workdir", str(tmp_path / "w"), "--split", "L1", "--ckpt", ckpt]
    argv += [f"--config.data.tfrecord_dir={bad}", "--config.data.batch_size=8", "--config.data.max_frames=4"]
    err = _run(capsys, argv)
    assert f"{shard} is damaged" in err and "seedr1 prep" in err and "--split L1" in err
    assert not (tmp_path / "w").exists()  # nothing was evaluated: no results folder


def test_truncated_safetensors_names_the_file(tmp_path, capsys):
    from seedr1_jax.models.config import tiny, to_hf_config
    from seedr1_jax.models.hf_io import write_safetensors

    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(to_hf_config(tiny())))
    write_safetensors(str(hf / "model.safetensors"), {"model.norm.weight": np.ones(4096, np.float32)})
    with open(hf / "model.safetensors", "r+b") as f:
        f.truncate(4000)
    err = _run(capsys, ["import-hf", "--hf-dir", str(hf), "--out", str(tmp_path / "ckpt")])
    assert f"{hf / 'model.safetensors'}: truncated safetensors file" in err and "re-download" in err


def test_empty_annotations_on_prep(prepared, tmp_path, capsys):
    root, _ = prepared
    data = tmp_path / "data"
    shutil.copytree(root, data)
    (data / "annotations" / "validation_L2.jsonl").write_text("")
    code = cli.main(["prep", "--data-root", str(data), "--split", "L2", "--out", str(tmp_path / "tfr")])
    out = capsys.readouterr()
    assert code == 2 and "validation_L2.jsonl" in out.out + out.err
    assert "Traceback" not in out.err


def _subprocess(args):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "seedr1_jax.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def test_debug_shows_the_traceback(tmp_path):
    args = ["train", "--config", "configs/nope.py", "--workdir", str(tmp_path / "w")]
    plain = _subprocess(args)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "not found" in plain.stderr
    debug = _subprocess(["--debug", *args])
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_import_is_quiet_without_a_tpu():
    """libtpu is installed (the aot extra) but no TPU is attached: no libtpu/TPU errors or warnings."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "XLA_FLAGS")}
    code = "import seedr1_jax, jax; print(jax.default_backend())"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    from jax._src import hardware_utils

    if hardware_utils.num_available_tpu_chips_and_device_id()[0] == 0:
        assert res.stdout.strip() != "tpu"
        for word in ("libtpu", "TPU", "E0000", "INVALID_ARGUMENT"):
            assert word not in res.stderr, res.stderr


def test_write_config_round_trips(tmp_path):
    cfg = cli._config_from_argv("configs/tiny.py:sft", ["--config.optim.lr=0.25"])
    for where in (str(tmp_path / "run"), "ram://write_config_test/run"):
        path = preflight.write_config(where, cfg)
        from seedr1_jax.core import fs

        back = json.loads(fs.read_text(path))
        assert back["algo"] == "sft" and back["optim"]["lr"] == 0.25
        assert back["mesh"]["shape"] == list(cfg.mesh.shape) and back["grpo"]["rewards"] == dict(cfg.grpo.rewards)
        assert "lr: 0.25" in fs.read_text(fs.join(where, "run_config.yaml"))


def _arms_file(tmp_path, arms, extra=""):
    path = tmp_path / "arms.py"
    path.write_text(f"def get_arms():\n    return dict(arms={arms!r}{extra})\n")
    return str(path)


@pytest.mark.parametrize(
    "arms, extra, want",
    [
        ([dict(name="G2", method="grpo", overrides={"grpo.group_sizee": 2})], "", ["arm 'G2'", "'grpo.group_sizee'"]),
        ([dict(name="X", method="dpo")], "", ["arm 0 ('X')", "method 'dpo'", "vanilla, sft, grpo"]),
        ([dict(name="G1", method="grpo", overrides={"grpo.group_size": 1})], "", ["arm 'G1'", "group_size=1"]),
        ([dict(name="L", method="sft", overrides={"optim.lr": "fast"})], "", ["arm 'L'", "optim.lr='fast'"]),
        ([dict(name="A", method="sft"), dict(name="a", method="grpo")], "", ["name 'a' is given twice"]),
        ([dict(name="A", method="sft")], ", baseline='B'", ["baseline 'B' is not an arm"]),
        ([dict(name="A", method="sft", lr=1)], "", ["arm 0 ('A')", "'name', 'method'"]),
    ],
)
def test_study_arm_file_mistakes_stop_before_anything_runs(tmp_path, capsys, monkeypatch, arms, extra, want):
    """A bad arm file (unknown field, method or value, clashing names, a baseline that is no arm) fails with exit 2
    naming the arm and the field, before the toy base is built or any data is written."""
    monkeypatch.setenv("SEEDR1_CACHE", str(tmp_path / "cache"))
    err = _run(capsys, ["study", "--workdir", str(tmp_path / "w"), "--arms", _arms_file(tmp_path, arms, extra)])
    assert all(w in err for w in want), err
    assert not (tmp_path / "w").exists() and not (tmp_path / "cache").exists()


def test_study_arm_file_missing(tmp_path, capsys):
    err = _run(capsys, ["study", "--workdir", str(tmp_path / "w"), "--arms", str(tmp_path / "nope.py")])
    assert "nope.py: no such file" in err and "configs/arms/paper.py" in err


def test_check_writable_survives_another_process_removing_the_new_folder(tmp_path, monkeypatch):
    """Two processes of one run probing the same new workdir: one's clean-up removes the folder under the other's
    probe; the probe makes it again instead of calling the workdir unwritable, and leaves nothing behind."""
    calls, real = [], preflight.fs.write_text

    def raced(path, text):
        calls.append(path)
        if len(calls) == 1:
            shutil.rmtree(os.path.dirname(path))  # the other process removed the folder it had made
        return real(path, text)

    monkeypatch.setattr(preflight.fs, "write_text", raced)
    preflight.check_writable(str(tmp_path / "new" / "w"))
    assert len(calls) == 2 and not (tmp_path / "new").exists()


def test_demo_with_an_unknown_family_stops_before_writing(tmp_path, capsys):
    from seedr1_jax import cli

    work = tmp_path / "demo"
    assert cli.main(["demo", "--workdir", str(work), "--family", "llava"]) == 2
    err = capsys.readouterr().err
    assert "llava" in err and "qwen2_vl, qwen2_5_vl" in err and not work.exists()
