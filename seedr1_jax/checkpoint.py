"""Orbax checkpoints: model parameters (import-hf / export-hf) and, for training, the whole train state."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from . import fs
from .config import ConfigError, ModelConfig, TextConfig, VisionConfig

MODEL_JSON = "model.json"


def config_to_dict(cfg: ModelConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict) -> ModelConfig:
    d = dict(d)
    vision = VisionConfig(**d.pop("vision"))
    text = dict(d.pop("text"))
    text["mrope_section"] = tuple(text["mrope_section"])
    return ModelConfig(vision=vision, text=TextConfig(**text), **d)


def write_model_json(directory: str, model) -> None:
    if jax.process_index() == 0:
        fs.makedirs(directory)
        text = json.dumps({"config": config_to_dict(model.cfg), "hf_config": model.hf_config}, indent=2)
        fs.write_text(os.path.join(directory, MODEL_JSON), text)


def read_model_json(directory: str) -> tuple[ModelConfig, dict | None]:
    path = os.path.join(directory, MODEL_JSON)
    if not fs.exists(path):
        raise ConfigError(f"{path} not found: pass a folder written by `seedr1 import-hf` or `seedr1 train`")
    d = json.loads(fs.read_text(path))
    return config_from_dict(d["config"]), d.get("hf_config")


def save_params(directory: str, model) -> None:
    """Writes `directory/params` (orbax) and `directory/model.json` (architecture + original HF config)."""
    directory = fs.absolute(directory)
    write_model_json(directory, model)
    state = nnx.state(model, nnx.Param).to_pure_dict()
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(os.path.join(directory, "params"), state, force=True)
    ckptr.wait_until_finished()


def load_params(directory: str, mesh=None, rules=None, dtype=None):
    """The model saved by `save_params` (or the params of a train checkpoint), optionally sharded over `mesh`."""
    from . import sharding
    from .qwen2_vl import abstract_model, with_dtypes

    directory = fs.absolute(directory)
    cfg, hf_config = read_model_json(directory)
    if dtype is not None:
        cfg = with_dtypes(cfg, dtype)
    params_dir = _params_dir(directory)
    abstract = abstract_model(cfg)
    graphdef, state = nnx.split(abstract)
    target = jax.tree.map(
        lambda v: jax.ShapeDtypeStruct(
            v.value.shape,
            v.value.dtype,
            sharding=sharding.param_sharding(v.get_metadata().get("axes"), v.value.shape, mesh, rules),
        ),
        nnx.state(abstract, nnx.Param),
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )
    restored = ocp.StandardCheckpointer().restore(params_dir, target.to_pure_dict())
    nnx.replace_by_pure_dict(state, restored)
    model = nnx.merge(graphdef, state)
    model.hf_config = hf_config
    return model


def _params_dir(directory: str) -> str:
    if fs.isdir(os.path.join(directory, "params")):
        return os.path.join(directory, "params")
    steps = latest_step_dir(directory)
    if steps is not None and fs.isdir(os.path.join(steps, "params")):
        return os.path.join(steps, "params")
    raise ConfigError(f"{directory}: no params checkpoint found (expected {directory}/params or checkpoints/<step>)")


def latest_step_dir(workdir: str) -> str | None:
    ck = os.path.join(workdir, "checkpoints")
    steps = sorted(int(s) for s in fs.listdir(ck) if s.isdigit())
    return os.path.join(ck, str(steps[-1])) if steps else None


def import_hf(hf_dir: str, out: str, dtype=None) -> int:
    from .qwen2_vl import Qwen2VL, param_count

    t0 = time.time()
    model = Qwen2VL.from_pretrained(hf_dir, dtype=dtype)
    save_params(out, model)
    print(
        f"imported {hf_dir} -> {out}: {param_count(model) / 1e6:.1f}M parameters, "
        f"{model.cfg.param_dtype}, {time.time() - t0:.1f}s"
    )
    return 0


def export_hf(ckpt: str, out: str, dtype=None) -> int:
    t0 = time.time()
    model = load_params(ckpt)
    model.save_pretrained(out, dtype=dtype)
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    print(f"exported {ckpt} -> {out}: {n / 1e6:.1f}M parameters, {time.time() - t0:.1f}s")
    return 0
