"""`seedr1 study` smoke run (smaller than --quick): every arm x split cell is a real evaluation (per-sample JSONL
whose rewards give the cell's accuracy), study.json carries what the issue asks per seed and arm (accuracy per
split and L3 domain, format rate, most-common-letter share, budget in prompts and FLOPs, tuned hyper-parameters),
the budget curve has every fraction, the arms' hyper-parameters come from a search on the L1 validation split,
and a rerun resumes without redoing work."""

import json
import os

import numpy as np
import pytest

from seedr1_jax.analysis import study


@pytest.mark.slow
def test_study_smoke_is_real_complete_and_resumable(smoke_base_cache, tmp_path, monkeypatch):
    """One smoke study with `--tune` (a 3-setting search): the checks of the table, then of the search. The toy
    base is the run's shared build (conftest.smoke_base_cache: what `seedr1 study` finds on a second run)."""
    monkeypatch.setenv("SEEDR1_CACHE", smoke_base_cache)
    monkeypatch.setattr(
        study, "SEARCH", {"SFT": [{"optim.lr": 1e-3}, {"optim.lr": 3e-3}], "GRPO": [("grpo.beta", (0.0,))]}
    )
    wd = str(tmp_path / "study")
    arms_file = tmp_path / "arms.py"  # the paper's arms (configs/arms/paper.py), GRPO's with an override
    arms_file.write_text(
        "from configs.arms.paper import get_arms as paper\n\n"
        "def get_arms():\n"
        "    a = paper()\n"
        "    [grpo] = [arm for arm in a['arms'] if arm['name'] == 'GRPO']\n"
        "    grpo['overrides'] = {'grpo.beta': 1.0}\n"
        "    return a\n"
    )
    res = study.run_study(wd, seeds=2, mode="smoke", tune_arms=True, arms_file=str(arms_file))
    names = study.METHODS
    b = study.BUDGETS["smoke"]
    assert res["budget"]["training_prompts_each"] == b["steps"] * b["batch"]
    per = res["budget"]["per_arm"]
    assert per["SFT"]["prompts"] == per["GRPO"]["prompts"] and per["GRPO"]["flops"] > per["SFT"]["flops"] > 0
    assert sorted((c["seed"], c["method"], c["split"]) for c in res["cells"]) == sorted(
        (s, m, sp) for s in range(2) for m in names for sp in study.SPLITS
    )
    base_dir = res["base"]["dir"]
    for c in res["cells"]:
        run = base_dir if c["method"] == "Vanilla" else os.path.join(wd, f"seed{c['seed']}", c["method"].lower())
        tag = "_smoke" if c["method"] == "Vanilla" else ""
        rows = [json.loads(x) for x in open(os.path.join(run, f"eval_{c['split']}{tag}.jsonl"))]
        assert c["n"] == len(rows) == b["num_val"] and len({r["sample_id"] for r in rows}) == b["num_val"]
        assert np.isclose(c["accuracy"][c["split"]], 100 * np.mean([r["reward"] for r in rows]))
        assert c["reasoning"] == study.reasoning(rows)
        assert c["format"] == c["reasoning"]["format"] and c["one_letter"] == c["reasoning"]["one_letter"]
        if c["split"] == "L3":
            assert set(study.DOMAINS) & set(c["accuracy"])
        if c["method"] != "Vanilla":
            # the arm's override over its method's tuned hyper-parameters
            override = {"grpo.beta": 1.0} if c["kind"] == "grpo" else {}
            want = dict(res["tuning"]["chosen"][c["kind"].upper()], **override)
            assert c["budget"] == per[c["method"]] and c["hparams"] == want
            cfg = json.load(open(os.path.join(wd, f"seed{c['seed']}", c["method"].lower(), "run_config.json")))
            assert cfg["grpo"]["beta"] == want.get("grpo.beta", cfg["grpo"]["beta"])
    # the budget curve: every seed x trained arm x fraction x split, the 100% point equal to the cell
    assert len(res["curve"]) == 2 * 2 * len(study.FRACTIONS) * len(study.SPLITS)
    for c in res["cells"]:
        if c["method"] != "Vanilla":
            (pt,) = [
                r["accuracy"]
                for r in res["curve"]
                if (r["seed"], r["method"], r["split"], r["fraction"]) == (c["seed"], c["method"], c["split"], 1.0)
            ]
            assert pt == c["accuracy"][c["split"]]
    t = res["table"]
    assert set(t) == set(names) and all(t[m]["L1"]["n"] == 2 for m in t)
    pairs = {("GRPO", "SFT"), ("GRPO", "Vanilla"), ("SFT", "Vanilla")}
    assert {(v["a"], v["b"], v["column"]) for v in res["verdicts"]} == {(*p, s) for p in pairs for s in study.SPLITS}
    for name in ("study.json", "study.md", "study.png"):
        assert os.path.getsize(os.path.join(wd, name)) > 100
    md = open(os.path.join(wd, "study.md")).read()
    assert md.index("Verdicts") < md.index("| model |") and "(46.0)" in md  # verdicts lead; the paper beside ours

    for run in [os.path.join(wd, f"seed{s}", m.lower()) for s in range(2) for m in ("SFT", "GRPO")] + [
        os.path.join(wd, "tune", "sft", study._label({"optim.lr": 1e-3}))
    ]:  # evaluated at every fraction: only the trained model (the last step) is kept
        assert os.listdir(os.path.join(run, "checkpoints")) == [str(b["steps"])]
    stamps = {p: os.path.getmtime(p) for p in _files(wd, ("eval_", "checkpoints"))}
    again = study.run_study(wd, seeds=2, mode="smoke", tune_arms=True, arms_file=str(arms_file))
    assert again["table"] == res["table"] and again["seconds"] == res["seconds"] > again["seconds_this_run"]
    assert stamps == {p: os.path.getmtime(p) for p in _files(wd, ("eval_", "checkpoints"))}
    _check_search(wd, res)


