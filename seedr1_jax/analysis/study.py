"""`seedr1 study`: the paper's table 1 at toy scale: Vanilla vs SFT vs GRPO on synthetic L1/L2/L3 shifts.

Protocol (after "SFT Memorizes, RL Generalizes", Chu et al. 2025):
- One base for every arm and seed: the toy base (`seedr1 pretrain-toy`, analysis/toy_base.py), a model that already
  perceives colour, shape, motion and the answer format in a wide family of rendering styles, but was never
  trained on the SEED-Bench-R1 question -> option mapping. "Vanilla" is that base, evaluated as it is.
- SFT (train_cot) and GRPO (train) post-train it on the `kitchen` environment only, with the same budget in prompts
  seen (steps x batch); the training FLOPs of each (the step's counted FLOPs, as `seedr1 aot` counts them) are
  reported beside it. Checkpoints at 25/50/100% of the budget give the budget curve.
- Each arm's hyper-parameters come from a small search on an L1 *validation* split (its own samples, never the L1
  test split, never L2/L3): `--tune` reruns it (seed 0) and uses its choice; otherwise `TUNED` (the last `--tune`).
- Seeds vary post-training (data order, sampling); Vanilla is one model, the same in every seed's pairing.
- Statistics: per-cell mean over seeds with a 95% t-interval, and the PAIRED difference of two arms per split
  (same seed, same data) with its interval and sign count (analysis/verdicts.py); study.md leads with them.
Writes study.json, study.md and study.png in the workdir; a rerun resumes (finished work is skipped).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time

import numpy as np

METHODS = ("Vanilla", "SFT", "GRPO")
SPLITS = ("L1", "L2", "L3")
DOMAINS = ("Daily life", "Hobbies", "Recreation", "Work")
COLUMNS = SPLITS + DOMAINS
FRACTIONS = (0.25, 0.5, 1.0)  # of the budget, for the budget curve
L1VAL_SEED = 1  # `synth`'s seed of the L1 validation samples (the test splits are seed 0's)

# base: the toy base's recipe size; steps x batch prompts for SFT and for GRPO each; l1val: L1 validation samples;
# tokens: the completion budget of eval and GRPO rollouts (the base reads the options in its <think> before it
# answers, the toy base's `read` stage: a scene description, then `A is ...` per option up to the one it names,
# ~65 tokens at most; smoke: the tiny config's 48)
BUDGETS = {
    "default": dict(base="default", num_train=256, num_val=96, num_l1val=64, steps=32, batch=8, seeds=5, tokens=96),
    "quick": dict(base="quick", num_train=64, num_val=48, num_l1val=32, steps=16, batch=8, seeds=1, tokens=96),
    "smoke": dict(base="smoke", num_train=8, num_val=8, num_l1val=4, steps=4, batch=2, seeds=1, tokens=48),
}
# Config overrides per method (over configs/tiny.py:sft and :grpo) chosen on L1-val by the last `seedr1 study --tune`:
# the quick study's on quick base 832a02f9660c763a (session 14, full-vocabulary `toy`: SFT L1-val 40.6%, GRPO 50%). The
# one before, the default study's on the two-stage base 12f8bea4e34fe57e (session 8), chose GRPO lr 3e-3 and G 8,
# which collapsed the policy on the bases with a reading stage.
TUNED = {"SFT": {"optim.lr": 1e-2}, "GRPO": {"optim.lr": 3e-4, "grpo.beta": 0.04, "grpo.group_size": 4}}
# The search: SFT over its lr; GRPO coordinate-wise from SEARCH_START (lr, then beta at the best lr, then G at
# both), seed 0.
SEARCH_START = {"GRPO": {"optim.lr": 1e-3, "grpo.beta": 0.04, "grpo.group_size": 4}}
SEARCH = {
    "SFT": [{"optim.lr": v} for v in (1e-3, 3e-3, 1e-2)],
    "GRPO": [("optim.lr", (3e-4, 1e-3, 3e-3)), ("grpo.beta", (0.0, 0.04)), ("grpo.group_size", (4, 8))],
}


# ---- arms -----------------------------------------------------------------------------------------
ARM_METHODS = ("vanilla", "sft", "grpo")
_ARM_KEYS = {"name", "method", "overrides"}


@dataclasses.dataclass(frozen=True)
class Arm:
    """One row of a study: a method (vanilla: the base as it is; sft; grpo) plus config overrides (dotted keys)."""

    name: str
    method: str
    overrides: dict

    @property
    def trained(self) -> bool:
        return self.method != "vanilla"


def default_arms_file() -> str:
    import configs

    return os.path.join(os.path.dirname(configs.__file__), "arms", "paper.py")


def load_arms(path: str | None = None) -> dict:
    """An arm file (configs/arms/paper.py documents the format) -> {"arms": [Arm], "baseline", "pairs", "file"}.
    Raises ConfigError naming the file, the arm and the field for anything malformed."""
    import importlib.util

    from seedr1_jax.models.config import ConfigError

    path = path or default_arms_file()
    if not os.path.isfile(path):
        raise ConfigError(f"--arms {path}: no such file (see configs/arms/paper.py for the format)")
    spec = importlib.util.spec_from_file_location(f"seedr1_arms_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(f"--arms {path}: the file does not load: {type(e).__name__}: {e}") from e
    if not callable(getattr(module, "get_arms", None)):
        raise ConfigError(f"--arms {path}: define get_arms() returning {{'arms': [...], 'baseline': NAME}}")
    spec_d = module.get_arms()
    if not isinstance(spec_d, dict) or not isinstance(spec_d.get("arms"), (list, tuple)) or not spec_d["arms"]:
        raise ConfigError(f"--arms {path}: get_arms() must return a dict with a non-empty list 'arms'")
    arms, seen = [], set()
    for i, a in enumerate(spec_d["arms"]):
        where = f"--arms {path}, arm {i}" + (f" ({a.get('name')!r})" if isinstance(a, dict) else "")
        if not isinstance(a, dict) or set(a) - _ARM_KEYS or not {"name", "method"} <= set(a):
            got = sorted(a) if isinstance(a, dict) else type(a).__name__
            raise ConfigError(f"{where}: give a dict with 'name', 'method' and optional 'overrides' (got {got})")
        name, method, overrides = a["name"], a["method"], a.get("overrides") or {}
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
            raise ConfigError(f"{where}: name {name!r}: use letters, digits and _ . + - (it names a folder)")
        if name.lower() in seen:
            raise ConfigError(f"{where}: name {name!r} is given twice (names are compared without case)")
        seen.add(name.lower())
        if method not in ARM_METHODS:
            raise ConfigError(f"{where}: method {method!r}: use one of {', '.join(ARM_METHODS)}")
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}: overrides must be a dict of dotted config fields, got {overrides!r}")
        arms.append(Arm(name, method, dict(overrides)))
    names = [a.name for a in arms]
    baseline = spec_d.get("baseline", names[0])
    if baseline not in names:
        raise ConfigError(f"--arms {path}: baseline {baseline!r} is not an arm (arms: {', '.join(names)})")
    pairs = [tuple(p) for p in spec_d.get("pairs") or [(n, baseline) for n in names if n != baseline]]
    for p in pairs:
        if len(p) != 2 or not set(p) <= set(names) or p[0] == p[1]:
            raise ConfigError(f"--arms {path}: pair {p!r}: give two different arm names of {', '.join(names)}")
    return dict(arms=arms, baseline=baseline, pairs=pairs, file=os.path.abspath(path))


def check_arms(arms: list[Arm], budget: dict, hp: dict) -> None:
    """Every arm's config builds and passes `seedr1 train`'s value checks before anything trains: an unknown
    field or a wrong value raises ConfigError naming the arm and the field."""
    from seedr1_jax.models.config import ConfigError
    from seedr1_jax.rl import preflight

    for a in arms:
        c = arm_config(a.method, budget, "", "", 0, {**hp.get(a.method.upper(), {}), **a.overrides}, where=a.name)
        try:
            preflight.check_values(c)
        except ConfigError as e:
            raise ConfigError(f"arm {a.name!r}: {e}") from None


# ---- configs, data, training, evaluation ------------------------------------------------------------
def arm_config(method: str, budget: dict, tfr: str, base_dir: str, seed: int, overrides: dict, where: str = ""):
    """The config of an arm's method (tiny.py's sft / grpo; vanilla evaluates with grpo's) from the base, with
    `overrides` (dotted fields; ConfigError naming `where` for an unknown one)."""
    from configs.common import apply_overrides
    from configs.tiny import get_config

    c = get_config("sft" if method.lower() == "sft" else "grpo")
    c.model.init = base_dir
    c.data.tfrecord_dir = tfr
    c.train.seed = c.data.seed = seed
    c.data.batch_size = budget["batch"]
    c.train.num_steps = budget["steps"]
    c.train.checkpoint_every = max(budget["steps"] // 4, 1)
    c.train.keep_checkpoints = len(FRACTIONS) + 2
    c.train.eval_every = 0
    c.eval.max_new_tokens = c.grpo.max_new_tokens = budget["tokens"]
    return apply_overrides(c, overrides, f"arm {where or method!r}")


def fraction_steps(steps: int) -> dict[float, int]:
    return {f: max(int(round(steps * f)), 1) for f in FRACTIONS}


def budget_of(config) -> dict:
    """Prompts seen and training FLOPs (the step's counted model FLOPs, as `seedr1 aot` counts them, x steps)."""
    from seedr1_jax.models.checkpoint import model_config
    from seedr1_jax.perf.aot import calls_per_step, model_flops

    cfg = model_config(config)
    mf, k = model_flops(config, cfg), calls_per_step(config)
    per_step = sum(mf[n] * k.get(n, 0) for n in ("update", "logprobs", "sampler", "decode") if n in mf)
    steps = int(config.train.num_steps)
    return dict(prompts=steps * int(config.data.batch_size), flops=float(per_step * steps), steps=steps)


def _train(config, workdir: str) -> float:
    from seedr1_jax.rl import train

    done = os.path.join(workdir, "done")
    if os.path.exists(done):
        return _seconds(done)
    t0 = time.time()
    if train.main(config, workdir) != 0:
        raise RuntimeError(f"training in {workdir} failed; see its log above, then rerun to resume")
    with open(done, "w") as f:
        f.write(f"{time.time() - t0:.1f}")
    return _seconds(done)


def _seconds(done: str) -> float:
    """The seconds a finished stage took (its `done` marker holds them; 0 for an older, empty marker)."""
    with open(done) as f:
        return float(f.read().strip() or 0)


def _evaluate(
    run_dir: str, split: str, config, tfr: str, tokenizer, step=None, tag: str = "", out_dir: str | None = None
) -> dict:
    """One (model, split) cell as `seedr1 eval` computes it (a checkpoint `step`, or the last); cached in `out_dir`
    (default run_dir). Returns {split, n, accuracy, reasoning, seconds}; the per-sample rows are
    `eval_{split}{tag}.jsonl`."""
    from seedr1_jax import data
    from seedr1_jax.analysis import evaluate
    from seedr1_jax.models.checkpoint import load_params

    out_dir = out_dir or run_dir
    summary = os.path.join(out_dir, f"eval_{split}{tag}_summary.json")
    if os.path.exists(summary):
        with open(summary) as f:
            return json.load(f)
    t0 = time.time()
    model = load_params(run_dir, step=step)
    out_path = os.path.join(out_dir, f"eval_{split}{tag}.jsonl")
    rows = evaluate.evaluate(
        model,
        data.eval_batches(config.data, model.cfg, tfr, split=split),
        out_path,
        tokenizer,
        max_new_tokens=config.eval.max_new_tokens,
        repetition_penalty=config.eval.repetition_penalty,
        progress=False,
    )
    out = {"split": split, "n": len(rows), "accuracy": evaluate.accuracy_table(rows, split)}
    out["reasoning"] = reasoning(rows)
    out["seconds"] = time.time() - t0
    with open(summary, "w") as f:
        json.dump(out, f, indent=2)
    return out


def _prepare_data(workdir: str, budget: dict, frames: int | None = None) -> tuple[str, str, float]:
    """(TFRecords of train/train_cot/L1/L2/L3, TFRecords of the L1 validation split, seconds). The validation
    samples come from another seed of the same generator: the same kind of L1 sample, none of the test split's.
    frames: the most video frames a clip is prepared with (default configs/tiny.py's `data.max_frames`; an arm that
    reads fewer takes them with its `data.frame_sampling`)."""
    from configs.tiny import get_config
    from data_prep import prep, synth

    root, val_root = os.path.join(workdir, "data"), os.path.join(workdir, "data_l1val")
    tfr, val_tfr = os.path.join(workdir, "tfrecords"), os.path.join(workdir, "tfrecords_l1val")
    from seedr1_jax.models.config import ConfigError

    frames = frames or get_config().data.max_frames
    done, stamp = os.path.join(workdir, "data_done"), os.path.join(workdir, "data_frames")
    had = int(open(stamp).read()) if os.path.exists(stamp) else get_config().data.max_frames
    if os.path.exists(done) and had != frames:
        raise ConfigError(
            f"--workdir {workdir}: its clips were prepared with {had} frames, these arms read up to {frames}; "
            "run them in another --workdir"
        )
    if os.path.exists(done):
        return tfr, val_tfr, _seconds(done)
    t0 = time.time()
    if not os.path.exists(os.path.join(root, "done")):
        synth.generate(root, num_train=budget["num_train"], num_val=budget["num_val"], seed=0, option_order="sorted")
        synth.generate(val_root, num_train=1, num_val=budget["num_l1val"], seed=L1VAL_SEED, option_order="sorted")
        open(os.path.join(root, "done"), "w").close()
    for split in ("train", "train_cot", *SPLITS):
        if not prep.prepared(tfr, split):
            prep.prepare(root, split, tfr, max_frames=frames, progress=False, workers=1)
    if not prep.prepared(val_tfr, "L1"):
        prep.prepare(val_root, "L1", val_tfr, max_frames=frames, progress=False, workers=1)
    with open(stamp, "w") as f:
        f.write(str(frames))
    with open(done, "w") as f:
        f.write(f"{time.time() - t0:.1f}")
    return tfr, val_tfr, _seconds(done)


# ---- the search on L1-val --------------------------------------------------------------------------
def _label(overrides: dict) -> str:
    """A folder name for a set of overrides: `lr0.003_beta0.04`; values that are not numbers by a short hash."""

    def value(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return f"{v:g}"
        return hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode()).hexdigest()[:8]

    return "_".join(f"{k.split('.')[-1]}{value(v)}" for k, v in sorted(overrides.items())) or "default"


def tune(
    workdir: str, budget: dict, base_dir: str, tfr: str, val_tfr: str, tok, methods=("SFT", "GRPO")
) -> tuple[dict, list, float]:
    """The search of SEARCH on the L1 validation split (seed 0) for each of `methods` (SFT, GRPO) an arm uses.
    Returns (the chosen overrides per method, every trial {arm (the method), overrides, l1val}, seconds)."""
    from seedr1_jax.models.checkpoint import prune_checkpoints

    trials, work = [], 0.0

    def score(arm, overrides):
        nonlocal work
        seen = [t["l1val"] for t in trials if (t["arm"], t["overrides"]) == (arm, overrides)]
        if seen:  # a setting the search reaches again (the best value of the key before) is scored once
            return seen[0]
        run_dir = os.path.join(workdir, "tune", arm.lower(), _label(overrides))
        c = arm_config(arm, budget, tfr, base_dir, 0, overrides)
        work += _train(c, run_dir)
        r = _evaluate(run_dir, "L1", c, val_tfr, tok, tag="val")
        prune_checkpoints(run_dir)
        work += r.get("seconds", 0.0)
        acc = r["accuracy"]["L1"]
        trials.append(dict(arm=arm, overrides=overrides, l1val=acc))
        print(f"  tune {arm:<5}{_label(overrides):<28} L1-val {acc:6.2f}%", flush=True)
        return acc

    chosen = {}
    if "SFT" in methods:
        chosen["SFT"] = max(SEARCH["SFT"], key=lambda o: score("SFT", o))
    if "GRPO" in methods:
        best = dict(SEARCH_START["GRPO"])
        for key, values in SEARCH["GRPO"]:  # coordinate-wise: each value at the best of the keys before it
            best[key] = max(values, key=lambda v, key=key: score("GRPO", dict(best, **{key: v})))
        chosen["GRPO"] = best
    return chosen, trials, work


# ---- the study -------------------------------------------------------------------------------------
def run_study(
    workdir: str, seeds: int | None = None, mode: str = "default", tune_arms: bool = False, arms_file: str | None = None
) -> dict:
    """Trains and evaluates every (arm, seed, split) cell not yet done; returns the study.json dict. `arms_file`:
    the arms (configs/arms/paper.py when None)."""
    from seedr1_jax.analysis import toy_base, verdicts
    from seedr1_jax.models.checkpoint import prune_checkpoints
    from seedr1_jax.models.config import ConfigError
    from seedr1_jax.models.processor import load_tokenizer

    budget = BUDGETS[mode]
    seeds = budget["seeds"] if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: use 1 or more")
    spec = load_arms(arms_file)
    arms = spec["arms"]
    methods = sorted({a.method.upper() for a in arms if a.trained})
    tuned_path = os.path.join(workdir, "tuned.json")
    if os.path.exists(tuned_path):
        with open(tuned_path) as f:
            tuned = json.load(f)
    else:
        tuned = dict(chosen=TUNED, trials=[], seconds=0.0, note="TUNED in analysis/study.py (the last --tune)")
    check_arms(arms, budget, tuned["chosen"])  # before anything is built or trained
    t0 = time.time()
    os.makedirs(workdir, exist_ok=True)
    base = toy_base.build(size=budget["base"])
    frames = max(int(a.overrides.get("data.max_frames", 0)) for a in arms) or None  # the most any arm reads
    tfr, val_tfr, work = _prepare_data(workdir, budget, frames)  # work: seconds of every stage, over all invocations
    tok = load_tokenizer()
    if tune_arms and not os.path.exists(tuned_path):
        chosen, trials, secs = tune(workdir, budget, base["dir"], tfr, val_tfr, tok, methods)
        tuned = dict(chosen=dict(TUNED, **chosen), trials=trials, seconds=secs)
        with open(tuned_path, "w") as f:
            json.dump(tuned, f, indent=2)
        check_arms(arms, budget, tuned["chosen"])
    work += tuned["seconds"]  # 0 without a search
    hp = {a.name: {**tuned["chosen"].get(a.method.upper(), {}), **a.overrides} for a in arms}
    configs = {a.name: arm_config(a.method, budget, tfr, base["dir"], 0, hp[a.name], a.name) for a in arms}
    trained = [a for a in arms if a.trained]
    budgets = {a.name: budget_of(configs[a.name]) for a in trained}
    val_scores = {a.name: _val_score(tuned, a.method.upper()) if not a.overrides else None for a in trained}
    print(
        f"seedr1 study ({mode}): base {base['key']} ({base['dir']}); arms {', '.join(a.name for a in arms)} "
        f"({spec['file']}); each trained arm sees {budget['steps'] * budget['batch']} training prompts "
        f"({budget['steps']} steps x {budget['batch']}); training FLOPs "
        + ", ".join(f"{n} {b['flops']:.3g}" for n, b in budgets.items())
        + f"; {seeds} seed(s); hyper-parameters {hp}",
        flush=True,
    )
    cells, curve, fixed = [], [], {}
    for a in arms:  # a vanilla arm is one model: evaluated once, paired with every seed
        if not a.trained:
            tag = f"_{mode}" + (f"_{_label(a.overrides)}" if a.overrides else "")
            for split in SPLITS:
                fixed[a.name, split] = r = _evaluate(base["dir"], split, configs[a.name], tfr, tok, tag=tag)
                work += r.get("seconds", 0.0)
    for seed in range(seeds):
        for a in arms:
            if not a.trained:
                for split in SPLITS:
                    cells.append(_cell(seed, a, fixed[a.name, split], dict(prompts=0, flops=0.0, steps=0), {}, None))
                continue
            run_dir = os.path.join(workdir, f"seed{seed}", a.name.lower())
            work += _train(arm_config(a.method, budget, tfr, base["dir"], seed, hp[a.name], a.name), run_dir)
            for f, step in fraction_steps(budget["steps"]).items():
                for split in SPLITS:
                    tag = "" if f == 1.0 else f"_{int(100 * f)}pct"
                    r = _evaluate(run_dir, split, configs[a.name], tfr, tok, step=step, tag=tag)
                    work += r.get("seconds", 0.0)
                    curve.append(dict(seed=seed, method=a.name, fraction=f, split=split, accuracy=r["accuracy"][split]))
                    if f == 1.0:
                        cells.append(_cell(seed, a, r, budgets[a.name], hp[a.name], val_scores[a.name]))
            prune_checkpoints(run_dir)  # every fraction is evaluated: the trained model (its last step) stays
            print(
                f"  seed {seed} {a.name:<8} "
                + "  ".join(f"{c['split']} {c['accuracy'][c['split']]:5.1f}%" for c in cells[-3:]),
                flush=True,
            )
    names = [a.name for a in arms]
    result = dict(
        mode=mode,
        seeds=seeds,
        arms=[dataclasses.asdict(a) for a in arms],
        arms_file=spec["file"],
        baseline=spec["baseline"],
        base=dict(key=base["key"], dir=base["dir"], params_sha256=base["params_sha256"], build_seconds=base["seconds"]),
        budget=dict(budget, training_prompts_each=budget["steps"] * budget["batch"], per_arm=budgets),
        tuning=tuned,
        cells=cells,
        curve=curve,
        table=verdicts.cell_table(cells, names, COLUMNS),
        verdicts=verdicts.verdicts(cells, spec["pairs"]),
        seconds=work,  # data, tuning, trainings and evaluations, summed over the invocations that ran them
        seconds_this_run=time.time() - t0,
    )
    write_outputs(workdir, result)
    return result


def _val_score(tuned: dict, arm: str):
    """The L1-val accuracy of the arm's chosen setting in the search (None when it was not searched here)."""
    got = [t["l1val"] for t in tuned["trials"] if t["arm"] == arm and t["overrides"] == tuned["chosen"][arm]]
    return got[-1] if got else None


def _cell(seed: int, arm: Arm, r: dict, budget: dict, overrides: dict, l1val) -> dict:
    return dict(
        seed=seed,
        method=arm.name,
        kind=arm.method,
        split=r["split"],
        n=r["n"],
        accuracy=r["accuracy"],
        reasoning=r["reasoning"],
        format=r["reasoning"]["format"],
        one_letter=r["reasoning"]["one_letter"],
        budget=budget,
        hparams=overrides,
        l1val=l1val,
    )


_OPTION = re.compile(r"^([A-E])\. (.*)$", re.MULTILINE)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def reasoning(rows: list[dict]) -> dict:
    """What the greedy completions of one cell say, read against the synthetic data's one visual fact (the object's
    colour, named by the correct option): `think_sees` = % of completions whose `<think>` names the colour shown (in
    its `description`, before any reading of the options),
    `answer_follows` = % whose answer letter is the option naming the colour their `<think>` names (whether
    the answer follows from the stated evidence, right or wrong), `format` = % with both tags, `one_letter` = % that
    give the cell's most common answer letter (100: the same letter whatever the pixels, so the accuracy is that
    letter's share of the split), `copies` = % of the `<think>`s' option readings (`A is ...`, the toy base's
    reading stages) that are the option's text word for word (None: no completion reads an option)."""
    from collections import Counter

    from seedr1_jax.rl.rewards import copies, description, extract_answer, format_reward
    from seedr1_jax.rl.rewards import scene_colour as colour

    sees = follows = fmt = 0
    letters = Counter()
    copied = []
    for r in rows:
        options = dict(_OPTION.findall(r["prompt"]))
        think = _THINK.search(r["response"] or "")
        copied += copies(think.group(1), options) if think else []
        said = colour(description(think.group(1))) if think else None
        answer = (extract_answer(r["response"] or "") or "")[:1]
        sees += said is not None and said == colour(options.get(r["answer"]))
        follows += said is not None and answer in options and colour(options[answer]) == said
        fmt += format_reward(r["response"] or "") == 1.0
        letters[answer] += answer != ""
    n = max(len(rows), 1)
    top = max(letters.values(), default=0)
    return dict(
        think_sees=100 * sees / n,
        answer_follows=100 * follows / n,
        format=100 * fmt / n,
        one_letter=100 * top / n,
        copies=100 * float(np.mean(copied)) if copied else None,
    )


# ---- outputs ---------------------------------------------------------------------------------------
def _md_table(names, columns, cell) -> list[str]:
    """A markdown table, one row per arm name: `cell(name, column)` gives each entry."""
    head = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    return head + [f"| {m} | " + " | ".join(cell(m, col) for col in columns) + " |" for m in names]


def _arms(result: dict) -> list[dict]:
    """The study's arms as study.json holds them (a study.json written before arm files: the paper's three)."""
    return result.get("arms") or [dict(name=m, method=m.lower(), overrides={}) for m in METHODS]


def format_markdown(result: dict) -> str:
    from seedr1_jax.analysis import verdicts
    from seedr1_jax.analysis.evaluate import REFERENCE

    t = result["table"]
    b = result["budget"]
    arms = _arms(result)
    names = [a["name"] for a in arms]
    trained = [a["name"] for a in arms if a["method"] != "vanilla"]

    def accuracy(m, col):
        c = t.get(m, {}).get(col)
        cell = f"{c['mean']:.1f} [{c['lo']:.1f}, {c['hi']:.1f}]" if c else "-"
        return cell + (f" ({REFERENCE[m][col]:.1f})" if m in REFERENCE else "")

    def said(m, split):
        rs = [c["reasoning"] for c in result["cells"] if c["method"] == m and c["split"] == split]
        keys = ("think_sees", "answer_follows", "format", "one_letter", "copies")

        def mean(k):  # a study.json from before `copies`, or no reading in any seed: "-"
            vs = [r[k] for r in rs if r.get(k) is not None]
            return f"{np.mean(vs):.0f}" if vs else "-"

        return " / ".join(mean(k) for k in keys) if rs else "-"

    n = {c["split"]: c["n"] for c in result["cells"]}
    per = b["per_arm"]
    hp = result["tuning"]["chosen"]
    first = per[trained[0]]["flops"] if trained else 1.0
    flops = ", ".join(f"{m} {per[m]['flops']:.3g} ({per[m]['flops'] / max(first, 1):.2g}x)" for m in trained)
    lines = [
        f"Toy study ({result['mode']}, {result['seeds']} seed(s); accuracy %, chance 25%; arms: "
        f"{result.get('arms_file', 'configs/arms/paper.py')}).",
        "",
        "Verdicts (paired over seeds: same seed, same data; mean difference with its 95% t-interval):",
        "",
        *(f"- {v['line']}" for v in result["verdicts"]),
        "",
        "Accuracy: mean over seeds [95% t-interval]; the paper's Qwen2-VL-7B in parentheses (docs/recipe.md "
        "section 8). A vanilla arm is one model (the toy base), the same in every seed.",
        "",
        *_md_table(names, COLUMNS, accuracy),
        "",
        "samples per split: " + ", ".join(f"{k} {v}" for k, v in n.items()),
        f"base: toy base {result['base']['key']} (built in {result['base']['build_seconds']:.0f}s, parameters sha256 "
        f"{result['base']['params_sha256'][:16]})",
        f"budget: each trained arm saw {b['training_prompts_each']} training prompts ({b['steps']} steps x "
        f"{b['batch']}); training FLOPs (counted as `seedr1 aot` counts them): {flops}",
        "hyper-parameters (L1-val search per method, `--tune`): "
        + ", ".join(f"{k} {v}" for k, v in hp.items())
        + "".join(f"; arm {a['name']} overrides {a['overrides']}" for a in arms if a["overrides"]),
        "",
        "Budget curve (accuracy at 25/50/100% of the budget; mean [95% t-interval] over seeds):",
        "",
        *verdicts.budget_curve_table(result["curve"], trained),
        "",
        "What the completions say (mean over seeds, % of samples; `study.reasoning`): the `<think>` names the colour "
        "shown / the answer is the option naming the colour the `<think>` names / both tags present / the most "
        "common answer letter (100: one letter whatever the pixels) / the `<think>`'s option readings that are the "
        "option's text word for word (-: it reads none).",
        "",
        *_md_table(names, SPLITS, said),
        "",
        f"time: {result['seconds']:.0f}s of data, tuning, training and evaluation after the base (this invocation: "
        f"{result['seconds_this_run']:.0f}s; a resumed study reuses what earlier ones finished)",
    ]
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result["table"]
    arms = _arms(result)
    names = [a["name"] for a in arms]
    x = np.arange(len(COLUMNS))
    w = 0.8 / len(names)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 4), gridspec_kw=dict(width_ratios=(2.2, 1)))
    for i, m in enumerate(names):
        means = np.array([t[m].get(c, {}).get("mean", np.nan) for c in COLUMNS])
        lo = np.array([t[m].get(c, {}).get("lo", np.nan) for c in COLUMNS])
        hi = np.array([t[m].get(c, {}).get("hi", np.nan) for c in COLUMNS])
        off = (i - (len(names) - 1) / 2) * w
        ax.bar(x + off, means, w, yerr=[means - lo, hi - means], capsize=3, label=f"{m} (toy)", color=f"C{i}")
    ax.axhline(25, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(x, COLUMNS)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"seedr1 study ({result['mode']}, {result['seeds']} seed(s)): mean, 95% CI over seeds")
    ax.legend(loc="upper right", ncols=4, fontsize=8)
    for i, m in enumerate(names):
        if arms[i]["method"] == "vanilla":
            continue
        for j, split in enumerate(SPLITS):
            pts = {}
            for r in result["curve"]:
                if r["method"] == m and r["split"] == split:
                    pts.setdefault(r["fraction"], []).append(r["accuracy"])
            fr = sorted(pts)
            ls = ("-", "--", ":")[j]
            ax2.plot([100 * f for f in fr], [np.mean(pts[f]) for f in fr], ls, marker="o", color=f"C{i}")
            ax2.plot([], [], ls, color="k", label=split) if m == names[-1] else None
    ax2.set_xlabel("% of the training budget (prompts)")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(0, 100)
    ax2.set_title("budget curve (colours as on the left)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(workdir: str, result: dict) -> None:
    with open(os.path.join(workdir, "study.json"), "w") as f:
        json.dump(result, f, indent=2)
    md = format_markdown(result)
    with open(os.path.join(workdir, "study.md"), "w") as f:
        f.write(md + "\n")
    plot(result, os.path.join(workdir, "study.png"))
    print("\n" + md)
    print(f"\nwritten: {os.path.join(workdir, 'study.json')}, study.md, study.png")


def run(
    workdir: str, seeds: int | None = None, quick: bool = False, tune_arms: bool = False, arms_file: str | None = None
) -> int:
    """`seedr1 study`: returns the exit code."""
    run_study(workdir, seeds=seeds, mode="quick" if quick else "default", tune_arms=tune_arms, arms_file=arms_file)
    return 0
