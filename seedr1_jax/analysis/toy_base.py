"""`seedr1 pretrain-toy`: the toy study's "Vanilla" model, a base that already perceives before post-training.

The `toy` preset SFT-trained on `data_prep.curriculum` (broad synthetic perception + the answer format, never the
SEED-Bench-R1 question -> option mapping), with `configs/tiny.py:pretrain`. Deterministic from its seed; cached
under a key made of its whole recipe (the training config, the curriculum's size, seed and version), so it is
rebuilt only when the recipe changes. A recipe is a list of stages; its base is its last stage trained on the
(cached) base of the stages before it, so adding a stage reuses what is built. The folder holds `base.json`
(recipe, key, parameter hash, build seconds summed over the stages, the prior base's key) and `run/` (a
`seedr1 train` workdir: a valid `model.init`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time

import numpy as np

from seedr1_jax.core.platform import cache_dir

# per recipe size, the pre-training stages in order: curriculum style -> (records, SFT steps). Styles `match` and
# `lookup` are in no recipe: they left option letters at chance (docs/results.md); `read` (the options read in order
# in the <think>) is the one a random toy model learns in the text-only probe (scripts/probe_option_lookup.py).
STAGES = {
    "default": {"plain": (800, 300), "full": (2400, 900), "read_any": (6400, 2400)},
    "quick": {"plain": (400, 200), "full": (800, 250), "read_any": (3200, 2400)},
    "smoke": {"plain": (8, 1), "full": (8, 1), "read_any": (8, 1)},
}
# `read` (the colour's options bare or one of five PHRASES, the other attributes' bare: a closed set) was the third
# stage in session 12 (quick base a3f4d696465f6099): its <think> wrote a memorised option list (`A is circle. B is
# square.` for `open the blue box`), not the prompt's. `read_any` draws two filler words per sample from ~18.5k, so
# only a copy of the prompt's options fits (docs/results.md). Its 1200 steps (session 13, quick base ebdc7281d0f59c38)
# copied the option values but not the fillers and left answers at chance; 2400 (the same 100 warm-up steps, so the
# first 1200 are those) reached follows 37% (chance 26) at quick scale, still rising.
# `read_text` (500 steps x 32 text-only prompts before `read`, quick base 679cde9315b0b4fd) is in no recipe: its
# answers named what its <think> stated 38% (chance 27) and the next `read` stage's `<think>` named the colour 40%
# where the base without it names 71% (docs/results.md).
# Per style, config fields its stage overrides (part of the recipe, so of the key): `read_text` prompts are text
# only, ~100 tokens with the response, so no frames, short rows and 4x the prompts per step
# `read_any` at the text probe's lr and warm-up (1e-3 after 100 steps: the one setting that learned to read,
# scripts/probe_option_lookup.py), not the other stages' 3e-3
STAGE_CONFIG = {
    "read_text": {"data.max_frames": 0, "data.max_prompt_len": 192, "data.batch_size": 32},
    "read_any": {"optim.lr": 1e-3, "optim.warmup_ratio": 100 / 2400},
    "read_generic": {"optim.lr": 1e-3, "optim.warmup_ratio": 100 / 2400},  # read_any's: 100 steps of 2400
    "read_distinct": {"optim.lr": 1e-3, "optim.warmup_ratio": 100 / 2400},
}


# config fields added after bases were built, and the value at which they build the same base (so the key, and the
# cached base, stay the same): data.shards 0 = one shard per process, the data order of one process before it existed
KEY_NEUTRAL = {"data.shards": 0, "data.frame_size": 0, "data.frame_sampling": "first"}
# model config fields added after bases were built (the Qwen2.5-VL and Qwen3-VL families), at the value that builds
# the same Qwen2-VL network: dropped from the key, so a new family's fields do not orphan the built bases
MODEL_KEY_NEUTRAL = {
    "family": "qwen2_vl",
    "vision.intermediate_size": 0,
    "vision.window_size": 0,
    "vision.fullatt_block_indexes": [],
    "vision.tokens_per_second": 0.0,
    "vision.num_position_embeddings": 0,
    "vision.deepstack_visual_indexes": [],
    "vision.frame_blocks": False,
    "text.head_size": 0,
    "text.qk_norm": False,
    "text.mrope_interleaved": False,
    "text.vocab_ids": [],
}


def _drop_neutral(tree: dict, neutral: dict) -> None:
    """Removes each dotted `neutral` field from `tree` where it holds its neutral value (in place)."""
    for path, value in neutral.items():
        *up, last = path.split(".")
        node = tree
        for p in up:
            node = node.get(p, {})
        if node.get(last, value) == value:
            node.pop(last, None)


def recipe(size: str = "default", seed: int = 0, overrides: dict | None = None) -> tuple[dict, object]:
    """(the JSON-able recipe, the training config) of a base; `overrides` are config fields (dotted keys)."""
    from configs.common import apply_overrides
    from configs.tiny import get_config
    from data_prep import curriculum
    from seedr1_jax.models.checkpoint import config_to_dict
    from seedr1_jax.models.config import preset

    c = get_config("pretrain")
    c.train.seed = c.data.seed = seed
    if size == "smoke":
        c.data.batch_size = 2
    apply_overrides(c, overrides or {}, "toy base overrides")
    c.data.tfrecord_dir = ""  # filled in at build time: not part of the key
    c.train.num_steps = c.train.checkpoint_every = 0  # per stage, from `stages`
    cfg = json.loads(c.to_json_best_effort(sort_keys=True))
    cfg.pop("grpo")  # SFT never reads it: a new GRPO option is not a new base
    _drop_neutral(cfg, KEY_NEUTRAL)  # a field added later, at the value that builds what was built before
    if not int(cfg["model"].get("lora", {}).get("rank", 0)):
        cfg["model"].pop("lora", None)  # LoRA off (rank 0): its other settings build nothing
    rec = dict(config=cfg, seed=seed)
    rec = with_stages(rec, [[style, n, steps] for style, (n, steps) in STAGES[size].items()])
    rec["curriculum_version"] = curriculum.VERSION
    rec["model"] = config_to_dict(preset(c.model.init.removeprefix("preset:")))  # a changed preset is another base
    rec = json.loads(json.dumps(rec))  # as base.json holds it (lists, not tuples)
    _drop_neutral(rec["model"], MODEL_KEY_NEUTRAL)
    return rec, c


def with_stages(rec: dict, stages: list) -> dict:
    """`rec` with these stages and the STAGE_CONFIG of their styles (none: no field, so a recipe whose styles have
    none keeps the key it had before the field existed)."""
    rec = {k: v for k, v in rec.items() if k != "stage_config"}
    over = {s[0]: STAGE_CONFIG[s[0]] for s in stages if s[0] in STAGE_CONFIG}
    return dict(rec, stages=stages, **({"stage_config": over} if over else {}))


def key(rec: dict) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:16]


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


def _score(hits: list[tuple[bool, int]]) -> dict:
    """{"accuracy" %, "n", "chance" %} of (right?, number of options) pairs."""
    return dict(
        accuracy=100 * float(np.mean([a for a, _ in hits])),
        n=len(hits),
        chance=100 * float(np.mean([1 / m for _, m in hits])),
    )


def _attributes() -> dict[str, tuple[str, ...]]:
    from data_prep import curriculum, synth

    return dict(
        colour=tuple(synth.COLORS),
        shape=curriculum.SHAPES,
        motion=tuple(curriculum.MOTIONS.values()),
        stays=("stays in view", "leaves the view"),
    )


ATTRIBUTES = _attributes()  # what a curriculum `<think>` states: attribute -> its values as written


def describes_right(truth: str, said: str) -> dict[str, bool]:
    """Per attribute the true `<think>` (of `truth`, a response) states: whether `said` names that value and no
    other value of the attribute."""
    truth = truth.split("</think>")[0]
    out = {}
    for attr, values in ATTRIBUTES.items():
        want = [v for v in values if re.search(rf"\b{re.escape(v)}\b", truth)]
        if len(want) == 1:
            got = [v for v in values if re.search(rf"\b{re.escape(v)}\b", said)]
            out[attr] = got == want
    return out


def probe(run_dir: str, num: int = 96, seed: int = 99, workdir: str | None = None, style: str = "full") -> dict:
    """Does the base perceive? Greedy answers to `num` held-out curriculum prompts (another generator seed), the
    multiple-choice answers scored: {question kind: {"accuracy" %, "n", "chance" %}, "all": ..., "by_chroma": ...},
    "describes": per attribute, how often the `<think>` names the value the clip shows (every prompt; chance: 1 /
    the attribute's values), and "descriptions": the share of distinct `<think>` texts (1/n: one description
    whatever the clip). `style`: the curriculum's. A model can perceive (describe right) before it maps a value to
    its option letter, so "describes" is the perception measure and the letters are the format's; "follows": on
    colour, shape and motion questions, how often the picked option names the value the `<think>` states (the
    reading, right or wrong perception alike); "copies": on those questions, of the `<think>`'s option readings (the
    reading styles), how many are the option's text word for word (`rewards.copies`; with `read_any`'s random
    fillers a recited template copies nothing)."""
    import tempfile

    from data_prep import curriculum
    from seedr1_jax import data
    from seedr1_jax.models.checkpoint import load_params
    from seedr1_jax.models.processor import INSTRUCTION, load_tokenizer
    from seedr1_jax.rl.rewards import copies, description, extract_answer
    from seedr1_jax.rl.sampler import greedy

    model, tok = load_params(run_dir), load_tokenizer()
    scores, thinks, by_chroma, described, follows, copied = {}, [], {}, {}, [], []
    with tempfile.TemporaryDirectory(dir=workdir) as root:
        curriculum.generate(root, num, seed=seed, style=style)
        for line in open(os.path.join(root, "annotations", "training_with_cot_6k.jsonl")):
            rec = json.loads(line)
            content = rec["prompt"][0]["content"]
            lines = content[-1]["text"].split("\n")
            options = [x[3:] for x in lines if re.match(r"^[A-E]\. ", x)]
            media = {c["type"]: os.path.join(root, c[c["type"]]) for c in content if c["type"] in ("video", "image")}
            question = lines[0] if options else lines[0].split(INSTRUCTION)[0]
            batch = data.make_batch(question, options or ["yes", "no"], model_cfg=model.cfg, max_frames=4, **media)
            out = greedy(model, batch, max_new_tokens=96)
            toks, k = np.asarray(out["tokens"][0]), int(np.asarray(out["mask"][0]).sum())
            text = tok.decode(toks[:k], skip_special_tokens=True)
            think = text.split("</think>")[0]
            thinks.append(think)
            for attr, right in describes_right(rec["response"], think).items():
                described.setdefault(attr, []).append((right, len(ATTRIBUTES[attr])))
            if not options:  # free-form: its description is scored above, its answer is not
                continue
            want = re.search(r"<answer>([A-E])", rec["response"]).group(1)
            got = (extract_answer(text) or "")[:1]
            hit = (got == want, len(options))
            if rec["question_kind"] in ("colour", "shape", "motion"):  # the option it picks names what it stated?
                copied += copies(think, dict(zip("ABCDE", options)))  # yes / no options would copy trivially
                said = description(think)  # before any reading of the options
                stated = [v for v in ATTRIBUTES[rec["question_kind"]] if re.search(rf"\b{re.escape(v)}\b", said)]
                i = "ABCDE".find(got) if got else -1  # an answer that is no option letter picks nothing
                picked = options[i] if 0 <= i < len(options) else ""
                ok = len(stated) == 1 and re.search(rf"\b{re.escape(stated[0])}\b", picked) is not None
                follows.append((ok, len(options)))
            scores.setdefault(rec["question_kind"], []).append(hit)
            by_chroma.setdefault("chroma<0.5" if rec.get("chroma", 1) < 0.5 else "chroma>=0.5", []).append(hit)
    res = {k: _score(v) for k, v in scores.items()}
    every = [x for v in scores.values() for x in v]
    res["all"] = _score(every)
    res["by_chroma"] = {k: _score(v) for k, v in sorted(by_chroma.items())}
    res["descriptions"] = len(set(thinks)) / max(len(thinks), 1)
    res["describes"] = {k: _score(v) for k, v in sorted(described.items())}
    if follows:
        res["follows"] = _score(follows)
    if copied:
        res["copies"] = dict(accuracy=100 * float(np.mean(copied)), n=len(copied), chance=0.0)
    return res


def build(out: str | None = None, size: str = "default", seed: int = 0, overrides: dict | None = None) -> dict:
    """Builds the base (or finds it built) and returns its base.json dict; `dir` is the model's folder."""
    rec, c = recipe(size, seed, overrides)
    return _build(rec, c, out, smoke=size == "smoke")


