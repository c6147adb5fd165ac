"""`seedr1 aot`: compile the GRPO/SFT programs for a TPU topology on any machine (libtpu); report per-chip memory,
FLOPs, HBM and collective bytes (`roofline.py`) and the predicted step time; `--search` ranks mesh x remat choices."""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from seedr1_jax.data.batch import GRPOBatch, Prompts, SFTBatch
from seedr1_jax.data.pipeline import frame_geometry
from seedr1_jax.models import lora
from seedr1_jax.models.checkpoint import model_config
from seedr1_jax.models.config import ConfigError
from seedr1_jax.parallel import sharding
from seedr1_jax.perf import roofline
from seedr1_jax.rl import grpo, update

REMAT_CHOICES = ("full", "dots_with_no_batch_dims_saveable", "none")  # what --search tries


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


def abstract_params(config, cfg, mesh, rules, dtype=None):
    """(graphdef, pure-dict ShapeDtypeStructs with shardings) of the policy (`lora.abstract_policy`: with LoRA
    its adapters and base) with its weights in `dtype` (default: as built; a QLoRA base's codes stay): no memory."""
    model = lora.abstract_policy(config, cfg)
    graphdef, state = nnx.split(model)
    sh = update.param_shardings(model, mesh, rules)
    params = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state.to_pure_dict(), sh)
    return graphdef, lora.cast_floats(params, dtype)


def _lora_resident(config, cfg, mesh, rules, copy: bool) -> int:
    """Per-chip bytes a LoRA run holds beside a program whose arguments are compute-dtype weights: the adapters
    and their Adam moments, plus the frozen base where the program's weights are a copy of it (`copy`: a merged
    rollout) or it is held in another dtype than the compute one (else the arguments are the base itself)."""
    _, master = abstract_params(config, cfg, mesh, rules)
    resident = 3 * _per_chip_bytes(lora.partition(master)[0])
    held = config.model.lora.get("base_dtype") or cfg.param_dtype
    if copy or jnp.dtype(held) != jnp.dtype(cfg.dtype):
        resident += _base_bytes(config, cfg, mesh, rules)
    return resident


def _base_bytes(config, cfg, mesh, rules) -> int:
    """Per-chip bytes of a LoRA run's frozen base, in `model.lora.base_dtype` (codes and scales when quantized)."""
    _, params = abstract_params(config, cfg, mesh, rules)
    _, frozen = lora.partition(params)
    return _per_chip_bytes(lora.cast_floats(frozen, config.model.lora.get("base_dtype") or None))


def abstract_batch(config, cfg, mesh, algo):
    """ShapeDtypeStructs of one global update batch and its prompts at the config's sizes (8 prompts x G=8)."""
    d, g = config.data, config.grpo
    b, t = d.batch_size, d.max_prompt_len
    geom = frame_geometry(d, cfg)  # 252 pixels in 18 x 18 patches at patch 14, 256 in 16 x 16 at Qwen3-VL's 16
    seg, l, p = d.max_frames // geom.temporal + 1, geom.patches, geom.dim
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
    in_update = grpo.reference_in_update(config)
    scalar = lambda dt: jax.ShapeDtypeStruct((), dt, sharding=NamedSharding(mesh, P()))  # noqa: E731
    upd = GRPOBatch(
        prompts=prompt,
        tokens=sds((n, c), jnp.int32),
        mask=sds((n, c), jnp.int32),
        advantages=sds((n,), jnp.float32),
        inner_step=scalar(jnp.int32),
        anchor_logp=logp if (g.beta > 0 or g.mu > 1) and not in_update else None,
        ref_logp=logp if g.beta > 0 and not in_update else None,
        pin_anchor=scalar(jnp.bool_) if g.beta > 0 and g.mu == 1 else None,
    )
    return upd, prompt


