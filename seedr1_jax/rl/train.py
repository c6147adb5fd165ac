"""The training loop, GRPO or SFT by `config.algo`: one generic loop around the algorithm's `prepare` and `loss`
and one jitted, explicitly sharded update (`update.py`); checkpoints, resume, preemption, metrics."""

from __future__ import annotations

import json
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.core import fs
from seedr1_jax.models import checkpoint, lora
from seedr1_jax.models.config import ConfigError
from seedr1_jax.parallel import sharding
from seedr1_jax.rl import grpo, preflight, sft, update
from seedr1_jax.rl.metrics import MetricsWriter, peak_flops, plot_metrics


def _log(msg: str):
    if jax.process_index() == 0:
        print(msg, flush=True)


def rules_of(config):
    """The logical->mesh rules: `mesh.rules`, or sharding.TRAIN_RULES when empty."""
    return tuple(tuple(r) for r in config.mesh.rules) if config.mesh.get("rules") else sharding.TRAIN_RULES


class _StopSignal:
    """SIGTERM / SIGINT set a flag; the loop checkpoints the last completed step and exits. With several
    processes the decision comes from orbax/jax's preemption sync instead, so every host stops at one step."""

    def __init__(self):
        self.signum = None
        self._old = {}
        if jax.process_count() == 1:
            for s in (signal.SIGTERM, signal.SIGINT):
                try:
                    self._old[s] = signal.signal(s, self._handle)
                except ValueError:  # not the main thread (e.g. called from a notebook worker): no handler
                    pass

    def _handle(self, signum, frame):
        self.signum = signum

    def should_stop(self, mngr, step: int) -> bool:
        return self.signum is not None or (jax.process_count() > 1 and mngr.reached_preemption(step))

    def restore(self):
        for s, h in self._old.items():
            signal.signal(s, h)


