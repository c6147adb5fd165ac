"""The rollout's attention summary, for the process rewards that ask for it (issue 21: `grounding`).

A reward asks by naming a keyword parameter `attention` (`rewards.wants_attention`); only then does `grpo.prepare`
run `summary`: one teacher-forced pass of the rollout weights over prompt + completions that keeps the attention
probabilities of `grpo.attention_layers` (default the last layer), averaged over their heads. Without such a reward
nothing here runs: the rollout and update programs are the same. Per completion (a dict, `ctx["attention"]`):

  visual    mean attention mass of its `<think>` content tokens on vision tokens (image + video)
  video     the same on video tokens
  evidence  the share of that video mass on the frames that show the answer's evidence (the record's `evidence`
            field, `data.pipeline.evidence_frames`; each frame of a temporal pair gets half the pair's mass, as
            `seedr1 attention` counts it); None where the record names no evidence frames or there is no video
  tokens    the number of `<think>` content tokens (0: no reasoning; the masses are then 0)

Cost: the vision tower runs G times per prompt, and the kept probabilities take layers x heads x B*G x C x (T + C)
floats (fp32) inside the program; only [B*G, T] leaves it.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.data.batch import Prompts
from seedr1_jax.models.attention_maps import attention_maps, check_layers


def token_spans(tokenizer, tokens) -> tuple[list[str], dict[str, list[int]]]:
    """Per-token labels and the generated-token indices of `<think>` content, `<answer>` content and all."""
    tokens = [int(t) for t in tokens]
    labels = [tokenizer.decode([t], skip_special_tokens=False) for t in tokens]
    ends = np.cumsum([len(s) for s in labels])
    starts = ends - np.array([len(s) for s in labels], int)
    text = "".join(labels)
    spans = {"response": list(range(len(tokens)))}
    for name, tag in (("reasoning", "think"), ("answer", "answer")):
        a, b = text.find(f"<{tag}>"), text.find(f"</{tag}>")
        if a < 0 or b < a:
            spans[name] = []
            continue
        lo, hi = a + len(tag) + 2, b  # content chars [lo, hi)
        spans[name] = [i for i in range(len(tokens)) if starts[i] < hi and ends[i] > lo and labels[i].strip()]
    return labels, spans


def video_pairs(input_ids, video_token_id: int, tokens_per_pair: int, num_pairs: int) -> np.ndarray:
    """float32[B, T, num_pairs]: one-hot of the temporal pair (frames 2k, 2k + 1) each prompt token shows (rows of
    zeros for text, image and padding). A prompt's video tokens are laid out pair-major (the processor's order, and
    Qwen3-VL's per-pair blocks), `tokens_per_pair` merged tokens each."""
    ids = np.asarray(input_ids)
    out = np.zeros((*ids.shape, num_pairs), np.float32)
    for b, row in enumerate(ids):
        at = np.nonzero(row == video_token_id)[0]
        pair = np.arange(len(at)) // max(int(tokens_per_pair), 1)
        keep = pair < num_pairs
        out[b, at[keep], pair[keep]] = 1.0
    return out


def reasoning_span(tokenizer, tokens, mask) -> np.ndarray:
    """float32[N, C]: 1 on each completion's `<think>` content tokens (`token_spans`), within its mask."""
    tokens, mask = np.asarray(tokens), np.asarray(mask)
    span = np.zeros(tokens.shape, np.float32)
    for i, row in enumerate(tokens):
        n = int(mask[i].sum())
        span[i, token_spans(tokenizer, row[:n])[1]["reasoning"]] = 1.0
    return span


@functools.partial(nnx.jit, static_argnames=("layers", "group_size"))
def span_masses(model, prompts: Prompts, tokens, span, pairs, *, layers: tuple[int, ...], group_size: int):
    """The device part of `summary`: (visual f32[N], video-pair masses f32[N, K]) of each completion's span.

    prompts: the B prompts; tokens int32[N, C], span f32[N, C] (N = B * G, rows b * G + g); pairs f32[B, T, K]
    (`video_pairs`). The span's attention rows are averaged (tokens, then layers and heads) before the sums."""
    from seedr1_jax.rl.sampler import teacher_forced_inputs

    inputs = teacher_forced_inputs(prompts, tokens, group_size)
    t = prompts.input_ids.shape[1]
    probs = attention_maps(model, inputs, layers, query_start=t).mean(axis=(0, 2))  # [N, C, T + C]
    w = jnp.einsum("ncs,nc->ns", probs, span) / jnp.maximum(span.sum(-1), 1.0)[:, None]  # the span's mean row
    visual = jnp.sum(w * (inputs["vision_index"] >= 0), axis=-1)
    return visual, jnp.einsum("ns,nsk->nk", w[:, :t], jnp.repeat(pairs, group_size, axis=0))


def summary(model, prompts: Prompts, tokens, mask, tokenizer, evidence, *, group_size: int, layers=(-1,), mesh=None):
    """Each completion's attention summary (module docstring): a list of N dicts.

    prompts: the rollout's B prompts (device, global); tokens, mask: this process's completions int[N, C] (rows
    b * G + g); evidence: this process's prompts' `evidence` host fields ("1,2"; "" none), one per prompt."""
    from seedr1_jax.parallel import sharding

    layers = check_layers(layers, model.cfg.text.num_layers)
    merge = model.cfg.vision.spatial_merge_size
    ids = sharding.to_host(prompts.input_ids)
    per_pair = prompts.pixels.shape[2] // merge**2 if prompts.pixels is not None else 1
    k = max(1, int((ids == model.cfg.video_token_id).sum(1).max()) // per_pair)
    span = reasoning_span(tokenizer, tokens, mask)
    dev = sharding.shard_batch(dict(tokens=np.asarray(tokens, np.int32), span=span), mesh)
    onehot = video_pairs(ids, model.cfg.video_token_id, per_pair, k)
    visual, pair_mass = span_masses(
        model, prompts, dev["tokens"], dev["span"], jnp.asarray(onehot), layers=layers, group_size=group_size
    )
    visual, pair_mass = sharding.to_host(visual), sharding.to_host(pair_mass)
    mine = sharding.local_rows(len(visual))
    out = []
    for i, (vis, masses) in enumerate(zip(visual[mine], pair_mass[mine])):
        video = float(masses.sum())
        ev = [int(f) for f in str(evidence[i // group_size]).split(",") if f.strip()]
        share = None
        if ev and video > 0:
            frames = np.repeat(masses / 2.0, 2)
            share = float(frames[[f for f in ev if f < len(frames)]].sum() / video)
        out.append(dict(visual=float(vis), video=video, evidence=share, tokens=int(span[i].sum())))
    return out
