"""Hugging Face <-> seedr1-jax weights: the family's name table applied, tensor-by-tensor sharded loading,
bit-exact export.

Loading reads safetensors through a memory map (ranged reads for gs://, via `fs`) and builds each parameter with
`jax.make_array_from_callback`, so every device receives only its shard and the host never holds more
than one (stacked) tensor at a time.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

from seedr1_jax.core import fs
from seedr1_jax.models.config import (
    ConfigError,
    ModelConfig,
    from_hf_config,
    read_hf_config,
    to_hf_config,
    with_dtypes,
)
from seedr1_jax.parallel import sharding

_ST_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


# ---- safetensors (memory-mapped reader, plain writer; bf16 via ml_dtypes) --------------------------
class SafetensorsFile:
    """One safetensors file: the header at open, tensors on demand (a memory map locally; ranged reads through
    `fs` for gs://). A file shorter than its header says (an interrupted download) is a ConfigError."""

    def __init__(self, path: str):
        self.path = path
        try:
            with fs.open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            total = fs.size(path)
        except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            raise ConfigError(f"{path}: not a readable safetensors file ({e}); re-download it") from None
        header.pop("__metadata__", None)
        self.header = header
        self._base = 8 + n
        need = self._base + max((int(v["data_offsets"][1]) for v in header.values()), default=0)
        if total < need:
            raise ConfigError(
                f"{path}: truncated safetensors file ({total} bytes, its header needs {need}); re-download it"
            )
        self._mm = None if fs.remote(path) else np.memmap(path, np.uint8, mode="r")

    def keys(self):
        return self.header.keys()

    def get(self, name: str) -> np.ndarray:
        info = self.header[name]
        start, end = info["data_offsets"]
        dt = np.dtype(_ST_DTYPES[info["dtype"]])
        if self._mm is not None:
            raw = self._mm[self._base + start : self._base + end]
        else:
            with fs.open(self.path, "rb") as f:
                f.seek(self._base + start)
                raw = np.frombuffer(f.read(end - start), np.uint8)
        return raw.view(dt).reshape(info["shape"])


def write_safetensors(path: str, tensors: dict[str, np.ndarray]) -> None:
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, arr in tensors.items():
        nbytes = arr.nbytes
        header[name] = {
            "dtype": _ST_NAMES[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for arr in tensors.values():
            f.write(np.ascontiguousarray(arr).tobytes())
    os.replace(tmp, path)


def hub_name(name: str) -> str:
    """transformers-5 in-memory names -> hub names (the names we read and write)."""
    name = re.sub(r"^model\.visual\.", "visual.", name)
    return re.sub(r"^model\.language_model\.", "model.", name)


def _to_ours(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "linear":
        return x.T
    if kind == "conv":
        return x.reshape(x.shape[0], -1).T
    return x


def _to_hf(kind: str, x: np.ndarray, hf_shape) -> np.ndarray:
    if kind == "linear":
        return x.T
    if kind == "conv":
        return x.T.reshape(hf_shape)
    return x


def _hf_shape(kind: str, ours_shape, cfg: ModelConfig):
    if kind == "linear":
        return tuple(ours_shape[::-1])
    if kind == "conv":
        v = cfg.vision
        return (v.embed_dim, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size)
    return tuple(ours_shape)


# ---- loading ------------------------------------------------------------------------------------
def _open_checkpoint(hf_dir: str) -> dict[str, SafetensorsFile]:
    """name -> open file, over a single or index-sharded safetensors checkpoint (local or gs://)."""
    index = fs.join(hf_dir, "model.safetensors.index.json")
    if fs.exists(index):
        weight_map = json.loads(fs.read_text(index))["weight_map"]
        files = {fn: None for fn in weight_map.values()}
    else:
        files = {fn: None for fn in fs.listdir(hf_dir) if fn.endswith(".safetensors")}
        if not files:
            raise ConfigError(f"{hf_dir}: no *.safetensors files (only safetensors checkpoints are supported)")
    names: dict[str, SafetensorsFile] = {}
    for fn in files:
        path = fs.join(hf_dir, fn)
        if not fs.exists(path):
            raise ConfigError(f"{path} is listed in model.safetensors.index.json but missing; re-download it")
        st = SafetensorsFile(path)
        for k in st.keys():
            names[hub_name(k)] = st
    return names


def _path_key(path) -> str:
    return ".".join(str(getattr(p, "key", p)) for p in path)


def load_hf(model_cls, hf_dir: str, dtype=None, mesh=None, rules=None, **overrides):
    """`model_cls` (a family's model class: `model_cls(cfg, rngs=)` and `model_cls.hf_table(cfg)`) from a HF
    folder; `dtype` sets parameter and compute dtype (default: the checkpoint's)."""
    hf_cfg = read_hf_config(hf_dir)
    cfg = from_hf_config(hf_cfg, source=fs.join(hf_dir, "config.json"))
    cfg = with_dtypes(cfg, dtype or cfg.hf_dtype).replace(**overrides)
    names = _open_checkpoint(hf_dir)
    abstract = nnx.eval_shape(lambda: model_cls(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    flat = dict(nnx.to_flat_state(state))
    by_path = {_path_key(k): k for k in flat}

    expected = set()
    loaded = {}
    for hf_t, ours, kind in model_cls.hf_table(cfg):
        key = by_path[ours]
        var = flat[key]
        shape, target = var.value.shape, var.value.dtype
        stacked = "{i}" in hf_t
        # looked up by hub name: a family's table may use transformers-5 names (Qwen3-VL's checkpoints do)
        hf_names = [hub_name(hf_t.format(i=i)) for i in range(shape[0])] if stacked else [hub_name(hf_t)]
        per_shape = _hf_shape(kind, shape[1:] if stacked else shape, cfg)
        for n in hf_names:
            expected.add(n)
            if n not in names:
                raise ConfigError(f"{hf_dir}: tensor {n} is missing (expected shape {list(per_shape)})")
            got = tuple(names[n].header[n]["shape"]) if n in names[n].header else None
            if got is None:  # stored under a transformers-5 name
                got = _stored_shape(names[n], n)
            stored = names[n].header.get(n, {}).get("dtype", "F32")
            if stored not in ("F32", "F16", "BF16", "F64"):
                raise ConfigError(
                    f"{names[n].path}: tensor {n} has dtype {np.dtype(_ST_DTYPES[stored]).name}, "
                    "expected a floating point type (float32, bfloat16, float16)"
                )
            if got != per_shape:
                raise ConfigError(
                    f"{names[n].path}: tensor {n} has shape {list(got)}, config.json implies {list(per_shape)}"
                )
        sh = sharding.param_sharding(var.get_metadata().get("axes"), shape, mesh, rules)
        loaded[key] = _build_array(names, hf_names, kind, stacked, shape, target, sh)
    unexpected = sorted(n for n in names if n not in expected)
    if unexpected:
        raise ConfigError(
            f"{hf_dir}: unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}; "
            "is this a Qwen2-VL checkpoint whose config.json matches its weights?"
        )
    for key, arr in loaded.items():
        flat[key].value = arr
    model = nnx.merge(graphdef, nnx.from_flat_state(flat))
    model.hf_config = hf_cfg
    model.hf_files = fs.absolute(hf_dir)  # tokenizer/processor/generation files, re-emitted on export
    assert isinstance(model, model_cls)
    return model


def _stored_shape(st: SafetensorsFile, hub: str):
    for k, info in st.header.items():
        if hub_name(k) == hub:
            return tuple(info["shape"])
    raise KeyError(hub)


def _read(names, n):
    st = names[n]
    if n in st.header:
        return st.get(n)
    for k in st.header:
        if hub_name(k) == n:
            return st.get(k)
    raise KeyError(n)


def _build_array(names, hf_names, kind, stacked, shape, dtype, sharding) -> jax.Array:
    def fetch(index) -> np.ndarray:
        index = tuple(index) + (slice(None),) * (len(shape) - len(index))
        if stacked:
            layers = range(*index[0].indices(shape[0]))
            parts = [_to_ours(kind, _read(names, hf_names[i]))[index[1:]] for i in layers]
            return np.stack(parts).astype(dtype)
        return np.asarray(_to_ours(kind, _read(names, hf_names[0]))[index]).astype(dtype)

    return jax.make_array_from_callback(shape, sharding, fetch)


# ---- export -------------------------------------------------------------------------------------
def hf_tensors(model, dtype=None) -> Iterator[tuple[str, np.ndarray]]:
    """(hub name, numpy tensor) pairs in table order, one stacked parameter fetched at a time."""
    cfg: ModelConfig = model.cfg
    out_dt = np.dtype(jnp.dtype(dtype or cfg.hf_dtype))
    flat = {_path_key(k): v for k, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    for hf_t, ours, kind in type(model).hf_table(cfg):
        value = np.asarray(jax.device_get(flat[ours].value))
        if "{i}" in hf_t:
            for i in range(value.shape[0]):
                x = value[i]
                yield hf_t.format(i=i), _to_hf(kind, x, _hf_shape(kind, x.shape, cfg)).astype(out_dt)
        else:
            yield hf_t, _to_hf(kind, value, _hf_shape(kind, value.shape, cfg)).astype(out_dt)


def save_hf(model, out_dir: str, dtype=None, max_shard_bytes: int = 5 * 2**30) -> None:
    """Writes config.json, safetensors shards (+ index when more than one) with hub tensor names, and the
    tokenizer, chat template, processor and generation configs (the imported folder's, else the bundled ones:
    `hf_extras.write_extras`)."""
    from seedr1_jax.models.hf_extras import write_extras

    if model.cfg.text.vocab_ids:
        raise ConfigError(
            f"export to {out_dir}: this model holds a {len(model.cfg.text.vocab_ids)}-token vocabulary subset "
            "(text.vocab_ids, models/vocab.py); a Hugging Face Qwen-VL checkpoint scores the whole vocabulary, so "
            "it has no HF form: export a model built with the full vocabulary"
        )
    if jax.process_index() != 0:
        return
    if fs.remote(out_dir) and fs.isdir(out_dir):  # the staged upload below adds files; drop stale shards first
        for old in fs.listdir(out_dir):
            if old.endswith(".safetensors") or old == "model.safetensors.index.json":
                fs.remove(fs.join(out_dir, old))
    with fs.staged_dir(out_dir) as local:  # gs://: written locally, uploaded when complete
        _save_hf_local(model, local, dtype, max_shard_bytes, write_extras)


def _save_hf_local(model, out_dir: str, dtype, max_shard_bytes: int, write_extras) -> None:
    os.makedirs(out_dir, exist_ok=True)
    cfg: ModelConfig = model.cfg
    hf_dtype = jnp.dtype(dtype or cfg.hf_dtype).name
    config = to_hf_config(cfg.replace(hf_dtype=hf_dtype), base=model.hf_config)
    for old in os.listdir(out_dir):
        if old.endswith(".safetensors") or old == "model.safetensors.index.json":
            os.remove(os.path.join(out_dir, old))
    # Shards are written as soon as they fill (host memory stays at one shard) and named at the end.
    parts, cur, size, weight_map, total = [], {}, 0, {}, 0

    def flush():
        path = os.path.join(out_dir, f"part-{len(parts):05d}.safetensors.tmp")
        write_safetensors(path, cur)
        parts.append((path, list(cur)))

    for name, arr in hf_tensors(model, hf_dtype):
        if cur and size + arr.nbytes > max_shard_bytes:
            flush()
            cur, size = {}, 0
        cur[name] = np.ascontiguousarray(arr)
        size += arr.nbytes
        total += arr.nbytes
    flush()
    for k, (path, names) in enumerate(parts):
        fn = "model.safetensors" if len(parts) == 1 else f"model-{k + 1:05d}-of-{len(parts):05d}.safetensors"
        os.replace(path, os.path.join(out_dir, fn))
        weight_map.update({n: fn for n in names})
    if len(parts) > 1:
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_extras(out_dir, getattr(model, "hf_files", None), cfg)
