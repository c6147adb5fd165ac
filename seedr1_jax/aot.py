"""`seedr1 aot`: compile the GRPO/SFT update and the sampler for a TPU topology on any machine (libtpu), and
report per-device memory against the chip's HBM and compiled FLOPs against the analytic 6*N*tokens."""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import sharding, update
from .batch import GRPOBatch, Prompts, SFTBatch
from .checkpoint import model_config
from .config import ConfigError

# HBM per chip in bytes, by `device_kind` prefix (longest match wins)
HBM = {
    "TPU v4": 32 * 2**30,
    "TPU v5 lite": 16 * 2**30,
    "TPU v5": 95 * 2**30,
    "TPU v5p": 95 * 2**30,
    "TPU v6 lite": 32 * 2**30,
}


def topology_devices(topology: str):
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    try:
        from jax.experimental import topologies

        return topologies.get_topology_desc(topology_name=topology, platform="tpu").devices
    except Exception as e:  # noqa: BLE001 - libtpu missing or a bad topology name; both are user errors
        raise ConfigError(
            f"cannot build TPU topology {topology!r} ({type(e).__name__}: {str(e)[:200]}). Install the aot extra "
            "(pip install -e '.[aot]') and use names like v5p:4x4x4, v4:4x4x4, v5e:2x2."
        ) from None


def topology_mesh(devices, shape) -> Mesh:
    shape = [int(s) for s in shape]
    if -1 in shape:
        shape[shape.index(-1)] = len(devices) // int(np.prod([s for s in shape if s != -1]))
    if int(np.prod(shape)) != len(devices):
        raise ConfigError(f"mesh.shape {tuple(shape)} does not cover the topology's {len(devices)} chips")
    return Mesh(np.asarray(devices).reshape(shape), sharding.MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3)


def abstract_params(cfg, mesh, rules, dtype=None):
    """(graphdef, pure-dict ShapeDtypeStructs with shardings) of the model: no memory."""
    from .qwen2_vl import abstract_model

    model = abstract_model(cfg)
    graphdef, state = nnx.split(model)
    sh = update.param_shardings(model, mesh, rules)
    params = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, dtype or x.dtype, sharding=s), state.to_pure_dict(), sh
    )
    return graphdef, params


def abstract_batch(config, cfg, mesh, algo):
    """ShapeDtypeStructs of one global update batch and its prompts at the config's sizes (8 prompts x G=8)."""
    d, g = config.data, config.grpo
    b, t = d.batch_size, d.max_prompt_len
    v = cfg.vision
    side = 252 // v.patch_size
    seg, l, p = d.max_frames // 2 + 1, side * side, v.patch_dim
    sds = lambda shape, dt, bd=0: jax.ShapeDtypeStruct(  # noqa: E731
        shape, dt, sharding=sharding.batch_sharding(mesh, shape, bd)
    )
    prompt = Prompts(
        input_ids=sds((b, t), jnp.int32),
        attention_mask=sds((b, t), jnp.int32),
        positions=sds((3, b, t), jnp.int32, 1),
        pixels=sds((b, seg, l, p), jnp.float32),
        hw_pos=sds((b, seg, l, 2), jnp.int32),
        vision_index=sds((b, t), jnp.int32),
    )
    if algo == "sft":
        return SFTBatch(prompts=prompt, loss_mask=sds((b, t), jnp.int32)), prompt
    n, c = b * g.group_size, g.max_new_tokens
    logp = sds((n, c), jnp.float32)
    upd = GRPOBatch(
        prompts=prompt,
        tokens=sds((n, c), jnp.int32),
        mask=sds((n, c), jnp.int32),
        advantages=sds((n,), jnp.float32),
        inner_step=jax.ShapeDtypeStruct((), jnp.int32, sharding=NamedSharding(mesh, P())),
        anchor_logp=logp if g.beta > 0 or g.mu > 1 else None,
        ref_logp=logp if g.beta > 0 else None,
    )
    return upd, prompt