def compile_update(config, cfg, mesh, rules):
    """Compiles the jitted update at the config's sizes, with the trainer's shardings (`update.py`).
    Returns (compiled, parameter count, prompt batch)."""
    from seedr1_jax.rl import sft

    algo, use_lora = config.algo, lora.enabled(config)
    model = lora.abstract_policy(config, cfg)
    graphdef, state = nnx.split(model)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.to_pure_dict()))
    params, _ = update.trained_and_frozen(state.to_pure_dict(), use_lora)
    tx, _ = update.make_optimizer(config, params, max(int(config.train.num_steps), 1))
    ema = update.ema_decay(config) > 0  # GRPO-CARE's moving-average reference rides in the train state
    shardings = update.state_shardings(tx, model, mesh, rules, use_lora=use_lora, ema=ema)
    train_state = update.abstract_state(tx, model, shardings, use_lora=use_lora, ema=ema)
    if use_lora:  # the frozen base as the trainer holds it (`model.lora.base_dtype`)
        base_dtype = config.model.lora.get("base_dtype") or None
        train_state = train_state.replace(frozen=lora.cast_floats(train_state.frozen, base_dtype))
    batch, prompt = abstract_batch(config, cfg, mesh, algo)
    mode = grpo.reference_mode(config)  # mu = 1, beta > 0: the reference's log-probs run inside the update
    fn = update.make_update(graphdef, tx, grpo.loss if algo == "grpo" else sft.loss, config, reference=mode)
    ref = ()
    if mode == "argument":  # the frozen reference as the trainer holds it (`grpo.ref_dtype`, training shardings)
        ref = (abstract_params(config, cfg, mesh, rules, dtype=jnp.dtype(config.grpo.ref_dtype))[1],)
    ref_sh = jax.tree.map(lambda x: x.sharding, ref[0]) if ref else None
    step = update.jit_update(fn, shardings, update.batch_shardings(batch, mesh), mesh, ref_sh)
    with jax.set_mesh(mesh):
        return step.lower(train_state, batch, *ref).compile(), n_params, prompt


def compile_sampler(config, cfg, mesh, rules, prompt):
    """Compiles the whole rollout (vision + prefill on B prompts, G-way shared-cache decode loop) with the
    rollout shardings (tensor-parallel only) and compute-dtype weights."""
    from seedr1_jax.models.families import abstract_model
    from seedr1_jax.rl import sampler

    if lora.merge_rollout(config):  # the rollout decodes a plain compute-dtype copy (`grpo.programs`)
        plain = abstract_model(cfg)
        graphdef, state = nnx.split(plain)
        sh = update.param_shardings(plain, mesh, sharding.rollout_rules(rules))
        params = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, jnp.dtype(cfg.dtype), sharding=s), state.to_pure_dict(), sh
        )
    else:
        graphdef, params = abstract_params(config, cfg, mesh, sharding.rollout_rules(rules), dtype=jnp.dtype(cfg.dtype))
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

    model = lora.abstract_policy(config, cfg)
    graphdef, params = abstract_params(config, cfg, mesh, rules, dtype=jnp.dtype(cfg.dtype))
    g = config.grpo
    n, c = config.data.batch_size * g.group_size, g.max_new_tokens
    tokens = jax.ShapeDtypeStruct((n, c), jnp.int32, sharding=sharding.batch_sharding(mesh, (n, c)))
    progs = grpo.programs(config, graphdef, model, mesh, rules)
    _, master = abstract_params(config, cfg, mesh, rules)
    if lora.enabled(config):  # the frozen base is also the reference
        resident = _lora_resident(config, cfg, mesh, rules, copy=False)
    else:
        resident = 3 * _per_chip_bytes(master)  # fp32 master + two Adam moments
        if g.beta > 0:
            _, ref = abstract_params(config, cfg, mesh, rules, dtype=jnp.dtype(g.ref_dtype))
            resident += _per_chip_bytes(ref)
    with jax.set_mesh(mesh):
        return progs.logprobs.lower(params, prompt, tokens).compile(), resident


def _per_chip_bytes(tree) -> int:
    """Bytes one chip holds of a tree of sharded ShapeDtypeStructs."""
    total = 0
    for x in jax.tree.leaves(tree):
        total += int(np.prod(x.sharding.shard_shape(x.shape))) * jnp.dtype(x.dtype).itemsize
    return total


# ---- the programs and their costs -----------------------------------------------------------------------
@dataclasses.dataclass
class Program:
    """One compiled program: per-chip memory (bytes; arrays resident beside it included in args/total) and
    per-chip cost of one call (`roofline.Cost`); the sampler's cost is its prefill and `decode` one token."""

    name: str
    label: str
    memory: dict
    cost: roofline.Cost
    decode: roofline.Cost | None = None
    compile_s: float = 0.0


