"""Test setup: 8 fake CPU devices (before jax is imported), offline HF, shared tiny-model fixtures."""

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


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
