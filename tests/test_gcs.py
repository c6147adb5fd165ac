"""The whole journey on gs:// against a real GCS server on this machine (`gcs_server.GcsServer`: fake-gcs-server
behind an HTTPS proxy, so TensorFlow's, tensorstore's and google-cloud-storage's own clients run unchanged):
`seedr1 prep` -> `train` (killed -9 after a checkpoint, then resumed) -> `eval` -> `export-hf` -> `import-hf`,
every byte in the bucket; a re-prep killed mid-upload leaves the old split readable (object stores have no
rename: `prep._publish_remote`); the server's 503s are retried. Marked slow: the longest of the suite's
end-to-end tests, bounded (every process has a timeout), and run in CI."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from gcs_server import GcsServer

from data_prep import synth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with GcsServer(str(tmp_path_factory.mktemp("gcs"))) as server:
        yield server


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(root, num_train=8, num_val=4, seed=3)
    return root


def _env(gcs):
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", **gcs.env)


def _seedr1(gcs, *args, timeout=600):
    out = subprocess.run(
        [sys.executable, "-m", "seedr1_jax.cli", *args],
        cwd=ROOT,
        env=_env(gcs),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"seedr1 {args[0]}: {out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def _prep(data_root, split, out):
    return ["prep", "--data-root", data_root, "--split", split, "--out", out, "--workers", "1"]


def _read_split(gcs, tfr, split) -> dict:
    """What a reader sees now (a fresh process, as a trainer would be): the split's folder and its sample ids."""
    code = (
        "import json, sys, tensorflow_datasets as tfds\n"
        "from seedr1_jax import data\n"
        "d = data.find_split_dir(sys.argv[1], sys.argv[2])\n"
        "b = tfds.builder_from_directory(d)\n"
        "ds = b.as_dataset(split=next(iter(b.info.splits)), shuffle_files=False)\n"
        "ids = sorted(ex['sample_id'].decode() for ex in tfds.as_numpy(ds))\n"
        "print(json.dumps(dict(dir=d, ids=ids)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, tfr, split], cwd=ROOT, env=_env(gcs), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _train(bucket, steps):
    return [
        "train",
        "--config",
        "configs/tiny.py:grpo",
        "--workdir",
        f"{bucket}/run",
        f"--config.data.tfrecord_dir={bucket}/tfr",
        f"--config.train.num_steps={steps}",
        "--config.train.checkpoint_every=1",
        "--config.data.batch_size=2",
        "--config.grpo.group_size=2",
        "--config.grpo.max_new_tokens=8",
        "--config.data.max_prompt_len=960",
    ]


def _steps_saved(gcs, run) -> list[int]:
    """Checkpoint steps orbax has committed (on an object store: the step folder's commit_success.txt)."""
    prefix = f"{run}/checkpoints/"
    rel = [n[len(prefix) :].split("/") for n in gcs.list(prefix)]
    return sorted(int(p[0]) for p in rel if len(p) == 2 and p[0].isdigit() and p[1] == "commit_success.txt")


def test_journey_on_gcs(gcs, data_root, tmp_path):
    b = gcs.bucket("journey")
    for split in ("train", "L1"):
        _seedr1(gcs, *_prep(data_root, split, f"{b}/tfr"))
    assert _read_split(gcs, f"{b}/tfr", "L1")["ids"]

    # train, killed -9 once a checkpoint past the first is committed, then the same command resumes it
    steps, run = 4, f"{b}/run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedr1_jax.cli", *_train(b, steps)],
        cwd=ROOT,
        env=_env(gcs),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 400
    while not [s for s in _steps_saved(gcs, run) if s >= 2] and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _steps_saved(gcs, run)
    assert done and 2 <= done[-1] < steps, f"the kill came too late to test resuming (checkpoints {done})"
    out = _seedr1(gcs, *_train(b, steps))
    assert f"resumed from step {done[-1]}" in out.stdout
    assert _steps_saved(gcs, run)[-1] == steps
    rows = [json.loads(x) for x in gcs.read(f"{run}/metrics.jsonl").decode().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, steps + 1)) and all(np.isfinite(r["loss"]) for r in rows)
    assert [n for n in gcs.list(f"{run}/tb/") if "tfevents" in n]

    # eval on gs://, then export with the server failing requests (GCS answers 503 under load): retried
    _seedr1(gcs, "eval", "--config", "configs/tiny.py:grpo", "--workdir", run, "--split", "L1",
            f"--config.data.tfrecord_dir={b}/tfr", "--config.eval.max_new_tokens=8")  # fmt: skip
    evals = [json.loads(x) for x in gcs.read(f"{run}/eval_L1.jsonl").decode().splitlines()]
    assert len(evals) == 4 and {r["sample_id"] for r in evals} == set(_read_split(gcs, f"{b}/tfr", "L1")["ids"])
    failed = len([r for r in gcs.requests if r[2] == 503])
    gcs.fail_next(3, 503)
    _seedr1(gcs, "export-hf", "--ckpt", run, "--out", f"{b}/hf")
    assert len([r for r in gcs.requests if r[2] == 503]) == failed + 3
    assert {n.rsplit("/", 1)[1] for n in gcs.list(f"{b}/hf/")} >= {"config.json", "model.safetensors"}

    # import the exported folder back: the same parameters, bit for bit
    _seedr1(gcs, "import-hf", "--hf-dir", f"{b}/hf", "--out", f"{b}/imp")
    import orbax.checkpoint as ocp

    def params(prefix, local):
        return ocp.StandardCheckpointer().restore(gcs.download(prefix, str(tmp_path / local)))

    import jax

    final = params(f"{run}/checkpoints/{steps}/params", "final")
    imported = params(f"{b}/imp/params", "imported")
    a, c = jax.tree.leaves_with_path(final), jax.tree.leaves_with_path(imported)
    assert len(a) == len(c) > 0
    for (path, x), (_, y) in zip(a, c):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), path


def _builds(gcs, split_root) -> set[str]:
    prefix = f"{split_root}/builds/"
    return {n[len(prefix) :].split("/")[0] for n in gcs.list(prefix)} - {""}


def test_interrupted_reprep_keeps_the_old_split(gcs, data_root):
    b = gcs.bucket("reprep")
    tfr, root = f"{b}/tfr", f"{b}/tfr/seed_bench_r1/L1"
    _seedr1(gcs, *_prep(data_root, "L1", tfr))
    old = _read_split(gcs, tfr, "L1")

    gcs.hold_uploads(after=1)  # the new build's first object goes up, the second is parked: kill -9 there
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedr1_jax.cli", *_prep(data_root, "L1", tfr)],
        cwd=ROOT,
        env=_env(gcs),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not gcs.held() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert gcs.held(), "the re-prep never reached its upload"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gcs.release()
    assert len(_builds(gcs, root)) == 2, _builds(gcs, root)  # the old build and the killed one's partial upload
    assert _read_split(gcs, tfr, "L1") == old  # readers still see the old split, whole

    _seedr1(gcs, *_prep(data_root, "L1", tfr))  # a completed re-prep switches and clears the rest
    new = _read_split(gcs, tfr, "L1")
    assert new["dir"] != old["dir"] and new["ids"] == old["ids"]
    assert _builds(gcs, root) == {new["dir"].split("/")[-2]}
