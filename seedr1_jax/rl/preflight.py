"""Checks run before training starts (config values, inputs, output folder) and the run's config dump."""

from __future__ import annotations

import math
import os
import uuid

from seedr1_jax.core import fs
from seedr1_jax.models import lora, quant
from seedr1_jax.models.config import PRESETS, ConfigError

DTYPES = ("float32", "bfloat16", "float16")
TRAIN_SPLITS = ("train", "train_cot", "L1", "L2", "L3", "lvb")


def _need(ok: bool, field: str, value, fix: str) -> None:
    if not ok:
        raise ConfigError(f"config.{field}={value!r}: {fix}")


def check_values(config) -> None:
    """Every config value that can be wrong without touching data or a model; raises ConfigError naming it."""
    _need(config.algo in ("grpo", "sft"), "algo", config.algo, "use 'grpo' or 'sft' (configs/X.py:grpo or :sft)")
    m = config.model
    for name in ("dtype", "param_dtype"):
        _need(m[name] in DTYPES, f"model.{name}", m[name], f"use one of {', '.join(DTYPES)}")
    if m.remat_policy not in ("none", "full"):
        import jax

        ok = hasattr(jax.checkpoint_policies, str(m.remat_policy))
        _need(ok, "model.remat_policy", m.remat_policy, "use 'none', 'full' or a name in jax.checkpoint_policies")
    du = str(m.get("decode_unroll", "auto")).lower()
    _need(du in ("auto", "on", "off", "true", "false"), "model.decode_unroll", du, "use 'auto', 'on' or 'off'")
    lora = m.get("lora")
    if lora is not None:
        _need(isinstance(lora.rank, int) and lora.rank >= 0, "model.lora.rank", lora.rank, "use 0 (off) or a rank > 0")
        _need(float(lora.alpha) > 0, "model.lora.alpha", lora.alpha, "must be > 0")
        bd = lora.get("base_dtype", "")
        ok = bd == "" or bd in DTYPES
        _need(ok, "model.lora.base_dtype", bd, f"use '' (model.param_dtype) or {', '.join(DTYPES)}")
        mr = str(lora.get("merge_rollout", "auto")).lower()
        _need(mr in ("auto", "on", "off"), "model.lora.merge_rollout", mr, "use 'auto', 'on' or 'off'")
        bq = lora.get("base_quant", "")
        _need(bq in ("", *quant.KINDS), "model.lora.base_quant", bq, f"use '' or {', '.join(quant.KINDS)}")
    shape = tuple(config.mesh.shape)
    ok = len(shape) == 3 and all(isinstance(s, int) and (s >= 1 or s == -1) for s in shape)
    _need(ok and shape.count(-1) <= 1, "mesh.shape", shape, "give (data, fsdp, tensor), ints >= 1, at most one -1")

    t = config.train
    _need(t.num_steps > 0, "train.num_steps", t.num_steps, "must be > 0")
    _need(t.checkpoint_every > 0, "train.checkpoint_every", t.checkpoint_every, "must be > 0")
    _need(t.keep_checkpoints >= 1, "train.keep_checkpoints", t.keep_checkpoints, "must be >= 1")
    _need(t.on_nonfinite in ("stop", "skip"), "train.on_nonfinite", t.on_nonfinite, "use 'stop' or 'skip'")

    o = config.optim
    _need(not o.lr < 0, "optim.lr", o.lr, "must be >= 0")  # nan passes: the non-finite guard handles it
    _need(o.schedule in ("linear", "cosine", "constant"), "optim.schedule", o.schedule, "use linear, cosine, constant")
    _need(0 <= o.warmup_ratio < 1, "optim.warmup_ratio", o.warmup_ratio, "must be in [0, 1)")
    _need(o.grad_clip >= 0, "optim.grad_clip", o.grad_clip, "must be >= 0 (0 disables clipping)")
    _need(0 <= o.b1 < 1 and 0 <= o.b2 < 1, "optim.b1/b2", (o.b1, o.b2), "must be in [0, 1)")

    d = config.data
    _need(d.batch_size >= 1, "data.batch_size", d.batch_size, "must be >= 1")
    _need(d.get("eval_batch_size", 0) >= 0, "data.eval_batch_size", d.get("eval_batch_size"), "must be >= 0")
    _need(d.max_prompt_len >= 1, "data.max_prompt_len", d.max_prompt_len, "must be >= 1")
    _need(d.get("shards", 0) >= 0, "data.shards", d.get("shards"), "must be >= 0 (0 = one per process)")
    _need(
        d.max_frames == 0 or (d.max_frames >= 2 and d.max_frames % 2 == 0),
        "data.max_frames",
        d.max_frames,
        "must be even and >= 2, or 0 (image-only or text-only data: no video is read)",
    )
    _need(d.split in TRAIN_SPLITS, "data.split", d.split, f"use one of {', '.join(TRAIN_SPLITS)}")
    from seedr1_jax.data.pipeline import FRAME_SAMPLING

    fs_ = d.get("frame_sampling", "first")
    _need(fs_ in FRAME_SAMPLING, "data.frame_sampling", fs_, f"use one of {', '.join(FRAME_SAMPLING)}")
    order = d.get("option_order", "shuffle")
    _need(order in ("shuffle", "sorted"), "data.option_order", order, "use 'shuffle' (the reference) or 'sorted'")

    if config.algo == "grpo":
        from seedr1_jax.rl.grpo import IMPORTANCE, REDUCTIONS
        from seedr1_jax.rl.rewards import resolve_rewards

        g = config.grpo
        _need(g.group_size >= 2, "grpo.group_size", g.group_size, "must be >= 2 (advantages compare a group)")
        _need(g.max_new_tokens >= 1, "grpo.max_new_tokens", g.max_new_tokens, "must be >= 1")
        bucket = g.get("completion_bucket", 0)
        _need(bucket >= 0, "grpo.completion_bucket", bucket, "must be >= 0 (0 keeps every completion column)")
        _need(g.temperature > 0, "grpo.temperature", g.temperature, "must be > 0")
        _need(0 < g.top_p <= 1, "grpo.top_p", g.top_p, "must be in (0, 1]")
        _need(g.top_k >= 0, "grpo.top_k", g.top_k, "must be >= 0 (0 disables)")
        _need(g.beta >= 0 and math.isfinite(g.beta), "grpo.beta", g.beta, "must be >= 0 (0 skips the reference)")
        _need(g.mu >= 1, "grpo.mu", g.mu, "must be >= 1")
        noise = g.get("reward_noise", 0.0)
        _need(0 <= noise <= 1, "grpo.reward_noise", noise, "must be a probability in [0, 1]")
        rounds = g.get("dynamic_max_rounds", 1)
        _need(rounds >= 1, "grpo.dynamic_max_rounds", rounds, "must be >= 1 (rollout batches per step)")
        buf, top = g.get("overlong_buffer", 0), g.max_new_tokens if "overlong" in g.rewards else math.inf
        _need(0 <= buf <= top, "grpo.overlong_buffer", buf, "must be in [0, grpo.max_new_tokens] (the overlong reward)")
        _need(g.reduction in REDUCTIONS, "grpo.reduction", g.reduction, f"use one of {', '.join(REDUCTIONS)}")
        imp = g.get("importance", "token")
        _need(imp in IMPORTANCE, "grpo.importance", imp, f"use one of {', '.join(IMPORTANCE)}")
        _need(g.ref_dtype in DTYPES, "grpo.ref_dtype", g.ref_dtype, f"use one of {', '.join(DTYPES)}")
        resolve_rewards(dict(g.rewards))  # built-ins and `module:function` alike, as training resolves them
        d = g.get("ema_ref_decay", 0.0)
        _need(0 <= d < 1, "grpo.ema_ref_decay", d, "must be in [0, 1) (0 keeps model.init's reference)")
        cap = g.get("care_confidence_cap", 1.0)
        _need(0 < cap <= 1, "grpo.care_confidence_cap", cap, "must be in (0, 1]")
        _need(g.get("care_margin", 0.0) >= 0, "grpo.care_margin", g.get("care_margin", 0.0), "must be >= 0")
        layers = g.get("attention_layers", (-1,))
        ok = isinstance(layers, (list, tuple)) and len(layers) > 0 and all(isinstance(x, int) for x in layers)
        _need(ok, "grpo.attention_layers", layers, "give decoder layer indices, e.g. (-1,) for the last layer")
    if config.algo == "sft":
        _need(config.sft.max_response_len >= 1, "sft.max_response_len", config.sft.max_response_len, "must be >= 1")


