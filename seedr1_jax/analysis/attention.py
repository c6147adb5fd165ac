"""Attention diagnostics: where generated tokens look (video frames, image, text), measured and drawn.

The analysis path `attention_maps` runs the decoder's own layers (so hidden states are exactly the model's)
and, beside them, the softmax probabilities of the chosen layers; the training, eval and rollout programs do
not change. `vision_sources` maps each vision token back to its frame pair and merged patch, and the
`seedr1 attention` command (`run`) greedy-decodes like `seedr1 eval`, then makes one teacher-forced pass.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seedr1_jax.analysis.attention_figures import _fmt, heat_to_pixels  # noqa: F401 (attention.heat_to_pixels kept)
from seedr1_jax.models.config import ConfigError
from seedr1_jax.models.layers import attention_probs
from seedr1_jax.models.qwen2_vl.llm import add_deepstack
from seedr1_jax.parallel.sharding import BATCH, constrain

TEXT, IMAGE, VIDEO = 0, 1, 2


# ---- the analysis forward ------------------------------------------------------------------------
def check_layers(layers, num_layers: int) -> tuple[int, ...]:
    """Layer indices (negative counts from the end) -> sorted unique non-negative ints; ConfigError if out of range."""
    out = []
    for x in layers:
        i = int(x)
        if not -num_layers <= i < num_layers:
            raise ConfigError(f"--layers: layer {x} does not exist; the model has layers 0..{num_layers - 1}")
        out.append(i % num_layers)
    if not out:
        raise ConfigError("--layers: give at least one layer index")
    return tuple(sorted(set(out)))


def _layer_probs(layer, h, cos, sin, mask, query_start: int):
    """This layer's attention probabilities f32[B, N, T - q0, S] for queries from `query_start` on."""
    q, k, _ = layer.qkv(layer.input_layernorm(h), cos, sin)
    return attention_probs(q[:, query_start:], k, mask[:, query_start:], dtype=layer.dtype)


def decoder_attention(text_model, x, positions, mask, layers: tuple[int, ...], query_start: int = 0, deepstack=None):
    """The decoder over embeddings x [B, T, D] (positions int32[3, B, T], mask bool[B, T, T]), collecting the
    attention probabilities of `layers` (sorted ints): returns (normed hidden [B, T, D],
    float32[len(layers), B, N, T - query_start, T])."""
    cos, sin = text_model.rotary(positions)
    graphdef, state = nnx.split(text_model.layers)
    nl = text_model.cfg.text.num_layers
    slot = np.full(nl, -1, np.int32)
    slot[list(layers)] = np.arange(len(layers))
    b, t, _ = x.shape
    n = text_model.cfg.text.num_heads
    buf = jnp.zeros((len(layers), b, n, t - query_start, t), jnp.float32)

    def body(carry, xs):
        (h, buf), (layer_state, s, i) = carry, xs
        h = constrain(h, BATCH, None, None)
        layer = nnx.merge(graphdef, layer_state)
        buf = jax.lax.cond(
            s >= 0,
            lambda buf: buf.at[s].set(_layer_probs(layer, h, cos, sin, mask, query_start)),
            lambda buf: buf,
            buf,
        )
        h, _ = layer(h, cos, sin, mask)
        return (add_deepstack(h, i, deepstack), buf), None

    (x, buf), _ = jax.lax.scan(body, (x, buf), (state, jnp.asarray(slot), jnp.arange(nl)))
    return text_model.norm(x), buf


@functools.partial(nnx.jit, static_argnames=("layers", "query_start"))
def attention_maps(model, inputs: dict, layers: tuple[int, ...], query_start: int = 0):
    """`Qwen2VL.forward` inputs (see `qwen2_vl.prepare_inputs` / `sampler.teacher_forced_inputs`) ->
    attention probabilities float32[len(layers), B, N, T - query_start, T] (all heads).

    layers: sorted layer indices (`check_layers`); query rows start at `query_start` (e.g. the prompt length,
    to keep only the generated tokens' rows). Same mask as `forward`: causal and padding keys masked.
    """
    vis = {k: inputs[k] for k in ("pixels", "hw_pos", "valid", "vision_index") if inputs.get(k) is not None}
    x, deepstack = model.embed(inputs["input_ids"], **vis)
    t = inputs["input_ids"].shape[1]
    mask = jnp.tril(jnp.ones((t, t), bool))[None] & inputs["attention_mask"].astype(bool)[:, None, :]
    _, probs = decoder_attention(model.model, x, inputs["positions"], mask, layers, query_start, deepstack)
    return probs


