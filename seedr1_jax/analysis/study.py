"""`seedr1 study`: the paper's table 1 at toy scale: Vanilla vs SFT vs GRPO on synthetic L1/L2/L3 shifts.

Per seed: a shared "Vanilla" start (the tiny random model after a warm-up on task-shaped prompts whose responses
describe the scene and answer a random letter: it knows `<think>..</think><answer>X</answer>`, not which option
to pick; `synth.generate_warmup`), then SFT on train_cot and GRPO on
train from it with a matched budget (the same number of training prompts seen), then Vanilla, SFT and GRPO
evaluated on L1, L2 and L3 (+ L3 per domain) with `seedr1 eval`'s greedy decoding. Writes study.json,
study.md and study.png in the workdir; a rerun resumes (finished trainings and evaluations are skipped).
"""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np

METHODS = ("Vanilla", "SFT", "GRPO")
SPLITS = ("L1", "L2", "L3")
COLUMNS = ("L1", "L2", "L3", "Daily life", "Hobbies", "Recreation", "Work")

# sizes per mode; `steps` is the number of SFT and of GRPO steps, each of `batch` prompts (matched budget). The
# warm-up ("Vanilla") and the GRPO settings are configs/tiny.py's "warmup" and "grpo", as `seedr1 demo` runs them.
BUDGETS = {
    "default": dict(num_train=256, num_val=96, warmup_samples=320, warmup_steps=120, steps=30, batch=8),
    "quick": dict(num_train=64, num_val=32, warmup_samples=320, warmup_steps=120, steps=15, batch=8),
    "smoke": dict(num_train=8, num_val=8, warmup_samples=8, warmup_steps=2, steps=2, batch=4),
}


def _configs(budget: dict, tfr: str, warm_tfr: str, seed: int):
    """The three training configs (tiny model): format warm-up, SFT on train_cot, GRPO on train."""
    from configs.tiny import get_config

    warm, sft, grpo = get_config("warmup"), get_config("sft"), get_config("grpo")
    warm.data.tfrecord_dir = warm_tfr
    sft.data.tfrecord_dir = grpo.data.tfrecord_dir = tfr
    for c in (warm, sft, grpo):
        c.train.seed = c.data.seed = seed
    sft.data.batch_size = grpo.data.batch_size = budget["batch"]
    warm.train.num_steps = budget["warmup_steps"]
    sft.train.num_steps = grpo.train.num_steps = budget["steps"]
    for c in (warm, sft, grpo):
        c.train.checkpoint_every = c.train.num_steps
    return warm, sft, grpo


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


def _evaluate(run_dir: str, split: str, config, tfr: str, tokenizer) -> dict:
    """The accuracy table of one (model, split) cell, as `seedr1 eval` computes it; cached in the run dir."""
    from seedr1_jax import data
    from seedr1_jax.analysis import evaluate
    from seedr1_jax.models.checkpoint import load_params

    summary = os.path.join(run_dir, f"eval_{split}_summary.json")
    if os.path.exists(summary):
        with open(summary) as f:
            return json.load(f)
    t0 = time.time()
    model = load_params(run_dir)
    rows = evaluate.evaluate(
        model,
        data.eval_batches(config.data, model.cfg, tfr, split=split),
        os.path.join(run_dir, f"eval_{split}.jsonl"),
        tokenizer,
        max_new_tokens=config.eval.max_new_tokens,
        repetition_penalty=config.eval.repetition_penalty,
        progress=False,
    )
    out = {"split": split, "n": len(rows), "accuracy": evaluate.accuracy_table(rows, split)}
    out["seconds"] = time.time() - t0
    with open(summary, "w") as f:
        json.dump(out, f, indent=2)
    return out