# ---- inputs and outputs --------------------------------------------------------------------------
def check_model_init(init: str) -> None:
    """`model.init`: preset:<name>, an HF folder (config.json) or a `seedr1 import-hf`/train folder (model.json)."""
    if init.startswith("preset:"):
        name = init.split(":", 1)[1]
        _need(name in PRESETS, "model.init", init, f"use preset:<name> with a name in {sorted(PRESETS)}")
        return
    if not init or not fs.isdir(init):
        raise ConfigError(
            f"config.model.init={init!r} does not exist: pass an HF Qwen2-VL folder, a folder from "
            "`seedr1 import-hf`, or preset:<name>"
        )
    if not (fs.exists(fs.join(init, "config.json")) or fs.exists(fs.join(init, "model.json"))):
        raise ConfigError(
            f"config.model.init={init!r} holds neither config.json (HF) nor model.json (`seedr1 import-hf`)"
        )


def check_writable(path: str, flag: str = "--workdir") -> None:
    """`path` can be created and written; leaves nothing behind that was not there before (folders created
    for the probe are removed again). Run as root, permission bits do not stop writes, so it really writes.
    Several processes may probe one new folder at once (multi-process runs sharing a disk): a folder removed under
    one process's probe is made again."""
    made = []
    try:
        for attempt in range(3):
            if not fs.remote(path):  # object stores need no folder to write into, so none is made there
                p = os.path.abspath(path)
                while not os.path.exists(p):
                    made.append(p)
                    p = os.path.dirname(p)
                if not os.path.isdir(p):
                    raise NotADirectoryError(f"{p} is a file")
                os.makedirs(path, exist_ok=True)
            probe = fs.join(path, f".seedr1_write_test_{uuid.uuid4().hex[:8]}")
            try:
                fs.write_text(probe, "")
            except FileNotFoundError:  # another process probing the same new folder removed it: make it again
                if attempt == 2 or fs.remote(path):
                    raise
                continue
            fs.remove(probe)
            break
    except Exception as e:  # noqa: BLE001 -- OSError locally, tf.errors.* (PermissionDenied, ...) on gs://
        why = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
        raise ConfigError(f"{flag} {path} is not writable ({why}); pick a folder you can write to") from None
    finally:
        for d in made:
            try:
                os.rmdir(d)
            except OSError:
                pass


