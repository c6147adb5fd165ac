"""The optimizer step shared by `seedr1 train` and `seedr1 aot`: optimizer, train state and its shardings, and
one jitted update with explicit in/out shardings and donation.

Every algorithm plugs in a `loss(model, batch, *, config) -> (f32[], metrics)` (grpo.loss, sft.loss); the
update itself knows nothing about GRPO or SFT. The shardings come from one place (`state_shardings`), so
init, checkpoint restore, the update, the rollout weights and AOT compiles all agree.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from seedr1_jax.models import lora
from seedr1_jax.models.config import ConfigError
from seedr1_jax.parallel import sharding


@flax.struct.dataclass
class TrainState:
    """What one optimizer step reads and writes (and what a checkpoint holds).

    params: the trained pure-dict parameters (fp32 master weights by default), sharded by the train rules: the
      whole model, or with LoRA (`model.lora.rank` > 0) the adapters alone.
    opt_state: the optax state; Adam moments take their parameter's sharding, counters are replicated.
    frozen: with LoRA, the rest of the model (the base; no gradient, no optimizer state, not checkpointed: it is
      `model.init`'s); {} otherwise. The update passes it through unchanged (donated, so without a copy).
    ref: with `grpo.ema_ref_decay` = d > 0, the GRPO reference's trained part, an exponential moving average of
      `params` (GRPO-CARE's slowly moving reference: after each step ref <- d ref + (1 - d) params, fp32, same
      shardings; checkpointed); {} otherwise (the reference is `model.init`'s, frozen).
    """

    params: Any
    opt_state: Any
    frozen: Any = flax.struct.field(default_factory=dict)
    ref: Any = flax.struct.field(default_factory=dict)

    def model_params(self):
        """The whole model's pure-dict parameters (adapters and base joined)."""
        return lora.combine(self.params, self.frozen)

    def ema_reference(self):
        """The moving-average reference's whole parameters (its trained part and the frozen base joined)."""
        return lora.combine(self.ref, self.frozen)


def ema_decay(config) -> float:
    """`grpo.ema_ref_decay` of a GRPO run (0: the reference is frozen at `model.init`); 0 for SFT."""
    return float(config.grpo.get("ema_ref_decay", 0.0)) if config.algo == "grpo" else 0.0


# ---- optimizer ----------------------------------------------------------------------------------------
def learning_rate_schedule(o, total_steps: int):
    """optim.lr with `optim.warmup_ratio` linear warm-up, then linear decay to 0, cosine, or constant."""
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


def make_optimizer(config, params, total_steps: int):
    """AdamW with global-norm clipping (docs/recipe.md); `model.freeze_vision` zeroes the tower's updates.

    Returns (optax transformation, learning-rate schedule).
    """
    o = config.optim
    schedule = learning_rate_schedule(o, total_steps)
    adamw = optax.adamw(schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
    tx = optax.chain(optax.clip_by_global_norm(o.grad_clip), adamw) if o.grad_clip > 0 else adamw
    if config.model.freeze_vision:
        labels = {k: jax.tree.map(lambda _, k=k: "frozen" if k == "visual" else "train", v) for k, v in params.items()}
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    return tx, schedule


# ---- shardings ----------------------------------------------------------------------------------------
def param_shardings(abstract_model, mesh, rules, *, allow_uneven: bool = False):
    """Pure-dict NamedShardings of the model's parameters under `rules` (None without a mesh)."""
    if mesh is None:
        return None
    state = nnx.state(abstract_model)
    return sharding.state_shardings(state, mesh, rules, allow_uneven=allow_uneven).to_pure_dict()


def trained_and_frozen(params: dict, use_lora: bool) -> tuple[dict, dict]:
    """(trained, frozen) parts of pure-dict model parameters: (adapters, base) with LoRA, else (all, {})."""
    return lora.partition(params) if use_lora else (params, {})


def state_shardings(
    tx, abstract_model, mesh, rules, *, allow_uneven: bool = False, use_lora: bool = False, ema: bool = False
) -> TrainState | None:
    """The train state's shardings: parameters by their logical axes, Adam moments like their parameter,
    optimizer counters replicated. The single source for init, restore, update and AOT."""
    if mesh is None:
        return None
    p_sh, frozen_sh = trained_and_frozen(
        param_shardings(abstract_model, mesh, rules, allow_uneven=allow_uneven), use_lora
    )
    params, _ = trained_and_frozen(nnx.state(abstract_model).to_pure_dict(), use_lora)
    abstract_opt = jax.eval_shape(tx.init, params)
    replicated = NamedSharding(mesh, P())
    shaped = jax.tree.map(lambda p, s: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=s), params, p_sh)
    opt_sh = optax.tree_map_params(
        tx, lambda _, p: p.sharding, abstract_opt, shaped, transform_non_params=lambda _: replicated
    )
    return TrainState(params=p_sh, opt_state=opt_sh, frozen=frozen_sh, ref=p_sh if ema else {})


def abstract_state(
    tx, abstract_model, shardings: TrainState | None, use_lora: bool = False, ema: bool = False
) -> TrainState:
    """ShapeDtypeStructs (with shardings) of the train state: an orbax restore target and an AOT argument."""
    params, frozen = trained_and_frozen(nnx.state(abstract_model).to_pure_dict(), use_lora)
    opt = jax.eval_shape(tx.init, params)
    state = TrainState(params=params, opt_state=opt, frozen=frozen, ref=params if ema else {})
    if shardings is None:
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)


def batch_shardings(batch, mesh):
    """NamedShardings of a device batch (`batch.GRPOBatch`, `batch.SFTBatch`, or a dict): the leading (batch)
    dimension over (data, fsdp) where it divides, `Prompts.positions` [3, B, T] on its second, scalars
    replicated."""
    if mesh is None:
        return None

    def one(path, x):
        name = getattr(path[-1], "name", getattr(path[-1], "key", None))
        if len(x.shape) == 0:
            return NamedSharding(mesh, P())
        return sharding.batch_sharding(mesh, x.shape, sharding.batch_dim(name))

    return jax.tree_util.tree_map_with_path(one, batch)


# ---- the update ---------------------------------------------------------------------------------------
REFERENCE_MODES = ("", "argument", "adapters_off", "ema")


def make_update(graphdef, tx, loss_fn, config, reference: str = ""):
    """update(state: TrainState, batch[, reference params]) -> (TrainState, metrics): one optimizer step on
    `loss_fn`.

    reference: where a loss that reads a frozen reference model inside the step (`grpo.reference_mode`) gets it:
      "" none (the loss is called without one); "argument": its parameters are the update's third argument (not
      donated, not differentiated); "adapters_off": LoRA's reference, the state's own base with every B zeroed,
      built inside the program (no argument, no copy); "ema": the state's moving average (`TrainState.ref`).
      The loss then receives `reference=` an nnx model.
    With `grpo.ema_ref_decay` = d > 0 the step also moves the reference: ref <- d ref + (1 - d) new params.
    A non-finite loss, gradient or update leaves the state unchanged (`metrics["finite"] = 0`); the loop then
    stops or skips by `train.on_nonfinite`.
    """
    if reference not in REFERENCE_MODES:
        raise ValueError(f"reference={reference!r}: use one of {REFERENCE_MODES}")
    decay = ema_decay(config)

    def update(state: TrainState, batch, ref_params=None):
        kw = {}
        if reference:
            if reference == "adapters_off":
                ref_params = lora.combine(lora.switched_off(state.params), state.frozen)
            elif reference == "ema":
                ref_params = state.ema_reference()
            kw["reference"] = nnx.merge(graphdef, jax.lax.stop_gradient(ref_params))

        def f(p):  # gradients for the trained parameters only (with LoRA: not for the frozen base)
            return loss_fn(nnx.merge(graphdef, lora.combine(p, state.frozen)), batch, config=config, **kw)

        (loss, metrics), grads = jax.value_and_grad(f, has_aux=True)(state.params)
        gnorm = optax.global_norm(grads)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        finite = jnp.isfinite(loss) & jnp.isfinite(gnorm) & jnp.isfinite(optax.global_norm(updates))
        new = (optax.apply_updates(state.params, updates), new_opt)
        params, opt = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, (state.params, state.opt_state))
        metrics = dict(metrics, loss=loss, grad_norm=gnorm, finite=finite.astype(jnp.int32))
        ref = state.ref
        if decay > 0:  # GRPO-CARE's slowly moving reference (a skipped step leaves the weights, so it too)
            ref = jax.tree.map(lambda r, p: decay * r + (1.0 - decay) * p.astype(r.dtype), state.ref, params)
        return TrainState(params=params, opt_state=opt, frozen=state.frozen, ref=ref), metrics

    return update


def jit_update(update, shardings: TrainState | None, batch_sh, mesh, ref_sh=None):
    """The update jitted once: explicit state/batch shardings in, the state's shardings out (metrics
    replicated), the old state donated so parameters and Adam moments are updated in place. ref_sh: the
    shardings of a reference-params third argument (`make_update(reference="argument")`), never donated."""
    if mesh is None:
        return jax.jit(update, donate_argnums=0)
    replicated = NamedSharding(mesh, P())
    return jax.jit(
        update,
        in_shardings=(shardings, batch_sh) if ref_sh is None else (shardings, batch_sh, ref_sh),
        out_shardings=(shardings, replicated),
        donate_argnums=0,
    )
