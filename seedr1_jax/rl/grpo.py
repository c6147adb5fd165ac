"""GRPO (docs/recipe.md section 5): the math as small pure JAX functions (advantages, token log-probs, k3 KL,
mask, clipped surrogate), then the algorithm's two halves for the generic trainer: `prepare` (once per rollout
batch: sample, reward, advantages, reference/anchor log-probs) and `loss` (per optimizer step).

Letters: B batch (sequences), T completion length, V vocab, G group size, N = B completions in total.
Rewards are computed on the host (`rewards.py`); the math is arrays, jit-friendly and shape-static.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.data.batch import GRPOBatch, Prompts
from seedr1_jax.models import lora
from seedr1_jax.rl.logprobs import ENDOFTEXT, IM_END, completion_mask, token_logprobs  # noqa: F401 (grpo.X kept)

REDUCTIONS = ("sequence", "token", "dr_grpo")
IMPORTANCE = ("token", "sequence")  # the importance ratio per token (GRPO/PPO) or per sequence (GSPO)


def group_advantages(rewards: jax.Array, group_size: int, *, eps: float = 1e-4, scale_by_std: bool = True) -> jax.Array:
    """Group-normalised advantages: (r - mean_group(r)) / (std_group(r) + eps), std unbiased (n - 1).

    Args:
      rewards: f32[N], N = num_prompts * G with each prompt's G completions contiguous.
      group_size: G >= 2 (the unbiased std of one sample is undefined).
      eps: added to the std, not the variance (the reference's 1e-4).
      scale_by_std: False gives Dr.GRPO's unscaled r - mean.
    Returns:
      f32[N]; a group whose rewards are all equal gets exactly 0.
    """
    n = rewards.shape[0]
    if group_size < 2 or n % group_size:
        raise ValueError(f"group_size must be >= 2 and divide the number of rewards; got {group_size} for {n} rewards")
    r = rewards.astype(jnp.float32).reshape(n // group_size, group_size)
    centred = r - r.mean(axis=1, keepdims=True)
    adv = centred / (r.std(axis=1, ddof=1, keepdims=True) + eps) if scale_by_std else centred
    # The mean of G equal floats can round away from them; force the documented exact zero.
    same = r.max(axis=1, keepdims=True) == r.min(axis=1, keepdims=True)
    return jnp.where(same, 0.0, adv).reshape(n)


def kl_k3(logp: jax.Array, ref_logp: jax.Array, *, clamp: float | None = 11.0) -> jax.Array:
    """k3 estimator of KL(policy || ref) per token: exp(d) - d - 1 with d = clip(ref_logp - logp, -clamp, clamp).

    The clip keeps exp(d) finite in fp32/bf16 when the policy drifts far from the reference on a token.

    Args:
      logp, ref_logp: f32[B, T].
    Returns:
      f32[B, T], >= 0.
    """
    d = ref_logp - logp
    if clamp is not None:
        d = jnp.clip(d, -clamp, clamp)
    return jnp.exp(d) - d - 1.0


def policy_loss(
    logp: jax.Array,
    old_logp: jax.Array | None,
    ref_logp: jax.Array | None,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    beta: float = 0.1,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    kl_clamp: float | None = 11.0,
    reduction: str = "sequence",
    max_completion_len: int | None = None,
    importance: str = "token",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """GRPO clipped-surrogate loss with a k3 KL penalty.

    Per token: ratio = exp(logp - old_logp), surrogate = min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A),
    loss = -(surrogate - beta * kl). With `old_logp=None` (mu = 1, the reference) old_logp = stop_gradient(logp):
    the ratio is exactly 1, nothing clips, and the gradient is A * grad(logp).

    Args:
      logp: f32[B, T] policy log-probs of the completion tokens (differentiated).
      old_logp: f32[B, T] log-probs of the policy that sampled them (mu > 1), or None.
      ref_logp: f32[B, T] reference-model log-probs, or None; None or beta == 0 skips the KL entirely.
      advantages: f32[B], one per sequence.
      mask: int or float[B, T], 1 on completion tokens (`completion_mask`).
      reduction: "sequence" (reference: masked mean per sequence, then mean over sequences), "token"
        (DAPO/bnpo: masked sum / masked count over the whole batch) or "dr_grpo" (masked sum /
        (B * max_completion_len)).
      max_completion_len: Dr.GRPO's constant denominator; defaults to T.
      importance: "token" (above) or "sequence" (GSPO, Zheng et al. 2025): one ratio per sequence,
        s = exp(masked mean over its tokens of (logp - old_logp)), clipped as above; its surrogate
        -min(s * A, clip(s) * A) stands on each of the sequence's tokens, so `reduction="sequence"` gives GSPO's
        mean over sequences (GSPO uses much smaller epsilons, e.g. 3e-4 / 4e-4). At mu = 1 both are the same loss.
      The keyword hyperparameters are Python values (static under jit): `beta == 0` removes the KL branch at
      trace time, so the reference model is never needed.
    Returns:
      scalar f32 loss, and f32 scalar metrics: kl (masked token mean; 0 without KL), clip_frac,
      clip_frac_low, clip_frac_high (fraction of masked tokens whose surrogate is clipped), ratio_mean.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown loss reduction {reduction!r}; choose from {REDUCTIONS}")
    if importance not in IMPORTANCE:
        raise ValueError(f"unknown importance level {importance!r}; choose from {IMPORTANCE}")
    logp = logp.astype(jnp.float32)
    mask = mask.astype(jnp.float32)
    old_logp = jax.lax.stop_gradient(logp) if old_logp is None else old_logp.astype(jnp.float32)
    adv = advantages.astype(jnp.float32)[:, None]

    if importance == "sequence":
        log_s = ((logp - old_logp) * mask).sum(axis=1, keepdims=True) / jnp.maximum(mask.sum(1, keepdims=True), 1.0)
        ratio = jnp.broadcast_to(jnp.exp(log_s), logp.shape)
    else:
        ratio = jnp.exp(logp - old_logp)
    clipped = jnp.clip(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    per_token = -jnp.minimum(ratio * adv, clipped * adv)
    use_kl = ref_logp is not None and beta != 0.0
    if use_kl:
        kl = kl_k3(logp, ref_logp.astype(jnp.float32), clamp=kl_clamp)
        per_token = per_token + beta * kl

    masked_sum = lambda x: (x * mask).sum()
    count = jnp.maximum(mask.sum(), 1.0)
    if reduction == "sequence":
        # A fully masked row (batch padding) would divide by zero; it contributes 0 instead.
        loss = ((per_token * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1.0)).mean()
    elif reduction == "token":
        loss = masked_sum(per_token) / count
    else:
        denom = logp.shape[1] if max_completion_len is None else max_completion_len
        loss = masked_sum(per_token) / (logp.shape[0] * denom)

    ratio_sg = jax.lax.stop_gradient(ratio)
    adv_b = jnp.broadcast_to(adv, ratio.shape)
    low = ((ratio_sg < 1.0 - epsilon_low) & (adv_b < 0)).astype(jnp.float32)
    high = ((ratio_sg > 1.0 + epsilon_high) & (adv_b > 0)).astype(jnp.float32)
    metrics = {
        "kl": masked_sum(jax.lax.stop_gradient(kl)) / count if use_kl else jnp.zeros((), jnp.float32),
        "clip_frac": masked_sum(low + high) / count,
        "clip_frac_low": masked_sum(low) / count,
        "clip_frac_high": masked_sum(high) / count,
        "ratio_mean": masked_sum(ratio_sg) / count,
    }
    return loss, metrics


# ---- the algorithm around the math: prepare once per rollout batch, loss per optimizer step -----------------
@dataclasses.dataclass(frozen=True)
class Programs:
    """The jitted pieces of `prepare`, compiled once per run.

    to_rollout: params -> compute-dtype copy with the rollout (tensor-parallel only) shardings, for
      `rollout_graphdef`: the policy's own graph, or with LoRA and `model.lora.merge_rollout` a plain model's (the
      adapters folded into the kernels, a quantized base dequantized: once per rollout, not on every token).
    to_compute: params -> compute-dtype copy with the training shardings (policy and reference alike).
    logprobs: (compute params, prompt fields, tokens int32[N, C]) -> f32[N, C] teacher-forced log-probs, the
      same code path as the loss (`sampler.completion_logprobs`); one executable for policy and reference.
    same_as: (params, reference params) -> bool[]: whether the two give `logprobs` the same compute-dtype
      weights, bit for bit (then `logprobs` returns the same bits for both).
    """

    graphdef: Any
    rollout_graphdef: Any
    mesh: Any
    to_rollout: Any
    to_compute: Any
    logprobs: Any
    same_as: Any


class Prepared(NamedTuple):
    """One prepared optimizer batch: device arrays for `loss`, host scalars/texts for logging."""

    batch: GRPOBatch
    scalars: dict
    texts: list
    timings: dict
    tokens: float  # tokens the update processes (prompt + completion per sequence), for tokens/s and MFU


def programs(config, graphdef, abstract_model, mesh, rules) -> Programs:
    from seedr1_jax.models.families import abstract_model as plain_model
    from seedr1_jax.parallel import sharding
    from seedr1_jax.rl import sampler, update

    cdt = jnp.dtype(config.model.dtype)
    cast = lambda p: lora.cast_floats(p, cdt)  # noqa: E731  (a QLoRA base's codes stay integers)
    train_sh = update.param_shardings(abstract_model, mesh, rules, allow_uneven=True)
    g = config.grpo
    rollout_graphdef, rollout_model, to_rollout = graphdef, abstract_model, cast
    if lora.merge_rollout(config):  # the rollout decodes a plain model: adapters folded in, the base dequantized
        rollout_model = plain_model(abstract_model.cfg)
        rollout_graphdef = nnx.split(rollout_model)[0]
        kind, scale = config.model.lora.get("base_quant", ""), lora.scale(config)
        to_rollout = lambda p: cast(lora.merged(p, scale, kind, cdt))  # noqa: E731
    roll_sh = update.param_shardings(rollout_model, mesh, sharding.rollout_rules(rules), allow_uneven=True)

    def logprobs(params, prompts, tokens):
        model = nnx.merge(graphdef, params)
        return sampler.completion_logprobs(model, prompts, tokens, g.group_size, g.temperature)

    to_compute = jax.jit(cast, out_shardings=train_sh)

    def compute_params(params):  # already in the compute dtype (fp32 runs, a bf16 reference): no copy
        done = all(x.dtype == cdt for x in lora.float_leaves(params))
        return params if done else to_compute(params)

    def same(params, ref):  # the casts fuse into the comparison: no compute-dtype copy is made
        leaves = zip(jax.tree.leaves(params), jax.tree.leaves(ref))
        return jnp.all(jnp.stack([jnp.array_equal(a.astype(cdt), b.astype(cdt)) for a, b in leaves]))

    return Programs(
        graphdef=graphdef,
        rollout_graphdef=rollout_graphdef,
        mesh=mesh,
        to_rollout=jax.jit(to_rollout, out_shardings=roll_sh),
        to_compute=compute_params,
        logprobs=jax.jit(logprobs),
        same_as=jax.jit(same),
    )


def trim_completions(tokens: np.ndarray, mask: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Drops the trailing completion columns that no sequence uses (mask 0 in every row), keeping a multiple of
    `bucket` columns (at most C), so the update's log-prob passes skip them; 0 keeps all C columns.

    The loss is unchanged: a dropped column is masked out in every row, and causality keeps the earlier
    columns' log-probs. A row that never closed its mask (no <|im_end|>) uses every column, so nothing is
    dropped. Each kept length compiles the update once: at most C / bucket programs.

    Args:
      tokens, mask: int[N, C] from `sampler.generate`.
    """
    if bucket <= 0:
        return tokens, mask
    used = int(mask.sum(axis=1).max()) if mask.size else 0
    keep = min(tokens.shape[1], max(1, -(-used // bucket)) * bucket)
    return tokens[:, :keep], mask[:, :keep]


def reference_params(config, initial_params, progs: Programs):
    """The frozen reference: a `grpo.ref_dtype` copy of the weights `model.init` gave, or None when beta = 0.

    Made from the initial weights before any checkpoint is restored: a resumed run must still measure KL
    against model.init, not against its own trained parameters. None too with `grpo.ema_ref_decay` > 0: the
    reference then lives in the train state (`update.TrainState.ref`).
    """
    from seedr1_jax.rl.update import ema_decay

    if config.grpo.beta == 0 and not reads_reference(config) or ema_decay(config) > 0:
        return None
    dt = jnp.dtype(config.grpo.ref_dtype)
    return jax.jit(lambda p: jax.tree.map(lambda x: x.astype(dt), p))(initial_params)


def reference_in_update(config) -> bool:
    """Whether the reference's log-probs run inside the update (mu = 1, beta > 0, `grpo.ref_in_update`, and no
    reward reads them, as `care_consistency` does before the update): then `prepare` runs no teacher-forced pass
    at all, and the update reads the reference model (`reference_mode`)."""
    g = config.grpo
    if config.algo != "grpo" or g.mu != 1 or g.beta <= 0 or not bool(g.get("ref_in_update", True)):
        return False
    return not reads_reference(config)


def reads_reference(config) -> bool:
    """Whether a reward reads the reference's log-probs of the rollout (`care_consistency`)."""
    return "care_consistency" in dict(config.grpo.rewards)


def reference_mode(config) -> str:
    """`update.make_update`'s `reference`: "" (none in the update), "argument" (full fine-tuning: the frozen
    `reference_params` are the update's third argument), "adapters_off" (LoRA: the state's base, B zeroed) or
    "ema" (`grpo.ema_ref_decay` > 0: the state's moving average)."""
    from seedr1_jax.rl.update import ema_decay

    if not reference_in_update(config):
        return ""
    if ema_decay(config) > 0:
        return "ema"
    return "adapters_off" if lora.enabled(config) else "argument"


def logprob_fields(config, progs: Programs, params, ref_params, prompts: Prompts, tokens, ref_logp=None) -> dict:
    """The reference and anchor log-probs of one rollout (`GRPOBatch` fields), each forward run at most once.

    beta > 0: ref_logp from the reference weights. mu > 1: anchor_logp from the current weights (the old
    log-probs of later inner steps). mu = 1 with beta > 0 needs no anchor forward: its only role is to make the
    first step's KL exactly 0 when the policy's weights equal the reference's, and then the reference's
    log-probs ARE the policy's (same program, same bits), so anchor_logp = ref_logp with `pin_anchor` telling
    the loss whether the weights are equal. With `reference_in_update` (mu = 1 by default) the update computes
    the reference's log-probs itself and uses them as that anchor: only `pin_anchor` is made here. beta = 0 and
    mu = 1: no forward at all. ref_logp: the reference's log-probs when the rollout already made them (a reward
    read them: `reads_reference`).
    """
    g, out = config.grpo, {}
    if reference_in_update(config):
        return dict(pin_anchor=progs.same_as(params, ref_params))
    if g.beta > 0:
        out["ref_logp"] = (
            ref_logp if ref_logp is not None else progs.logprobs(progs.to_compute(ref_params), prompts, tokens)
        )
    if g.mu > 1:
        out["anchor_logp"] = progs.logprobs(progs.to_compute(params), prompts, tokens)
    elif g.beta > 0:
        out.update(anchor_logp=out["ref_logp"], pin_anchor=progs.same_as(params, ref_params))
    return out


def reward_samples(host_batch: dict) -> list[dict]:
    """The record fields a process reward sees (`rewards` module docstring), one dict per prompt of the batch."""

    def text(x):
        return x.decode("utf-8") if isinstance(x, bytes) else str(x)

    n = len(host_batch["answer"])
    out = []
    for i in range(n):
        row = {
            k: text(host_batch[k][i])
            for k in ("answer", "answer_text", "sample_id", "domain", "prompt")
            if k in host_batch
        }
        if "options" in host_batch:
            row["options"] = [o for o in text(host_batch["options"][i]).split("\n") if o]
        out.append(row)
    return out


def prepare(config, progs: Programs, params, ref_params, host_batch: dict, tokenizer, rng, step: int = 0) -> Prepared:
    """Rollout, rewards, advantages, and the reference / anchor log-probs, once per rollout batch.

    host_batch: a `data.train_batches` batch (B prompts). Samples G completions per prompt with the current
    weights, scores them on the host (`rewards.compute_rewards`), normalises advantages per group, then runs
    `progs.logprobs` (outside the mu loop, in the update's compute dtype) for the reference (beta > 0) and, with
    mu > 1, for the current policy ("anchor": the old log-probs); see `logprob_fields`.
    """
    r = _rollout(config, progs, params, host_batch, tokenizer, rng, step, trim=True, ref_params=ref_params)
    return _assemble(config, progs, params, ref_params, host_batch, r)


class _Rollout(NamedTuple):
    prompts: Prompts | None  # device prompts of the rollout batch (None: to be sharded from host_batch)
    tokens: np.ndarray  # this process's completions int[N, C]
    mask: np.ndarray
    texts: list
    total: np.ndarray  # f32[N] weighted reward
    per_fn: dict  # name -> f32[N]
    timings: dict
    ref_logp: Any = None  # device f32[N, C] (global) when a reward read the reference's log-probs (`reads_reference`)


def _rollout(
    config, progs: Programs, params, host_batch: dict, tokenizer, rng, step: int, trim: bool, ref_params=None
) -> _Rollout:
    """G completions per prompt of `host_batch`, decoded and scored (this process's rows). With a reward that reads
    the reference (`reads_reference`), the reference's log-probs of the completions are made here, before the
    rewards, and kept for the update's KL (`_Rollout.ref_logp`)."""
    from seedr1_jax.parallel import sharding
    from seedr1_jax.rl import rewards as rw
    from seedr1_jax.rl.sampler import generate

    g, mesh = config.grpo, progs.mesh
    timings = {}
    t0 = time.perf_counter()
    prompts = Prompts.of(sharding.shard_batch({k: v for k, v in host_batch.items() if k in Prompts.FIELDS}, mesh))
    model = nnx.merge(progs.rollout_graphdef, progs.to_rollout(params))
    out = generate(
        model,
        prompts,
        rng=rng,
        group_size=g.group_size,
        max_new_tokens=g.max_new_tokens,
        temperature=g.temperature,
        top_k=g.top_k,
        top_p=g.top_p,
    )
    # with several processes: every process trims the whole batch alike, then scores its own prompts' rows
    tokens, mask = (sharding.to_host(out[k]) for k in ("tokens", "mask"))
    if trim:
        tokens, mask = trim_completions(tokens, mask, g.get("completion_bucket", 0))
    mine = sharding.local_rows(len(tokens))
    tokens, mask = tokens[mine], mask[mine]
    timings["rollout"] = time.perf_counter() - t0

    attention = None
    if any(rw.wants_attention(f) for f in rw.resolve_rewards(dict(g.rewards)).values()):  # only when asked
        from seedr1_jax.rl import grounding

        t0 = time.perf_counter()
        evidence = host_batch.get("evidence", [""] * len(host_batch["answer"]))
        layers = tuple(g.get("attention_layers", (-1,)))
        attention = grounding.summary(
            model, prompts, tokens, mask, tokenizer, evidence, group_size=g.group_size, layers=layers, mesh=mesh
        )
        timings["attention"] = time.perf_counter() - t0

    ref_logp = confidence = None
    if reads_reference(config):  # GRPO-CARE: the reference's confidence in each completion's answer
        t0 = time.perf_counter()
        dev_tokens = sharding.shard_batch({"tokens": tokens.astype(np.int32)}, mesh)["tokens"]
        ref_logp = progs.logprobs(progs.to_compute(ref_params), prompts, dev_tokens)
        confidence = answer_confidence(tokenizer, tokens, mask, sharding.to_host(ref_logp)[mine])
        timings["logprobs"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    texts = tokenizer.batch_decode([row[: int(m.sum())] for row, m in zip(tokens, mask)], skip_special_tokens=True)
    answers = np.repeat(np.asarray(host_batch["answer"]), g.group_size)
    total, per_fn = rw.compute_rewards(
        texts,
        list(answers),
        dict(g.rewards),
        samples=[
            dict(s, completion_tokens=int(n))
            for s, n in zip((s for s in reward_samples(host_batch) for _ in range(g.group_size)), mask.sum(1))
        ],
        ctx={
            "step": int(step),
            "max_new_tokens": int(g.max_new_tokens),
            "overlong_buffer": int(g.get("overlong_buffer", 0)),
        },
        noise=float(g.get("reward_noise", 0.0)),
        noise_seed=(int(config.train.seed), int(step), 0x5EED),
        attention=attention,
        group_size=g.group_size,
        answer_confidence=confidence,
        care=dict(cap=float(g.get("care_confidence_cap", 1.0)), margin=float(g.get("care_margin", 0.0))),
    )
    timings["reward"] = time.perf_counter() - t0
    return _Rollout(prompts, tokens, mask, texts, total, per_fn, timings, ref_logp)


def answer_confidence(tokenizer, tokens, mask, ref_logp) -> np.ndarray:
    """GRPO-CARE's consistency signal per completion: exp of the mean reference log-prob of its `<answer>` content
    tokens (how likely the reference finds this answer after this reasoning); 0 without an answer span.

    tokens, mask: int[N, C]; ref_logp: f32[N, C] (host)."""
    from seedr1_jax.rl.grounding import token_spans

    out = np.zeros(len(tokens), np.float32)
    for i, row in enumerate(np.asarray(tokens)):
        span = token_spans(tokenizer, row[: int(np.asarray(mask)[i].sum())])[1]["answer"]
        if span:
            out[i] = np.exp(np.mean(np.asarray(ref_logp)[i, span]))
    return out


def _assemble(config, progs: Programs, params, ref_params, host_batch: dict, r: _Rollout) -> Prepared:
    """Advantages, the device batch and its reference / anchor log-probs, and the logged scalars."""
    from seedr1_jax.parallel import sharding

    g, mesh = config.grpo, progs.mesh
    timings = dict(r.timings)
    t0 = time.perf_counter()
    adv = np.asarray(group_advantages(jnp.asarray(r.total), g.group_size, scale_by_std=g.reduction != "dr_grpo"))
    timings["reward"] = timings.get("reward", 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    prompts = r.prompts
    if prompts is None:
        prompts = Prompts.of(sharding.shard_batch({k: v for k, v in host_batch.items() if k in Prompts.FIELDS}, mesh))
    extra = dict(tokens=r.tokens.astype(np.int32), mask=r.mask.astype(np.int32), advantages=adv.astype(np.float32))
    batch = GRPOBatch(prompts=prompts, inner_step=jnp.zeros((), jnp.int32), **sharding.shard_batch(extra, mesh))
    batch = batch.replace(**logprob_fields(config, progs, params, ref_params, prompts, batch.tokens, r.ref_logp))
    timings["logprobs"] = time.perf_counter() - t0

    # the scalars are over the whole batch (every process's rows)
    prompt_tokens = np.asarray(host_batch["attention_mask"]).sum(1).repeat(g.group_size)
    rows = sharding.gather_rows(
        np.stack(
            [r.total, adv, r.mask.sum(1), prompt_tokens, *(np.asarray(v, np.float64) for v in r.per_fn.values())], 1
        )
    )
    total_all, adv_all, lengths = rows[:, 0], rows[:, 1], rows[:, 2]
    scalars = {
        "reward_mean": float(total_all.mean()),
        "reward_std": float(total_all.std()),
        **{f"reward_{k}": float(np.mean(rows[:, 4 + i])) for i, k in enumerate(r.per_fn)},
        "completion_length": float(lengths.mean()),
        "advantage_mean": float(adv_all.mean()),
        "advantage_abs_mean": float(np.abs(adv_all).mean()),
    }
    n_tok = float(lengths.sum() + rows[:, 3].sum())
    return Prepared(batch, scalars, r.texts, timings, n_tok)


def informative_groups(total: np.ndarray, group_size: int) -> np.ndarray:
    """bool[N / G]: the groups whose rewards are not all equal (DAPO keeps only these: an all-equal group has
    zero advantage and teaches nothing)."""
    r = np.asarray(total, np.float64).reshape(-1, group_size)
    return r.max(axis=1) > r.min(axis=1)


def select_groups(rounds: list[np.ndarray], batch_size: int) -> tuple[list[tuple[int, int]], int]:
    """DAPO's refill order: given each rollout round's `informative_groups` flags, the (round, prompt) pairs of
    the optimizer batch (the informative groups in the order they were sampled, the first `batch_size`) and how
    many of them had to be topped up with uninformative groups (the latest rounds' first ones, in order) when
    the rounds ran out before `batch_size` informative groups were found."""
    keep = [(i, j) for i, f in enumerate(rounds) for j in np.flatnonzero(f)][:batch_size]
    filled = batch_size - len(keep)
    if filled:
        rest = [(i, j) for i in reversed(range(len(rounds))) for j in np.flatnonzero(~rounds[i])][:filled]
        keep += sorted(rest)
    return keep, filled


def prepare_dynamic(
    config, progs: Programs, params, ref_params, next_batch, tokenizer, rng, step: int = 0
) -> tuple[Prepared, int]:
    """`prepare` with DAPO's dynamic sampling (`grpo.dynamic_sampling`): rollout batches are drawn from
    `next_batch()` (the data stream's next B prompts) until B groups with unequal rewards are found, or
    `grpo.dynamic_max_rounds` batches were rolled out; the optimizer batch is those B groups (`select_groups`).
    Returns (the Prepared batch, the rollout batches drawn). The scalars add `rollout_prompts` (prompts
    rolled out this step: the budget spent), `dynamic_rounds` and `dynamic_filled` (uninformative groups
    taken because the rounds ran out). One process only (preflight)."""
    from seedr1_jax.data.pipeline import take_rows

    g = config.grpo
    rounds, flags, hosts = [], [], []
    while True:
        hb = next_batch()
        key = jax.random.fold_in(rng, len(rounds))
        r = _rollout(config, progs, params, hb, tokenizer, key, step, trim=False, ref_params=ref_params)
        rounds.append(r)
        hosts.append(hb)
        flags.append(informative_groups(r.total, g.group_size))
        if sum(int(f.sum()) for f in flags) >= len(hb["answer"]) or len(rounds) >= int(g.dynamic_max_rounds):
            break
    b = len(hosts[0]["answer"])
    pick, filled = select_groups(flags, b)
    host = take_rows(hosts, pick)
    gs = g.group_size
    rows = [(i, j * gs + k) for i, j in pick for k in range(gs)]
    cat = lambda get: np.stack([get(rounds[i])[n] for i, n in rows])  # noqa: E731
    tokens, mask = trim_completions(cat(lambda r: r.tokens), cat(lambda r: r.mask), g.get("completion_bucket", 0))
    per_fn = {k: np.asarray([rounds[i].per_fn[k][n] for i, n in rows], np.float32) for k in rounds[0].per_fn}
    timings = {k: sum(r.timings.get(k, 0.0) for r in rounds) for k in ("rollout", "reward")}
    merged = _Rollout(
        None,
        tokens,
        mask,
        [rounds[i].texts[n] for i, n in rows],
        np.asarray([rounds[i].total[n] for i, n in rows], np.float32),
        per_fn,
        timings,
    )
    prep = _assemble(config, progs, params, ref_params, host, merged)
    prep.scalars.update(rollout_prompts=float(b * len(rounds)), dynamic_rounds=float(len(rounds)))
    prep.scalars["dynamic_filled"] = float(filled)
    return prep, len(rounds)


def loss(model, batch: GRPOBatch, *, config, reference=None):
    """GRPO loss of one prepared batch (`prepare`) -> (f32[], metrics).

    On the first optimizer step of a rollout (`inner_step == 0`, and `pin_anchor` unless None) the weights are
    those that produced `anchor_logp` through the same code path, so its value is used exactly (gradient from
    the live pass): the ratio is exactly 1 and, at weights equal to the reference's, the KL and its gradient are
    exactly 0. reference: the frozen reference model when its log-probs run here (`reference_in_update`): they
    are then both `ref_logp` and, pinned by `pin_anchor`, the anchor.
    """
    from seedr1_jax.rl.sampler import completion_logprobs

    g = config.grpo
    logp = completion_logprobs(model, batch.prompts, batch.tokens, g.group_size, g.temperature)
    anchor, ref_logp = batch.anchor_logp, batch.ref_logp
    if reference is None and ref_logp is None and reference_in_update(config):
        raise ValueError(
            "grpo.ref_in_update: the reference's log-probs belong inside this update, which was built without a "
            "reference; build it with update.make_update(..., reference=grpo.reference_mode(config))"
        )
    if reference is not None:
        ref_logp = anchor = jax.lax.stop_gradient(
            completion_logprobs(reference, batch.prompts, batch.tokens, g.group_size, g.temperature)
        )
    if anchor is not None:
        pinned = anchor + (logp - jax.lax.stop_gradient(logp))
        pin = batch.inner_step == 0
        if batch.pin_anchor is not None:
            pin = pin & batch.pin_anchor
        logp = jnp.where(pin, pinned, logp)
    return policy_loss(
        logp,
        anchor if g.mu > 1 else None,
        ref_logp,
        batch.advantages,
        batch.mask,
        beta=g.beta,
        epsilon_low=g.epsilon_low,
        epsilon_high=g.epsilon_high,
        kl_clamp=g.kl_clamp,
        reduction=g.reduction,
        max_completion_len=g.max_new_tokens,
        importance=g.get("importance", "token"),
    )
