"""The jax platform choice made before any backend starts."""

from __future__ import annotations

import os


def cache_dir() -> str:
    """What seedr1 keeps between runs (toy bases, compiled programs): $SEEDR1_CACHE, else ~/.cache/seedr1."""
    return os.environ.get("SEEDR1_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "seedr1")


def persistent_compile_cache() -> None:
    """Keeps XLA's compiled programs across `seedr1` runs (jax's persistent cache) in cache_dir()/xla unless
    JAX_COMPILATION_CACHE_DIR is set (to an empty value: off): every run of a study cell, demo or train compiles the
    same programs again otherwise. Call before the first compilation."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        import jax

        jax.config.update("jax_compilation_cache_dir", os.path.join(cache_dir(), "xla"))


def skip_tpu_probe_without_tpu() -> None:
    """With libtpu installed but no TPU chip attached, keep jax from starting its TPU backend.

    Otherwise libtpu probes the cloud metadata server and prints `E0000 ... INVALID_ARGUMENT` errors on every
    start. The check is jax's own (Google TPU devices on the PCI bus). The 'tpu' registration stays (lowering
    rules are registered per known platform) but its factory fails quietly, as jax does for an absent backend;
    every other backend (CUDA, ROCm, CPU) is chosen as usual. No-op when JAX_PLATFORMS is set or backends exist.
    """
    if os.environ.get("JAX_PLATFORMS") or os.environ.get("JAX_FORCE_TPU_INIT"):
        return
    try:
        import dataclasses

        from jax._src import hardware_utils, xla_bridge

        reg = xla_bridge._backend_factories.get("tpu")
        if reg is None or xla_bridge._backends or hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0:
            return

        def no_tpu():
            raise RuntimeError("no TPU chip attached to this machine")

        xla_bridge._backend_factories["tpu"] = dataclasses.replace(reg, factory=no_tpu, fail_quietly=True)
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # `seedr1 aot` loads libtpu for topologies
    except (ImportError, AttributeError, TypeError):  # another jax layout: keep jax's default behaviour
        return


# ---- config values -------------------------------------------------------------------------------
