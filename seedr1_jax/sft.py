"""SFT: next-token cross-entropy on the assistant turn only (SPEC.md section 6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_cross_entropy(logits, targets, mask):
    """Masked mean next-token cross-entropy.

    logits: f32[B, T, V] predicting targets int32[B, T]; mask: [B, T] (1 = trained). Returns f32[].
    """
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    m = mask.astype(jnp.float32)
    return jnp.sum((logz - picked) * m) / jnp.maximum(jnp.sum(m), 1.0)


def sft_loss(model, batch):
    """batch: the training layout plus `loss_mask` int32[B, T] (1 where token t+1 is a trained target).

    Returns f32[]: mean cross-entropy of predicting input_ids[:, 1:] where loss_mask[:, 1:] is set.
    """
    vision = {k: batch[k] for k in ("pixels", "hw_pos", "vision_index") if k in batch}
    h = model.forward(batch["input_ids"], batch["positions"], batch["attention_mask"], **vision)
    logits = model.logits(h[:, :-1])
    return token_cross_entropy(logits, batch["input_ids"][:, 1:], batch["loss_mask"][:, 1:])


def sft_example(tokenizer, prompt_ids, response: str):
    """Token ids and loss mask of one SFT sample (SPEC.md section 6).

    prompt_ids: int32[Tp], the rendered prompt ending with `<|im_start|>assistant\\n` (vision pads expanded).
    Trained: the response, `<|im_end|>` and the newline after it. Returns (ids int32[T], loss_mask int32[T]).
    """
    import numpy as np

    from .processor import encode

    target = encode(tokenizer, response + "<|im_end|>\n")
    ids = np.concatenate([np.asarray(prompt_ids, np.int32), np.asarray(target, np.int32)])
    mask = np.concatenate([np.zeros(len(prompt_ids), np.int32), np.ones(len(target), np.int32)])
    return ids, mask
