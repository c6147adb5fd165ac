"""`seedr1 pretrain-toy`: the toy study's "Vanilla" model, a base that already perceives before post-training.

The `toy` preset SFT-trained on `data_prep.curriculum` (broad synthetic perception + the answer format, never the
SEED-Bench-R1 question -> option mapping), with `configs/tiny.py:pretrain`. Deterministic from its seed; cached
under a key made of its whole recipe (the training config, the curriculum's size, seed and version), so it is
rebuilt only when the recipe changes. The folder holds `base.json` (recipe, key, parameter hash, build seconds)
and `run/` (a `seedr1 train` workdir: a valid `model.init`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import numpy as np

SAMPLES = {"default": 2400, "quick": 800, "smoke": 16}  # curriculum records per recipe size


def recipe(size: str = "default", seed: int = 0, overrides: dict | None = None) -> tuple[dict, object]:
    """(the JSON-able recipe, the training config) of a base; `overrides` are config fields (dotted keys)."""
    from configs.tiny import get_config
    from data_prep import curriculum
    from seedr1_jax.models.checkpoint import config_to_dict
    from seedr1_jax.models.config import preset

    c = get_config("pretrain")
    c.train.seed = c.data.seed = seed
    if size == "quick":
        c.train.num_steps = c.train.checkpoint_every = c.train.num_steps // 3
    elif size == "smoke":
        c.train.num_steps = c.train.checkpoint_every = 2
        c.data.batch_size = 2
    for k, v in (overrides or {}).items():
        node = c
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    c.data.tfrecord_dir = ""  # filled in at build time: not part of the key
    rec = dict(config=json.loads(c.to_json_best_effort(sort_keys=True)), samples=SAMPLES[size], seed=seed)
    rec["curriculum_version"] = curriculum.VERSION
    rec["model"] = config_to_dict(preset(c.model.init.removeprefix("preset:")))  # a changed preset is another base
    return rec, c


def key(rec: dict) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:16]


def default_cache() -> str:
    return os.environ.get("SEEDR1_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "seedr1")


def params_hash(run_dir: str) -> str:
    """sha256 over every parameter (path, dtype, shape, bytes) of the model a `seedr1 train` workdir holds."""
    import jax
    from flax import nnx

    from seedr1_jax.models.checkpoint import load_params

    model = load_params(run_dir)
    h = hashlib.sha256()
    for path, leaf in sorted(
        jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param)), key=lambda x: jax.tree_util.keystr(x[0])
    ):
        a = np.asarray(jax.device_get(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def probe(run_dir: str, num: int = 96, seed: int = 99, workdir: str | None = None) -> dict:
    """Does the base perceive? Greedy answers to `num` held-out curriculum prompts (another generator seed), the
    multiple-choice ones scored: {question kind: {"accuracy" %, "n", "chance" %}, "all": ...}, plus "descriptions":
    the share of distinct `<think>` texts (1/n: one description whatever the clip)."""
    import re
    import tempfile

    from data_prep import curriculum
    from seedr1_jax import data
    from seedr1_jax.models.checkpoint import load_params
    from seedr1_jax.models.processor import load_tokenizer
    from seedr1_jax.rl.rewards import extract_answer
    from seedr1_jax.rl.sampler import greedy

    model, tok = load_params(run_dir), load_tokenizer()
    scores, thinks = {}, []
    with tempfile.TemporaryDirectory(dir=workdir) as root:
        curriculum.generate(root, num, seed=seed)
        for line in open(os.path.join(root, "annotations", "training_with_cot_6k.jsonl")):
            rec = json.loads(line)
            content = rec["prompt"][0]["content"]
            lines = content[-1]["text"].split("\n")
            options = [x[3:] for x in lines if re.match(r"^[A-E]\. ", x)]
            if not options:
                continue
            media = {c["type"]: os.path.join(root, c[c["type"]]) for c in content if c["type"] in ("video", "image")}
            batch = data.make_batch(lines[0], options, model_cfg=model.cfg, max_frames=4, **media)
            out = greedy(model, batch, max_new_tokens=64)
            toks, k = np.asarray(out["tokens"][0]), int(np.asarray(out["mask"][0]).sum())
            text = tok.decode(toks[:k], skip_special_tokens=True)
            want = re.search(r"<answer>([A-E])", rec["response"]).group(1)
            scores.setdefault(rec["question_kind"], []).append(((extract_answer(text) or "")[:1] == want, len(options)))
            thinks.append(text.split("</think>")[0])
    res = {
        k: dict(
            accuracy=100 * float(np.mean([a for a, _ in v])),
            n=len(v),
            chance=100 * float(np.mean([1 / m for _, m in v])),
        )
        for k, v in scores.items()
    }
    every = [x for v in scores.values() for x in v]
    res["all"] = dict(
        accuracy=100 * float(np.mean([a for a, _ in every])),
        n=len(every),
        chance=100 * float(np.mean([1 / m for _, m in every])),
    )
    res["descriptions"] = len(set(thinks)) / max(len(thinks), 1)
    return res


def build(out: str | None = None, size: str = "default", seed: int = 0, overrides: dict | None = None) -> dict:
    """Builds the base (or finds it built) and returns its base.json dict; `dir` is the model's folder."""
    from data_prep import curriculum, prep
    from seedr1_jax.rl import train

    rec, c = recipe(size, seed, overrides)
    k = key(rec)
    out = out or os.path.join(default_cache(), f"toy_base-{k}")
    meta_path = os.path.join(out, "base.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("key") == k:
            print(f"toy base {k}: built already, {out}", flush=True)
            return dict(meta, dir=os.path.join(out, "run"))
        raise ValueError(f"{out} holds another toy base ({meta.get('key')}, not {k}); pick another --out")
    t0 = time.time()
    os.makedirs(out, exist_ok=True)
    root, tfr, run = (os.path.join(out, d) for d in ("curriculum", "tfrecords", "run"))
    print(f"toy base {k}: {rec['samples']} curriculum samples, {c.train.num_steps} SFT steps -> {out}", flush=True)
    if not os.path.exists(os.path.join(root, "done")):
        kinds = curriculum.generate(root, rec["samples"], seed=seed)
        with open(os.path.join(root, "done"), "w") as f:
            json.dump(kinds, f)
    if not os.path.exists(os.path.join(tfr, "prep_report_train_cot.json")):
        prep.prepare(root, "train_cot", tfr, max_frames=c.data.max_frames, progress=True)
    c.data.tfrecord_dir = tfr
    if train.main(c, run) != 0:  # resumes an interrupted build
        raise RuntimeError(f"training the toy base in {run} failed; see its log above, then rerun to resume")
    meta = dict(key=k, recipe=rec, params_sha256=params_hash(run), seconds=round(time.time() - t0, 1))
    meta["perception"] = probe(run, num=16 if size == "smoke" else 96, workdir=out)
    shutil.rmtree(os.path.join(root, "videos"), ignore_errors=True)  # the TFRecords hold the frames
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(meta_path + ".tmp", meta_path)  # base.json last: its presence means the base is complete
    print(f"toy base {k}: built in {meta['seconds']:.0f}s, parameters sha256 {meta['params_sha256'][:16]}", flush=True)
    return dict(meta, dir=run)


def run(out: str | None = None, size: str = "default", seed: int = 0) -> int:
    """`seedr1 pretrain-toy`: prints what the base perceives and its folder (a `model.init`); returns the exit code."""
    meta = build(out, size=size, seed=seed)
    p = meta.get("perception") or {}
    for kind, r in p.items():
        if kind != "descriptions":
            print(f"  held-out {kind:<9} {r['accuracy']:5.1f}% of {r['n']:3d} (chance {r['chance']:.0f}%)")
    if p:
        print(f"  distinct descriptions: {100 * p['descriptions']:.0f}% of the answers")
    print(meta["dir"])
    return 0
