"""The training loop end to end on tiny data: SFT and GRPO run, write metrics/checkpoints, and a run killed
mid-way and restarted ends bit-identical to an uninterrupted one."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from data_prep import prep, synth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(root, num_train=8, num_val=4, seed=3)
    return root


@pytest.fixture(scope="module")
def tfr(synth_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tfr"))
    for split in ("train", "train_cot"):
        assert prep.prepare(synth_root, split, out, workers=1, progress=False)["skipped"] == 0
    return out


@pytest.fixture(scope="module")
def tfr256(synth_root, tmp_path_factory):
    """The same splits prepared at 256 pixels (`seedr1 prep --frame-size 256`) for 16-pixel patches."""
    out = str(tmp_path_factory.mktemp("tfr256"))
    for split in ("train", "train_cot"):
        cmd = [sys.executable, "-m", "seedr1_jax.cli", "prep", "--data-root", synth_root, "--split", split]
        subprocess.run(cmd + ["--out", out, "--frame-size", "256", "--workers", "1"], cwd=ROOT, env=_env(), check=True)
    return out


def _cmd(algo, workdir, tfr, steps):
    return [
        sys.executable,
        "-m",
        "seedr1_jax.cli",
        "train",
        "--config",
        f"configs/tiny.py:{algo}",
        "--workdir",
        workdir,
        f"--config.data.tfrecord_dir={tfr}",
        f"--config.train.num_steps={steps}",
        "--config.train.checkpoint_every=1",
        "--config.data.batch_size=2",
        "--config.grpo.group_size=2",
        "--config.grpo.max_new_tokens=8",
        "--config.data.max_prompt_len=960",
        "--config.sft.max_response_len=48",
    ]


def _env():
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")


def _params(workdir, step, item="params"):
    path = os.path.join(workdir, "checkpoints", str(step), item)
    return ocp.StandardCheckpointer().restore(path)


# GRPO-CARE's pieces ride on the GRPO case: the moving-average reference (checkpointed beside the parameters) and
# the consistency bonus, which reads the reference's log-probs before the rewards (plain GRPO's resume is shown by
# the dynamic-sampling, LoRA and two-process tests)
# (a reward that differs per completion, so that the update and the KL are not zero)
CARE = [
    "--config.grpo.ema_ref_decay=0.9",
    '--config.grpo.rewards={"accuracy": 0.0, "brevity:fn": 1.0, "care_consistency": 0.5}',
]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sft", "grpo"])
def test_kill_and_resume_is_bit_identical(tfr, tmp_path, algo):
    steps = 4
    cmd = lambda d: _cmd(algo, d, tfr, steps) + (CARE if algo == "grpo" else [])  # noqa: E731
    (tmp_path / "brevity.py").write_text(
        "def fn(completion, ground_truth):\n    return 1.0 / (1.0 + len(completion))\n"
    )
    env = dict(_env(), PYTHONPATH=str(tmp_path))
    full = str(tmp_path / "full")
    subprocess.run(cmd(full), cwd=ROOT, env=env, check=True, capture_output=True)
    rows = [json.loads(x) for x in open(os.path.join(full, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) for r in rows)
    assert os.path.isfile(os.path.join(full, "metrics.png"))
    if algo == "grpo":  # the bonus is logged; the reference moved away from model.init's, and is checkpointed
        assert all(0.0 <= r["reward_care_consistency"] <= r["reward_accuracy"] for r in rows)
        assert rows[0]["kl"] == 0.0 and any(r["kl"] > 0.0 for r in rows[1:])
        assert os.path.isdir(os.path.join(full, "checkpoints", str(steps), "ref"))

    killed = str(tmp_path / "killed")
    proc = subprocess.Popen(cmd(killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not os.path.isdir(os.path.join(killed, "checkpoints", "2")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(int(s) for s in os.listdir(os.path.join(killed, "checkpoints")) if s.isdigit())
    assert 2 <= done[-1] < steps, f"the kill came too late to test resuming (checkpoints {done})"
    out = subprocess.run(cmd(killed), cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    assert f"resumed from step {done[-1]}" in out.stdout
    _assert_same_run(full, killed, steps, items=("params", "ref") if algo == "grpo" else ("params",))


def _assert_same_run(full, other, steps, items=("params",)):
    """Final parameters (and the other checkpoint `items`) bit-identical; metrics.jsonl has every step exactly once
    with the same values."""
    import jax

    for item in items:
        a, b = _params(full, steps, item), _params(other, steps, item)
        for (path, x), (_, y) in zip(jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), (item, path)
    rows = [[json.loads(x) for x in open(os.path.join(d, "metrics.jsonl"))] for d in (full, other)]
    assert [r["step"] for r in rows[1]] == list(range(1, steps + 1))
    # TensorBoard's reader drops the rows an interrupted run wrote past its checkpoint (out-of-order steps)
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(os.path.join(other, "tb"))
    acc.Reload()
    tb = [(e.step, e.value) for e in acc.Scalars("loss")]
    assert [st for st, _ in tb] == list(range(1, steps + 1))
    tb = dict(tb)
    assert all(np.isclose(tb[r["step"]], r["loss"], rtol=1e-6) for r in rows[0])
    for r, q in zip(*rows):
        assert {k: v for k, v in r.items() if not k.startswith(("time_", "tokens_per_s", "mfu"))} == {
            k: v for k, v in q.items() if not k.startswith(("time_", "tokens_per_s", "mfu"))
        }


@pytest.mark.slow
def test_sigterm_saves_and_resumes_bit_identical(tfr, tmp_path):
    """SIGTERM (a spot TPU's preemption notice) mid-run: the last completed step is checkpointed, the exit
    code says so (143), and rerunning the same command ends bit-identical to an uninterrupted run."""
    steps = 4
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    cmd = lambda d: [*_cmd("sft", d, tfr, steps), "--config.train.checkpoint_every=100"]  # noqa: E731
    subprocess.run(cmd(full), cwd=ROOT, env=_env(), check=True, capture_output=True)
    proc = subprocess.Popen(
        cmd(cut), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    deadline = time.time() + 300
    metrics = os.path.join(cut, "metrics.jsonl")
    while time.time() < deadline and not (os.path.isfile(metrics) and open(metrics).read().count("\n") >= 1):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, out
    saved = sorted(int(s) for s in os.listdir(os.path.join(cut, "checkpoints")) if s.isdigit())
    assert saved and 1 <= saved[-1] < steps and "stopped by SIGTERM" in out
    res = subprocess.run(cmd(cut), cwd=ROOT, env=_env(), check=True, capture_output=True, text=True)
    assert f"resumed from step {saved[-1]}" in res.stdout
    _assert_same_run(full, cut, steps)


def test_grpo_smoke_on_2x2x2_mesh(tfr, tmp_path):
    """Two GRPO steps in-process on 8 fake devices over a (data, fsdp, tensor) = (2, 2, 2) mesh."""
    from configs.tiny import get_config
    from seedr1_jax.rl import train

    c = get_config("grpo")
    c.mesh.shape = (2, 2, 2)
    c.data.tfrecord_dir = tfr
    c.data.batch_size = 4
    c.data.max_prompt_len = 960
    c.grpo.group_size = 2
    c.grpo.max_new_tokens = 6
    c.train.num_steps = 2
    c.train.sample_every = 1
    assert train.main(c, str(tmp_path)) == 0
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        for k in ("loss", "kl", "grad_norm", "reward_mean", "completion_length", "tokens_per_s", "lr"):
            assert np.isfinite(r[k]), (k, r)
        assert r["finite"] == 1 and r["completion_length"] > 0
    samples = [json.loads(x) for x in open(tmp_path / "samples.jsonl")]
    assert len(samples) == 2 * 4 and all(isinstance(s["completion"], str) for s in samples)


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_nonfinite_update_stops_or_skips(tfr, tmp_path, mode, capsys):
    """A NaN update (here: a NaN learning rate) never reaches the parameters or a checkpoint."""
    from configs.tiny import get_config
    from seedr1_jax.rl import train

    c = get_config("sft")
    c.data.tfrecord_dir = tfr
    c.data.batch_size = 2
    c.train.num_steps = 2
    c.train.checkpoint_every = 1
    c.optim.lr = float("nan")
    c.train.on_nonfinite = mode
    status = train.main(c, str(tmp_path))
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert all(r["finite"] == 0 for r in rows)
    out = capsys.readouterr().out
    if mode == "stop":
        assert status == 1 and len(rows) == 1
        assert "non-finite" in out and "Lower optim.lr or set train.on_nonfinite=skip" in out
        assert not os.path.isdir(os.path.join(tmp_path, "checkpoints", "1"))
    else:
        assert status == 0 and len(rows) == 2 and "update skipped" in out
        import jax
        from flax import nnx

        from seedr1_jax.models import checkpoint

        init = nnx.state(checkpoint.load_model(c, None, None)).to_pure_dict()
        for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(_params(str(tmp_path), 2))):
            assert np.array_equal(np.asarray(a), np.asarray(b))  # every update was skipped


def test_train_with_a_module_function_reward(tfr, tmp_path):
    """The documented custom rewards through the door users use: `seedr1 train` with an outcome reward
    `my_rewards:brevity(completion, ground_truth)` and a process reward `my_rewards:seen(completion, sample, **ctx)`
    runs; both are computed and logged, the process reward sees the record's fields and the step; a process reward
    naming `attention` gets the rollout's attention summary (and only it); and `grpo.reward_noise` flips accuracy
    rewards (the clean values logged beside)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "my_rewards.py").write_text(
        "import json, os\n"
        "def brevity(completion, ground_truth):\n    return 1.0 / (1.0 + len(completion))\n"
        "def seen(completion, sample, **ctx):\n"
        "    with open(os.environ['SEEN_LOG'], 'a') as f:\n"
        "        f.write(json.dumps(dict(sample=sample, ctx=ctx)) + '\\n')\n"
        "    return 1.0\n"
        "def looked(completion, sample, *, attention, **ctx):\n"
        "    with open(os.environ['SEEN_LOG'] + '.att', 'a') as f:\n"
        "        f.write(json.dumps(attention) + '\\n')\n"
        "    return attention['visual']\n"
    )
    work = str(tmp_path / "run")
    rewards = (
        '--config.grpo.rewards={"accuracy": 1.0, "my_rewards:brevity": 0.5, "my_rewards:seen": 0.0, "overlong": 1.0, '
        '"visual_consistency": 0.0, "my_rewards:looked": 0.0, "grounding": 0.0}'
    )
    log = tmp_path / "seen.jsonl"
    env = dict(_env(), PYTHONPATH=str(pkg), SEEN_LOG=str(log), SEEDR1_CACHE=str(tmp_path / "cache"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the suite's shared one: here `seedr1`'s own default
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # every program, however fast this machine compiles
    cmd = _cmd("grpo", work, tfr, 1) + [rewards, "--config.grpo.reward_noise=1.0", "--config.grpo.overlong_buffer=4"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(os.listdir(tmp_path / "cache" / "xla")) >= 2  # compiled programs kept for the next run
    row = json.loads(open(os.path.join(work, "metrics.jsonl")).readline())
    assert 0.0 < row["reward_my_rewards:brevity"] <= 1.0 and row["reward_my_rewards:seen"] == 1.0
    assert row["reward_accuracy"] == 1.0 - row["reward_accuracy_clean"]  # noise 1.0 flips every one
    assert 0.0 <= row["reward_visual_consistency"] <= 1.0  # the built-in process reward, logged at weight 0
    calls = [json.loads(x) for x in open(log)]
    assert calls and all(c["ctx"] == {"step": 0, "max_new_tokens": 8, "overlong_buffer": 4} for c in calls)
    s = calls[0]["sample"]
    assert s["answer"] in "ABCD" and len(s["options"]) == 4 and s["answer_text"] in s["options"] and s["sample_id"]
    # DAPO's overlong reward reads each completion's length: 0 up to 8 - 4 tokens, then down to -1 at 8
    n = np.array([c["sample"]["completion_tokens"] for c in calls])
    assert len(n) == 4 and ((1 <= n) & (n <= 8)).all()  # 2 prompts x G = 2
    assert np.isclose(row["reward_overlong"], np.mean(np.minimum(0.0, (8 - 4 - n) / 4)))
    assert np.isclose(row["completion_length"], n.mean())
    # a reward naming `attention` gets the rollout's summary per completion (the others' ctx above has none)
    att = [json.loads(x) for x in open(str(log) + ".att")]
    assert len(att) == 4 and all(set(a) == {"visual", "video", "evidence", "tokens"} for a in att)
    assert all(0.0 <= a["video"] <= a["visual"] <= 1.0 for a in att) and "time_attention" in row
    assert np.isclose(row["reward_my_rewards:looked"], np.mean([a["visual"] for a in att]))
    assert 0.0 <= row["reward_grounding"] <= 1.0


def test_train_with_a_bad_reward_path_stops_before_training(tfr, tmp_path):
    work = str(tmp_path / "run")
    rewards = '--config.grpo.rewards={"accuracy": 1.0, "no_such_module_xyz:fn": 0.5}'
    out = subprocess.run(_cmd("grpo", work, tfr, 1) + [rewards], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert out.returncode == 2
    assert "no_such_module_xyz" in out.stderr and "grpo.rewards" in out.stderr
    assert not os.path.exists(os.path.join(work, "checkpoints"))


def _elastic_cmd(workdir, tfr, shape):
    mesh = f"--config.mesh.shape=({shape[0]}, {shape[1]}, {shape[2]})"
    return [*_cmd("sft", workdir, tfr, 4), "--config.data.batch_size=8", mesh]


def _devices_env(n):
    return dict(_env(), XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")


@pytest.fixture(scope="module")
def run_on_1x8x1(tfr, tmp_path_factory):
    """A 4-step SFT run on mesh (1, 8, 1), made once for every elastic-resume case (each copies it)."""
    work = str(tmp_path_factory.mktemp("elastic") / "run")
    subprocess.run(_elastic_cmd(work, tfr, (1, 8, 1)), cwd=ROOT, env=_devices_env(8), check=True, capture_output=True)
    return work


@pytest.mark.slow
@pytest.mark.parametrize("shape, devices", [((2, 2, 2), 8), ((1, 4, 2), 8), ((1, 1, 1), 1)])
def test_resume_onto_another_mesh(tfr, run_on_1x8x1, tmp_path, shape, devices):
    """Elastic resume: a run checkpointed at step 2 on mesh (1, 8, 1) (the spot slice then comes back another size)
    resumes on `shape` and continues with the same data order and the same losses as an uninterrupted run on
    that mesh (within float tolerance: reductions may sum in another order across meshes)."""
    cmd, env = lambda d, s: _elastic_cmd(d, tfr, s), _devices_env  # noqa: E731
    moved, full = str(tmp_path / "moved"), str(tmp_path / "full")
    shutil.copytree(run_on_1x8x1, moved)
    for s in (3, 4):  # as if preempted after step 2
        shutil.rmtree(os.path.join(moved, "checkpoints", str(s)))
    out = subprocess.run(cmd(moved, shape), cwd=ROOT, env=env(devices), check=True, capture_output=True, text=True)
    assert "resumed from step 2" in out.stdout and f"over {devices} cpu device(s)" in out.stdout
    subprocess.run(cmd(full, shape), cwd=ROOT, env=env(devices), check=True, capture_output=True)
    a, b = ([json.loads(x) for x in open(os.path.join(d, "metrics.jsonl"))] for d in (full, moved))
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for r, q in zip(a, b):
        for k in ("loss", "grad_norm", "lr"):
            assert np.isclose(r[k], q[k], rtol=2e-5, atol=1e-7), (r["step"], k, r[k], q[k])
    import jax

    for (path, x), (_, y) in zip(
        jax.tree.leaves_with_path(_params(full, 4)), jax.tree.leaves_with_path(_params(moved, 4))
    ):
        # Adam divides by sqrt(v): a near-zero gradient summed in another order can move a weight by a few 1e-6
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-3, atol=5e-5, err_msg=str(path))


@pytest.mark.slow
def test_dynamic_sampling_through_seedr1_train_and_exact_resume(tfr, tmp_path):
    """`grpo.dynamic_sampling`: with a reward that ties some groups, steps draw extra rollout batches (logged as
    rollout_prompts, the budget spent), every optimizer batch keeps B groups, and a run resumed from a
    checkpoint continues from the right place in the data (the checkpoint records the batches drawn): it ends
    bit-identical to an uninterrupted run."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "parity.py").write_text("def fn(completion, ground_truth):\n    return float(len(completion) % 2)\n")
    env = dict(_env(), PYTHONPATH=str(pkg))
    steps = 3
    extra = ['--config.grpo.rewards={"parity:fn": 1.0}', "--config.grpo.dynamic_sampling=True"]
    cmd = lambda d: _cmd("grpo", d, tfr, steps) + extra  # noqa: E731
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    subprocess.run(cmd(full), cwd=ROOT, env=env, check=True, capture_output=True)
    rows = [json.loads(x) for x in open(os.path.join(full, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:  # batch 2 prompts: each round rolls out 2; at most 3 rounds
        assert r["rollout_prompts"] == 2 * r["dynamic_rounds"] and 1 <= r["dynamic_rounds"] <= 3
        assert r["dynamic_filled"] == 0 or r["dynamic_rounds"] == 3
    assert sum(r["dynamic_rounds"] for r in rows) > steps  # some step needed a refill (a tie in a group of 2)
    subprocess.run(cmd(cut), cwd=ROOT, env=env, check=True, capture_output=True)
    shutil.rmtree(os.path.join(cut, "checkpoints", str(steps)))  # as if stopped after step 2
    out = subprocess.run(cmd(cut), cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    assert "resumed from step 2" in out.stdout
    _assert_same_run(full, cut, steps)


@pytest.mark.parametrize("algo", ["sft", "grpo"])
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_other_families_train_through_seedr1_train_and_export(request, tmp_path, algo, family):
    """The same loop on a tiny Qwen2.5-VL (windowed tower, absolute time) and a tiny Qwen3-VL (q/k-norm decoder,
    DeepStack, per-frame video blocks with timestamps, the released 16-pixel patches on frames prepared at 256
    pixels): two steps, finite metrics, the parameters move, and `seedr1 export-hf` writes a folder of that family."""
    work = str(tmp_path / "run")
    tfr = request.getfixturevalue("tfr256" if family == "qwen3_vl" else "tfr")
    cmd = _cmd(algo, work, tfr, 2) + [f"--config.model.init=preset:tiny_{family}"]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(x) for x in open(os.path.join(work, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) and r["finite"] == 1 for r in rows)
    model = json.load(open(os.path.join(work, "model.json")))
    assert model["config"]["family"] == family
    a, b = _params(work, 1), _params(work, 2)
    assert any(not np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b)))
    hf = str(tmp_path / "hf")
    exp = [sys.executable, "-m", "seedr1_jax.cli", "export-hf", "--ckpt", work, "--out", hf]
    out = subprocess.run(exp, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    config = json.load(open(os.path.join(hf, "config.json")))
    assert config["model_type"] == family
    if family == "qwen2_5_vl":
        assert config["vision_config"]["window_size"] == 112
    else:
        assert config["vision_config"]["deepstack_visual_indexes"] == [0, 1] and config["text_config"]["head_dim"] == 32
        assert config["vision_config"]["patch_size"] == 16


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]
