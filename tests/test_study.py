"""`seedr1 study` smoke run (smaller than --quick): the table has every method x split cell, each one a real
evaluation (per-sample JSONL whose rewards give the cell's accuracy), and a rerun resumes without redoing work."""

import json
import os

import numpy as np

from seedr1_jax.analysis import study


def test_study_smoke_table_is_real_and_resumable(tmp_path):
    wd = str(tmp_path / "study")
    res = study.run_study(wd, seeds=1, mode="smoke")
    n_val = study.BUDGETS["smoke"]["num_val"]
    assert res["budget"]["training_prompts_each"] == study.BUDGETS["smoke"]["steps"] * study.BUDGETS["smoke"]["batch"]
    assert sorted((c["method"], c["split"]) for c in res["cells"]) == sorted(
        (m, s) for m in study.METHODS for s in study.SPLITS
    )
    for c in res["cells"]:
        rows = [json.loads(x) for x in open(os.path.join(wd, "seed0", c["method"].lower(), f"eval_{c['split']}.jsonl"))]
        assert c["n"] == len(rows) == n_val and len({r["sample_id"] for r in rows}) == n_val
        assert all(r["response"] is not None and r["reward"] in (0.0, 1.0) for r in rows)
        assert np.isclose(c["accuracy"][c["split"]], 100 * np.mean([r["reward"] for r in rows]))
        assert c["reasoning"] == study.reasoning(rows) and all(0 <= v <= 100 for v in c["reasoning"].values())
    t = res["table"]
    assert set(t) == set(study.METHODS) and all(set(t[m]) == set(study.COLUMNS) for m in study.METHODS)
    assert all(t[m][col]["n_seeds"] == 1 and t[m][col]["std"] == 0.0 for m in t for col in t[m])
    for name in ("study.json", "study.md", "study.png"):
        assert os.path.getsize(os.path.join(wd, name)) > 100
    md = open(os.path.join(wd, "study.md")).read()
    assert all(f"| {m} |" in md for m in study.METHODS) and "[46.0]" in md  # the paper's GRPO L1 beside ours

    # resumable: a rerun finds every training and evaluation done and returns the same table
    stamps = {p: os.path.getmtime(p) for p in _files(wd, ("eval_", "checkpoints"))}
    again = study.run_study(wd, seeds=1, mode="smoke")
    assert again["table"] == res["table"]
    # the time reported is the work the cells took, not the rerun's few seconds
    assert again["seconds"] == res["seconds"] > again["seconds_this_run"]
    assert stamps == {p: os.path.getmtime(p) for p in _files(wd, ("eval_", "checkpoints"))}


def _files(root, parts):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if any(p in os.path.join(d, f) for p in parts)]


def test_reasoning_reads_the_evidence_and_the_answer():
    colours = ("blue", "green", "red", "yellow")
    prompt = "what next?\n" + "".join(f"{k}. rinse the {c} cup\n" for k, c in zip("ABCD", colours))
    rows = [
        # sees red (right), answers C (follows, correct, well formed)
        dict(prompt=prompt, answer="C", response="<think>The square is red.</think><answer>C</answer>"),
        # sees red, answers B: does not follow its own evidence
        dict(prompt=prompt, answer="C", response="<think>The square is red.</think><answer>B</answer>"),
        # says green (wrong), answers B: follows, no closing tag (bad format, no answer)
        dict(prompt=prompt, answer="C", response="<think>It is green.</think><answer>B"),
        # names two colours: no single colour stated
        dict(prompt=prompt, answer="A", response="<think>red or blue</think><answer>A</answer>"),
    ]
    got = study.reasoning(rows)
    assert got == dict(think_sees=50.0, answer_follows=25.0, format=75.0, one_letter=25.0)  # C, B, none, A: each once
    assert study.reasoning(rows[:2] + rows[:2])["one_letter"] == 50.0  # C, B, C, B