# ---- vision tokens -> their source ---------------------------------------------------------------
def vision_sources(cfg, input_ids, image_grid_thw=None, video_grid_thw=None) -> dict:
    """Where each token of one row came from (numpy, host side; padding anywhere is fine).

    input_ids int[T]; grid_thw int[n, 3] per image / video in prompt order (patch units, as the processor
    gives them). Returns int32[T] arrays `kind` (TEXT, IMAGE, VIDEO), `block` (which image / video, -1 for
    text), `t` (temporal patch: frames 2t, 2t + 1 of a video), `row`, `col` (cell of the merged grid
    (h / m) x (w / m), m = spatial_merge_size), and `grids`: {(kind, block): (t, h / m, w / m)}.
    Merged tokens are laid out t-major, then row, then col (the processor's order and M-RoPE's).
    """
    ids = np.asarray(input_ids).reshape(-1)
    m = cfg.vision.spatial_merge_size
    grids = {
        cfg.image_token_id: [] if image_grid_thw is None else np.asarray(image_grid_thw).reshape(-1, 3).tolist(),
        cfg.video_token_id: [] if video_grid_thw is None else np.asarray(video_grid_thw).reshape(-1, 3).tolist(),
    }
    # per vision block: (its image / video, first temporal patch, grid); Qwen3-VL writes a block per temporal patch
    blocks = {tok: [(b, 0, g) for b, g in enumerate(gs)] for tok, gs in grids.items()}
    if cfg.vision.frame_blocks:
        vids = grids[cfg.video_token_id]
        blocks[cfg.video_token_id] = [(b, k, (1, h, w)) for b, (t, h, w) in enumerate(vids) for k in range(t)]
    kinds = {cfg.image_token_id: IMAGE, cfg.video_token_id: VIDEO}
    out = {k: np.full(ids.shape, -1, np.int32) for k in ("block", "t", "row", "col")}
    out["kind"] = np.zeros(ids.shape, np.int32)
    out["grids"] = {}
    used = {IMAGE: 0, VIDEO: 0}
    for s in np.nonzero(ids == cfg.vision_start_token_id)[0]:
        if s + 1 >= len(ids) or int(ids[s + 1]) not in kinds:
            continue
        tok = int(ids[s + 1])
        kind, i = kinds[tok], used[kinds[tok]]
        if i >= len(blocks[tok]):
            raise ConfigError(f"the tokens hold more {'image' if kind == IMAGE else 'video'} blocks than grid_thw rows")
        b, t0, (gt, gh, gw) = blocks[tok][i]
        hm, wm = gh // m, gw // m
        n = gt * hm * wm
        span = slice(s + 1, s + 1 + n)
        if len(ids[span]) != n or not np.all(ids[span] == tok):
            raise ConfigError(f"vision block at token {s}: grid_thw {[gt, gh, gw]} needs {n} pad tokens")
        j = np.arange(n)
        out["kind"][span], out["block"][span] = kind, b
        out["t"][span], out["row"][span], out["col"][span] = t0 + j // (hm * wm), j % (hm * wm) // wm, j % wm
        out["grids"][(kind, b)] = tuple(int(x) // (1 if k == 0 else m) for k, x in enumerate(grids[tok][b]))
        used[kind] += 1
    return out


def vision_heat(weights, src: dict) -> dict:
    """Attention mass over the vision tokens, on their source grids.

    weights float[S] (one query's, or a span's mean, distribution over the row's keys); src: `vision_sources`.
    Returns {(kind, block): float[t, h / m, w / m]} (images have t = 1).
    """
    w = np.asarray(weights, np.float64)
    out = {}
    for (kind, b), (gt, hm, wm) in src["grids"].items():
        sel = (src["kind"] == kind) & (src["block"] == b)
        heat = np.zeros((gt, hm, wm))
        np.add.at(heat, (src["t"][sel], src["row"][sel], src["col"][sel]), w[sel])
        out[(kind, b)] = heat
    return out


def unpatchify(segments, grid_hw, cfg):
    """float32[n, h * w, P] normalized patches of n temporal segments (processor order) -> uint8[2n, H, W, 3]."""
    from seedr1_jax.models import processor as P

    v = cfg.vision
    gh, gw = grid_hw
    m, p, tp = v.spatial_merge_size, v.patch_size, v.temporal_patch_size
    x = np.asarray(segments, np.float32).reshape(-1, gh // m, gw // m, m, m, 3, tp, p, p)
    x = x.transpose(0, 6, 1, 3, 7, 2, 4, 8, 5).reshape(-1, gh * p, gw * p, 3)  # (t, tp, bh, mh, ph, bw, mw, pw, C)
    mean, std = P.pixel_norm(cfg.family)
    x = x * std + mean
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


# ---- per-sample analysis -------------------------------------------------------------------------
MODEL_KEYS = ("input_ids", "attention_mask", "positions", "pixels", "hw_pos", "vision_index")
SPANS = ("reasoning", "answer", "response")


def data_grids(ids, cfg, grid: int = 18):
    """(image_grid_thw, video_grid_thw) of a row in the data pipeline's layout (each temporal pair and the image
    are grid x grid patches: 18 for 252-pixel frames in 14-pixel patches), from its pad-token counts."""
    per = (grid // cfg.vision.spatial_merge_size) ** 2
    nv, ni = int((ids == cfg.video_token_id).sum()), int((ids == cfg.image_token_id).sum())
    return ([(1, grid, grid)] if ni else None), ([(nv // per, grid, grid)] if nv else None)


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


def span_metrics(weights, src: dict, evidence=None) -> dict:
    """Metrics of one span from its tokens' attention float[n, S] (rows sum to 1; n may be 0).

    visual/video/image: mean attention mass on vision / video / image tokens; video_of_visual: video / visual;
    frame_entropy: entropy of the video mass over temporal pairs / log(pairs) (1 spread evenly, 0 one pair);
    evidence: share of the video mass on the `evidence` frames (each frame of a pair gets half its mass).
    """
    out = dict.fromkeys(("visual", "video", "image", "video_of_visual", "frame_entropy", "evidence"))
    out["tokens"] = int(len(weights))
    if not len(weights):
        return out
    mean = np.asarray(weights, np.float64).mean(0)
    img, vid = float(mean[src["kind"] == IMAGE].sum()), float(mean[src["kind"] == VIDEO].sum())
    out.update(visual=img + vid, video=vid, image=img)
    if img + vid > 0:
        out["video_of_visual"] = vid / (img + vid)
    heat = vision_heat(mean, src)
    if (VIDEO, 0) in heat and vid > 0:
        pairs = heat[(VIDEO, 0)].sum((1, 2)) / vid
        if len(pairs) > 1:
            nz = pairs[pairs > 0]
            out["frame_entropy"] = float(-(nz * np.log(nz)).sum() / np.log(len(pairs)))
        if evidence:
            frames = np.repeat(pairs / 2, 2)
            out["evidence"] = float(frames[[f for f in evidence if f < len(frames)]].sum())
    return out


def evidence_frames(ex: dict):
    """The record's evidence as indices into its sampled frames (sorted list), or None where it has none.

    Optional prepared-record fields, any of: `evidence_frames` as a list of sampled-frame indices, or as
    {"start_frame", "stop_frame"} (inclusive, the clip's own numbering: the synthetic annotations' form), or
    flat `evidence_start_frame` / `evidence_stop_frame` (negative: none). Clip numbers are matched to the
    sampled frames through the record's `frame_indices`.
    """
    ev = ex.get("evidence_frames")
    if isinstance(ev, dict):
        lo, hi = ev.get("start_frame"), ev.get("stop_frame")
    elif ev is not None and np.size(ev):
        return sorted({int(i) for i in np.asarray(ev).reshape(-1)})
    else:
        lo, hi = ex.get("evidence_start_frame"), ex.get("evidence_stop_frame")
    if lo is None or hi is None or int(lo) < 0 or int(hi) < int(lo) or "frame_indices" not in ex:
        return None
    clip = np.asarray(ex["frame_indices"]).reshape(-1)
    return [j for j, f in enumerate(clip) if int(lo) <= int(f) <= int(hi)] or None


def analyse(
    model, batch, tokenizer, layers, *, max_new_tokens=256, repetition_penalty=1.05, evidence=None, tokens=None
):
    """Greedy-decodes one prompt like `seedr1 eval`, then one teacher-forced pass over prompt + response.

    batch: one data-pipeline row (B = 1). tokens: int[C] to analyse instead of decoding (tests, fixed
    responses). Returns a JSON-able dict: response, labels, shares float[n, 3] (text, image, video mass per
    generated token), spans, metrics per span, heat per span ({"video": [t][h][w], "image": [h][w]}).
    """
    from seedr1_jax.rl import rewards
    from seedr1_jax.rl.sampler import greedy, teacher_forced_inputs

    fields = {k: jnp.asarray(batch[k]) for k in MODEL_KEYS if k in batch}
    if tokens is None:
        out = greedy(model, fields, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
        n = int(np.asarray(out["mask"])[0].sum())
        tokens = np.asarray(out["tokens"])[0]
    else:
        tokens = np.asarray(tokens, np.int32)
        n = len(tokens)
    t = fields["input_ids"].shape[1]
    inputs = teacher_forced_inputs(fields, jnp.asarray(tokens)[None], 1)
    probs = attention_maps(model, inputs, tuple(layers), query_start=t)  # [nl, 1, N, C, T + C]
    w = np.asarray(probs.mean(axis=(0, 2))[0, :n], np.float64)  # [n, S], mean over layers and heads
    ids = np.asarray(inputs["input_ids"])[0]
    grid = math.isqrt(np.asarray(batch["pixels"]).shape[2]) if "pixels" in batch else 18
    src = vision_sources(model.cfg, ids, *data_grids(ids, model.cfg, grid))
    shares = np.stack([w[:, src["kind"] == k].sum(-1) for k in (TEXT, IMAGE, VIDEO)], -1)
    labels, spans = token_spans(tokenizer, tokens[:n])
    response = tokenizer.decode([int(x) for x in tokens[:n]], skip_special_tokens=True)
    res = dict(response=response, labels=labels, shares=shares.round(5).tolist(), spans=spans)
    if "answer" in batch:
        res["correct"] = rewards.accuracy_reward(response, str(np.asarray(batch["answer"]).reshape(-1)[0]))
    res["metrics"] = {s: span_metrics(w[spans[s]], src, evidence) for s in SPANS}
    res["heat"] = {}
    for s in SPANS:
        heat = vision_heat(w[spans[s]].mean(0) if spans[s] else np.zeros(len(ids)), src)
        res["heat"][s] = {("video" if k[0] == VIDEO else "image"): v.round(6).tolist() for k, v in heat.items()}
    return res


# ---- the command ---------------------------------------------------------------------------------
COLUMNS = (
    ("reasoning", "visual", "reason vis"),
    ("answer", "visual", "answer vis"),
    ("response", "visual", "all vis"),
    ("reasoning", "video_of_visual", "video/vis"),
    ("reasoning", "frame_entropy", "frame H"),
    ("reasoning", "evidence", "evidence"),
)


def load_model(path: str, dtype: str = "float32"):
    """A `seedr1 import-hf` / `seedr1 train` folder (model.json) or a Hugging Face Qwen2-VL folder."""
    from seedr1_jax.models import from_pretrained
    from seedr1_jax.models.checkpoint import MODEL_JSON, load_params

    if not path or not os.path.isdir(path):
        raise ConfigError(f"checkpoint {path!r} not found: pass a folder from `seedr1 import-hf`/`seedr1 train`")
    if os.path.exists(os.path.join(path, MODEL_JSON)):
        return load_params(path, dtype=dtype)
    if os.path.exists(os.path.join(path, "config.json")):
        return from_pretrained(path, dtype=dtype)
    raise ConfigError(f"{path}: neither {MODEL_JSON} (our checkpoint) nor config.json (a Hugging Face folder)")


def samples(tfrecord_dir, split, model_cfg, tokenizer, *, num, max_frames=16, max_prompt_len=1024):
    """Yields (one-row batch, evidence frames or None) for the first `num` usable samples of a prepared split."""

    from seedr1_jax import data

    cfg = data.default_config()
    cfg.tfrecord_dir, cfg.split, cfg.shuffle = tfrecord_dir, split, False
    cfg.max_frames, cfg.max_prompt_len = int(max_frames), int(max_prompt_len)
    found = data.find_split_dir(tfrecord_dir, split)  # a clear error before tf.data starts
    parent = os.path.dirname(found)
    if os.path.basename(os.path.dirname(parent)) == "seed_bench_r1" and os.path.basename(parent) != split:
        raise ConfigError(
            f"{tfrecord_dir} holds split {os.path.basename(parent)!r}, not {split!r}; run `seedr1 prep "
            f"--split {split} --out {tfrecord_dir}` or pass the right --split"
        )
    done = 0
    geom = data.check_geometry(cfg, model_cfg)
    for _, ex in data.examples(cfg, 0, 1, epochs=1, shuffle=False, family=model_cfg.family, geom=geom):
        if done >= num:
            return
        try:
            row = data.build_sample(ex, cfg, model_cfg, tokenizer)
        except ValueError as e:
            logging.warning("skipping %s", e)
            continue
        done += 1
        yield data.stack([row], cfg, geom.merge), evidence_frames(ex)


def summarize(per_sample: list[dict]) -> dict:
    """{model: {span: {metric: mean over the samples where it is defined (None where none)}}}."""
    out = {}
    for s in per_sample:
        for label, r in s["models"].items():
            for span, m in r["metrics"].items():
                for k, v in m.items():
                    out.setdefault(label, {}).setdefault(span, {}).setdefault(k, []).append(v)
    return {
        label: {
            span: {
                k: (None if not [x for x in v if x is not None] else float(np.mean([x for x in v if x is not None])))
                for k, v in ms.items()
            }
            for span, ms in spans.items()
        }
        for label, spans in out.items()
    }


def format_summary(summary: dict, n: int) -> str:
    head = f"{'model':<16}" + "".join(f"{c:>12}" for _, _, c in COLUMNS)
    lines = [f"attention of generated tokens, {n} samples (vis = share on video + image; H, evidence: video)", head]
    for label, spans in summary.items():
        cells = [_fmt(spans[s][k], pct=k != "frame_entropy") for s, k, _ in COLUMNS]
        lines.append(f"{label[:16]:<16}" + "".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)


def _labels(paths):

    names = [os.path.basename(os.path.normpath(p)) or p for p in paths]
    return names if len(set(names)) == len(names) else [f"{chr(65 + i)}:{n}" for i, n in enumerate(names)]


def collect(models: dict, batches, tokenizer, layers, *, max_new_tokens, repetition_penalty, out=None, cfg=None):
    """Analyses every (batch, evidence) with every model; with `out`, writes each sample's figures and JSON."""

    from seedr1_jax.analysis import attention_figures as F

    per_sample = []
    for batch, evidence in batches:
        sid = str(batch["sample_id"][0])
        res = {
            label: analyse(
                m,
                batch,
                tokenizer,
                layers,
                max_new_tokens=max_new_tokens,
                repetition_penalty=repetition_penalty,
                evidence=evidence,
            )
            for label, m in models.items()
        }
        s = dict(
            sample_id=sid, answer=str(batch["answer"][0]), evidence_frames=evidence, layers=list(layers), models=res
        )
        per_sample.append(s)
        if out is None:
            continue
        ids = np.asarray(batch["input_ids"][0])
        pix = np.asarray(batch["pixels"][0])
        igrid, vgrid = data_grids(ids, cfg, math.isqrt(pix.shape[1]))
        off = 1 if igrid else 0  # data.py's layout: the image segment first, then the video's
        frames = unpatchify(pix[off : off + vgrid[0][0]], vgrid[0][1:], cfg) if vgrid else None
        image = unpatchify(pix[:1], igrid[0][1:], cfg)[0] if igrid else None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sid)
        cell = cfg.vision.spatial_merge_size * cfg.vision.patch_size
        for span in ("reasoning", "answer"):
            F.draw_heat_grid(os.path.join(out, f"{safe}_{span}.png"), frames, image, res, span, cell)
        F.draw_token_shares(os.path.join(out, f"{safe}_tokens.png"), res)
        with open(os.path.join(out, f"{safe}.json"), "w") as f:
            json.dump(s, f)
        print(f"{sid}: " + "  ".join(f"{k}: {r['response'][:60]!r}" for k, r in res.items()), flush=True)
    return per_sample


def run(
    ckpt=None,
    hf_dir=None,
    *,
    tfrecord_dir,
    split,
    out,
    num=8,
    layers=None,
    compare=None,
    max_new_tokens=256,
    repetition_penalty=1.05,
    max_frames=16,
    max_prompt_len=1024,
    dtype="float32",
) -> int:
    """`seedr1 attention`: figures and JSON per sample under `out`, summary.json, the summary table printed."""

    from seedr1_jax.models.processor import load_tokenizer

    if (ckpt is None) == (hf_dir is None):
        raise ConfigError("pass exactly one of --ckpt DIR or --hf-dir DIR")
    paths = [ckpt or hf_dir] + ([compare] if compare else [])
    models = dict(zip(_labels(paths), [load_model(p, dtype) for p in paths]))
    first = next(iter(models.values()))
    nl = first.cfg.text.num_layers
    layers = check_layers(range(nl) if not layers else layers, nl)
    for label, m in models.items():
        if m.cfg.text.num_layers != nl:
            raise ConfigError(f"--compare: {label} has {m.cfg.text.num_layers} layers, the first model {nl}")
    tokenizer = load_tokenizer()
    batches = samples(
        tfrecord_dir, split, first.cfg, tokenizer, num=num, max_frames=max_frames, max_prompt_len=max_prompt_len
    )
    os.makedirs(out, exist_ok=True)
    per_sample = collect(
        models,
        batches,
        tokenizer,
        layers,
        max_new_tokens=max_new_tokens,
        repetition_penalty=repetition_penalty,
        out=out,
        cfg=first.cfg,
    )
    if not per_sample:
        raise ConfigError(f"split {split!r} in {tfrecord_dir} gave no usable sample (raise --max-prompt-len?)")
    summary = summarize(per_sample)
    print(format_summary(summary, len(per_sample)))
    doc = dict(
        split=split,
        num=len(per_sample),
        layers=list(layers),
        checkpoints=dict(zip(models, paths)),
        summary=summary,
        samples=[s["sample_id"] for s in per_sample],
    )
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(doc, f, indent=2)
    print(f"figures and per-sample JSON: {out}")
    return 0


def eval_stats(model, data_cfg, tfrecord_dir, split, *, num, max_new_tokens, repetition_penalty, label="this run"):
    """`seedr1 eval --attention-stats`: the summary metrics over the split's first `num` samples (all layers).

    Returns (summary {label: {span: {metric: value}}}, the printed table)."""
    from seedr1_jax.models.processor import load_tokenizer

    tokenizer = load_tokenizer(data_cfg.get("tokenizer") or None)
    batches = samples(
        tfrecord_dir,
        split,
        model.cfg,
        tokenizer,
        num=num,
        max_frames=data_cfg.max_frames,
        max_prompt_len=data_cfg.max_prompt_len,
    )
    layers = tuple(range(model.cfg.text.num_layers))
    per = collect(
        {label: model}, batches, tokenizer, layers, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty
    )
    summary = summarize(per)
    return summary, format_summary(summary, len(per))


# ---- experimental: a grounding reward (off by default; not wired into training) ------------------
def grounding_reward(model, batch, tokens, tokenizer, *, group_size: int, layers=None) -> np.ndarray:
    """Visual attention share of each completion's reasoning (`<think>` content) span: float32[B*G] in [0, 1]
    (0 without a span). Process supervision in the spirit of the paper's open question 1, to be weighted into
    the GRPO reward by a trainer that opts in; nothing calls it by default.

    batch: the B prompts (data-pipeline layout); tokens int32[B*G, C] (rows b * G + g, pads after the stop).
    One teacher-forced pass (the vision tower runs G times per prompt); memory grows with the layers kept
    (default: the last one) x heads x B*G x C x (T + C).
    """
    from seedr1_jax.rl import grpo
    from seedr1_jax.rl.sampler import teacher_forced_inputs

    nl = model.cfg.text.num_layers
    layers = check_layers([-1] if layers is None else layers, nl)
    tokens = np.asarray(tokens, np.int32)
    valid = np.asarray(grpo.completion_mask(jnp.asarray(tokens))).astype(bool)
    span = np.zeros(tokens.shape, np.float32)
    for i, row in enumerate(tokens):
        span[i, token_spans(tokenizer, row[valid[i]])[1]["reasoning"]] = 1.0
    fields = {k: jnp.asarray(batch[k]) for k in MODEL_KEYS if k in batch}
    inputs = teacher_forced_inputs(fields, jnp.asarray(tokens), group_size)
    t = fields["input_ids"].shape[1]
    probs = attention_maps(model, inputs, layers, query_start=t).mean(axis=(0, 2))  # [N, C, T + C]
    visual = jnp.einsum("ncs,ns->nc", probs, (inputs["vision_index"] >= 0).astype(jnp.float32))
    share = (np.asarray(visual) * span).sum(-1) / np.maximum(span.sum(-1), 1.0)
    return share.astype(np.float32)
