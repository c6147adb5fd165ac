"""Rollouts: the vision tower and the prompt prefill run ONCE per prompt, the KV cache is shared by the G
samples of its group, then a jitted decode loop samples until every row has stopped.

Also the trainer's teacher-forced `completion_logprobs`, built on the same prefix sharing: the prompt (and
its video) is encoded once per group and the G completions attend to that one cache (gradients included).
Rows are ordered b * G + g (prompt b, sample g).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from seedr1_jax.data.batch import Prompts
from seedr1_jax.models import vocab
from seedr1_jax.models.processor import IM_END_ID as IM_END
from seedr1_jax.models.processor import PAD_ID as ENDOFTEXT
from seedr1_jax.rl.logprobs import completion_mask, token_logprobs


def _cache(model, b: int, s: int):
    t = model.cfg.text
    shape = (t.num_layers, b, s, t.num_kv_heads, t.head_dim)
    dt = jnp.dtype(model.cfg.dtype)
    return jnp.zeros(shape, dt), jnp.zeros(shape, dt)


def prefill(model, prompts: Prompts, max_new_tokens: int):
    """Encodes the B prompts once (`batch.Prompts`, left-padded). Returns (cache (k, v) [L, B, T + C, K, H],
    last hidden [B, D], next M-RoPE position int32[B], key_valid bool[B, T + C])."""
    p = Prompts.of(prompts)
    ids, am = p.input_ids, p.attention_mask.astype(bool)
    b, t = ids.shape
    s = t + max_new_tokens
    x, deepstack = model.embed(ids, **p.vision())
    key_valid = jnp.concatenate([am, jnp.zeros((b, max_new_tokens), bool)], axis=1)
    causal = jnp.arange(s)[None, :] <= jnp.arange(t)[:, None]  # [T, S]
    mask = causal[None] & key_valid[:, None, :]
    h, cache = model.model(x, p.positions, mask, cache=_cache(model, b, s), write_index=0, deepstack=deepstack)
    return cache, h[:, -1], completion_positions(p, 1)[0, :, 0], key_valid


def _repeat(tree, g: int, axis: int):
    return jax.tree.map(lambda x: jnp.repeat(x, g, axis=axis), tree)


def completion_positions(prompts: Prompts, c: int):
    """M-RoPE positions int32[3, B, C] of C completion tokens: all three components continue from the largest
    position of a prompt's valid tokens + 1 (text after the last vision block, as in the original Qwen2-VL)."""
    p = Prompts.of(prompts)
    am = p.attention_mask.astype(bool)
    nxt = jnp.max(jnp.where(am[None], p.positions, -1), axis=(0, 2)) + 1  # [B]
    return jnp.broadcast_to((nxt[:, None] + jnp.arange(c))[None], (3, am.shape[0], c)).astype(jnp.int32)


def teacher_forced_inputs(prompts: Prompts, tokens, group_size: int) -> dict:
    """The plain full-sequence inputs of prompt + completion, for `Qwen2VL.forward(**inputs)`.

    prompts: the B prompts (`batch.Prompts` or a dict of its fields); tokens int32[B*G, C] (rows b * G + g).
    Returns input_ids and
    attention_mask int32[B*G, T + C] (completion keys all attended: causality keeps pads after a stop from
    touching earlier tokens), positions int32[3, B*G, T + C] and the vision fields repeated G times
    (vision_index padded with -1). Logits at [:, T - 1 : T + C - 1] predict the completion. This runs the vision
    tower G times per prompt; `completion_logprobs` is the prefix-shared equivalent the trainer uses.
    """
    g, p = group_size, Prompts.of(prompts)
    c = tokens.shape[1]
    rep = lambda x, axis=0: jnp.repeat(jnp.asarray(x), g, axis=axis)  # noqa: E731
    out = dict(
        input_ids=jnp.concatenate([rep(p.input_ids), tokens.astype(jnp.int32)], axis=1),
        attention_mask=jnp.concatenate(
            [rep(p.attention_mask).astype(jnp.int32), jnp.ones(tokens.shape, jnp.int32)], axis=1
        ),
        positions=jnp.concatenate([rep(p.positions, 1), rep(completion_positions(p, c), 1)], axis=2),
    )
    if p.pixels is not None:
        out["pixels"], out["hw_pos"] = rep(p.pixels), rep(p.hw_pos)
        vi = rep(p.vision_index)
        out["vision_index"] = jnp.concatenate([vi, jnp.full(tokens.shape, -1, vi.dtype)], axis=1)
    return out


