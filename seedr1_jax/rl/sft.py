"""SFT (docs/recipe.md section 6): next-token cross-entropy on the assistant turn only; `prepare` and `loss`
for the generic trainer."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seedr1_jax.data.batch import Prompts, SFTBatch
from seedr1_jax.models import vocab
from seedr1_jax.models.processor import sft_example  # noqa: F401 (sft.sft_example kept)


def token_cross_entropy(logits, targets, mask):
    """Masked mean next-token cross-entropy.

    logits: f32[B, T, V] predicting targets int32[B, T]; mask: [B, T] (1 = trained). Returns f32[].
    """
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    m = mask.astype(jnp.float32)
    return jnp.sum((logz - picked) * m) / jnp.maximum(jnp.sum(m), 1.0)


def sft_loss(model, batch: SFTBatch, max_response_len: int | None = None):
    """batch: the prompts (prompt + response, left-padded) and `loss_mask` int32[B, T] (1 on trained targets);
    a dict holding those fields is accepted too.

    Sequences are left-padded, so the trained response sits at the end: only the last `max_response_len`
    targets get logits (a [B, T, 152k] fp32 logit tensor would dominate time and memory). None scores all.
    Returns f32[]: mean cross-entropy of predicting input_ids[:, t] from the prefix, over loss_mask.
    """
    if not isinstance(batch, SFTBatch):
        batch = SFTBatch(prompts=Prompts.of(batch), loss_mask=batch["loss_mask"])
    p = batch.prompts
    h = model.forward(p.input_ids, p.positions, p.attention_mask, **p.vision())
    t = p.input_ids.shape[1]
    k = t - 1 if max_response_len is None else min(int(max_response_len), t - 1)
    logits = model.logits(h[:, t - 1 - k : t - 1])
    targets = vocab.rows(model.cfg, p.input_ids[:, t - k :])
    return token_cross_entropy(logits, targets, batch.loss_mask[:, t - k :])


def prepare(config, host_batch: dict, mesh) -> tuple[SFTBatch, float]:
    """A `data.train_batches` SFT batch -> (device batch for `loss`, tokens it trains on for tokens/s)."""
    from seedr1_jax.parallel import sharding

    dev = sharding.shard_batch({k: v for k, v in host_batch.items() if k in (*Prompts.FIELDS, "loss_mask")}, mesh)
    return SFTBatch(prompts=Prompts.of(dev), loss_mask=dev["loss_mask"]), float(host_batch["attention_mask"].sum())


def loss(model, batch, *, config):
    """The trainer's loss: (f32[] cross-entropy over `loss_mask`, no extra metrics)."""
    return sft_loss(model, batch, max_response_len=config.sft.max_response_len), {}
