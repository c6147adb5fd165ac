"""The training loop (GRPO or SFT, chosen by the config): one jitted sharded update, checkpoints, metrics."""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from . import fs, grpo, sharding
from .config import ConfigError, ModelConfig
from .metrics import MetricsWriter, peak_flops, plot_metrics

# the batch fields that go to the device (the rest, e.g. sample_id/answer/prompt, stay on the host)
MODEL_INPUTS = ("input_ids", "attention_mask", "positions", "pixels", "hw_pos", "vision_index")

# ---- model / optimizer construction -----------------------------------------------------------------


def model_config_overrides(config) -> dict:
    m = config.model
    return dict(dtype=m.dtype, param_dtype=m.param_dtype, remat_policy=m.remat_policy)


def load_model(config, mesh, rules):
    """The policy from `config.model.init`: an HF folder, one of our checkpoints, or a preset (random init)."""
    from .checkpoint import load_params
    from .config import preset
    from .qwen2_vl import Qwen2VL

    m = config.model
    init = m.init
    over = model_config_overrides(config)
    if init.startswith("preset:"):
        cfg = preset(init.split(":", 1)[1]).replace(**over).validate()
        return init_random(cfg, mesh, rules, seed=config.train.seed)
    if fs.exists(os.path.join(init, "config.json")):
        return Qwen2VL.from_pretrained(init, mesh=mesh, rules=rules, **over)
    if fs.exists(os.path.join(init, "model.json")):
        model = load_params(init, mesh=mesh, rules=rules)
        model.cfg = model.cfg.replace(**over)
        return _rebuild(model)
    raise ConfigError(
        f"model.init={init!r}: expected an HF Qwen2-VL folder (config.json), a folder from `seedr1 import-hf` "
        "(model.json), or 'preset:qwen2_vl_7b'"
    )


def _rebuild(model):
    """Re-creates a model after its config changed (dtypes/remat are read at construction)."""
    from .qwen2_vl import Qwen2VL

    params = nnx.state(model, nnx.Param).to_pure_dict()
    new = nnx.eval_shape(lambda: Qwen2VL(model.cfg, rngs=nnx.Rngs(0)))
    gd, st = nnx.split(new)
    nnx.replace_by_pure_dict(st, jax.tree.map(lambda p, a: p.astype(a.dtype), params, st.to_pure_dict()))
    out = nnx.merge(gd, st)
    out.hf_config = model.hf_config
    return out


def init_random(cfg: ModelConfig, mesh, rules, seed=0):
    """Random init straight into sharded arrays (jit with out_shardings: no host copy of the weights)."""
    from .qwen2_vl import Qwen2VL

    abstract = nnx.eval_shape(lambda: Qwen2VL(cfg, rngs=nnx.Rngs(seed)))
    shardings = sharding.state_shardings(nnx.state(abstract), mesh, rules)

    @jax.jit
    def make():
        return nnx.state(Qwen2VL(cfg, rngs=nnx.Rngs(seed)))

    state = jax.jit(make, out_shardings=shardings)() if mesh is not None else make()
    return nnx.merge(nnx.graphdef(abstract), state)


def learning_rate_schedule(o, total_steps: int):
    warm = int(round(o.warmup_ratio * total_steps))
    if o.schedule == "linear":
        decay = optax.linear_schedule(o.lr, 0.0, max(total_steps - warm, 1))
    elif o.schedule == "cosine":
        decay = optax.cosine_decay_schedule(o.lr, max(total_steps - warm, 1))
    elif o.schedule == "constant":
        decay = optax.constant_schedule(o.lr)
    else:
        raise ConfigError(f"optim.schedule={o.schedule!r}: use linear, cosine or constant")
    if warm == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, o.lr, warm), decay], [warm])