def _build(rec: dict, c, out: str | None, smoke: bool) -> dict:
    """A base is its last stage trained on the base of the stages before it (itself a cached base, built first
    when missing): adding a stage to a recipe reuses what is built."""
    from data_prep import curriculum, prep
    from seedr1_jax.models.checkpoint import prune_checkpoints
    from seedr1_jax.rl import train

    k = key(rec)
    out = out or os.path.join(cache_dir(), f"toy_base-{k}")
    meta_path = os.path.join(out, "base.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("key") == k:
            print(f"toy base {k}: built already, {out}", flush=True)
            return dict(meta, dir=os.path.join(out, "run"))
        raise ValueError(f"{out} holds another toy base ({meta.get('key')}, not {k}); pick another --out")
    *before, (style, n, steps) = rec["stages"]
    prior = _build(with_stages(rec, before), c, None, smoke) if before else None
    t0 = time.time()
    os.makedirs(out, exist_ok=True)
    print(f"toy base {k}: stage {len(rec['stages'])} ({style}: {n} records, {steps} SFT steps) -> {out}", flush=True)
    root, tfr, run = (
        os.path.join(out, f"curriculum_{style}"),
        os.path.join(out, f"tfrecords_{style}"),
        os.path.join(out, "run"),
    )
    if not os.path.exists(os.path.join(root, "done")):
        kinds = curriculum.generate(root, n, seed=rec["seed"], style=style)
        with open(os.path.join(root, "done"), "w") as f:
            json.dump(kinds, f)
    if not prep.prepared(tfr, "train_cot"):  # a failed prep (its report names the error) is redone
        prep.prepare(root, "train_cot", tfr, max_frames=c.data.max_frames, progress=True)
    from configs.common import apply_overrides

    sc = apply_overrides(c.copy_and_resolve_references(), rec.get("stage_config", {}).get(style, {}), style)
    sc.data.tfrecord_dir, sc.model.init = tfr, prior["dir"] if prior else c.model.init
    sc.train.num_steps, sc.train.checkpoint_every = steps, max(min(steps, 150), 1)  # an interrupted build resumes
    if train.main(sc, run) != 0:  # resumes an interrupted build
        raise RuntimeError(f"training the toy base in {run} failed; see its log above, then rerun to resume")
    perception = probe(run, num=16 if smoke else 96, workdir=out, style=style)
    _print_probe(style, perception)
    seconds = time.time() - t0 + (prior["seconds"] if prior else 0.0)
    meta = dict(key=k, recipe=rec, params_sha256=params_hash(run), seconds=round(seconds, 1))
    meta["prior"] = prior and prior["key"]
    meta["perception"] = perception  # after the last stage, on its style
    meta["perception_stages"] = {**(prior["perception_stages"] if prior else {}), style: perception}
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(meta_path + ".tmp", meta_path)  # base.json last: its presence means the base is complete
    # what only an interrupted build needs: the stage's data and the run's earlier checkpoints (~3 GB by default)
    for path in (tfr, root):
        shutil.rmtree(path, ignore_errors=True)
    prune_checkpoints(run)
    print(f"toy base {k}: built in {meta['seconds']:.0f}s, parameters sha256 {meta['params_sha256'][:16]}", flush=True)
    return dict(meta, dir=run)


def _print_probe(style: str, p: dict) -> None:
    for kind, r in p.get("describes", {}).items():
        print(
            f"  held-out {style}: <think> names the {kind:<6} right {r['accuracy']:5.1f}% of {r['n']:3d} "
            f"(chance {r['chance']:.0f}%)"
        )
    for kind, r in {**p, **p.get("by_chroma", {})}.items():
        if kind not in ("descriptions", "by_chroma", "describes", "follows", "copies"):
            print(
                f"  held-out {style}: answer letter, {kind:<11} {r['accuracy']:5.1f}% of {r['n']:3d} "
                f"(chance {r['chance']:.0f}%)"
            )
    if "follows" in p:
        r = p["follows"]
        print(
            f"  held-out {style}: answer names what its <think> states {r['accuracy']:5.1f}% of {r['n']:3d} "
            f"(colour/shape/motion questions; chance {r['chance']:.0f}%)"
        )
    if "copies" in p:
        r = p["copies"]
        print(f"  held-out {style}: option readings that copy the option {r['accuracy']:5.1f}% of {r['n']:3d}")
    print(f"  held-out {style}: distinct descriptions {100 * p['descriptions']:.0f}% of the answers", flush=True)


def run(out: str | None = None, size: str = "default", seed: int = 0) -> int:
    """`seedr1 pretrain-toy`: prints what the base perceives and its folder (a `model.init`); returns the exit code."""
    meta = build(out, size=size, seed=seed)
    for style, p in meta.get("perception_stages", {}).items():
        _print_probe(style, p)
    print(meta["dir"])
    return 0
