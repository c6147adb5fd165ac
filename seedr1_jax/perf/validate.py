"""`seedr1 aot --validate`: the roofline's prediction against a real run on this machine's first device (a GPU or
this CPU): each program compiled for it, timed on random weights, the decode timed apart."""

from __future__ import annotations

import copy
import dataclasses
import json
import time

import jax
import jax.numpy as jnp

from seedr1_jax.models.checkpoint import model_config
from seedr1_jax.parallel import sharding
from seedr1_jax.perf import roofline
from seedr1_jax.perf.aot import (
    abstract_batch,
    calls_per_step,
    compile_programs,
    compile_sampler,
    model_flops,
    print_report,
    topology_mesh,
)

_ONES = ("attention_mask", "mask")  # integer inputs a real batch fills with ones (all-zero masks are not a run)


def _materialize(info, key):
    """Random arrays for a compiled program's abstract arguments (floats ~N(0, 0.02); masks 1; other integers 0)."""
    leaves, tree = jax.tree_util.tree_flatten_with_path(info)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, (path, a) in zip(keys, leaves):
        shape, dtype = a.shape, a.dtype
        name = str(getattr(path[-1], "name", getattr(path[-1], "key", ""))) if path else ""
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            out.append(jax.random.key(0))
        elif jnp.issubdtype(dtype, jnp.floating):
            out.append(0.02 * jax.random.normal(k, shape, dtype))
        else:
            out.append(jnp.full(shape, 1 if name in _ONES else 0, dtype))
    return jax.tree.unflatten(tree, out)


def _best_time(compiled, repeats: int, check=None) -> float:
    """Best wall time of `repeats` calls on fresh random arguments (the update donates its state)."""
    args, kwargs = compiled.args_info
    best = float("inf")
    for r in range(repeats):
        a, kw = _materialize((args, kwargs), jax.random.key(r))
        jax.block_until_ready((a, kw))
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*a, **kw))
        best = min(best, time.perf_counter() - t0)
        if check:
            check(out)
        del out, a, kw
    return best


