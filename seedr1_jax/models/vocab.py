"""A vocabulary subset: a model whose embedding and head hold only some of the tokenizer's ids.

`TextConfig.vocab_ids` (sorted token ids; empty = the whole vocabulary) gives row i of the embedding/head to token
`vocab_ids[i]`. Everything outside the model keeps the tokenizer's ids: `rows` maps ids to rows before an embedding
lookup or a pick from the logits, `tokens` maps a picked row back to its id. The toy study's model uses it: the
Qwen2 tokenizer's 151936 ids cost 96% of its parameters and most of its time, and its synthetic text uses a few
hundred of them (docs/performance.md). A subset model has no Hugging Face equivalent (its head scores only its ids),
so export refuses it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from seedr1_jax.models.config import ConfigError, ModelConfig


def rows(cfg: ModelConfig, ids):
    """Token ids (any shape) -> embedding/head rows; the ids themselves for a full vocabulary. An id outside the
    subset maps to a neighbour's row: `check_ids` refuses such data before it reaches a jitted program."""
    v = cfg.text.vocab_ids
    if not v:
        return ids
    table = jnp.asarray(v, jnp.int32)
    return jnp.minimum(jnp.searchsorted(table, ids.astype(jnp.int32)), len(v) - 1).astype(jnp.int32)


def tokens(cfg: ModelConfig, picked):
    """Rows picked from the logits -> token ids."""
    v = cfg.text.vocab_ids
    return picked if not v else jnp.asarray(v, jnp.int32)[picked]


def check_ids(cfg: ModelConfig, ids, where: str) -> None:
    """Raises ConfigError naming `where` and the first ids a subset model cannot read (host-side, numpy)."""
    v = cfg.text.vocab_ids
    if not v:
        return
    ids = np.unique(np.asarray(ids))
    missing = ids[~np.isin(ids, np.asarray(v))]
    if missing.size:
        raise ConfigError(
            f"{where}: token ids {missing[:8].tolist()} are outside the model's {len(v)}-token vocabulary subset "
            "(text.vocab_ids); use a model with the full vocabulary, or rebuild the subset from this data"
        )
