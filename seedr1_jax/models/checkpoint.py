"""Weights in and out: the model named by config.model.init, orbax model parameters (import-hf / export-hf),
and train-state checkpoints (`update.TrainState`: parameters, optimizer state, metadata)."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from seedr1_jax.core import fs
from seedr1_jax.models import lora
from seedr1_jax.models.config import ConfigError, ModelConfig, TextConfig, VisionConfig

MODEL_JSON = "model.json"


def config_to_dict(cfg: ModelConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict) -> ModelConfig:
    d = dict(d)
    # JSON lists back to the tuples the frozen (hashable) dataclasses hold
    vision = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("vision").items()}
    text = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("text").items()}
    return ModelConfig(vision=VisionConfig(**vision), text=TextConfig(**text), **d)


LORA = "lora"  # model.json: a LoRA run's adapter settings and its base (checkpoints hold the adapters alone)
HF_FILES = "hf_files"  # import-hf keeps the source folder's tokenizer/processor/generation files here


def write_model_json(directory: str, model) -> None:
    """model.json: the architecture, the imported config.json, and where the imported non-weight files are."""
    if jax.process_index() == 0:
        fs.makedirs(directory)
        d = {"config": config_to_dict(model.cfg), "hf_config": model.hf_config}
        if getattr(model, "lora_json", None):
            d[LORA] = json.loads(model.lora_json)
        src = getattr(model, "hf_files", None)
        if src:  # relative when inside the checkpoint, so a moved checkpoint still finds its files
            base = fs.absolute(directory)
            local = not fs.remote(src) and not fs.remote(base)
            inside = local and os.path.commonpath([base, src]) == base
            d[HF_FILES] = os.path.relpath(src, base) if inside else src
        fs.write_text(os.path.join(directory, MODEL_JSON), json.dumps(d, indent=2))


def read_model_json(directory: str) -> tuple[ModelConfig, dict | None]:
    cfg, hf_config, _ = _read_model_json(directory)
    return cfg, hf_config


def _read_model_json(directory: str):
    """(ModelConfig, imported config.json or None, folder of the imported non-weight files or None)."""
    path = os.path.join(directory, MODEL_JSON)
    if not fs.exists(path):
        raise ConfigError(f"{path} not found: pass a folder written by `seedr1 import-hf` or `seedr1 train`")
    d = json.loads(fs.read_text(path))
    files = d.get(HF_FILES)
    if files and not fs.remote(files) and not os.path.isabs(files):
        files = os.path.join(directory, files)
    return config_from_dict(d["config"]), d.get("hf_config"), files


def save_params(directory: str, model) -> None:
    """Writes `directory/params` (orbax) and `directory/model.json` (architecture + original HF config)."""
    directory = fs.absolute(directory)
    write_model_json(directory, model)
    state = nnx.state(model, nnx.Param).to_pure_dict()
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(os.path.join(directory, "params"), state, force=True)
    ckptr.wait_until_finished()


def load_params(directory: str, mesh=None, rules=None, dtype=None, step: int | None = None):
    """The model saved by `save_params` (or the params of a train checkpoint: the latest, or `step`'s), optionally
    sharded over `mesh`."""
    from seedr1_jax.models.config import with_dtypes
    from seedr1_jax.models.families import abstract_model
    from seedr1_jax.parallel import sharding

    directory = fs.absolute(directory)
    cfg, hf_config, hf_files = _read_model_json(directory)
    if dtype is not None:
        cfg = with_dtypes(cfg, dtype)
    params_dir = _params_dir(directory, step)
    info = json.loads(fs.read_text(os.path.join(directory, MODEL_JSON))).get(LORA)
    if info:
        model = _load_lora(cfg, info, params_dir, mesh, rules)
        model.hf_config = hf_config
        model.hf_files = hf_files if hf_files and fs.isdir(hf_files) else None
        return model
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
    if hf_files and fs.isdir(hf_files):
        model.hf_files = hf_files
    elif hf_files:
        print(
            f"warning: {hf_files} (the imported tokenizer/processor files) is gone; "
            "export-hf will write the bundled ones"
        )
    return model


def _load_lora(cfg: ModelConfig, info: dict, params_dir: str, mesh, rules):
    """A LoRA run's model: its base (`info["base"]`, rebuilt as training loaded it) with the saved adapters folded
    into the kernels (`lora.merged`), a plain model that evaluates, samples and exports like any other."""
    from seedr1_jax.models.families import abstract_model

    base = info["base"]
    if not base.startswith("preset:") and not fs.exists(base):
        raise ConfigError(
            f"{params_dir}: a LoRA checkpoint whose base {base} is gone (checkpoints hold the adapters alone); "
            "put the base back at that path"
        )
    over = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype, remat_policy=cfg.remat_policy)
    model = load_init(base, dict(over, decode_unroll=cfg.decode_unroll), int(info["seed"]), mesh, rules)
    want = info.get("base_fingerprint")
    if want and lora.fingerprint(nnx.state(model, nnx.Param).to_pure_dict()) != want:
        raise ConfigError(
            f"{params_dir}: the LoRA base {base} is not the one this run trained on (its weights' fingerprint "
            f"differs from model.json's {want}); put that base back at {base}"
        )
    if info.get("base_quant"):  # the base the adapters were trained against: its kernels quantized and back
        lora.quantize_base(model, info["base_quant"], info["quant_targets"], round_trip=True)
    lora.attach(model, info["rank"], info["alpha"], info["targets"], seed=int(info["seed"]))
    adapters, frozen = lora.partition(nnx.state(model, nnx.Param).to_pure_dict())
    shaped = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))  # noqa: E731
    target = jax.tree.map(shaped, adapters)
    adapters = ocp.StandardCheckpointer().restore(params_dir, target)
    merged = lora.merged(lora.combine(adapters, frozen), float(info["alpha"]) / int(info["rank"]))
    plain = abstract_model(cfg)
    graphdef, state = nnx.split(plain)
    nnx.replace_by_pure_dict(state, jax.tree.map(lambda p, a: p.astype(a.dtype), merged, state.to_pure_dict()))
    return nnx.merge(graphdef, state)


def _params_dir(directory: str, step: int | None = None) -> str:
    if step is not None:
        path = os.path.join(directory, "checkpoints", str(step), "params")
        if not fs.isdir(path):
            raise ConfigError(f"{directory}: no checkpoint of step {step} ({path} is missing)")
        return path
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


def prune_checkpoints(workdir: str) -> None:
    """Removes every train-state checkpoint of `workdir` but the latest (the trained model stays loadable and its
    run resumable: it is finished). Local folders only (a no-op remotely)."""
    import shutil

    last = latest_step_dir(workdir)
    if fs.remote(workdir) or last is None:
        return
    ck = os.path.dirname(last)
    for s in os.listdir(ck):
        if s.isdigit() and os.path.join(ck, s) != last:
            shutil.rmtree(os.path.join(ck, s))


def import_hf(hf_dir: str, out: str, dtype=None) -> int:
    from seedr1_jax.models.families import from_pretrained
    from seedr1_jax.models.hf_extras import copy_extras
    from seedr1_jax.models.qwen2_vl.model import param_count

    t0 = time.time()
    model = from_pretrained(hf_dir, dtype=dtype)
    out = fs.absolute(out)
    kept = copy_extras(hf_dir, os.path.join(out, HF_FILES))  # tokenizer, templates, processor/generation configs
    model.hf_files = os.path.join(out, HF_FILES) if kept else None
    save_params(out, model)
    print(
        f"imported {hf_dir} -> {out}: {param_count(model) / 1e6:.1f}M parameters, "
        f"{model.cfg.param_dtype}, {len(kept)} tokenizer/processor files kept, {time.time() - t0:.1f}s"
    )
    return 0


def export_hf(ckpt: str, out: str, dtype=None, adapter_only: bool = False) -> int:
    """The checkpoint as a HF folder (a LoRA run's adapters merged into the kernels), or with `adapter_only` a
    LoRA run's adapters alone as a PEFT folder (`lora_hf`)."""
    t0 = time.time()
    if adapter_only:
        return _export_adapters(ckpt, out, dtype, t0)
    model = load_params(ckpt)
    model.save_pretrained(out, dtype=dtype)
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    src = getattr(model, "hf_files", None)
    print(
        f"exported {ckpt} -> {out}: {n / 1e6:.1f}M parameters, tokenizer/processor files "
        f"{'from ' + src if src else 'bundled (Qwen2-VL tokenizer and chat template)'}, {time.time() - t0:.1f}s"
    )
    return 0


def _export_adapters(ckpt: str, out: str, dtype, t0: float) -> int:
    from seedr1_jax.models.families import build
    from seedr1_jax.models.lora_hf import save_peft

    ckpt = fs.absolute(ckpt)
    cfg, _ = read_model_json(ckpt)
    info = json.loads(fs.read_text(os.path.join(ckpt, MODEL_JSON))).get(LORA)
    if not info:
        raise ConfigError(f"{ckpt}: --adapter-only needs a LoRA run (model.lora.rank > 0); this one has no adapters")

    def attached():
        model = build(cfg, nnx.Rngs(0))
        lora.attach(model, info["rank"], info["alpha"], info["targets"], seed=int(info["seed"]))
        return model

    abstract = nnx.eval_shape(attached)  # shapes only: the base is not read
    target, _ = lora.partition(nnx.state(abstract, nnx.Param).to_pure_dict())
    adapters = ocp.StandardCheckpointer().restore(_params_dir(ckpt), target)
    n = save_peft(
        out,
        type(abstract).hf_table(cfg),
        adapters,
        rank=info["rank"],
        alpha=info["alpha"],
        base=info["base"],
        dtype=dtype,
    )
    size = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(adapters))
    print(
        f"exported the adapters of {ckpt} -> {out} (PEFT): {n} modules, {size / 1e6:.2f}M parameters, rank "
        f"{info['rank']}, alpha {info['alpha']}, base {info['base']}, {time.time() - t0:.1f}s"
    )
    return 0


# ---- the model named by config.model.init -----------------------------------------------------------
def model_config_overrides(config) -> dict:
    """The experiment's dtype/remat choices, applied over whatever architecture model.init names."""
    m = config.model
    return dict(
        dtype=m.dtype,
        param_dtype=m.param_dtype,
        remat_policy=m.remat_policy,
        decode_unroll=decode_unroll(m.get("decode_unroll", "auto")),
    )


def decode_unroll(value) -> bool:
    """config.model.decode_unroll: "on", "off", or "auto" = on where jax's default backend is a GPU (XLA:GPU copies
    every layer's weight and cache slice out of the stacked arrays on each decoded token; XLA:TPU does not)."""
    v = str(value).lower()
    if v == "auto":
        return jax.default_backend() == "gpu"
    return v in ("on", "true")


def model_config(config) -> ModelConfig:
    """The architecture named by config.model.init (config.json / model.json / preset; no weights read)."""
    from seedr1_jax.models.config import from_hf_config, preset, read_hf_config

    init = config.model.init
    if init.startswith("preset:"):
        cfg = preset(init.split(":", 1)[1])
    elif fs.exists(os.path.join(init, "config.json")):
        cfg = from_hf_config(read_hf_config(init))
    else:
        cfg = read_model_json(init)[0]
    return cfg.replace(**model_config_overrides(config)).validate()


def load_model(config, mesh, rules):
    """The policy from `config.model.init`: an HF folder, one of our checkpoints, or a preset (random init); with
    `model.lora.rank` > 0, with LoRA adapters on `model.lora.targets` (`models.lora`; `model.lora_json` records
    what `load_params` needs to rebuild the base)."""
    model = load_init(config.model.init, model_config_overrides(config), config.train.seed, mesh, rules)
    if not lora.enabled(config):
        return model
    lc = config.model.lora
    base_print = lora.fingerprint(nnx.state(model, nnx.Param).to_pure_dict())
    lora.attach(model, lc.rank, lc.alpha, lc.targets, seed=config.train.seed)
    init = config.model.init
    info = dict(
        rank=int(lc.rank),
        alpha=float(lc.alpha),
        targets=str(lc.targets),
        base=init if init.startswith("preset:") else fs.absolute(init),
        seed=int(config.train.seed),  # a preset base is its random init from this seed
        base_fingerprint=base_print,  # `lora.fingerprint` of the base as loaded: load_params checks it
    )
    if lc.get("base_quant"):  # QLoRA: the frozen decoder kernels become codes + scales
        info.update(base_quant=str(lc.base_quant), quant_targets=str(lc.get("quant_targets", lora.QUANT_TARGETS)))
        lora.quantize_base(model, info["base_quant"], info["quant_targets"])
    model.lora_json = json.dumps(info, sort_keys=True)  # a string: graphdefs must hash
    return model


def load_init(init: str, over: dict, seed: int, mesh, rules):
    """The model `model.init` names, with the config overrides `over` (dtypes, remat)."""
    from seedr1_jax.models.config import preset
    from seedr1_jax.models.families import from_pretrained

    if init.startswith("preset:"):
        cfg = preset(init.split(":", 1)[1]).replace(**over).validate()
        return init_random(cfg, mesh, rules, seed=seed)
    if fs.exists(os.path.join(init, "config.json")):
        return from_pretrained(init, mesh=mesh, rules=rules, **over)
    if fs.exists(os.path.join(init, MODEL_JSON)):
        model = load_params(init, mesh=mesh, rules=rules)
        model.cfg = model.cfg.replace(**over)
        return _rebuild(model)
    raise ConfigError(
        f"model.init={init!r}: expected an HF Qwen2-VL folder (config.json), a folder from `seedr1 import-hf` "
        "(model.json), or 'preset:qwen2_vl_7b'"
    )


def _rebuild(model):
    """Re-creates a model after its config changed (dtypes/remat are read at construction)."""
    from seedr1_jax.models.families import abstract_model

    params = nnx.state(model, nnx.Param).to_pure_dict()
    new = abstract_model(model.cfg)
    gd, st = nnx.split(new)
    nnx.replace_by_pure_dict(st, jax.tree.map(lambda p, a: p.astype(a.dtype), params, st.to_pure_dict()))
    out = nnx.merge(gd, st)
    out.hf_config = model.hf_config
    out.hf_files = getattr(model, "hf_files", None)  # imported tokenizer/processor files, for export-hf
    return out


def init_random(cfg: ModelConfig, mesh, rules, seed=0):
    """Random init straight into sharded arrays (jit with out_shardings: no host copy of the weights)."""
    from seedr1_jax.models.families import build
    from seedr1_jax.parallel import sharding

    abstract = nnx.eval_shape(lambda: build(cfg, nnx.Rngs(seed)))
    shardings = sharding.state_shardings(nnx.state(abstract), mesh, rules) if mesh is not None else None

    def make():
        return nnx.state(build(cfg, nnx.Rngs(seed)))

    state = jax.jit(make, out_shardings=shardings)()  # shardings is None without a mesh
    return nnx.merge(nnx.graphdef(abstract), state)


# ---- train-state checkpoints (update.TrainState + JSON metadata) ------------------------------------
def checkpoint_manager(workdir: str, keep: int):
    path = os.path.join(fs.absolute(workdir), "checkpoints")
    return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def save_state(mngr, step: int, state, meta: dict) -> None:
    """Saves an `update.TrainState` at `step` (async; `mngr.wait_until_finished()` before exiting)."""
    ref = {"ref": ocp.args.StandardSave(state.ref)} if state.ref else {}  # the moving-average reference, if any
    mngr.save(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(state.params),
            opt_state=ocp.args.StandardSave(state.opt_state),
            meta=ocp.args.JsonSave(meta),
            **ref,
        ),
    )


def restore_state(mngr, step: int, target):
    """The TrainState saved at `step`, restored straight into `target`'s shardings (ShapeDtypeStructs or
    arrays); returns (state, meta)."""
    abstract = lambda t: jax.tree.map(  # noqa: E731
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), t
    )
    ref = {"ref": ocp.args.StandardRestore(abstract(target.ref))} if target.ref else {}
    if target.ref and not fs.exists(os.path.join(str(mngr.directory), str(step), "ref")):
        raise ConfigError(
            f"checkpoint {step} in {mngr.directory} holds no moving-average reference: it was saved with "
            "grpo.ema_ref_decay = 0; resume with that setting, or start a new workdir"
        )
    r = mngr.restore(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract(target.params)),
            opt_state=ocp.args.StandardRestore(abstract(target.opt_state)),
            meta=ocp.args.JsonRestore(),
            **ref,
        ),
    )
    out = target.replace(params=r["params"], opt_state=r["opt_state"])
    return (out.replace(ref=r["ref"]) if target.ref else out), r["meta"]