def validate(
    config,
    platform: str | None = None,
    repeats: int = 3,
    out_json: str | None = None,
    save_hlo: str | None = None,
    programs=("update", "logprobs", "sampler"),
) -> int:
    """Predicted vs measured seconds of each program on this machine's first device (`platform`: cpu, gpu, ...;
    default jax's default backend), with the device measured as a chip (`roofline.measure_chip`) and, for a
    known accelerator, its datasheet figures; the sampler's decode is timed apart (its C-token run minus a 1-token
    run). Prints measured update MFU, decode tokens/s and step time (of the `programs` timed); `out_json` receives
    the figures."""
    devs = (jax.devices(platform) if platform else jax.devices())[:1]
    dev = devs[0]
    mesh = topology_mesh(devs, (1, 1, 1))
    rules = tuple(tuple(r) for r in config.mesh.rules) if config.mesh.get("rules") else sharding.TRAIN_RULES
    cfg = model_config(config)
    measured = roofline.measure_chip(dev)
    sheet = roofline.chip_for(dev.device_kind)
    chips = [measured] + ([sheet] if sheet else [])
    print(
        f"{dev.device_kind} as a chip: {measured.peak_flops / 1e12:.3g} TFLOP/s GEMM, {measured.hbm_bw / 1e9:.0f} GB/s"
        f" copy (measured){f'; datasheet {sheet.name}' if sheet else ''}"
    )
    compiled = {}
    progs = compile_programs(config, mesh, rules, save_hlo=save_hlo, log=print, programs=programs, keep=compiled)
    k = calls_per_step(config)
    c_new = k.get("decode", 0)
    if "sampler" in compiled and c_new > 1:  # the rollout with one new token: prefill (+ vision) and one decode step
        one = copy.deepcopy(config)
        one.grpo.max_new_tokens = 1
        t0 = time.time()
        prompt = abstract_batch(config, cfg, mesh, "grpo")[1]
        compiled["prefill"] = compile_sampler(one, cfg, mesh, rules, prompt)
        print(f"compiled prefill (the sampler with 1 new token) in {time.time() - t0:.0f}s")
    if "update" in compiled:
        print_report(config, cfg, progs, chips[-1], 1)
    steps_run = {}  # tokens each rollout decoded (its third output)
    times = {}
    for name in compiled:
        check = (lambda out, n=name: steps_run.__setitem__(n, int(out[2]))) if name in ("sampler", "prefill") else None
        times[name] = _best_time(compiled[name], repeats, check)
        print(f"measured {name}: {times[name]:.4f} s (best of {repeats})")
    if steps_run.get("sampler", c_new) < c_new:
        print(f"warning: the sampler stopped after {steps_run['sampler']} of {c_new} tokens (every row sampled a stop)")

    by = {p.name: p for p in progs}
    rows = {}  # name -> (calls per step, measured s, [predicted s per chip])
    for name in ("update", "logprobs"):
        if name in by:
            rows[name] = (k.get(name, 1), times[name], [roofline.seconds(by[name].cost, c) for c in chips])
    if "sampler" in by:
        s = by["sampler"]
        rollout_pred = [roofline.seconds(s.cost, c) + c_new * roofline.seconds(s.decode, c) for c in chips]
        rows["sampler (prefill + C x decode)"] = (1, times["sampler"], rollout_pred)
        if "prefill" in times:
            dec_m = (times["sampler"] - times["prefill"]) / (c_new - 1)
            rows["prefill (+ 1 decode step)"] = (
                0,
                times["prefill"],
                [roofline.seconds(s.cost, c) + roofline.seconds(s.decode, c) for c in chips],
            )
            rows["decode, one token"] = (0, dec_m, [roofline.seconds(s.decode, c) for c in chips])
    heads = "".join(f" {'pred. ' + c.name[:20]:>26} {'meas./pred.':>11}" for c in chips)
    print(f"\n{'program (calls per step)':<36} {'measured s':>11}{heads}")
    total_m, total_p = 0.0, [0.0] * len(chips)
    for name, (n, m, preds) in rows.items():
        total_m += n * m
        total_p = [a + n * p for a, p in zip(total_p, preds)]
        cells = "".join(f" {p:26.4f} {m / p:11.2f}" for p in preds)
        print(f"{name + f' ({n})':<36} {m:11.4f}{cells}")
    cells = "".join(f" {p:26.4f} {total_m / p:11.2f}" for p in total_p)
    print(f"{'step':<36} {total_m:11.4f}{cells}")

    mf = {n: f for n, f in model_flops(config, cfg).items() if n in times or (n == "decode" and "sampler" in times)}
    peak = chips[-1].peak_flops
    summary = dict(
        device=dev.device_kind,
        chips={c.name: dataclasses.asdict(c) for c in chips},
        measured_s={n: r[1] for n, r in rows.items()},
        predicted_s={c.name: {n: r[2][i] for n, r in rows.items()} for i, c in enumerate(chips)},
        step_measured_s=total_m,
        step_predicted_s={c.name: total_p[i] for i, c in enumerate(chips)},
        update_mfu=mf["update"] / (times["update"] * peak) if "update" in times else None,
        step_mfu=sum(mf[n] * k.get(n, 0) for n in ("update", "logprobs", "sampler", "decode") if n in mf)
        / (total_m * peak),
        compile_s={p.name: p.compile_s for p in progs},
        sampler_tokens_run=steps_run.get("sampler"),
    )
    upd = f"update MFU {100 * summary['update_mfu']:.1f}%, " if "update" in times else ""
    print(
        f"\nmeasured on {dev.device_kind}: {'+'.join(programs)} {total_m:.3f} s; {upd}"
        f"MFU {100 * summary['step_mfu']:.1f}% of {peak / 1e12:.3g} TFLOP/s ({chips[-1].name})"
    )
    if "decode, one token" in rows:
        n_seq = config.data.batch_size * config.grpo.group_size
        dm, dps = rows["decode, one token"][1], rows["decode, one token"][2]
        summary["decode_tokens_per_s"] = n_seq / dm
        summary["decode_tokens_per_s_predicted"] = {c.name: n_seq / p for c, p in zip(chips, dps)}
        print(
            f"decode: {n_seq / dm:,.0f} tokens/s ({n_seq} sequences x {1e3 * dm:.2f} ms per token); predicted "
            + ", ".join(f"{n_seq / p:,.0f} ({c.name})" for c, p in zip(chips, dps))
        )
    if out_json:
        with open(out_json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0
