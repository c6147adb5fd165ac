"""Attention diagnostics: where generated tokens look (video frames, image, text), measured and drawn.

The analysis path `attention_maps` runs the decoder's own layers (so hidden states are exactly the model's)
and, beside them, the softmax probabilities of the chosen layers; the training, eval and rollout programs do
not change. `vision_sources` maps each vision token back to its frame pair and merged patch, and the
`seedr1 attention` command (`run`) greedy-decodes like `seedr1 eval`, then makes one teacher-forced pass.
"""

from __future__ import annotations

import json
import logging
import math
import os

import jax.numpy as jnp
import numpy as np

from seedr1_jax.analysis.attention_figures import _fmt, heat_to_pixels  # noqa: F401 (attention.heat_to_pixels kept)
from seedr1_jax.data.pipeline import FRAME_SAMPLING, evidence_frames  # noqa: F401 (attention.evidence_frames kept)
from seedr1_jax.models.attention_maps import attention_maps, check_layers, decoder_attention  # noqa: F401
from seedr1_jax.models.config import ConfigError
from seedr1_jax.rl.grounding import token_spans  # noqa: F401 (attention.token_spans kept)

TEXT, IMAGE, VIDEO = 0, 1, 2


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


def samples(
    tfrecord_dir, split, model_cfg, tokenizer, *, num, max_frames=16, max_prompt_len=1024, frame_sampling="first"
):
    """Yields (one-row batch, evidence frames or None) for the first `num` usable samples of a prepared split, its
    clips cut to `max_frames` as training reads them (`data.frame_sampling`: the first ones, or spread evenly)."""

    from seedr1_jax import data

    cfg = data.default_config()
    cfg.tfrecord_dir, cfg.split, cfg.shuffle = tfrecord_dir, split, False
    cfg.max_frames, cfg.max_prompt_len = int(max_frames), int(max_prompt_len)
    if frame_sampling not in FRAME_SAMPLING:
        raise ConfigError(f"frame sampling {frame_sampling!r}: use one of {', '.join(FRAME_SAMPLING)}")
    cfg.frame_sampling = frame_sampling
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
    frame_sampling="first",
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
        tfrecord_dir,
        split,
        first.cfg,
        tokenizer,
        num=num,
        max_frames=max_frames,
        max_prompt_len=max_prompt_len,
        frame_sampling=frame_sampling,
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
        frame_sampling=data_cfg.get("frame_sampling", "first"),
    )
    layers = tuple(range(model.cfg.text.num_layers))
    per = collect(
        {label: model}, batches, tokenizer, layers, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty
    )
    summary = summarize(per)
    return summary, format_summary(summary, len(per))
