"""Two JAX processes on this machine (a localhost coordinator, 4 fake CPU devices each) form one 8-device mesh:
`seedr1 train` run that way equals the one-process 8-device run of the same data order (`data.shards`), and
`seedr1 eval` run that way writes the same rows as one process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from data_prep import prep, synth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tfr(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(root, num_train=16, num_val=12, seed=7)
    out = str(tmp_path_factory.mktemp("tfr"))
    for split in ("train", "train_cot", "L1"):
        assert prep.prepare(root, split, out, workers=1, progress=False)["skipped"] == 0
    return out


def _cmd(algo, workdir, tfr, steps=2):
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
        f"--config.train.checkpoint_every={steps}",
        "--config.data.batch_size=8",
        "--config.data.shards=2",
        "--config.grpo.group_size=2",
        "--config.grpo.max_new_tokens=8",
        "--config.data.max_prompt_len=960",
        "--config.sft.max_response_len=48",
    ]


def _env(devices, **kw):
    flags = f"--xla_force_host_platform_device_count={devices}"
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=flags, HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(workdir):
    return [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sft", "grpo"])
def test_two_processes_equal_one(tfr, tmp_path, algo):
    """The same losses, gradient norms and (GRPO) rewards per step: each process scores its own prompts' completions
    (a reward that differs per completion, so the advantages and the update are not zero), the logged figures
    are over the whole batch; both processes' checkpoint is one."""
    reward = "def fn(completion, ground_truth):\n    return 1.0 / (1.0 + len(completion))\n"
    (tmp_path / "brevity.py").write_text(reward)
    cmd = lambda d: _cmd(algo, d, tfr) + ['--config.grpo.rewards={"brevity:fn": 1.0}']  # noqa: E731
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    env = lambda n, **kw: _env(n, PYTHONPATH=str(tmp_path), **kw)  # noqa: E731
    res = subprocess.run(cmd(one), cwd=ROOT, env=env(8), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    outs = _two_processes(cmd(two), env)
    assert "2 process(es)" in outs[0] and "over 8 cpu device(s)" in outs[0]
    a, b = _metrics(one), _metrics(two)  # process 0 writes the metrics
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2]
    keys = ("loss", "grad_norm") + (("reward_mean", "reward_std", "advantage_abs_mean") if algo == "grpo" else ())
    assert algo == "sft" or all(r["advantage_abs_mean"] > 0 for r in a)
    for r, q in zip(a, b):
        for k in keys:
            assert np.isclose(r[k], q[k], rtol=1e-5, atol=1e-7), (k, r[k], q[k])
    assert os.path.isdir(os.path.join(two, "checkpoints", "2"))
    if algo == "grpo":  # evaluation as two processes: 12 samples in batches of 8 (4 rows per process, one padded)
        ev = lambda d: [sys.executable, "-m", "seedr1_jax.cli", "eval", "--config", "configs/tiny.py:grpo"] + [  # noqa: E731
            "--workdir", d, "--split", "L1", f"--config.data.tfrecord_dir={tfr}", "--config.data.eval_batch_size=8",
            "--config.eval.max_new_tokens=8", "--config.data.max_prompt_len=960",
        ]  # fmt: skip
        res = subprocess.run(ev(one), cwd=ROOT, env=env(8), capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        _two_processes(ev(two), env)
        rows = [[json.loads(x) for x in open(os.path.join(d, "eval_L1.jsonl"))] for d in (one, two)]
        assert len(rows[0]) == 12 and len({r["sample_id"] for r in rows[1]}) == 12
        key = lambda r: r["sample_id"]  # noqa: E731
        assert sorted(rows[0], key=key) == sorted(rows[1], key=key)


def _start_two(cmd, env):
    """`cmd` started as two JAX processes (a localhost coordinator, 4 CPU devices each)."""
    coord = f"127.0.0.1:{_free_port()}"
    return [
        subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env(4, JAX_COORDINATOR_ADDRESS=coord, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]


def _wait(procs, codes=(0, 0)):
    try:
        outs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert tuple(p.returncode for p in procs) == tuple(codes), "\n".join(o[-3000:] for o in outs)
    return outs


def _two_processes(cmd, env):
    """Runs `cmd` as two JAX processes; returns their outputs."""
    return _wait(_start_two(cmd, env))


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_one_step(tfr, tmp_path):
    """SIGTERM to one of two processes (one host of a slice preempted): both save the same step and exit 143
    (jax's preemption sync point, read through orbax), and rerunning the command resumes and ends bit-identical
    to an uninterrupted two-process run."""
    steps = 4
    cmd = lambda d: _cmd("sft", d, tfr, steps) + ["--config.train.checkpoint_every=100"]  # noqa: E731
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    _two_processes(cmd(full), _env)
    procs = _start_two(cmd(cut), _env)
    metrics, deadline = os.path.join(cut, "metrics.jsonl"), time.time() + 600
    while time.time() < deadline and not (os.path.isfile(metrics) and open(metrics).read().count("\n") >= 1):
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGTERM)
    outs = _wait(procs, codes=(143, 143))
    saved = sorted(int(x) for x in os.listdir(os.path.join(cut, "checkpoints")) if x.isdigit())
    assert saved and 1 <= saved[-1] < steps, saved
    assert f"stopped by SIGTERM after step {saved[-1]}" in outs[0], outs[0][-2000:]  # process 0 logs
    outs = _two_processes(cmd(cut), _env)
    assert f"resumed from step {saved[-1]}" in outs[0]
    from seedr1_jax.analysis.toy_base import params_hash  # restores onto this process's devices

    assert params_hash(full) == params_hash(cut)  # bit-identical parameters at the last step
    keep = lambda r: {k: v for k, v in r.items() if not k.startswith(("time_", "tokens_per_s", "mfu"))}  # noqa: E731
    assert [keep(r) for r in _metrics(full)] == [keep(r) for r in _metrics(cut)]