def make_optimizer(config, params: dict, total_steps: int):
    o = config.optim
    schedule = learning_rate_schedule(o, total_steps)
    adamw = optax.adamw(schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
    tx = optax.chain(optax.clip_by_global_norm(o.grad_clip), adamw) if o.grad_clip > 0 else adamw
    if config.model.freeze_vision:
        labels = {k: jax.tree.map(lambda _, k=k: "frozen" if k == "visual" else "train", v) for k, v in params.items()}
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    return tx, schedule


def optimizer_shardings(tx, params, mesh):
    """Adam moments take their parameter's sharding; counters and scalars are replicated."""
    abstract = jax.eval_shape(tx.init, params)
    if mesh is None:
        return jax.tree.map(lambda _: None, abstract)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return optax.tree_map_params(
        tx, lambda _, p: p.sharding, abstract, params, transform_non_params=lambda _: replicated
    )


# ---- the update -----------------------------------------------------------------------------------


def grpo_loss(model, batch, *, config):
    """GRPO loss of one rollout batch. batch: prompt fields + completion tokens/mask/advantages (+ ref/old logp)."""
    from .sampler import completion_logprobs

    g = config.grpo
    logp = completion_logprobs(model, batch, batch["tokens"], g.group_size, g.temperature)
    return grpo.policy_loss(
        logp,
        batch.get("old_logp"),
        batch.get("ref_logp"),
        batch["advantages"],
        batch["mask"],
        beta=g.beta,
        epsilon_low=g.epsilon_low,
        epsilon_high=g.epsilon_high,
        kl_clamp=g.kl_clamp,
        reduction=g.reduction,
        max_completion_len=g.max_new_tokens,
    )


def sft_batch_loss(model, batch, *, config):
    from .sft import sft_loss

    return sft_loss(model, batch, max_response_len=config.sft.max_response_len), {}


def make_update(graphdef, tx, loss_fn, *, ref_graphdef=None, config=None):
    """update(params, opt_state, ref_params, batch) -> (params, opt_state, metrics): one optimizer step.

    A non-finite loss or gradient leaves params and optimizer state unchanged (`metrics["finite"] = 0`); the
    loop then stops or skips by `train.on_nonfinite`.
    """

    def update(params, opt_state, ref_params, batch):
        if ref_params is not None and config.grpo.beta > 0:
            from .sampler import completion_logprobs

            ref = nnx.merge(ref_graphdef, ref_params)
            g = config.grpo
            batch = dict(batch)
            batch["ref_logp"] = jax.lax.stop_gradient(
                completion_logprobs(ref, batch, batch["tokens"], g.group_size, g.temperature)
            )

        def f(p):
            loss, metrics = loss_fn(nnx.merge(graphdef, p), batch, config=config)
            return loss, metrics

        (loss, metrics), grads = jax.value_and_grad(f, has_aux=True)(params)
        gnorm = optax.global_norm(grads)
        updates, new_opt = tx.update(grads, opt_state, params)
        finite = jnp.isfinite(loss) & jnp.isfinite(gnorm) & jnp.isfinite(optax.global_norm(updates))
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
        metrics = dict(metrics, loss=loss, grad_norm=gnorm, finite=finite.astype(jnp.int32))
        return keep(new_params, params), keep(new_opt, opt_state), metrics

    return update


# ---- checkpoints ----------------------------------------------------------------------------------


def checkpoint_manager(workdir: str, keep: int):
    import orbax.checkpoint as ocp

    path = os.path.join(fs.absolute(workdir), "checkpoints")
    return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def save_checkpoint(mngr, step: int, params, opt_state, meta: dict):
    import orbax.checkpoint as ocp

    mngr.save(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            opt_state=ocp.args.StandardSave(opt_state),
            meta=ocp.args.JsonSave(meta),
        ),
    )


def restore_checkpoint(mngr, step: int, params, opt_state):
    import orbax.checkpoint as ocp

    abstract = lambda t: jax.tree.map(  # noqa: E731
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), t
    )
    r = mngr.restore(
        step,
        args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract(params)),
            opt_state=ocp.args.StandardRestore(abstract(opt_state)),
            meta=ocp.args.JsonRestore(),
        ),
    )
    return r["params"], r["opt_state"], r["meta"]


def _rollout_shardings(params, abstract_state, mesh, rules):
    """Parameter shardings for sampling: tensor-parallel only (no fsdp all-gather per decode step)."""
    if mesh is None:
        return None
    rollout_rules = tuple((k, None if v == "fsdp" else v) for k, v in rules)
    return sharding.state_shardings(abstract_state, mesh, rollout_rules).to_pure_dict()


def _log(msg: str):
    if jax.process_index() == 0:
        print(msg, flush=True)