def _count(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def _nbytes(tree) -> int:
    return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def lora_reference(config, state):
    """The LoRA run's GRPO reference: the frozen base with every B zeroed (x A B = 0 exactly: the base's output,
    no second copy of the weights). A is kept, so before the first update the reference's weights equal the
    policy's bit for bit and the first step's KL is exactly 0 (`grpo.logprob_fields`' pin). None when beta = 0."""
    if config.grpo.beta == 0 and not grpo.reads_reference(config):
        return None
    return lora.combine(lora.switched_off(state.params), state.frozen)


def reference_of(config, state, ref_params):
    """The GRPO reference's whole parameters for `grpo.prepare`: the moving average (`grpo.ema_ref_decay` > 0),
    LoRA's base with adapters off, or the frozen copy of `model.init` (`ref_params`; None when none is needed)."""
    if update.ema_decay(config) > 0:
        return state.ema_reference()
    return lora_reference(config, state) if lora.enabled(config) else ref_params


def main(config, workdir: str, batches=None, tokenizer=None, callbacks=()) -> int:
    """Runs (or resumes) training in `workdir`; returns 0 when done, 1 when stopped by a non-finite update,
    128 + signal number when stopped by SIGTERM/SIGINT after saving a checkpoint.

    batches/tokenizer may be injected (tests, demo). callbacks: `cb(step, model) -> dict[str, float]` run after
    each step (e.g. held-out evaluation); their scalars join that step's metrics row.
    """
    from tqdm import tqdm

    # ---- setup -----------------------------------------------------------------------------------
    sharding.maybe_initialize_distributed()
    jax.config.update("jax_threefry_partitionable", True)
    preflight.check_values(config)  # `seedr1 train` also checked inputs and the workdir before we got here
    algo = config.algo
    total = int(config.train.num_steps)
    mesh = sharding.make_mesh(tuple(config.mesh.shape))
    rules = rules_of(config)
    config_path = preflight.write_config(workdir, config)
    _log(
        f"seedr1 train in {workdir}: {preflight.config_summary(config)}; mesh {dict(mesh.shape)} over "
        f"{jax.device_count()} {jax.devices()[0].device_kind} device(s), {jax.process_count()} process(es); "
        f"full config: {config_path}"
    )

    with jax.set_mesh(mesh):
        # ---- model, optimizer, train state ------------------------------------------------------------
        model = checkpoint.load_model(config, mesh, rules)  # with LoRA adapters when model.lora.rank > 0
        checkpoint.write_model_json(workdir, model)
        graphdef, params = nnx.split(model)
        use_lora = lora.enabled(config)
        params, frozen = update.trained_and_frozen(params.to_pure_dict(), use_lora)
        abstract_model = nnx.eval_shape(lambda: model)
        tx, schedule = update.make_optimizer(config, params, total)
        allow = bool(config.mesh.get("allow_uneven", False))
        ema = update.ema_decay(config) > 0  # GRPO-CARE's moving-average reference, kept in the train state
        shardings = update.state_shardings(
            tx, abstract_model, mesh, rules, allow_uneven=allow, use_lora=use_lora, ema=ema
        )
        if use_lora:
            frozen = lora.cast_floats(frozen, config.model.lora.get("base_dtype") or None)
            kind = config.model.lora.get("base_quant") or "float"
            _log(f"LoRA rank {config.model.lora.rank}: {_count(params) / 1e6:.2f}M adapter parameters trained, "
                 f"{_nbytes(frozen) / 2**20:.1f} MiB {kind} base frozen")  # fmt: skip
            if shardings is not None:
                params, frozen = jax.device_put((params, frozen), (shardings.params, shardings.frozen))
        init_opt = jax.jit(tx.init, out_shardings=None if shardings is None else shardings.opt_state)
        state = update.TrainState(params=params, opt_state=init_opt(params), frozen=frozen)
        if ema:  # starts as model.init's weights (fp32, the trained params' shardings), then moves every step
            copy = jax.jit(
                lambda p: jax.tree.map(jnp.copy, p), out_shardings=None if shardings is None else shardings.ref
            )
            state = state.replace(ref=copy(params))

        progs = ref_params = None
        if algo == "grpo":
            progs = grpo.programs(config, graphdef, abstract_model, mesh, rules)
            if not use_lora:  # with LoRA the reference is the base itself, adapters off (`lora_reference`)
                ref_params = grpo.reference_params(config, state.params, progs)  # before restoring: model.init's

        # ---- resume -----------------------------------------------------------------------------------
        mngr = checkpoint.checkpoint_manager(workdir, config.train.keep_checkpoints)
        start = drawn = 0  # drawn: data batches consumed (more than steps with grpo.dynamic_sampling)
        if mngr.latest_step() is not None:
            start = int(mngr.latest_step())
            state, meta = checkpoint.restore_state(mngr, start, state)
            drawn = int((meta or {}).get("batches", start))
            _log(f"resumed from step {start} ({mngr.directory})")
        writer = MetricsWriter(workdir, resume_step=start)

        step_fn = None  # jitted on the first batch (its shapes give the batch shardings)
        loss_fn = grpo.loss if algo == "grpo" else sft.loss
        passes = int(config.grpo.mu) if algo == "grpo" else 1
        dynamic = algo == "grpo" and bool(config.grpo.get("dynamic_sampling", False))
        if dynamic and jax.process_count() > 1:
            raise ConfigError(
                "grpo.dynamic_sampling=True runs on one process only (the processes would keep different numbers "
                "of groups); set it False for multi-process runs"
            )
        if batches is None:
            from seedr1_jax import data

            batches = data.train_batches(config.data, model.cfg, start_step=drawn)
        if tokenizer is None and algo == "grpo":
            from seedr1_jax.models.processor import load_tokenizer

            tokenizer = load_tokenizer()
        peak = peak_flops()
        n_params = _count(state.model_params())
        key = jax.random.key(config.train.seed)
        t = config.train
        stop = _StopSignal()
        status = 0
        bar = tqdm(range(start, total), initial=start, total=total, desc=algo, disable=jax.process_index() != 0)

        # ---- the loop -----------------------------------------------------------------------------------
        for step in bar:
            host_batch = next(batches)
            drawn += 1
            t0 = time.perf_counter()
            if algo == "grpo" and dynamic:
                first = [host_batch]
                prep, used = grpo.prepare_dynamic(
                    config,
                    progs,
                    state.model_params(),
                    reference_of(config, state, ref_params),
                    lambda first=first: first.pop() if first else next(batches),
                    tokenizer,
                    jax.random.fold_in(key, step),
                    step=step,
                )
                drawn += used - 1
                batch, scalars, texts, timings, ntok = prep
            elif algo == "grpo":
                prep = grpo.prepare(
                    config,
                    progs,
                    state.model_params(),
                    reference_of(config, state, ref_params),
                    host_batch,
                    tokenizer,
                    jax.random.fold_in(key, step),
                    step=step,
                )
                batch, scalars, texts, timings, ntok = prep
            else:
                batch, ntok = sft.prepare(config, host_batch, mesh)
                scalars, texts, timings = {}, [], {}
            if step_fn is None:
                if step == start:
                    _log("compiling the update step (the first step takes longer)...")
                ref_mode = grpo.reference_mode(config)  # the reference's log-probs inside the update (mu = 1)
                fn = update.make_update(graphdef, tx, loss_fn, config, reference=ref_mode)
                ref_sh = shardings.params if ref_mode == "argument" and shardings is not None else None
                step_fn = update.jit_update(fn, shardings, update.batch_shardings(batch, mesh), mesh, ref_sh)
                ref_arg = (ref_params,) if ref_mode == "argument" else ()
            t1 = time.perf_counter()
            for i in range(passes):
                if i:
                    batch = batch.replace(inner_step=jax.numpy.asarray(i, jax.numpy.int32))
                state, m = step_fn(state, batch, *ref_arg)
            m = jax.device_get(m)
            timings["update"] = time.perf_counter() - t1
            dt = time.perf_counter() - t0
            scalars.update({k: float(v) for k, v in m.items()})
            scalars.update({f"time_{k}": v for k, v in timings.items()})
            scalars.update(lr=float(schedule(step)), time_step=dt, tokens_per_s=ntok / dt)
            if peak:
                scalars["mfu"] = 6.0 * n_params * ntok * passes / dt / peak
            if callbacks:
                now = nnx.merge(graphdef, state.model_params())  # one model for every callback
                for cb in callbacks:
                    scalars.update(cb(step + 1, now))
                del now
            writer.write(step + 1, scalars)
            if texts and t.sample_every and (step + 1) % t.sample_every == 0:
                writer.text(step + 1, "samples", texts[: t.num_samples_logged])
                if jax.process_index() == 0:
                    fs.append_lines(
                        os.path.join(workdir, "samples.jsonl"),
                        [json.dumps({"step": step + 1, "completion": x}) for x in texts[: t.num_samples_logged]],
                    )
            bar.set_postfix({k: f"{scalars[k]:.3g}" for k in ("reward_mean", "kl", "loss") if k in scalars})
            if not scalars["finite"]:
                if t.on_nonfinite == "skip":
                    _log(f"step {step + 1}: non-finite loss or gradient, update skipped (train.on_nonfinite=skip)")
                else:
                    _log(
                        f"step {step + 1}: non-finite loss ({scalars['loss']}) or gradient norm "
                        f"({scalars['grad_norm']}); stopping. The last good checkpoint is step {mngr.latest_step()} "
                        f"in {mngr.directory}. Lower optim.lr or set train.on_nonfinite=skip, then rerun to resume."
                    )
                    status = 1
                    break
            preempted = stop.should_stop(mngr, step + 1)
            if (step + 1) % t.checkpoint_every == 0 or step + 1 == total or preempted:
                checkpoint.save_state(mngr, step + 1, state, {"step": step + 1, "algo": algo, "batches": drawn})
                writer.flush()
            if preempted:
                signum = stop.signum or signal.SIGTERM
                _log(
                    f"stopped by {signal.Signals(signum).name} after step {step + 1}: checkpoint saved in "
                    f"{mngr.directory}; rerun the same command to resume"
                )
                status = 128 + int(signum)
                break
        mngr.wait_until_finished()
        stop.restore()
        writer.close()
        plot_metrics(workdir)
        return status
