"""Meshes over (data, fsdp, tensor), logical-axis -> mesh-axis rules, parameter/batch shardings, multi-host."""

from __future__ import annotations

import os

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH = ("data", "fsdp")  # the batch dimension of every activation and input

# logical axis -> mesh axis (or tuple of mesh axes, or None). Training: parameters and Adam state split
# over fsdp (ZeRO-3 style) and tensor. Overridable from the config (`mesh.rules`).
TRAIN_RULES: tuple[tuple[str, object], ...] = (
    ("layers", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("mlp2", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("qkv", "tensor"),
    ("patch", None),
    ("norm", None),
)
# Rollout: no fsdp split, so the 256 decode steps never all-gather weights; tensor parallel only.
ROLLOUT_RULES = tuple((k, None if v == "fsdp" else v) for k, v in TRAIN_RULES)
DEFAULT_RULES = TRAIN_RULES


def make_mesh(shape=(1, -1, 1), devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh; one entry may be -1 to take the remaining devices."""
    devices = jax.devices() if devices is None else list(devices)
    shape = [int(s) for s in shape]
    if len(shape) != 3:
        raise ValueError(f"mesh shape {shape}: give three sizes for (data, fsdp, tensor)")
    if shape.count(-1) > 1:
        raise ValueError(f"mesh shape {shape}: at most one axis may be -1")
    if -1 in shape:
        rest = int(np.prod([s for s in shape if s != -1]))
        if len(devices) % rest:
            raise ValueError(f"mesh shape {shape} does not divide {len(devices)} devices")
        shape[shape.index(-1)] = len(devices) // rest
    if int(np.prod(shape)) != len(devices):
        raise ValueError(f"mesh shape {tuple(shape)} needs {int(np.prod(shape))} devices, there are {len(devices)}")
    if devices and devices[0].platform in ("cpu", "gpu", "cuda", "tpu") and len(devices) == len(jax.devices()):
        return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3)


def logical_to_spec(axes, shape, mesh: Mesh, rules=None) -> P:
    """PartitionSpec for an array with logical `axes`; a mesh axis that does not divide its dimension,
    has size 1, or is already used by an earlier dimension is dropped (the dimension stays replicated)."""
    table = dict(DEFAULT_RULES if rules is None else rules)
    used, spec = set(), []
    for name, dim in zip(axes, shape):
        target = table.get(name) if name is not None else None
        targets = () if target is None else (target if isinstance(target, tuple) else (target,))
        keep, size = [], 1
        for t in targets:
            if t in used or mesh.shape[t] == 1 or dim % (size * mesh.shape[t]):
                continue
            keep.append(t)
            size *= mesh.shape[t]
        used.update(keep)
        spec.append(None if not keep else keep[0] if len(keep) == 1 else tuple(keep))
    return P(*spec)


def param_sharding(axes, shape, mesh: Mesh | None, rules=None):
    if mesh is None:
        return jax.sharding.SingleDeviceSharding(jax.devices()[0])
    if axes is None:
        return NamedSharding(mesh, P())
    return NamedSharding(mesh, logical_to_spec(axes, shape, mesh, rules))


def state_shardings(state, mesh: Mesh | None, rules=None):
    """Shardings for an nnx.State (e.g. `nnx.state(model)`), from each Param's logical `axes`."""

    def one(v):
        if isinstance(v, nnx.Variable):
            return v.replace(param_sharding(v.get_metadata().get("axes"), v.value.shape, mesh, rules))
        return param_sharding(None, np.shape(v), mesh, rules)

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def shard_model(model, mesh: Mesh, rules=None):
    """Places a model's parameters on `mesh` by the rules (in place); returns the model."""
    state = nnx.state(model)
    nnx.update(model, jax.device_put(state, state_shardings(state, mesh, rules)))
    return model


def batch_sharding(mesh: Mesh, shape, batch_dim: int = 0) -> NamedSharding:
    """Batch dimension over (data, fsdp), keeping only the axes that divide it (8 prompts on a 32-way fsdp
    mesh stay replicated; their 64 completions are split)."""
    axes = [None] * len(shape)
    axes[batch_dim] = "batch"
    return NamedSharding(mesh, logical_to_spec(axes, shape, mesh, (("batch", BATCH),)))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Host-local numpy batch -> global jax.Arrays sharded over (data, fsdp) on the batch dimension.

    `positions` ([3, B, T]) is batched on dimension 1; non-numeric fields stay on the host.
    Every process passes only its own rows (`jax.make_array_from_process_local_data`).
    """
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        if v.dtype.kind not in "biuf":
            out[k] = v
            continue
        bd = 1 if k == "positions" else 0
        out[k] = jax.make_array_from_process_local_data(batch_sharding(mesh, _global_shape(v.shape, bd), bd), v)
    return out


def _global_shape(local_shape, batch_dim):
    shape = list(local_shape)
    shape[batch_dim] *= jax.process_count()
    return tuple(shape)


def constrain(x, *axes):
    """Activation sharding constraint at block boundaries; a no-op outside a mesh context (`jax.set_mesh`)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    spec = []
    for a, dim in zip(axes, x.shape):
        names = () if a is None else (a if isinstance(a, tuple) else (a,))
        names = tuple(n for n in names if n in mesh.shape and mesh.shape[n] > 1)
        size = int(np.prod([mesh.shape[n] for n in names])) if names else 1
        spec.append(names if names and dim % size == 0 else None)
    return jax.lax.with_sharding_constraint(x, P(*spec))


def maybe_initialize_distributed() -> None:
    """`jax.distributed.initialize()` when this is one process of several; a no-op for a single process.

    Explicit: JAX_COORDINATOR_ADDRESS (host:port) with JAX_NUM_PROCESSES and JAX_PROCESS_ID (GPU clusters).
    Auto-detected by jax: TPU pod slices (GCE metadata), SLURM, Open MPI, Kubernetes jobs.
    """
    if jax.distributed.is_initialized():
        return
    env = os.environ
    if env.get("JAX_COORDINATOR_ADDRESS"):
        kw = {}
        if env.get("JAX_NUM_PROCESSES"):
            kw["num_processes"] = int(env["JAX_NUM_PROCESSES"])
        if env.get("JAX_PROCESS_ID"):
            kw["process_id"] = int(env["JAX_PROCESS_ID"])
        jax.distributed.initialize(env["JAX_COORDINATOR_ADDRESS"], **kw)
        return
    try:  # jax's own cluster detection (private, so guarded): TPU VMs, SLURM, Open MPI, k8s
        from jax._src import clusters

        detected = any(c.is_env_present() for c in clusters.ClusterEnv._cluster_types)
    except Exception:  # noqa: BLE001
        detected = False
    if detected:
        jax.distributed.initialize()