def main(config, workdir: str, batches=None, tokenizer=None, callbacks=()) -> int:
    """Runs (or resumes) training in `workdir`. `batches`/`tokenizer` may be injected (tests, demo).

    callbacks: each is called as `cb(step, model) -> dict[str, float]` after optimizer step `step` (1-based,
    the number of steps done) and its scalars join that step's metrics row (e.g. `evaluate.eval_callback`).
    """
    from tqdm import tqdm

    from .checkpoint import write_model_json

    sharding.maybe_initialize_distributed()
    jax.config.update("jax_threefry_partitionable", True)
    algo = config.algo
    if algo not in ("grpo", "sft"):
        raise ConfigError(f"algo={algo!r}: use 'grpo' or 'sft'")
    mesh = sharding.make_mesh(tuple(config.mesh.shape))
    rules = tuple(tuple(r) for r in config.mesh.rules) if config.mesh.get("rules") else sharding.TRAIN_RULES
    _log(
        f"seedr1 train ({algo}) in {workdir}\nmesh {dict(mesh.shape)} over {jax.device_count()} "
        f"{jax.devices()[0].device_kind} devices, {jax.process_count()} process(es)\nconfig:\n{config}"
    )
    fs.makedirs(workdir)

    with jax.set_mesh(mesh):
        model = load_model(config, mesh, rules)
        write_model_json(workdir, model)
        graphdef, state = nnx.split(model)
        params = state.to_pure_dict()
        abstract_state = nnx.state(nnx.eval_shape(lambda: model))
        t = config.train
        total = int(t.num_steps)
        if total <= 0:
            raise ConfigError("train.num_steps must be > 0 (the GRPO recipe: ~750 = 1 epoch of 6k prompts / 8)")
        tx, schedule = make_optimizer(config, params, total)
        opt_state = jax.jit(tx.init, out_shardings=optimizer_shardings(tx, params, mesh))(params)

        ref_params = None
        if algo == "grpo" and config.grpo.beta > 0:
            ref_dt = jnp.dtype(config.grpo.ref_dtype)
            ref_params = jax.jit(lambda p: jax.tree.map(lambda x: x.astype(ref_dt), p))(params)

        mngr = checkpoint_manager(workdir, t.keep_checkpoints)
        start = 0
        if mngr.latest_step() is not None:
            start = int(mngr.latest_step())
            params, opt_state, meta = restore_checkpoint(mngr, start, params, opt_state)
            _log(f"resumed from step {start} ({mngr.directory})")

        # compiled once: compute-dtype weights with the rollout (tensor-parallel only) shardings
        cdt = jnp.dtype(config.model.dtype)
        to_rollout = jax.jit(
            lambda p: jax.tree.map(lambda x: x.astype(cdt), p),
            out_shardings=_rollout_shardings(params, abstract_state, mesh, rules),
        )
        loss_fn = grpo_loss if algo == "grpo" else sft_batch_loss
        update = jax.jit(
            make_update(graphdef, tx, loss_fn, ref_graphdef=graphdef, config=config), donate_argnums=(0, 1)
        )
        if batches is None:
            from . import data

            batches = data.train_batches(config.data, model.cfg, start_step=start)
        if tokenizer is None and algo == "grpo":
            from .processor import load_tokenizer

            tokenizer = load_tokenizer()
        writer = MetricsWriter(workdir)
        peak = peak_flops()
        n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
        key = jax.random.key(t.seed)
        bar = tqdm(range(start, total), initial=start, total=total, desc=algo, disable=jax.process_index() != 0)
        status = 0
        for step in bar:
            host_batch = next(batches)
            t0 = time.perf_counter()
            if algo == "grpo":
                rollout, scalars, texts = _grpo_rollout(
                    config,
                    graphdef,
                    params,
                    to_rollout,
                    mesh,
                    host_batch,
                    tokenizer,
                    jax.random.fold_in(key, step),
                )
                t_roll, t_rew = scalars.pop("_t_rollout"), scalars.pop("_t_reward")
                t1 = time.perf_counter()
                for _ in range(config.grpo.mu):
                    params, opt_state, m = update(params, opt_state, ref_params, rollout)
                ntok = float(
                    np.asarray(rollout["mask"]).sum()
                    + np.asarray(host_batch["attention_mask"]).sum() * config.grpo.group_size
                )
            else:
                scalars, texts, t_roll, t_rew = {}, [], 0.0, 0.0
                t1 = time.perf_counter()
                dev = {k: v for k, v in host_batch.items() if k in MODEL_INPUTS + ("loss_mask",)}
                params, opt_state, m = update(params, opt_state, None, sharding.shard_batch(dev, mesh))
                ntok = float(np.asarray(host_batch["attention_mask"]).sum())
            m = jax.device_get(m)
            t_upd = time.perf_counter() - t1
            dt = time.perf_counter() - t0
            scalars.update({k: float(v) for k, v in m.items()})
            scalars.update(
                lr=float(schedule(step)),
                time_rollout=t_roll,
                time_reward=t_rew,
                time_update=t_upd,
                time_step=dt,
                tokens_per_s=ntok / dt,
            )
            if peak:
                scalars["mfu"] = (
                    6.0 * n_params * ntok * config.grpo.mu / dt / peak
                    if algo == "grpo"
                    else (6.0 * n_params * ntok / dt / peak)
                )
            for cb in callbacks:  # evaluation during training etc. (seedr1_jax.evaluate.eval_callback)
                scalars.update(cb(step + 1, nnx.merge(graphdef, params)))
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
                    last = mngr.latest_step()
                    _log(
                        f"step {step + 1}: non-finite loss ({scalars['loss']}) or gradient norm "
                        f"({scalars['grad_norm']}); stopping. The last good checkpoint is step {last} in "
                        f"{mngr.directory}. Lower optim.lr or set train.on_nonfinite=skip, then rerun to resume."
                    )
                    status = 1
                    break
            if (step + 1) % t.checkpoint_every == 0 or step + 1 == total:
                save_checkpoint(mngr, step + 1, params, opt_state, {"step": step + 1, "algo": algo})
                writer.flush()
        mngr.wait_until_finished()
        writer.close()
        plot_metrics(workdir)
        return status