def _check_search(wd, res):
    """`--tune` scored every setting on the L1 validation split (its own samples) and the study used the best."""
    trials = res["tuning"]["trials"]
    assert [t["arm"] for t in trials] == ["SFT", "SFT", "GRPO"]
    assert res["tuning"]["chosen"]["GRPO"]["grpo.beta"] == 0.0  # the only value searched, over SEARCH_START's
    best_sft = max(t["l1val"] for t in trials if t["arm"] == "SFT")
    assert res["tuning"]["chosen"]["SFT"] in [t["overrides"] for t in trials if t["l1val"] == best_sft]
    for t in trials:  # every score is an evaluation on the validation split's own samples
        rows = [
            json.loads(x)
            for x in open(os.path.join(wd, "tune", t["arm"].lower(), study._label(t["overrides"]), "eval_L1val.jsonl"))
        ]
        assert len(rows) == study.BUDGETS["smoke"]["num_l1val"] and np.isclose(
            t["l1val"], 100 * np.mean([r["reward"] for r in rows])
        )
    test_ids = {json.loads(x)["sample_id"] for x in open(os.path.join(wd, "seed0", "sft", "eval_L1.jsonl"))}
    val_prompts = {
        json.loads(x)["prompt"]
        for x in open(os.path.join(wd, "tune", "sft", study._label(trials[0]["overrides"]), "eval_L1val.jsonl"))
    }
    test_prompts = {json.loads(x)["prompt"] for x in open(os.path.join(wd, "seed0", "sft", "eval_L1.jsonl"))}
    assert test_ids and not (val_prompts & test_prompts)
    c = [c for c in res["cells"] if c["method"] == "SFT"][0]
    assert c["hparams"] == res["tuning"]["chosen"]["SFT"] and c["l1val"] == best_sft


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
    want = dict(think_sees=50.0, answer_follows=25.0, format=75.0, one_letter=25.0, copies=None)  # no reading
    assert got == want  # letters C, B, none, A: each once
    assert study.reasoning(rows[:2] + rows[:2])["one_letter"] == 50.0  # C, B, C, B
    # a <think> that reads the options after its description (the toy base's reading stages): what it saw is the
    # description's colour, though the reading names every colour; stopping at B (green) does not follow "red"
    read = "<think>The square is red. A is rinse the blue cup. B is rinse the green cup.</think><answer>B</answer>"
    stop = "<think>The square is red. A is rinse the blue cup. B is rinse the green cup. C is rinse the red cup."
    stop += "</think><answer>C</answer>"  # stops at the option naming what it saw: follows
    rows = [dict(prompt=prompt, answer="C", response=read), dict(prompt=prompt, answer="C", response=stop)]
    # 5 readings, each the option's text
    assert study.reasoning(rows) == dict(
        think_sees=100.0, answer_follows=50.0, format=100.0, one_letter=50.0, copies=100.0
    )
    # the template recited, not copied (the quick base on the study's prompts), and a reading cut short
    recite = "<think>The square is red. A is feud the blue still crown. B is</think><answer>A</answer>"
    assert study.reasoning([dict(prompt=prompt, answer="C", response=recite)])["copies"] == 0.0
    rows.append(dict(prompt=prompt, answer="C", response=recite))
    assert study.reasoning(rows)["copies"] == pytest.approx(100 * 5 / 6)  # its `B is` with nothing after is no reading
    from seedr1_jax.rl.rewards import copies, readings

    got = readings("The cup is red. A is rinse the blue cup. B is rinse")
    assert got == [("A", "rinse the blue cup"), ("B", "rinse")]
    assert copies("A is rinse  the blue cup. E is x.", {"A": "rinse the blue cup"}) == [True]  # E: no such option
    from seedr1_jax.rl.rewards import description

    assert description("A is red. B is blue.") == "" and description("The cup is red.") == "The cup is red."


def test_every_shipped_arm_file_builds_its_arms():
    """The ready experiments in configs/arms/ load, and every arm's config passes `seedr1 train`'s value checks (what
    `seedr1 study --arms FILE` verifies before it builds or trains anything)."""
    import glob

    from seedr1_jax.analysis import study

    files = sorted(glob.glob(os.path.join(os.path.dirname(study.default_arms_file()), "[!_]*.py")))
    assert {os.path.basename(f) for f in files} >= {"paper.py", "process_rewards.py", "reward_noise.py",
                                                    "sensitivity.py", "loss_variants.py", "frames.py"}  # fmt: skip
    for f in files:
        spec = study.load_arms(f)
        study.check_arms(spec["arms"], study.BUDGETS["default"], study.TUNED)
        assert spec["baseline"] in [a.name for a in spec["arms"]] and len(spec["arms"]) >= 3, f


def test_a_workdir_prepared_with_fewer_frames_is_refused(tmp_path):
    """Arms that read more frames than a workdir's clips were prepared with stop before anything runs (the frames
    arms prepare 8; the paper's arms 4), instead of silently training on fewer."""
    from seedr1_jax.analysis import study
    from seedr1_jax.models.config import ConfigError

    (tmp_path / "data_done").write_text("12.5")
    (tmp_path / "data_frames").write_text("4")
    assert study._prepare_data(str(tmp_path), study.BUDGETS["smoke"], 4)[2] == 12.5  # the same: reused
    with pytest.raises(ConfigError, match="prepared with 4 frames, these arms read up to 8"):
        study._prepare_data(str(tmp_path), study.BUDGETS["smoke"], 8)