def _mem_row(name, compiled, hbm):
    m = compiled.memory_analysis()
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    gb = lambda x: x / 2**30  # noqa: E731
    return (
        name,
        gb(m.argument_size_in_bytes),
        gb(m.output_size_in_bytes),
        gb(m.temp_size_in_bytes),
        gb(total),
        gb(hbm) if hbm else float("nan"),
        total,
    )


def compile_update(config, cfg, mesh, rules):
    """Compiles the jitted update at the config's sizes, with the trainer's shardings (`update.py`).
    Returns (compiled, parameter count, prompt batch)."""
    from . import grpo, sft
    from .qwen2_vl import abstract_model

    algo = config.algo
    model = abstract_model(cfg)
    graphdef, state = nnx.split(model)
    params = state.to_pure_dict()
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    tx, _ = update.make_optimizer(config, params, max(int(config.train.num_steps), 1))
    shardings = update.state_shardings(tx, model, mesh, rules)
    train_state = update.abstract_state(tx, model, shardings)
    batch, prompt = abstract_batch(config, cfg, mesh, algo)
    fn = update.make_update(graphdef, tx, grpo.loss if algo == "grpo" else sft.loss, config)
    step = update.jit_update(fn, shardings, update.batch_shardings(batch, mesh), mesh)
    with jax.set_mesh(mesh):
        return step.lower(train_state, batch).compile(), n_params, prompt


def compile_sampler(config, cfg, mesh, rules, prompt):
    """Compiles the whole rollout (vision + prefill on B prompts, G-way shared-cache decode loop) with the
    rollout shardings (tensor-parallel only) and compute-dtype weights."""
    from . import sampler

    graphdef, params = abstract_params(cfg, mesh, sharding.rollout_rules(rules), dtype=jnp.dtype(cfg.dtype))
    g = config.grpo
    rng = jax.eval_shape(lambda: jax.random.key(0))
    with jax.set_mesh(mesh):
        return sampler._generate.lower(
            graphdef,
            params,
            prompt,
            rng,
            group_size=g.group_size,
            max_new_tokens=g.max_new_tokens,
            greedy=False,
            temperature=g.temperature,
            top_k=g.top_k,
            top_p=g.top_p,
            repetition_penalty=1.0,
            stop_ids=(sampler.IM_END, sampler.ENDOFTEXT),
            pad_id=sampler.ENDOFTEXT,
        ).compile()


def compile_logprobs(config, cfg, mesh, rules, prompt):
    """Compiles grpo.prepare's teacher-forced log-probs (reference and anchor) with compute-dtype weights in the
    training shardings. Returns (compiled, bytes per chip resident meanwhile: fp32 state + Adam + reference)."""
    from . import grpo
    from .qwen2_vl import abstract_model

    model = abstract_model(cfg)
    graphdef, params = abstract_params(cfg, mesh, rules, dtype=jnp.dtype(cfg.dtype))
    g = config.grpo
    n, c = config.data.batch_size * g.group_size, g.max_new_tokens
    tokens = jax.ShapeDtypeStruct((n, c), jnp.int32, sharding=sharding.batch_sharding(mesh, (n, c)))
    progs = grpo.programs(config, graphdef, model, mesh, rules)
    _, master = abstract_params(cfg, mesh, rules)
    resident = 3 * _per_chip_bytes(master)  # fp32 master + two Adam moments
    if g.beta > 0:
        _, ref = abstract_params(cfg, mesh, rules, dtype=jnp.dtype(g.ref_dtype))
        resident += _per_chip_bytes(ref)
    with jax.set_mesh(mesh):
        return progs.logprobs.lower(params, prompt, tokens).compile(), resident


def _per_chip_bytes(tree) -> int:
    """Bytes one chip holds of a tree of sharded ShapeDtypeStructs."""
    total = 0
    for x in jax.tree.leaves(tree):
        total += int(np.prod(x.sharding.shard_shape(x.shape))) * jnp.dtype(x.dtype).itemsize
    return total