def _grpo_rollout(config, graphdef, params, to_rollout, mesh, host_batch, tokenizer, rng):
    """Sample G completions per prompt, score them on the host, and build the update batch."""
    from . import rewards as rw
    from .sampler import generate

    g = config.grpo
    t0 = time.perf_counter()
    roll_params = to_rollout(params)
    batch = sharding.shard_batch({k: v for k, v in host_batch.items() if k in MODEL_INPUTS}, mesh)
    out = generate(
        nnx.merge(graphdef, roll_params),
        batch,
        rng=rng,
        group_size=g.group_size,
        max_new_tokens=g.max_new_tokens,
        temperature=g.temperature,
        top_k=g.top_k,
        top_p=g.top_p,
    )
    tokens, mask = np.asarray(out["tokens"]), np.asarray(out["mask"])
    t_roll = time.perf_counter() - t0
    t0 = time.perf_counter()
    texts = tokenizer.batch_decode([row[: int(m.sum())] for row, m in zip(tokens, mask)], skip_special_tokens=True)
    answers = np.repeat(np.asarray(host_batch["answer"]), g.group_size)
    total, per_fn = rw.compute_rewards(texts, list(answers), dict(g.rewards))
    adv = np.asarray(grpo.group_advantages(jnp.asarray(total), g.group_size))
    t_rew = time.perf_counter() - t0
    upd = {
        k: batch[k]
        for k in ("input_ids", "attention_mask", "positions", "pixels", "hw_pos", "vision_index")
        if k in batch
    }
    extra = dict(tokens=tokens.astype(np.int32), mask=mask.astype(np.int32), advantages=adv.astype(np.float32))
    if g.mu > 1:
        extra["old_logp"] = np.asarray(out["logprobs"], np.float32)
    upd.update(sharding.shard_batch(extra, mesh))
    lengths = mask.sum(1)
    scalars = {
        "reward_mean": float(total.mean()),
        "reward_std": float(total.std()),
        **{f"reward_{k}": float(np.mean(v)) for k, v in per_fn.items()},
        "completion_length": float(lengths.mean()),
        "advantage_mean": float(adv.mean()),
        "advantage_abs_mean": float(np.abs(adv).mean()),
        "_t_rollout": t_roll,
        "_t_reward": t_rew,
    }
    return upd, scalars, texts
