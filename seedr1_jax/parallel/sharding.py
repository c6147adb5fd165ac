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


def rollout_rules(rules):
    """The rollout rules of training `rules`: fsdp dropped, so decoding never all-gathers weights."""
    return tuple((k, None if v == "fsdp" else v) for k, v in rules)


ROLLOUT_RULES = rollout_rules(TRAIN_RULES)
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


class ShardingError(ValueError):
    """A sharding rule that does not fit a parameter (unknown logical axis, mesh axis not dividing)."""


def logical_to_spec(axes, shape, mesh: Mesh, rules=None, *, strict: bool = False, name: str = "array") -> P:
    """PartitionSpec for an array with logical `axes` under `rules` (logical name -> mesh axis/axes/None).

    A mesh axis of size 1, or one already used by an earlier dimension, is skipped. An unknown logical name
    is always an error (a typo in `mesh.rules` would otherwise replicate the weights silently). A mesh axis
    that does not divide its dimension is an error when `strict` (parameters), else the dimension stays
    replicated (batches: 8 prompts on a 32-way mesh).
    """
    table = dict(DEFAULT_RULES if rules is None else rules)
    used, spec = set(), []
    for logical, dim in zip(axes, shape):
        if logical is not None and logical not in table:
            raise ShardingError(
                f"{name}: logical axis {logical!r} has no rule in mesh.rules {sorted(table)}; add "
                f"('{logical}', None) to replicate it or map it to a mesh axis"
            )
        target = table.get(logical) if logical is not None else None
        targets = () if target is None else (target if isinstance(target, tuple) else (target,))
        keep, size = [], 1
        for t in targets:
            if t not in mesh.shape:
                raise ShardingError(f"rule ({logical!r}, {target!r}): {t!r} is not a mesh axis {tuple(mesh.shape)}")
            if t in used or mesh.shape[t] == 1:
                continue
            if dim % (size * mesh.shape[t]):
                if strict:
                    raise ShardingError(
                        f"{name}: dimension {logical!r} of size {dim} is not divisible by mesh axis {t!r} "
                        f"(size {mesh.shape[t]}) under rule ({logical!r}, {target!r}); change mesh.shape or the "
                        "rule, or set mesh.allow_uneven=True to leave it replicated"
                    )
                continue
            keep.append(t)
            size *= mesh.shape[t]
        used.update(keep)
        spec.append(None if not keep else keep[0] if len(keep) == 1 else tuple(keep))
    return P(*spec)


def param_sharding(axes, shape, mesh: Mesh | None, rules=None, *, strict: bool = False, name: str = "parameter"):
    if mesh is None:
        return jax.sharding.SingleDeviceSharding(jax.devices()[0])
    if axes is None:
        return NamedSharding(mesh, P())
    return NamedSharding(mesh, logical_to_spec(axes, shape, mesh, rules, strict=strict, name=name))


def state_shardings(state, mesh: Mesh | None, rules=None, *, allow_uneven: bool = False):
    """Shardings for an nnx.State (e.g. `nnx.state(model)`), from each Param's logical `axes`.

    Strict unless `allow_uneven`: a rule whose mesh axis does not divide a parameter's dimension raises
    `ShardingError` naming the parameter, instead of silently replicating it.
    """

    def one(path, v):
        name = "/".join(str(getattr(p, "key", p)) for p in path)
        if isinstance(v, nnx.Variable):
            axes = v.get_metadata().get("axes")
            return v.replace(param_sharding(axes, v.value.shape, mesh, rules, strict=not allow_uneven, name=name))
        return param_sharding(None, np.shape(v), mesh, rules)

    return jax.tree_util.tree_map_with_path(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def replicated_fraction(state, mesh: Mesh, rules=None) -> float:
    """Fraction of the parameters (by element count) that `rules` leave fully replicated on `mesh`."""
    is_var = lambda x: isinstance(x, nnx.Variable)  # noqa: E731
    shardings = jax.tree.leaves(state_shardings(state, mesh, rules), is_leaf=is_var)
    total = repl = 0
    for v, sh in zip(jax.tree.leaves(state, is_leaf=is_var), shardings):
        n = int(np.prod(v.value.shape if is_var(v) else np.shape(v)))
        spec = (sh.value if is_var(sh) else sh).spec
        total += n
        repl += n if all(p is None for p in spec) else 0
    return repl / max(total, 1)


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


def shard_batch(batch: dict, mesh: Mesh | None) -> dict:
    """Host-local numpy batch -> global jax.Arrays sharded over (data, fsdp) on the batch dimension.

    `positions` ([3, B, T]) is batched on dimension 1; non-numeric fields stay on the host.
    Every process passes only its own rows (`jax.make_array_from_process_local_data`); with several processes the
    vision segments each process's batch kept are first padded to the most any process kept (`agree_segments`).
    """
    if mesh is not None and jax.process_count() > 1:
        batch = agree_segments(batch)
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        if v.dtype.kind not in "biuf":
            out[k] = v
            continue
        if mesh is None:  # single device, no mesh: plain device arrays
            out[k] = jax.numpy.asarray(v)
            continue
        bd = batch_dim(k)
        out[k] = jax.make_array_from_process_local_data(batch_sharding(mesh, _global_shape(v.shape, bd), bd), v)
    return out


# fields whose dimension 1 counts vision segments: the input pipeline keeps only the segments a batch's rows use,
# so two processes' batches can differ there; padded with zeros (pixels) or the shared patch layout (hw_pos)
SEGMENT_FIELDS = {"pixels": "constant", "hw_pos": "edge"}


def agree_segments(batch: dict) -> dict:
    """Pads this process's segment fields to the most segments any process's batch has (one all-gather of a
    number); the padded segments are encoded and never read, as in a one-process batch with a longer clip."""
    from jax.experimental import multihost_utils

    here = [np.asarray(batch[k]).shape[1] for k in SEGMENT_FIELDS if k in batch]
    if not here:
        return batch
    most = int(np.max(multihost_utils.process_allgather(np.int32(max(here)))))
    out = dict(batch)
    for k, mode in SEGMENT_FIELDS.items():
        if k in out and np.asarray(out[k]).shape[1] < most:
            v = np.asarray(out[k])
            out[k] = np.pad(v, [(0, 0), (0, most - v.shape[1])] + [(0, 0)] * (v.ndim - 2), mode=mode)
    return out


def to_host(x) -> np.ndarray:
    """A (global) array's whole value on every process: an all-gather when it spans several processes."""
    if jax.process_count() == 1 or not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def gather_rows(x: np.ndarray) -> np.ndarray:
    """Every process's host rows, concatenated in process order (this process's own with one process)."""
    if jax.process_count() == 1:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray(x), tiled=True))


def local_rows(n: int) -> slice:
    """This process's rows of a global batch of n rows: the rows its own data gave (`shard_batch` lays the
    processes' rows out in process order)."""
    pi, pc = jax.process_index(), jax.process_count()
    return slice(n * pi // pc, n * (pi + 1) // pc)


def take_rows(batch: dict, rows: slice) -> dict:
    """The `rows` of every field of a host batch, along each field's batch dimension (`batch_dim`)."""
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        out[k] = v[(slice(None),) * batch_dim(k) + (rows,)] if v.ndim > batch_dim(k) else v
    return out


def batch_dim(field: str) -> int:
    """The batch dimension of a batch field: 1 for `positions` ([3, B, T], the model's M-RoPE layout), else 0."""
    return 1 if field == "positions" else 0


def _global_shape(local_shape, dim):
    shape = list(local_shape)
    shape[dim] *= jax.process_count()
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
