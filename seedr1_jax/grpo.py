"""GRPO math (SPEC section 5) as small pure JAX functions: advantages, token log-probs, k3 KL, mask, loss.

Letters: B batch (sequences), T completion length, V vocab, G group size, N = B completions in total.
Rewards are computed elsewhere (`rewards.py`); here everything is arrays, jit-friendly and shape-static.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

IM_END = 151645  # <|im_end|>: ends the assistant turn, the only token that closes the completion mask
ENDOFTEXT = 151643  # <|endoftext|>: also stops sampling, and is Qwen2's pad token

REDUCTIONS = ("sequence", "token", "dr_grpo")


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


def token_logprobs(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """log softmax(logits)[tokens], without materialising the [B, T, V] log-softmax.

    Args:
      logits: f32 or bf16[B, T, V], already aligned with `tokens` (logits[:, t] scores tokens[:, t]; the
        caller does the usual shift by one).
      tokens: int32[B, T].
    Returns:
      f32[B, T].
    """
    lse = jax.nn.logsumexp(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(logits, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return picked.astype(jnp.float32) - lse


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


def completion_mask(tokens: jax.Array, eos_ids: tuple[int, ...] = (IM_END,)) -> jax.Array:
    """1 for tokens up to and INCLUDING the first eos; all ones for a row without one (SPEC 5).

    The default closes the mask only at <|im_end|>, as SPEC 5 states and the reference does (its
    `eos_token_id`). A completion that stopped on <|endoftext|> therefore keeps every token, padding
    included, exactly like the reference; pass `eos_ids=(IM_END, ENDOFTEXT)` to also close on it.

    Args:
      tokens: int32[B, T] sampled completion tokens (padding after the stop token).
    Returns:
      int32[B, T].
    """
    is_eos = jnp.isin(tokens, jnp.asarray(eos_ids, tokens.dtype))
    # Positions strictly after the first eos are those with an eos at an earlier position.
    eos_before = jnp.cumsum(is_eos, axis=1) - is_eos.astype(jnp.int32)
    return (eos_before == 0).astype(jnp.int32)


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
      The keyword hyperparameters are Python values (static under jit): `beta == 0` removes the KL branch at
      trace time, so the reference model is never needed.
    Returns:
      scalar f32 loss, and f32 scalar metrics: kl (masked token mean; 0 without KL), clip_frac,
      clip_frac_low, clip_frac_high (fraction of masked tokens whose surrogate is clipped), ratio_mean.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown loss reduction {reduction!r}; choose from {REDUCTIONS}")
    logp = logp.astype(jnp.float32)
    mask = mask.astype(jnp.float32)
    old_logp = jax.lax.stop_gradient(logp) if old_logp is None else old_logp.astype(jnp.float32)
    adv = advantages.astype(jnp.float32)[:, None]

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
