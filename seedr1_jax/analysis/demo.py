"""`seedr1 demo`: the whole pipeline at toy scale on CPU, on data and a model it makes itself (no network).

synth -> prep -> "Vanilla" warm-up (SFT on `synth.generate_warmup`: the answer format and a description of the
scene, with letters drawn at random, so no knowledge of which option to pick) -> held-out L1 accuracy -> GRPO on
the train split (held-out L1 accuracy every `train.eval_every` steps) -> held-out L1 accuracy -> export-hf ->
reload in transformers and compare logits -> summary table (accuracies with 95% Wilson intervals) and a
reward / KL / accuracy plot in the workdir.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from seedr1_jax.analysis.verdicts import wilson
from seedr1_jax.models.config import ConfigError

NUM_EVAL = 96  # held-out L1 samples
BEFORE, AFTER = "after the warm-up", "after GRPO"
# Vanilla warm-up samples: with 64 the tiny model memorised them and named the colour of held-out samples at
# chance (22/96, measured); it needs varied scenes to learn to describe them
WARMUP_SAMPLES = 320
# `--warmup-think read` (`synth.generate_warmup`): the scene description, then the options read in order up to the
# (random) answer letter; a full reading is ~52 tokens, so rollouts and evaluation get 64 (configs/tiny.py: 48)
READ_TOKENS = 64
wilson_interval = wilson  # 95% Wilson score interval (in %) for k successes out of n
# GRPO's rewards in the demo (name -> weight, rl/rewards.py; `seedr1 demo --rewards`): the outcome (the answer letter),
# as the paper. Adding the process reward `visual_consistency` (the <think> names the colour the scene shows) taught
# seed 3 to see (its <think> right 45% -> 76%) but not to answer from it (24.0%; docs/results.md, "The demo's five
# seeds").
REWARDS = {"accuracy": 1.0}


def _plot(workdir: str, grpo_dir: str, acc0: float, ci0, acc1: float, ci1, steps: int) -> str:
    """reward, KL and held-out L1 accuracy per GRPO step -> grpo_metrics.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in open(os.path.join(grpo_dir, "metrics.jsonl"))]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
    each = sorted({k for r in rows for k in r if k.startswith("reward_") and k not in ("reward_mean", "reward_std")})
    for k in each:  # each reward's mean (the answer's: reward_accuracy)
        axes[0].plot([r["step"] for r in rows if k in r], [r[k] for r in rows if k in r], marker="o", ms=3, label=k)
    axes[0].set_title("GRPO rewards (train batch)")
    axes[0].legend(fontsize=8)
    axes[1].plot([r["step"] for r in rows if "kl" in r], [r["kl"] for r in rows if "kl" in r], marker="o", ms=3)
    axes[1].set_title("GRPO kl (train batch)")
    pts = [(0, acc0)] + [(r["step"], r["eval_L1_accuracy"]) for r in rows if "eval_L1_accuracy" in r] + [(steps, acc1)]
    ax = axes[2]
    ax.plot(*zip(*sorted(set(pts))), marker="o", ms=4, color="C2")
    for x, a, (lo, hi) in ((0, acc0, ci0), (steps, acc1, ci1)):
        ax.errorbar([x], [a], yerr=[[a - lo], [hi - a]], color="C2", capsize=4)
    ax.axhline(25, color="grey", ls="--", lw=1)
    ax.set_title(f"held-out L1 accuracy % (n={NUM_EVAL}, 95% CI at the ends)")
    for ax in axes:
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = os.path.join(workdir, "grpo_metrics.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def tiny_config():
    from seedr1_jax.models.config import tiny

    return tiny()


def _check_roundtrip(a_dir: str, b_dir: str) -> int:
    from seedr1_jax.models.hf_io import _open_checkpoint

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


def _hf_logits(npz: str, hf_dir: str) -> None:
    """In a fresh process (see `_transformers_check`): transformers' logits for the inputs in `npz` -> npz."""
    import torch
    from transformers import AutoModelForImageTextToText

    x = dict(np.load(npz))
    hf = AutoModelForImageTextToText.from_pretrained(hf_dir).eval()  # the family's class, from config.json
    tin = {k: torch.from_numpy(v) for k, v in x.items()}
    with torch.no_grad():
        np.save(npz[: -len(".npz")] + "_hf.npy", hf(**tin).logits.numpy()[0])


def _transformers_check(hf_dir: str, model, batch) -> float | None:
    """Max |logits(transformers) - logits(ours)| on one prompt of the eval data, or None without torch.

    transformers runs in a child process: torch 2.14 crashes (SIGSEGV) when torch._dynamo or torchvision is
    first imported after tensorflow, which this process has loaded for the input pipeline.
    """
    import subprocess
    import sys
    import tempfile

    keep = batch["attention_mask"][0].astype(bool)
    ids = batch["input_ids"][0][keep][None].astype(np.int64)
    cfg = model.cfg
    n_vid = int((ids == cfg.video_token_id).sum()) // 81
    pix = batch["pixels"][0]  # [S, 324, P]: the image, then the video segments
    mm = np.zeros_like(ids)
    mm[ids == cfg.image_token_id] = 1
    mm[ids == cfg.video_token_id] = 2
    x = dict(input_ids=ids, mm_token_type_ids=mm, pixel_values=pix[0], image_grid_thw=np.array([[1, 18, 18]]))
    if n_vid:
        x.update(pixel_values_videos=pix[1 : 1 + n_vid].reshape(-1, pix.shape[-1]), video_grid_thw=[[n_vid, 18, 18]])
    from seedr1_jax.models.qwen2_vl.model import get_rope_index

    # both sides get the original algorithm's positions (transformers 5 departs from it after long videos)
    x["position_ids"] = get_rope_index(cfg, ids, None, x["image_grid_thw"], x.get("video_grid_thw"))[0].astype(np.int64)
    with tempfile.TemporaryDirectory() as d:
        npz = os.path.join(d, "inputs.npz")
        np.savez(npz, **{k: np.asarray(v) for k, v in x.items()})
        code = f"from seedr1_jax.demo import _hf_logits; _hf_logits({npz!r}, {hf_dir!r})"
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if res.returncode and "No module named 'torch'" in res.stderr:
            return None
        if res.returncode:
            raise RuntimeError(f"transformers reload of {hf_dir} failed:\n{res.stderr[-2000:]}")
        ref = np.load(os.path.join(d, "inputs_hf.npy"))
    x.pop("mm_token_type_ids")
    x.pop("position_ids")
    ours = np.asarray(model(**{k: np.asarray(v) for k, v in x.items()}))[0]
    return float(np.abs(ref - ours).max())


FAMILY_PRESETS = {
    "qwen2_vl": "tiny",
    "qwen2_5_vl": "tiny_qwen2_5_vl",
    "qwen3_vl": "tiny_qwen3_vl",
}  # `seedr1 demo --family`


def grpo_config(tfr: str, init: str, seed: int, steps: int | None = None, lora: int = 0, tokens: int = 0, rewards=None):
    """The demo's GRPO stage: configs/tiny.py:grpo from the warm-up's weights with `rewards` (default `REWARDS`);
    with `lora` > 0, rank-`lora` adapters (alpha 32) at the full fine-tuning demo's learning rate. (10x it, the usual
    LoRA practice at LLM learning rates, was measured first: at this toy's 1e-3 it collapsed the policy, KL 4.5 by
    step 20 and 0.0% held-out; docs/results.md.)"""
    from configs.tiny import get_config

    c = get_config("grpo")
    c.grpo.rewards = dict(REWARDS if rewards is None else rewards)
    c.data.tfrecord_dir = tfr
    c.train.seed = c.data.seed = seed
    c.model.init = init
    c.train.num_steps = steps or c.train.num_steps
    if tokens:
        c.grpo.max_new_tokens = c.eval.max_new_tokens = tokens
    if lora:
        c.model.lora.rank = int(lora)
    return c


def run(
    workdir: str,
    sft_steps: int | None = None,
    grpo_steps: int | None = None,
    seed: int = 0,
    family="qwen2_vl",
    lora: int = 0,
    warmup_think: str = "describe",
    rewards: dict | None = None,
) -> int:
    """The demo on its own data and model; `seed` draws the synthetic data, the warm-up's and GRPO's shuffling,
    initialisation and sampling (every random choice), so `--seed K` is an independent rerun. `family`: the tiny
    model's family (`FAMILY_PRESETS`). `lora` > 0: GRPO trains LoRA adapters on the warm-up's weights
    (`grpo_config`). `warmup_think`: what the warm-up's `<think>` holds (`synth.generate_warmup`). `rewards`: GRPO's
    rewards, name -> weight (default `REWARDS`)."""
    from configs.tiny import get_config
    from data_prep import prep, synth
    from seedr1_jax import data
    from seedr1_jax.analysis import evaluate
    from seedr1_jax.models.checkpoint import export_hf, load_params
    from seedr1_jax.models.config import preset
    from seedr1_jax.models.processor import geometry, load_tokenizer
    from seedr1_jax.rl import train

    if family not in FAMILY_PRESETS:
        raise ConfigError(f"--family {family!r} is not supported; choose one of {', '.join(FAMILY_PRESETS)}")
    if lora < 0:
        raise ConfigError(f"--lora {lora}: give a rank > 0, or 0 to fine-tune every weight")
    rewards = dict(REWARDS if rewards is None else rewards)
    if "accuracy" not in rewards:
        raise ConfigError(f"--rewards {','.join(rewards)}: include accuracy (the demo measures the answer's gain)")
    from seedr1_jax.rl.rewards import resolve_rewards

    try:
        resolve_rewards(rewards)  # before anything is written
    except ConfigError as e:
        raise ConfigError(f"--rewards: {e}") from None
    t_start = time.time()
    os.makedirs(workdir, exist_ok=True)
    times = {}

    def stage(name):
        times[name] = time.time()
        print(f"\n== {name} ==", flush=True)

    stage("synth")
    data_root, tfr = os.path.join(workdir, "data"), os.path.join(workdir, "tfrecords")
    warm_root, warm_tfr = os.path.join(workdir, "data_warmup"), os.path.join(workdir, "tfrecords_warmup")
    if not os.path.isdir(os.path.join(data_root, "annotations")):
        synth.generate(data_root, num_train=64, num_val=NUM_EVAL, seed=seed, option_order="sorted")
    if not os.path.isdir(os.path.join(warm_root, "annotations")):
        synth.generate_warmup(warm_root, num=WARMUP_SAMPLES, seed=seed, option_order="sorted", think=warmup_think)
    stage("prep")
    frames = get_config().data.max_frames
    size = geometry(preset(FAMILY_PRESETS[family]).vision).size  # 252 at patch 14, 256 at Qwen3-VL's 16
    for root, out, split in ((data_root, tfr, "train"), (data_root, tfr, "L1"), (warm_root, warm_tfr, "train_cot")):
        if not os.path.isdir(os.path.join(out, "seed_bench_r1", split)):
            prep.prepare(root, split, out, max_frames=frames, progress=True, frame_size=size)

    stage("Vanilla warm-up (SFT: answer format + scene description, random letters)")
    sft_dir, grpo_dir = os.path.join(workdir, "sft"), os.path.join(workdir, "grpo")
    c = get_config("warmup")
    c.model.init = f"preset:{FAMILY_PRESETS[family]}"
    c.data.tfrecord_dir = warm_tfr
    c.train.seed = c.data.seed = seed
    if sft_steps:
        c.train.num_steps = c.train.checkpoint_every = sft_steps
    if train.main(c, sft_dir) != 0:
        return 1

    tok = load_tokenizer()
    c = grpo_config(tfr, sft_dir, seed, grpo_steps, lora, READ_TOKENS if warmup_think == "read" else 0, rewards)
    accs, cis = {}, {}

    def held_out(name, src, tag):
        model = load_params(src)
        out = os.path.join(workdir, f"eval_L1_{tag}.jsonl")
        if os.path.exists(out):
            os.remove(out)
        rows = evaluate.evaluate(
            model,
            data.eval_batches(c.data, model.cfg, tfr, split="L1"),
            out,
            tok,
            max_new_tokens=c.eval.max_new_tokens,
            repetition_penalty=c.eval.repetition_penalty,
        )
        accs[name] = evaluate.accuracy_table(rows, "L1")["L1"]
        cis[name] = wilson_interval(int(sum(r["reward"] for r in rows)), len(rows))
        print(f"held-out L1 accuracy {name}: {accs[name]:.1f}% [95% CI {cis[name][0]:.1f}-{cis[name][1]:.1f}]")
        return len(rows)

    stage("evaluate (held-out L1, before GRPO)")
    n_eval = held_out(BEFORE, sft_dir, "sft")

    stage("grpo")
    every = int(c.train.get("eval_every", 0))
    cbs = (evaluate.eval_callback(c, tfr, "L1", every, tokenizer=tok, at_end=False),) if every else ()
    if train.main(c, grpo_dir, callbacks=cbs) != 0:
        return 1
    r0, r1 = _metric_means(grpo_dir, "reward_accuracy", 10)  # the answer's reward, whatever else is rewarded

    stage("evaluate (held-out L1, after GRPO)")
    held_out(AFTER, grpo_dir, "grpo")

    stage("export-hf + transformers reload")
    hf_dir = os.path.join(workdir, "hf_export")
    export_hf(grpo_dir, hf_dir)
    model = load_params(grpo_dir)
    batch = next(iter(data.eval_batches(c.data, model.cfg, tfr, split="L1")))
    err = _transformers_check(hf_dir, model, batch)
    plot = _plot(workdir, grpo_dir, accs[BEFORE], cis[BEFORE], accs[AFTER], cis[AFTER], c.train.num_steps)

    names = list(times)
    durations = {
        n: (times[names[i + 1]] if i + 1 < len(names) else time.time()) - times[n] for i, n in enumerate(names)
    }
    print("\nseedr1 demo summary")
    rows = (
        [
            ("GRPO rewards (weights)", ", ".join(f"{k} {w:g}" for k, w in rewards.items())),
            ("GRPO train accuracy reward, mean of the first 10 steps", f"{r0:.3f}"),
            ("GRPO train accuracy reward, mean of the last 10 steps", f"{r1:.3f}"),
            *(
                (f"held-out L1 accuracy {k} ({n_eval} samples)", f"{accs[k]:.1f}%  [95% CI {lo:.1f}-{hi:.1f}]")
                for k, (lo, hi) in cis.items()
            ),
            ("held-out L1 accuracy gain from GRPO", f"{accs[AFTER] - accs[BEFORE]:+.1f} points"),
            ("export-hf -> transformers logits max diff", "torch not installed" if err is None else f"{err:.2e}"),
            ("reward / KL / accuracy plot", plot),
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
        acc_sft=accs[BEFORE],  # after the warm-up (an SFT run), before GRPO
        acc_grpo=accs[AFTER],
        acc_sft_ci95=list(cis[BEFORE]),
        acc_grpo_ci95=list(cis[AFTER]),
        n_eval=n_eval,
        acc_curve=[
            [r["step"], r["eval_L1_accuracy"]]
            for r in map(json.loads, open(os.path.join(grpo_dir, "metrics.jsonl")))
            if "eval_L1_accuracy" in r
        ],
        transformers_max_abs_diff=err,
        rewards=rewards,
        seconds=time.time() - t_start,
        seed=seed,
    )
    with open(os.path.join(workdir, "demo_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if err is not None and err > 1e-4:
        print(f"FAIL: exported model's logits differ from ours by {err}")
        return 1
    return 0
