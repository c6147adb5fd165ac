"""Test setup: 8 fake CPU devices (before jax is imported), offline HF, shared tiny-model fixtures."""

import faulthandler
import glob
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ["HF_HUB_OFFLINE"] = "1"
# libtpu (installed for the AOT tests) must not grab the machine as a TPU host: tests run on CPU, and
# several test processes may load libtpu at once for topology compiles.
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One XLA compilation cache per test run, shared by the in-process tests, the `seedr1` processes they start and
# every xdist worker (made by the first process to load this file; the workers and children inherit the variable):
# the suite compiles the same tiny programs in many tests (measured: test_sharding + test_update 241 s -> 177 s
# from a cold cache). Removed at the end of the run; set JAX_COMPILATION_CACHE_DIR yourself to keep one across runs.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="seedr1-test-xla-cache-")
    _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"]
else:
    _OWN_CACHE = None
# Where each xdist worker writes the traceback of a fatal signal (see pytest_configure): a crashed worker's dump on
# stderr is interleaved with the other worker's output and cut to its last frames in a CI log, so the run's summary
# reprints the crashing thread's top frames instead (pytest_terminal_summary).
if "SEEDR1_TEST_FAULT_DIR" not in os.environ:
    os.environ["SEEDR1_TEST_FAULT_DIR"] = tempfile.mkdtemp(prefix="seedr1-test-faults-")
    _OWN_FAULT_DIR = os.environ["SEEDR1_TEST_FAULT_DIR"]
else:
    _OWN_FAULT_DIR = None

# torch 2.14 (the test extra's pin, for torchvision) segfaults when torch._dynamo or torchvision is first imported
# after tensorflow in the same process (`import tensorflow; import torchvision` -> SIGSEGV, measured); transformers
# imports both lazily, so load them before any test module can import tensorflow.
import jax  # noqa: E402
import pytest  # noqa: E402
import torch._dynamo  # noqa: E402, F401
import torchvision  # noqa: E402, F401

jax.config.update("jax_threefry_partitionable", True)


def pytest_collection_modifyitems(config, items):
    """Modules with a test marked slow (minutes each) run first, in their own order: with several xdist workers,
    the long tests start at once instead of ending the run on one worker while the others idle. Each module's tests
    stay together, so its module fixtures are made once."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow)


@pytest.fixture(scope="session")
def smoke_base_cache(tmp_path_factory):
    """A SEEDR1_CACHE folder holding the smoke toy base (`toy_base.build(size="smoke")`), built once per test run
    and shared by the tests that need one (under pytest-xdist, by every worker: the first builds it under a
    lock, the others wait and find it built)."""
    from filelock import FileLock

    from seedr1_jax.analysis import toy_base

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    cache = root / "smoke_base_cache"
    with FileLock(str(root / "smoke_base_cache.lock")), pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEEDR1_CACHE", str(cache))
        toy_base.build(size="smoke")
    return str(cache)


_FAULT_FILE = None


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """In an xdist worker, send faulthandler's dump (after pytest's own faulthandler set it to stderr) to a file."""
    global _FAULT_FILE
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        _FAULT_FILE = open(os.path.join(os.environ["SEEDR1_TEST_FAULT_DIR"], f"{worker}-{os.getpid()}.txt"), "w")
        faulthandler.enable(file=_FAULT_FILE, all_threads=True)


def crash_report(dump: str, frames: int = 14) -> list[str]:
    """The lines of a faulthandler dump worth reading in a short log: the error line and the crashing thread's
    innermost `frames` frames (faulthandler prints the current thread among all threads, innermost frame first)."""
    lines = dump.splitlines()
    head = [x for x in lines if x.startswith("Fatal Python error")][:1]
    start = next((i for i, x in enumerate(lines) if x.startswith("Current thread")), None)
    if start is None:
        return head + lines[:frames]
    body = []
    for x in lines[start + 1 :]:
        if not x.startswith("  "):
            break
        body.append(x)
    return head + [lines[start]] + body[:frames]


_RETRIED = set()


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    """A test whose xdist worker died of a fatal signal runs once more, first, on the fresh worker that replaces
    it; a second crash fails the run. Seen once in CI (2026-12-07): a worker segfaulted in
    test_grpo_smoke_on_2x2x2_mesh after ~40 minutes of other tests, a test that passes alone; the dump was cut to
    its outermost frames. The summary reprints each crash's top frames whether or not its retry passed."""
    if crashitem not in _RETRIED:
        _RETRIED.add(crashitem)
        sched.mark_test_pending(crashitem)
        report.outcome = "rerun"


def pytest_report_teststatus(report, config):
    if report.outcome == "rerun":
        return "rerun", "R", ("RERUN", {"yellow": True})


def pytest_terminal_summary(terminalreporter):
    """Reprint the top of each crashed worker's faulthandler dump (empty files: no worker crashed)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for path in sorted(glob.glob(os.path.join(os.environ["SEEDR1_TEST_FAULT_DIR"], "*.txt"))):
        with open(path, errors="replace") as f:
            dump = f.read()
        if dump.strip():
            name = os.path.basename(path)
            terminalreporter.write_sep("=", f"worker crash ({name}; its test reran once: RERUN above, or failed)")
            for line in crash_report(dump):
                terminalreporter.write_line(line)


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
    if _OWN_FAULT_DIR:
        shutil.rmtree(_OWN_FAULT_DIR, ignore_errors=True)