def _prepare_data(workdir: str, budget: dict) -> tuple[str, str, float]:
    from configs.tiny import get_config
    from data_prep import prep, synth

    root, warm_root = os.path.join(workdir, "data"), os.path.join(workdir, "data_warmup")
    tfr, warm_tfr = os.path.join(workdir, "tfrecords"), os.path.join(workdir, "tfrecords_warmup")
    frames = get_config().data.max_frames
    done = os.path.join(workdir, "data_done")
    if os.path.exists(done):
        return tfr, warm_tfr, _seconds(done)
    t0 = time.time()
    if not os.path.exists(os.path.join(root, "done")):
        synth.generate(root, num_train=budget["num_train"], num_val=budget["num_val"], seed=0, option_order="sorted")
        synth.generate_warmup(warm_root, num=budget["warmup_samples"], seed=0, option_order="sorted")
        open(os.path.join(root, "done"), "w").close()
    for split in ("train", "train_cot", *SPLITS):
        if not os.path.exists(os.path.join(tfr, f"prep_report_{split}.json")):
            prep.prepare(root, split, tfr, max_frames=frames, progress=False, workers=1)
    if not os.path.exists(os.path.join(warm_tfr, "prep_report_train_cot.json")):
        prep.prepare(warm_root, "train_cot", warm_tfr, max_frames=frames, progress=False, workers=1)
    with open(done, "w") as f:
        f.write(f"{time.time() - t0:.1f}")
    return tfr, warm_tfr, _seconds(done)


def run_study(workdir: str, seeds: int = 3, mode: str = "default") -> dict:
    """Trains and evaluates every (seed, method, split) cell not yet done; returns the study.json dict."""
    from seedr1_jax.models.config import ConfigError
    from seedr1_jax.models.processor import load_tokenizer

    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: use 1 or more")
    budget = BUDGETS[mode]
    t0 = time.time()
    os.makedirs(workdir, exist_ok=True)
    tfr, warm_tfr, work = _prepare_data(workdir, budget)  # work: seconds of every stage, over all invocations
    prompts = budget["steps"] * budget["batch"]
    warm, _, grpo = _configs(budget, tfr, warm_tfr, 0)
    print(
        f"seedr1 study ({mode}): matched budget: SFT and GRPO each see {prompts} training prompts "
        f"({budget['steps']} steps x {budget['batch']} prompts; GRPO samples {grpo.grpo.group_size} completions "
        f"per prompt); Vanilla = {warm.train.num_steps} x {warm.data.batch_size} warm-up samples (scene "
        f"description, random letters); {seeds} seed(s)",
        flush=True,
    )
    tok = load_tokenizer()
    cells = []
    for seed in range(seeds):
        warm, sft, grpo = _configs(budget, tfr, warm_tfr, seed)
        base = os.path.join(workdir, f"seed{seed}")
        dirs = {m: os.path.join(base, m.lower()) for m in METHODS}
        work += _train(warm, dirs["Vanilla"])
        sft.model.init = grpo.model.init = dirs["Vanilla"]
        work += _train(sft, dirs["SFT"]) + _train(grpo, dirs["GRPO"])
        for m in METHODS:
            for split in SPLITS:
                r = _evaluate(dirs[m], split, grpo, tfr, tok)
                work += r.get("seconds", 0.0)
                with open(os.path.join(dirs[m], f"eval_{split}.jsonl")) as f:
                    said = reasoning([json.loads(x) for x in f])
                cells.append(dict(seed=seed, method=m, split=split, n=r["n"], accuracy=r["accuracy"], reasoning=said))
                print(f"  seed {seed} {m:<8}{split}: {r['accuracy'].get(split, float('nan')):6.2f}% (n={r['n']})")
    result = dict(
        mode=mode,
        seeds=seeds,
        budget=dict(budget, training_prompts_each=prompts),
        cells=cells,
        table=summarize(cells),
        seconds=work,  # data, trainings and evaluations, summed over the invocations that ran them
        seconds_this_run=time.time() - t0,
    )
    write_outputs(workdir, result)
    return result


_OPTION = re.compile(r"^([A-E])\. (.*)$", re.MULTILINE)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def reasoning(rows: list[dict]) -> dict:
    """What the greedy completions of one cell say, read against the synthetic data's one visual fact (the object's
    colour, named by the correct option): `think_sees` = % of completions whose `<think>` names the colour shown,
    `answer_follows` = % whose answer letter is the option naming the colour their `<think>` names (whether
    the answer follows from the stated evidence, right or wrong), `format` = % with both tags, `one_letter` = % that
    give the cell's most common answer letter (100: the same letter whatever the pixels, so the accuracy is that
    letter's share of the split)."""
    from collections import Counter

    from data_prep.synth import COLORS
    from seedr1_jax.rl.rewards import extract_answer, format_reward

    def colour(text):
        found = [c for c in COLORS if re.search(rf"\b{c}\b", text or "")]
        return found[0] if len(found) == 1 else None

    sees = follows = fmt = 0
    letters = Counter()
    for r in rows:
        options = dict(_OPTION.findall(r["prompt"]))
        think = _THINK.search(r["response"] or "")
        said = colour(think.group(1)) if think else None
        answer = (extract_answer(r["response"] or "") or "")[:1]
        sees += said is not None and said == colour(options.get(r["answer"]))
        follows += said is not None and answer in options and colour(options[answer]) == said
        fmt += format_reward(r["response"] or "") == 1.0
        letters[answer] += answer != ""
    n = max(len(rows), 1)
    top = max(letters.values(), default=0)
    return dict(
        think_sees=100 * sees / n, answer_follows=100 * follows / n, format=100 * fmt / n, one_letter=100 * top / n
    )