def validate_train(config, workdir: str, data: bool = True) -> None:
    """Everything `seedr1 train` can check before loading a model; raises ConfigError naming what to fix.
    `data=False` skips the prepared-data check (batches supplied by the caller, as the demo and tests do)."""
    from seedr1_jax.data.pipeline import find_split_dir

    check_values(config)
    check_model_init(str(config.model.init))
    if lora.enabled(config):  # the targets against the architecture (abstract: nothing is allocated)
        from seedr1_jax.models.checkpoint import model_config
        from seedr1_jax.models.families import abstract_model

        lc, abstract = config.model.lora, abstract_model(model_config(config))
        lora.check_targets(abstract, str(lc.targets))
        if lc.get("base_quant"):
            lora.check_quant(abstract, str(lc.base_quant), str(lc.get("quant_targets", lora.QUANT_TARGETS)))
    if data:
        find_split_dir(str(config.data.tfrecord_dir), str(config.data.split))
    check_writable(workdir)


def write_config(workdir: str, config) -> str:
    """Writes the run's full config to `workdir/run_config.json` (and a readable `run_config.yaml`); returns the
    json path. (Not config.json: a workdir is a valid `model.init`, and config.json marks a Hugging Face folder.)

    Only process 0 writes. The console gets a one-line pointer to it instead of the whole dump."""
    import jax

    path = fs.join(workdir, "run_config.json")
    if jax.process_index() == 0:
        fs.makedirs(workdir)
        fs.write_text(path, config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
        fs.write_text(fs.join(workdir, "run_config.yaml"), str(config))
    return path


def config_summary(config) -> str:
    """A short description for the console: algo, model, data, steps, batch."""
    return (
        f"{config.algo}: model {config.model.init}, data {config.data.tfrecord_dir}:{config.data.split}, "
        f"{config.train.num_steps} steps x {config.data.batch_size} prompts"
    )
