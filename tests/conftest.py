"""Test setup: 8 fake CPU devices (before jax is imported), offline HF, shared tiny-model fixtures."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ["HF_HUB_OFFLINE"] = "1"
# libtpu (installed for the AOT tests) must not grab the machine as a TPU host: tests run on CPU, and
# several test processes may load libtpu at once for topology compiles.
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# torch 2.14 (the test extra's pin, for torchvision) segfaults when torch._dynamo or torchvision is first imported
# after tensorflow in the same process (`import tensorflow; import torchvision` -> SIGSEGV, measured); transformers
# imports both lazily, so load them before any test module can import tensorflow.
import jax  # noqa: E402
import torch._dynamo  # noqa: E402, F401
import torchvision  # noqa: E402, F401

jax.config.update("jax_threefry_partitionable", True)
