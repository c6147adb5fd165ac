"""The jax platform choice made before any backend starts."""

from __future__ import annotations

import os


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