def completion_logprobs(model, prompts: Prompts, tokens, group_size: int, temperature: float = 1.0):
    """Teacher-forced log-probs f32[B*G, C] of `tokens` int32[B*G, C] continuing the B `prompts`.

    One prompt pass per group (vision tower included), then one pass over all completions against the
    shared cache; differentiable. Equals the sampler's log-probs for the tokens it sampled.
    """
    c, p = tokens.shape[1], Prompts.of(prompts)
    cache, last_h, _, key_valid = prefill(model, p, c)
    t = p.input_ids.shape[1]
    cache = _repeat(cache, group_size, 1)
    last_h, key_valid = _repeat((last_h, key_valid), group_size, 0)
    comp_valid = key_valid.at[:, t:].set(True)
    causal = jnp.concatenate([jnp.ones((c, t), bool), jnp.tril(jnp.ones((c, c), bool))], axis=1)  # [C, S]
    mask = causal[None] & comp_valid[:, None, :]
    pos = _repeat(completion_positions(p, c), group_size, 1)
    x = model.model.embed_tokens(vocab.rows(model.cfg, tokens))
    h, _ = model.model(x, pos, mask, cache=cache, write_index=t)
    hs = jnp.concatenate([last_h[:, None], h[:, :-1]], axis=1)
    return token_logprobs(model.logits(hs) / temperature, vocab.rows(model.cfg, tokens))


def _penalize(logits, presence, penalty: float):
    """transformers' RepetitionPenaltyLogitsProcessor over prompt + generated tokens."""
    pen = jnp.where(logits > 0, logits / penalty, logits * penalty)
    return jnp.where(presence, pen, logits)


def greedy_pick(logits):
    """argmax over the last axis (ties to the lowest index, as argmax). On CPU as `lax.top_k(k=1)`: XLA's CPU
    backend lowers argmax to a variadic (value, index) reduce that costs as much as the 152k-vocabulary head's
    matmul itself, top_k about half that (`python bench/toy_head.py`); same index either way."""
    if jax.default_backend() == "cpu":
        return jax.lax.top_k(logits, 1)[1][..., 0].astype(jnp.int32)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def _choose(logits, rng, *, greedy, temperature, top_k, top_p):
    """logits f32[N, V] -> token int32[N]."""
    if greedy:
        return greedy_pick(logits)
    scaled = logits / temperature
    if top_k and top_k > 0:
        vals, idx = jax.lax.top_k(scaled, top_k)
    else:
        idx = jnp.argsort(-scaled, axis=-1)
        vals = jnp.take_along_axis(scaled, idx, axis=-1)
    if top_p < 1.0:
        probs = jax.nn.softmax(vals, axis=-1)
        cum = jnp.cumsum(probs, axis=-1)
        vals = jnp.where(cum - probs > top_p, -jnp.inf, vals)  # keep the smallest set with mass >= top_p
    choice = jax.random.categorical(rng, vals, axis=-1)
    return jnp.take_along_axis(idx, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)


