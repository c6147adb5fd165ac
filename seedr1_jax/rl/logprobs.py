"""Token ids that end a completion, per-token log-probs and the completion mask: shared by the rollout sampler
and the RL algorithms (below both, so neither imports the other for them).

Letters: B batch (sequences), T completion length, V vocab.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seedr1_jax.models.processor import IM_END_ID, PAD_ID

IM_END = IM_END_ID  # <|im_end|>: ends the assistant turn; closes the completion mask
ENDOFTEXT = PAD_ID  # <|endoftext|>: also stops sampling, and is Qwen2's pad token


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


def completion_mask(tokens: jax.Array, eos_ids: tuple[int, ...] = (IM_END,)) -> jax.Array:
    """1 for tokens up to and INCLUDING the first eos; all ones for a row without one (docs/recipe.md 5).

    The default closes the mask only at <|im_end|>, as docs/recipe.md section 5 states and the reference does (its
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
