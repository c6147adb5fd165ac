"""`seedr1 demo`: the whole pipeline at toy scale on CPU, on data and a model it makes itself (no network).

synth -> prep -> SFT warm-up (teaches the answer format) -> GRPO -> held-out evaluation -> export-hf ->
reload in transformers and compare logits -> summary table and a reward/KL plot in the workdir.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np


def tiny_config():
    from .config import tiny

    return tiny()


def _check_roundtrip(a_dir: str, b_dir: str) -> int:
    from .hf_io import _open_checkpoint

    a, b = _open_checkpoint(a_dir), _open_checkpoint(b_dir)
    if sorted(a) != sorted(b):
        raise AssertionError(f"tensor names differ between {a_dir} and {b_dir}")
    for k in a:
        x, y = a[k].get(k), b[k].get(k)
        if x.dtype != y.dtype or x.tobytes() != y.tobytes():
            raise AssertionError(f"tensor {k} differs after the round trip")
    return len(a)


def _metric_means(workdir: str, key: str, n: int) -> tuple[float, float]:
    rows = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl")) if key in x]
    vals = [r[key] for r in rows]
    return float(np.mean(vals[:n])), float(np.mean(vals[-n:]))


def _transformers_check(hf_dir: str, model, batch) -> float | None:
    """Max |logits(transformers) - logits(ours)| on one prompt of the eval data, or None without torch."""
    try:
        import torch
        from transformers import Qwen2VLForConditionalGeneration
    except ImportError:
        return None

    hf = Qwen2VLForConditionalGeneration.from_pretrained(hf_dir).eval()
    keep = batch["attention_mask"][0].astype(bool)
    ids = batch["input_ids"][0][keep][None]
    cfg = model.cfg
    n_vid = int((ids == cfg.video_token_id).sum()) // 81
    pix = batch["pixels"][0]  # [S, 324, P]: the image, then the video segments
    tin = dict(input_ids=torch.from_numpy(ids.astype(np.int64)))
    mm = torch.zeros_like(tin["input_ids"])
    mm[tin["input_ids"] == cfg.image_token_id] = 1
    mm[tin["input_ids"] == cfg.video_token_id] = 2
    tin["mm_token_type_ids"] = mm
    tin["pixel_values"] = torch.from_numpy(pix[0])
    tin["image_grid_thw"] = torch.tensor([[1, 18, 18]])
    if n_vid:
        tin["pixel_values_videos"] = torch.from_numpy(pix[1 : 1 + n_vid].reshape(-1, pix.shape[-1]))
        tin["video_grid_thw"] = torch.tensor([[n_vid, 18, 18]])
    with torch.no_grad():
        ref = hf(**tin).logits.numpy()[0]
    ours = np.asarray(
        model(
            ids,
            pixel_values=tin["pixel_values"].numpy(),
            image_grid_thw=tin["image_grid_thw"].numpy(),
            pixel_values_videos=tin["pixel_values_videos"].numpy() if n_vid else None,
            video_grid_thw=tin["video_grid_thw"].numpy() if n_vid else None,
        )
    )[0]
    return float(np.abs(ref - ours).max())


def run(workdir: str, sft_steps: int | None = None, grpo_steps: int | None = None) -> int:
    from configs.tiny import get_config
    from data_prep import prep, synth

    from . import data, evaluate, train
    from .checkpoint import export_hf, load_params
    from .processor import load_tokenizer

    t_start = time.time()
    os.makedirs(workdir, exist_ok=True)
    times = {}

    def stage(name):
        times[name] = time.time()
        print(f"\n== {name} ==", flush=True)

    stage("synth")
    data_root, tfr = os.path.join(workdir, "data"), os.path.join(workdir, "tfrecords")
    if not os.path.isdir(os.path.join(data_root, "annotations")):
        synth.generate(data_root, num_train=64, num_val=32, seed=0)
    stage("prep")
    for split in ("train", "train_cot", "L1"):
        if not os.path.isdir(os.path.join(tfr, "seed_bench_r1", split)):
            prep.prepare(data_root, split, tfr, max_frames=get_config().data.max_frames, progress=True)

    stage("sft warm-up")
    sft_dir, grpo_dir = os.path.join(workdir, "sft"), os.path.join(workdir, "grpo")
    c = get_config("sft")
    c.data.tfrecord_dir = tfr
    c.train.num_steps = sft_steps or c.train.num_steps
    c.train.checkpoint_every = c.train.num_steps
    if train.main(c, sft_dir) != 0:
        return 1

    stage("grpo")
    c = get_config("grpo")
    c.data.tfrecord_dir = tfr
    c.model.init = sft_dir
    c.train.num_steps = grpo_steps or c.train.num_steps
    if train.main(c, grpo_dir) != 0:
        return 1
    r0, r1 = _metric_means(grpo_dir, "reward_mean", 10)

    stage("evaluate (held-out L1)")
    tok = load_tokenizer()
    accs = {}
    for name, src in (("after SFT", sft_dir), ("after GRPO", grpo_dir)):
        model = load_params(src)
        out = os.path.join(workdir, f"eval_L1_{name.split()[-1].lower()}.jsonl")
        if os.path.exists(out):
            os.remove(out)
        rows = evaluate.evaluate(
            model,
            data.eval_batches(c.data, model.cfg, tfr, split="L1"),
            out,
            tok,
            max_new_tokens=c.eval.max_new_tokens,
            repetition_penalty=1.05,
        )
        accs[name] = evaluate.accuracy_table(rows, "L1")["L1"]

    stage("export-hf + transformers reload")
    hf_dir = os.path.join(workdir, "hf_export")
    export_hf(grpo_dir, hf_dir)
    model = load_params(grpo_dir)
    batch = next(iter(data.eval_batches(c.data, model.cfg, tfr, split="L1")))
    err = _transformers_check(hf_dir, model, batch)
    plot = os.path.join(grpo_dir, "metrics.png")
    if os.path.exists(plot):
        shutil.copy(plot, os.path.join(workdir, "grpo_metrics.png"))

    names = list(times)
    durations = {
        n: (times[names[i + 1]] if i + 1 < len(names) else time.time()) - times[n] for i, n in enumerate(names)
    }
    print("\nseedr1 demo summary")
    rows = (
        [
            ("GRPO train reward, mean of the first 10 steps", f"{r0:.3f}"),
            ("GRPO train reward, mean of the last 10 steps", f"{r1:.3f}"),
            ("held-out L1 accuracy after SFT warm-up", f"{accs['after SFT']:.1f}%"),
            ("held-out L1 accuracy after GRPO", f"{accs['after GRPO']:.1f}%"),
            ("export-hf -> transformers logits max diff", "torch not installed" if err is None else f"{err:.2e}"),
            ("reward/KL plot", os.path.join(workdir, "grpo_metrics.png")),
        ]
        + [(f"time: {n}", f"{d:.0f}s") for n, d in durations.items()]
        + [("time: total", f"{time.time() - t_start:.0f}s")]
    )
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    summary = dict(
        reward_first10=r0,
        reward_last10=r1,
        acc_sft=accs["after SFT"],
        acc_grpo=accs["after GRPO"],
        transformers_max_abs_diff=err,
        seconds=time.time() - t_start,
    )
    with open(os.path.join(workdir, "demo_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if err is not None and err > 1e-4:
        print(f"FAIL: exported model's logits differ from ours by {err}")
        return 1
    return 0