@functools.partial(
    jax.jit,
    static_argnames=(
        "graphdef",
        "group_size",
        "max_new_tokens",
        "greedy",
        "temperature",
        "top_k",
        "top_p",
        "repetition_penalty",
        "stop_ids",
        "pad_id",
    ),
)
def _generate(
    graphdef,
    state,
    batch,
    rng,
    *,
    group_size,
    max_new_tokens,
    greedy,
    temperature,
    top_k,
    top_p,
    repetition_penalty,
    stop_ids,
    pad_id,
):
    model = nnx.merge(graphdef, state)
    ids = batch.input_ids
    b, t = ids.shape
    c, g = max_new_tokens, group_size
    n = b * g
    cache, last_h, next_pos, key_valid = prefill(model, batch, c)
    logits = model.logits(last_h)  # [B, V], once per prompt
    cache = _repeat(cache, g, 1)
    logits, next_pos, key_valid = _repeat((logits, next_pos, key_valid), g, 0)
    width = logits.shape[-1]
    presence = None
    if repetition_penalty != 1.0:
        prompt_tokens = jnp.where(batch.attention_mask.astype(bool), vocab.rows(model.cfg, ids), width)  # pads out
        presence = jnp.zeros((b, width + 1), bool).at[jnp.arange(b)[:, None], prompt_tokens].set(True)
        presence = jnp.repeat(presence[:, :width], g, axis=0)
    stops = jnp.asarray(stop_ids, jnp.int32)
    pad_row = vocab.rows(model.cfg, jnp.int32(pad_id))  # a finished sequence reads pad, as its tokens say
    layers = None
    if model.cfg.decode_unroll:  # per-layer weights and cache, split once per rollout (`TextModel.per_layer`)
        layers = model.model.per_layer()
        cache = [(cache[0][i], cache[1][i]) for i in range(len(layers))]

    def cond(st):
        i, done = st[0], st[3]
        return (i < c) & ~jnp.all(done)

    def body(st):
        i, tokens, logps, done, cache, logits, key_valid, presence, rng = st
        rng, sub = jax.random.split(rng)
        adj = logits if presence is None else _penalize(logits, presence, repetition_penalty)
        row = _choose(adj, sub, greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p)
        lp = jnp.take_along_axis(jax.nn.log_softmax(logits / temperature, axis=-1), row[:, None], axis=-1)[:, 0]
        row = jnp.where(done, pad_row, row)
        tok = jnp.where(done, pad_id, vocab.tokens(model.cfg, row))
        tokens = tokens.at[:, i].set(tok)
        logps = logps.at[:, i].set(jnp.where(done, 0.0, lp))
        done = done | jnp.isin(tok, stops)
        if presence is not None:
            presence = presence.at[jnp.arange(n), row].set(True)
        key_valid = key_valid.at[:, t + i].set(True)
        pos = jnp.broadcast_to((next_pos + i)[None, :, None], (3, n, 1))
        x = model.model.embed_tokens(row[:, None])  # the picked row: no id -> row search per token
        h, cache = model.model(
            x, pos, key_valid[:, None, :], cache=cache, write_index=t + i, in_place=layers is None, layers=layers
        )
        return i + 1, tokens, logps, done, cache, model.logits(h[:, 0]), key_valid, presence, rng

    init = (
        jnp.int32(0),
        jnp.full((n, c), pad_id, jnp.int32),
        jnp.zeros((n, c), jnp.float32),
        jnp.zeros((n,), bool),
        cache,
        logits,
        key_valid,
        presence,
        rng,
    )
    steps, tokens, logps, *_ = jax.lax.while_loop(cond, body, init)
    return tokens, logps, steps


def generate(
    model,
    batch,
    *,
    rng,
    group_size=8,
    max_new_tokens=256,
    temperature=1.0,
    top_k=50,
    top_p=1.0,
    greedy=False,
    repetition_penalty=1.0,
    stop_ids=(IM_END, ENDOFTEXT),
    pad_id=ENDOFTEXT,
) -> dict:
    """Samples `group_size` completions per prompt (docs/recipe.md sections 5 and 7).

    batch: `batch.Prompts` or a host/device batch dict holding its fields (B prompts). Returns tokens
    int32[B*G, C] (pad after a stop), logprobs f32[B*G, C] (log_softmax(logits / temperature) at each sampled
    token, 0 after the stop), mask int32[B*G, C] (`logprobs.completion_mask`: through the first <|im_end|>),
    lengths int32[B*G] and `steps` (decode steps run; fewer than C when every row stopped early).
    """
    graphdef, state = nnx.split(model)
    tokens, logps, steps = _generate(
        graphdef,
        state,
        Prompts.of(batch),
        rng,
        group_size=int(group_size),
        max_new_tokens=int(max_new_tokens),
        greedy=bool(greedy),
        temperature=float(temperature),
        top_k=int(top_k or 0),
        top_p=float(top_p),
        repetition_penalty=float(repetition_penalty),
        stop_ids=tuple(int(s) for s in stop_ids),
        pad_id=int(pad_id),
    )
    mask = completion_mask(tokens)
    return dict(tokens=tokens, logprobs=logps, mask=mask, lengths=mask.sum(-1), steps=steps)


def greedy(model, batch, *, max_new_tokens=256, repetition_penalty=1.0, stop_ids=(IM_END, ENDOFTEXT)) -> dict:
    """Greedy decoding of one completion per prompt, as `seedr1 eval` and the attention diagnostics decode
    (docs/recipe.md section 7: repetition penalty 1.05 there). Returns `generate`'s dict (B rows)."""
    return generate(
        model,
        batch,
        rng=jax.random.key(0),
        group_size=1,
        max_new_tokens=max_new_tokens,
        greedy=True,
        repetition_penalty=repetition_penalty,
        stop_ids=stop_ids,
    )