def _memory(compiled, resident: int = 0) -> dict:
    m = compiled.memory_analysis()
    args = m.argument_size_in_bytes + resident
    total = args + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return dict(args=args, outputs=m.output_size_in_bytes, temps=m.temp_size_in_bytes, total=total)


def compile_programs(
    config,
    mesh,
    rules,
    save_hlo: str | None = None,
    log=print,
    programs=("update", "logprobs", "sampler"),
    keep: dict | None = None,
) -> list[Program]:
    """Compiles the update (and for GRPO the reference/anchor log-probs and the sampler) at the config's sizes;
    programs: which of them; save_hlo: a folder for each program's compiled HLO text; keep: a dict that receives
    the compiled objects."""
    cfg = model_config(config)
    grpo_ = config.algo == "grpo"
    g = config.grpo if grpo_ else None
    progs = []

    def add(name, label, compiled, t0, resident=0):
        text = compiled.as_text()
        if save_hlo:
            os.makedirs(save_hlo, exist_ok=True)
            with open(os.path.join(save_hlo, f"{name}.hlo.txt"), "w") as f:
                f.write(text)
        hc = roofline.HloCost(text)
        cost, decode = hc.split_dynamic_loop() if name == "sampler" else (hc.total(), None)
        progs.append(Program(name, label, _memory(compiled, resident), cost, decode, time.time() - t0))
        if keep is not None:
            keep[name] = compiled
        log(f"compiled {name} in {time.time() - t0:.0f}s")

    prompt = abstract_batch(config, cfg, mesh, config.algo)[1]
    if "update" in programs:
        t0 = time.time()
        step_c, _, _ = compile_update(config, cfg, mesh, rules)
        ref, mode = 0, grpo.reference_mode(config) if grpo_ else ""
        if grpo_ and g.beta > 0 and not lora.enabled(config) and mode != "argument" and not update.ema_decay(config):
            # resident beside the train state during the update (with LoRA the reference is the base inside the
            # state; as the update's argument it is counted in the program's arguments)
            ref = _per_chip_bytes(abstract_params(config, cfg, mesh, rules, dtype=jnp.dtype(g.ref_dtype))[1])
        label = "train step (fwd/bwd + AdamW)" + (" + ref held" if ref else " + ref fwd" if mode else "")
        add("update", label, step_c, t0, ref)
        del step_c
    if grpo_ and calls_per_step(config)["logprobs"] and "logprobs" in programs:
        t0 = time.time()
        lp_c, resident = compile_logprobs(config, cfg, mesh, rules, prompt)
        add("logprobs", "ref/anchor log-probs (fwd) + state held", lp_c, t0, resident)
    if grpo_ and "sampler" in programs:
        t0 = time.time()
        resident = _lora_resident(config, cfg, mesh, rules, lora.merge_rollout(config)) if lora.enabled(config) else 0
        add(
            "sampler",
            "sampler (prefill once per prompt, G-way decode)",
            compile_sampler(config, cfg, mesh, rules, prompt),
            t0,
            resident,
        )
    return progs