def _plus_resident(row, suffix, resident_bytes):
    """A memory row with arrays that live beside the program (not its arguments) added to its total."""
    name, a, o, t, tot, h, raw = row
    return (name + suffix, a + resident_bytes / 2**30, o, t, tot + resident_bytes / 2**30, h, raw + resident_bytes)


def _flops(compiled) -> float:
    return float((compiled.cost_analysis() or {}).get("flops", float("nan")))


def main(config, topology: str) -> int:
    devices = topology_devices(topology)
    kind = devices[0].device_kind
    hbm = next((v for k, v in sorted(HBM.items(), key=lambda kv: -len(kv[0])) if kind.startswith(k)), None)
    mesh = topology_mesh(devices, config.mesh.shape)
    rules = tuple(tuple(r) for r in config.mesh.rules) if config.mesh.get("rules") else sharding.TRAIN_RULES
    cfg = model_config(config)
    algo = config.algo
    print(
        f"AOT for {topology}: {len(devices)} x {kind}, mesh {dict(mesh.shape)}, algo {algo}, "
        f"model {cfg.text.num_layers}L/{cfg.text.hidden_size}d, compute {cfg.dtype}, params {cfg.param_dtype}"
    )

    t0 = time.time()
    step_c, n_params, prompt = compile_update(config, cfg, mesh, rules)
    compile_s = time.time() - t0
    rows = [_mem_row("train step (fwd/bwd + AdamW)", step_c, hbm)]
    flops = _flops(step_c)

    if algo == "grpo" and config.grpo.beta > 0:
        # the frozen reference stays resident beside the train state while the update runs
        _, ref = abstract_params(cfg, mesh, rules, dtype=jnp.dtype(config.grpo.ref_dtype))
        rows[0] = _plus_resident(rows[0], " + ref held", _per_chip_bytes(ref))
    if algo == "grpo" and (config.grpo.beta > 0 or config.grpo.mu > 1):
        t0 = time.time()
        lp_c, resident = compile_logprobs(config, cfg, mesh, rules, prompt)
        rows.append(_plus_resident(_mem_row("ref/anchor log-probs (fwd) + state held", lp_c, hbm), "", resident))
        print(f"log-probs compile {time.time() - t0:.0f}s")
    if algo == "grpo":
        t0 = time.time()
        rows.append(
            _mem_row(
                "sampler (prefill once per prompt, G-way decode)",
                compile_sampler(config, cfg, mesh, rules, prompt),
                hbm,
            )
        )
        print(f"sampler compile {time.time() - t0:.0f}s")

    tokens = config.data.batch_size * config.data.max_prompt_len
    if algo == "grpo":
        tokens = (
            config.data.batch_size * config.grpo.group_size * (config.data.max_prompt_len + config.grpo.max_new_tokens)
        )
    analytic = 6.0 * n_params * tokens / len(devices)
    print(f"\n{'program':<48} {'args':>8} {'outputs':>8} {'temps':>8} {'total':>8} {'HBM':>8}  (GiB per chip)")
    ok = True
    for name, a, o, t, tot, h, raw in rows:
        fits = hbm is None or raw <= hbm
        ok &= fits
        print(
            f"{name:<48} {a:8.2f} {o:8.2f} {t:8.2f} {tot:8.2f} {h:8.2f}  {'fits' if fits else 'DOES NOT FIT'}"
            + (f", headroom {(hbm - raw) / 2**30:.1f} GiB" if hbm and fits else "")
        )
    print(f"\nparameters {n_params / 1e9:.3f} B; tokens per step {tokens}; compile {compile_s:.0f}s")
    print(
        f"compiled FLOPs per chip per step {flops:.3e}; analytic 6N x tokens / chips {analytic:.3e}; "
        f"ratio {flops / analytic:.2f} (XLA counts a scanned layer body once, so the compiled figure is a lower bound)"
    )
    if not ok:
        print(
            "does not fit: raise the fsdp/tensor sharding (mesh.shape), use remat_policy=full, lower "
            "data.batch_size, or choose a larger slice",
            file=sys.stderr,
        )
        return 1
    return 0
