"""Meshes over (data, fsdp, tensor), logical-axis -> mesh-axis rules, and parameter shardings."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axis (or tuple of mesh axes, or None). One small table, overridable from the config.
DEFAULT_RULES: tuple[tuple[str, object], ...] = (
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
    ("batch", ("data", "fsdp")),
)


def make_mesh(shape=(1, -1, 1), devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh; one entry may be -1 to take the remaining devices."""
    devices = jax.devices() if devices is None else devices
    shape = list(shape)
    if shape.count(-1) > 1:
        raise ValueError(f"mesh shape {shape}: at most one axis may be -1")
    if -1 in shape:
        rest = int(np.prod([s for s in shape if s != -1]))
        if len(devices) % rest:
            raise ValueError(f"mesh shape {shape} does not divide {len(devices)} devices")
        shape[shape.index(-1)] = len(devices) // rest
    if int(np.prod(shape)) != len(devices):
        raise ValueError(f"mesh shape {tuple(shape)} needs {int(np.prod(shape))} devices, there are {len(devices)}")
    return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices)


def logical_to_spec(axes, shape, mesh: Mesh, rules=None) -> P:
    """PartitionSpec for a parameter; a mesh axis that does not divide its dimension (or is reused) is dropped."""
    table = dict(DEFAULT_RULES if rules is None else rules)
    used, spec = set(), []
    for name, dim in zip(axes, shape):
        target = table.get(name)
        targets = () if target is None else (target if isinstance(target, tuple) else (target,))
        keep = []
        for t in targets:
            size = mesh.shape[t]
            if t in used or size == 1 or dim % (size * int(np.prod([mesh.shape[k] for k in keep] or [1]))):
                continue
            keep.append(t)
        used.update(keep)
        spec.append(None if not keep else keep[0] if len(keep) == 1 else tuple(keep))
    return P(*spec)


def param_sharding(axes, shape, mesh: Mesh | None, rules=None):
    if mesh is None:
        return jax.sharding.SingleDeviceSharding(jax.devices()[0])
    if axes is None:
        return NamedSharding(mesh, P())
    return NamedSharding(mesh, logical_to_spec(axes, shape, mesh, rules))