def model_flops(config, cfg) -> dict:
    """Analytic forward FLOPs (whole slice) of one call of each program, and the tokens one step processes.

    update: 3 x the forward of its loss (remat recomputation is not useful work, so MFU leaves it out); with LoRA
    2 x (the backward's input gradients; the frozen weights get none, the adapters' are negligible)."""
    d = config.data
    b, t = d.batch_size, d.max_prompt_len
    geom = frame_geometry(d, cfg)
    vis = roofline.vision_flops(cfg, b * (d.max_frames // geom.temporal + 1), geom.patches)
    if config.algo == "sft":
        r = config.sft.max_response_len
        return dict(
            update=3 * (vis + roofline.text_flops(cfg, b * t, t) + roofline.logits_flops(cfg, b * r)), tokens=b * t
        )
    g = config.grpo
    n, c = b * g.group_size, g.max_new_tokens
    fwd = vis + roofline.text_flops(cfg, b * t + n * c, t + c) + roofline.logits_flops(cfg, n * c)
    in_update = int(grpo.reference_in_update(config))  # the reference's forward inside the update (mu = 1)
    return dict(
        update=(2 + in_update if lora.enabled(config) else 3 + in_update) * fwd,
        logprobs=fwd,
        sampler=vis + roofline.text_flops(cfg, b * t, t + c) + roofline.logits_flops(cfg, b),
        decode=roofline.text_flops(cfg, n, t + c) + roofline.logits_flops(cfg, n),
        tokens=b * t + n * c,
    )


def calls_per_step(config) -> dict:
    """How often each program runs in one GRPO/SFT step (a rollout batch): the log-probs forward runs for the
    reference (beta > 0; inside the update at mu = 1, `grpo.reference_in_update`) and, with mu > 1, for the anchor
    (`grpo.logprob_fields`)."""
    if config.algo == "sft":
        return dict(update=1)
    g = config.grpo
    ref = int(g.beta > 0 and not grpo.reference_in_update(config))
    return dict(update=g.mu, logprobs=ref + int(g.mu > 1), sampler=1, decode=g.max_new_tokens)


def predict(config, cfg, progs: list[Program], chip: roofline.Chip, chips: int) -> roofline.StepPrediction:
    by = {p.name: p for p in progs}
    k, mf = calls_per_step(config), model_flops(config, cfg)
    useful = sum(mf[name] * k.get(name, 0) for name in ("update", "logprobs", "sampler", "decode") if name in mf)
    s = by.get("sampler")
    return roofline.predict_step(
        chip,
        chips,
        update=by["update"].cost * k["update"],
        prefill=s.cost if s else None,
        decode=s.decode if s else None,
        logprobs=by["logprobs"].cost * k["logprobs"] if "logprobs" in by else None,
        new_tokens=k.get("decode", 0),
        tokens=mf["tokens"],
        model_flops=useful,
    )


def device_chip(devices, chip: str | None = None) -> roofline.Chip:
    """The roofline chip of one jax device (a v4 topology's devices are single TensorCores: half a chip), or the
    CHIPS entry named by `chip` (e.g. h100 to predict a GPU with the same per-device program)."""
    if chip:
        if chip not in roofline.CHIPS:
            raise ConfigError(f"--chip {chip!r}: choose one of {sorted(roofline.CHIPS)}")
        return roofline.CHIPS[chip]
    kind = devices[0].device_kind
    c = roofline.chip_for(kind)
    if c is None:
        raise ConfigError(
            f"no roofline figures for device kind {kind!r}; pass --chip (one of {sorted(roofline.CHIPS)})"
        )
    if kind.startswith("TPU v4") and getattr(devices[0], "num_cores", 2) == 1:
        c = roofline.Chip(c.name + " TensorCore", c.peak_flops / 2, c.hbm_bytes / 2, c.hbm_bw / 2, c.ici_bw / 2)
    return c


def _fits(progs, chip) -> bool:
    return all(p.memory["total"] <= chip.hbm_bytes for p in progs)


def print_report(config, cfg, progs, chip, chips, out=None) -> roofline.StepPrediction:
    out = out or sys.stdout
    gib = lambda x: x / 2**30  # noqa: E731
    p_ = lambda *a: print(*a, file=out)  # noqa: E731
    p_(f"\n{'program':<48} {'args':>8} {'outputs':>8} {'temps':>8} {'total':>8} {'HBM':>8}  (GiB per chip)")
    for p in progs:
        m, fits = p.memory, p.memory["total"] <= chip.hbm_bytes
        p_(
            f"{p.label:<48} {gib(m['args']):8.2f} {gib(m['outputs']):8.2f} {gib(m['temps']):8.2f} "
            f"{gib(m['total']):8.2f} "
            f"{gib(chip.hbm_bytes):8.2f}  {'fits' if fits else 'DOES NOT FIT'}"
            + (f", headroom {gib(chip.hbm_bytes - m['total']):.1f} GiB" if fits else "")
        )
    k, mf = calls_per_step(config), model_flops(config, cfg)
    p_(
        f"\nper chip, one call {'':<22} {'GFLOP':>10} {'HBM GB':>8} {'coll. MB':>9} {'ms':>9} {'bound':>8} "
        f"{'x/step':>6} {'analytic':>9}"
    )
    rows = [(p.name, p.cost) for p in progs] + [("decode", p.decode) for p in progs if p.decode is not None]
    labels = dict(update="update", logprobs="ref/anchor log-probs", sampler="sampler prefill (+ vision)")
    labels["decode"] = "sampler decode (one token)"
    for name, c in rows:
        ratio = c.flops * chips / mf[name] if mf.get(name) else float("nan")
        p_(
            f"{labels[name]:<41} {c.flops / 1e9:10.2f} {c.bytes / 1e9:8.3f} {c.collective_bytes / 1e6:9.2f} "
            f"{roofline.seconds(c, chip) * 1e3:9.3f} {roofline.bound(c, chip):>8} {k.get(name, 0):6d} {ratio:9.2f}"
        )
        if c.collectives:
            p_("    collectives MB: " + ", ".join(f"{kk} {v / 1e6:.2f}" for kk, v in sorted(c.collectives.items())))
    update = (
        "LoRA's update is 2 x its forward: full remat <= 1.5"
        if lora.enabled(config)
        else "the update's are 3 x its forward: full remat ~1.33"
    )  # frozen weights get no weight gradients
    p_(f"(analytic: compiled FLOPs x chips / model matmul FLOPs; {update})")
    pred = predict(config, cfg, progs, chip, chips)
    p_(
        f"\npredicted on {chips} x {chip.name} ({chip.peak_flops / 1e12:.3g} TFLOP/s, "
        f"{chip.hbm_bw / 1e9:.0f} GB/s HBM, "
        f"{chip.ici_bw / 1e9:.0f} GB/s ICI out): rollout {pred.rollout_s:.3g} s + log-probs {pred.logprobs_s:.3g} s + "
        f"update {pred.update_s:.3g} s = step {pred.step_s:.3g} s; {pred.tokens_per_s:,.0f} tokens/s; "
        f"MFU {100 * pred.mfu:.1f}% (roofline: a lower bound on time, an upper bound on MFU)"
    )
    return pred


# ---- --search --------------------------------------------------------------------------------------------
def candidate_meshes(n: int, cfg) -> list[tuple[int, int, int]]:
    """(data, fsdp, tensor) shapes covering n devices whose tensor axis divides the text and vision heads."""
    heads = (cfg.text.num_kv_heads, cfg.text.num_heads, cfg.vision.num_heads)
    out = []
    for t in range(1, n + 1):
        if n % t or any(h % t for h in heads):
            continue
        for d in range(1, n // t + 1):
            if (n // t) % d == 0:
                out.append((d, n // t // d, t))
    return out


def evaluate(config, devices, meshes=None, remats=REMAT_CHOICES, log=print) -> list[dict]:
    """Compiles every mesh x remat policy (the log-probs and sampler once per mesh: remat does not change them).
    Returns rows: mesh, remat, config, progs (or reason when it did not compile)."""
    cfg0 = model_config(config)
    rules = tuple(tuple(r) for r in config.mesh.rules) if config.mesh.get("rules") else sharding.TRAIN_RULES
    rows = []
    for shape in meshes or candidate_meshes(len(devices), cfg0):
        mesh = topology_mesh(devices, shape)
        others = None
        for remat in remats:
            c = copy.deepcopy(config)
            c.model.remat_policy = remat
            c.mesh.shape = tuple(shape)
            row = dict(mesh=tuple(shape), remat=remat, config=c)
            try:
                if others is None:
                    progs = compile_programs(c, mesh, rules, log=lambda *_: None)
                    others = [p for p in progs if p.name != "update"]
                else:
                    progs = compile_programs(c, mesh, rules, log=lambda *_: None, programs=("update",)) + others
                row["progs"] = progs
                log(f"mesh {shape} remat {remat}: {max(p.memory['total'] for p in progs) / 2**30:.2f} GiB/chip")
            except (ConfigError, ValueError, jax.errors.JaxRuntimeError) as e:
                row["reason"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
                log(f"mesh {shape} remat {remat}: {row['reason']}")
            rows.append(row)
    return rows


def rank(rows: list[dict], chip: roofline.Chip, chips: int) -> tuple[list[dict], list[dict]]:
    """(rows that fit the chip's HBM, ranked by predicted step time, each with gib and pred; the others)."""
    ok, rejected = [], []
    for r in rows:
        if "progs" not in r:
            rejected.append(r)
            continue
        c = r["config"]
        r = dict(r, gib=max(p.memory["total"] for p in r["progs"]) / 2**30)
        r["pred"] = predict(c, model_config(c), r["progs"], chip, chips)
        if _fits(r["progs"], chip):
            ok.append(r)
        else:
            rejected.append(dict(r, reason=f"needs {r['gib']:.2f} GiB per chip > {chip.hbm_bytes / 2**30:.2f}"))
    ok.sort(key=lambda r: r["pred"].step_s)
    return ok, rejected


def search(config, devices, chip, meshes=None, remats=REMAT_CHOICES, log=print):
    """`evaluate` then `rank`: the fitting mesh x remat configurations ranked by predicted step time, and the rest."""
    return rank(evaluate(config, devices, meshes, remats, log), chip, len(devices))


# ---- the command ----------------------------------------------------------------------------------------
def main(
    config,
    topology: str,
    *,
    chip: str | None = None,
    devices: int | None = None,
    search_: bool = False,
    save_hlo: str | None = None,
    meshes: str | None = None,
    remats: str | None = None,
) -> int:
    """`seedr1 aot`: returns 0 when every program fits the chip's HBM (with --search: when any configuration does)."""
    all_devices = topology_devices(topology)
    devs = all_devices[: devices or len(all_devices)]
    if devices and not 1 <= devices <= len(all_devices):
        raise ConfigError(f"--devices {devices}: the topology {topology} has {len(all_devices)} devices")
    hws = [device_chip(devs, c) for c in (chip.split(",") if chip else [None])]
    hw = hws[0]
    cfg = model_config(config)
    head = (
        f"AOT for {topology}{f' (first {len(devs)} devices)' if devices else ''}: {len(devs)} x {devs[0].device_kind}"
        f"{', predicted as ' + ', '.join(h.name for h in hws) if chip else ''}, algo {config.algo}, "
        f"model {cfg.text.num_layers}L/"
        f"{cfg.text.hidden_size}d, compute {cfg.dtype}, params {cfg.param_dtype}"
    )
    if search_:
        print(head + "; searching mesh shapes x remat policies")
        try:
            shapes = [tuple(int(x) for x in m.split(",")) for m in meshes.split(";")] if meshes else None
        except ValueError:
            raise ConfigError(f"--meshes {meshes!r}: use data,fsdp,tensor shapes joined by ';'") from None
        policies = tuple(remats.split(",")) if remats else REMAT_CHOICES
        ok, rejected = search(config, devs, hw, meshes=shapes, remats=policies)
        print(f"\n{'rank':>4} {'mesh (data, fsdp, tensor)':>26} {'remat':<34} {'GiB/chip':>9} {'step s':>8} {'MFU':>6}")
        for i, r in enumerate(ok, 1):
            print(
                f"{i:4d} {str(r['mesh']):>26} {r['remat']:<34} {r['gib']:9.2f} {r['pred'].step_s:8.3f} "
                f"{100 * r['pred'].mfu:5.1f}%"
            )
        for r in rejected:
            print(f"   - {str(r['mesh']):>26} {r['remat']:<34} rejected: {r['reason']}")
        if not ok:
            print("no configuration fits: choose a larger slice or lower data.batch_size", file=sys.stderr)
        return 0 if ok else 1

    mesh = topology_mesh(devs, config.mesh.shape)
    rules = tuple(tuple(r) for r in config.mesh.rules) if config.mesh.get("rules") else sharding.TRAIN_RULES
    print(head + f", mesh {dict(mesh.shape)}, remat {cfg.remat_policy}")
    progs = compile_programs(config, mesh, rules, save_hlo=save_hlo)
    print_report(config, cfg, progs, hw, len(devs))
    for other in hws[1:]:
        pred = predict(config, cfg, progs, other, len(devs))
        print(
            f"predicted on {len(devs)} x {other.name}: rollout {pred.rollout_s:.3g} s + "
            f"log-probs {pred.logprobs_s:.3g} s "
            f"+ update {pred.update_s:.3g} s = step {pred.step_s:.3g} s; {pred.tokens_per_s:,.0f} tokens/s; MFU "
            f"{100 * pred.mfu:.1f}%; {'fits' if _fits(progs, other) else 'DOES NOT FIT'} its "
            f"{other.hbm_bytes / 2**30:.0f} GiB"
        )
    if not _fits(progs, hw):
        print(
            "does not fit: raise the fsdp/tensor sharding (mesh.shape), use remat_policy=full, lower "
            "data.batch_size, or choose a larger slice (seedr1 aot --search ranks the choices)",
            file=sys.stderr,
        )
        return 1
    return 0