def summarize(cells: list[dict]) -> dict:
    """{method: {column: {"mean", "std", "n_seeds"}}} over seeds (std: sample std, 0 for one seed)."""
    table = {}
    for m in METHODS:
        table[m] = {}
        for col in COLUMNS:
            vals = [c["accuracy"][col] for c in cells if c["method"] == m and col in c["accuracy"]]
            if vals:
                std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
                table[m][col] = dict(mean=float(np.mean(vals)), std=std, n_seeds=len(vals))
    return table


def _md_table(columns, cell) -> list[str]:
    """A markdown table, one row per method: `cell(method, column)` gives each entry."""
    head = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    return head + [f"| {m} | " + " | ".join(cell(m, col) for col in columns) + " |" for m in METHODS]


def format_markdown(result: dict) -> str:
    from seedr1_jax.analysis.evaluate import REFERENCE

    t = result["table"]
    b = result["budget"]

    def accuracy(m, col):
        c = t.get(m, {}).get(col)
        return (f"{c['mean']:.1f} ± {c['std']:.1f}" if c else "-") + f" [{REFERENCE[m][col]:.1f}]"

    def said(m, split):
        rs = [c["reasoning"] for c in result["cells"] if c["method"] == m and c["split"] == split]
        keys = ("think_sees", "answer_follows", "format", "one_letter")
        return " / ".join(f"{np.mean([r[k] for r in rs]):.0f}" for k in keys) if rs else "-"

    n = {c["split"]: c["n"] for c in result["cells"]}
    lines = [
        f"Toy study ({result['mode']}, {result['seeds']} seed(s), mean ± std over seeds; accuracy %; chance 25%). "
        f"Matched budget: SFT and GRPO each saw {b['training_prompts_each']} training prompts. "
        f"Paper (Qwen2-VL-7B, docs/recipe.md section 8) in brackets.",
        "",
        *_md_table(COLUMNS, accuracy),
        "",
        "samples per split: " + ", ".join(f"{k} {v}" for k, v in n.items()),
        "",
        "What the completions say (mean over seeds, % of samples; `study.reasoning`): the `<think>` names the colour "
        "shown / the answer is the option naming the colour the `<think>` names / both tags present / the most "
        "common answer letter (100: one letter whatever the pixels).",
        "",
        *_md_table(SPLITS, said),
        "",
        f"time: {result['seconds']:.0f}s of data, training and evaluation (this invocation: "
        f"{result['seconds_this_run']:.0f}s; a resumed study reuses what earlier ones finished)",
    ]
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result["table"]
    x = np.arange(len(COLUMNS))
    w = 0.27
    fig, ax = plt.subplots(figsize=(11, 4))
    for i, m in enumerate(METHODS):
        means = [t[m].get(c, {}).get("mean", np.nan) for c in COLUMNS]
        stds = [t[m].get(c, {}).get("std", 0.0) for c in COLUMNS]
        ax.bar(x + (i - 1) * w, means, w, yerr=stds, capsize=3, label=f"{m} (toy)", color=f"C{i}")
    ax.axhline(25, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(x, COLUMNS)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"seedr1 study ({result['mode']}, {result['seeds']} seed(s)): mean ± std over seeds")
    ax.legend(loc="upper right", ncols=4, fontsize=8)
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


def run(workdir: str, seeds: int | None = None, quick: bool = False) -> int:
    """`seedr1 study`: returns the exit code."""
    run_study(workdir, seeds=seeds or (1 if quick else 3), mode="quick" if quick else "default")
    return 0
