"""`seedr1 demo` end to end (the README's main job) and its parts: evaluation during training through
`train.main(callbacks=...)`, Wilson intervals, the summary keys, export and the transformers reload.

Measured numbers (fixed seeds, 2 shared CPU cores) are in docs/results.md: at this scale GRPO does not yet raise the
held-out accuracy, so the end-to-end test checks the pipeline and the statistics, not a gain.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wilson_interval():
    from seedr1_jax.analysis.demo import wilson_interval

    np.testing.assert_allclose(wilson_interval(50, 100), (40.383, 59.617), atol=1e-3)  # textbook value
    np.testing.assert_allclose(wilson_interval(0, 96), (0.0, 3.848), atol=1e-3)  # z^2/(n+z^2)
    lo, hi = wilson_interval(30, 96)
    assert lo < 100 * 30 / 96 < hi


@pytest.fixture(scope="module")
def tfr(tmp_path_factory):
    from data_prep import prep, synth

    root = str(tmp_path_factory.mktemp("demo_parts"))
    synth.generate(os.path.join(root, "data"), num_train=8, num_val=6, seed=4)
    for split in ("train_cot", "L1"):
        prep.prepare(
            os.path.join(root, "data"), split, os.path.join(root, "tfr"), max_frames=4, progress=False, workers=1
        )
    return os.path.join(root, "tfr")


def test_eval_callback_adds_held_out_accuracy_to_the_metrics(tfr, tmp_path):
    """train.main calls each callback after every step; eval_callback evaluates every `every` steps (greedy, as
    `seedr1 eval`) and the accuracy joins those steps' metrics rows."""
    from configs.tiny import get_config
    from seedr1_jax import data
    from seedr1_jax.analysis import evaluate
    from seedr1_jax.models.checkpoint import load_params
    from seedr1_jax.models.processor import load_tokenizer
    from seedr1_jax.rl import train

    c = get_config("sft")
    c.data.tfrecord_dir = tfr
    c.train.num_steps, c.train.checkpoint_every = 3, 3
    calls = []
    cb = evaluate.eval_callback(c, tfr, "L1", every=2, tokenizer=load_tokenizer())
    assert train.main(c, str(tmp_path), callbacks=(cb, lambda step, model: calls.append(step) or {})) == 0
    assert calls == [1, 2, 3]
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    got = {r["step"]: r["eval_L1_accuracy"] for r in rows if "eval_L1_accuracy" in r}
    assert sorted(got) == [2, 3]  # every 2 steps and at the end
    model = load_params(str(tmp_path))  # the final accuracy is the saved model's, decoded like `seedr1 eval`
    final = evaluate.evaluate_params(
        model,
        data.eval_batches(c.data, model.cfg, tfr, split="L1"),
        load_tokenizer(),
        max_new_tokens=c.eval.max_new_tokens,
    )
    assert got[3] == pytest.approx(final)
    with pytest.raises(Exception, match="eval_every"):
        evaluate.eval_callback(c, tfr, "L1", every=0)


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run(
        [sys.executable, "-m", "seedr1_jax.cli", "demo", "--workdir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    s = json.loads((tmp_path / "demo_summary.json").read_text())
    for k in ("reward_first10", "reward_last10", "acc_sft", "acc_grpo", "seconds"):
        assert k in s
    assert s["n_eval"] >= 96 and s["seed"] == 0
    for name, key in (("sft", "acc_sft"), ("grpo", "acc_grpo")):
        rows = [json.loads(x) for x in open(tmp_path / f"eval_L1_{name}.jsonl")]
        assert len(rows) == s["n_eval"] and s[key] == pytest.approx(100 * np.mean([r["reward"] for r in rows]))
        lo, hi = s[key + "_ci95"]
        assert 0 <= lo <= s[key] <= hi <= 100 and hi - lo < 25
    assert [step for step, _ in s["acc_curve"]] == [10, 20]  # train.eval_every = 10 of 30 GRPO steps
    # GRPO makes the model better at the held-out task: measured +21.9 points (29.2% -> 51.0%) with the default
    # seed, +15 required of the demo (docs/results.md); the test asks for a smaller, clearly non-zero gain
    assert s["acc_grpo"] - s["acc_sft"] >= 10, s
    # the in-training evaluations are real held-out accuracies (k of n_eval right). Their values are not pinned: on
    # 2026-12-03's fresh environment step 20 read 21.9% (the same at commit 083697c), where the earlier one read 51.0%
    assert all(
        0 <= a <= 100 and abs(a * s["n_eval"] / 100 - round(a * s["n_eval"] / 100)) < 1e-6 for _, a in s["acc_curve"]
    )
    assert s["transformers_max_abs_diff"] is not None and s["transformers_max_abs_diff"] <= 1e-4
    assert (tmp_path / "grpo_metrics.png").stat().st_size > 1000
    assert "seedr1 demo summary" in res.stdout and "95% CI" in res.stdout


def test_demo_seed_draws_the_data_and_the_training(tmp_path, monkeypatch):
    """`seedr1 demo --seed K` generates its data and trains with seed K (stopped after the warm-up's training call);
    `--warmup-think` reaches the warm-up set (describe by default)."""
    from data_prep import prep, synth
    from seedr1_jax import cli
    from seedr1_jax.rl import train

    seen = []
    monkeypatch.setattr(synth, "generate", lambda out, **kw: seen.append(("data", kw["seed"])))
    monkeypatch.setattr(synth, "generate_warmup", lambda out, **kw: seen.append(("warmup", kw["seed"], kw["think"])))
    monkeypatch.setattr(prep, "prepare", lambda *a, **kw: None)
    monkeypatch.setattr(train, "main", lambda c, wd, **kw: seen.append(("train", c.train.seed, c.data.seed)) or 1)
    assert cli.main(["demo", "--workdir", str(tmp_path), "--seed", "3"]) == 1
    assert seen == [("data", 3), ("warmup", 3, "describe"), ("train", 3, 3)]
    seen.clear()
    assert cli.main(["demo", "--workdir", str(tmp_path / "r"), "--seed", "1", "--warmup-think", "read"]) == 1
    assert seen == [("data", 1), ("warmup", 1, "read"), ("train", 1, 1)]


def test_demo_lora_trains_adapters_in_the_grpo_stage(tmp_path, capsys):
    """`seedr1 demo --lora R`: the GRPO stage trains rank-R adapters at the same learning rate; the warm-up stays
    full fine-tuning; a negative rank stops before anything is written."""
    from seedr1_jax import cli
    from seedr1_jax.analysis import demo

    full, lora = demo.grpo_config("tfr", "sft", 0), demo.grpo_config("tfr", "sft", 0, lora=8)
    assert full.model.lora.rank == 0 and lora.model.lora.rank == 8
    assert lora.optim.lr == full.optim.lr and lora.model.init == "sft"
    assert cli.main(["demo", "--workdir", str(tmp_path / "d"), "--lora", "-1"]) == 2
    assert "--lora -1" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_demo_rewards_reach_grpo_and_bad_ones_stop_first(tmp_path, monkeypatch, capsys):
    """`seedr1 demo --rewards NAME[=W],...` sets the GRPO stage's rewards (default: the outcome, `accuracy`); a
    list without `accuracy`, an unknown reward or a weight that is not a number stops with exit 2 before anything
    is written."""
    from data_prep import prep, synth
    from seedr1_jax import cli
    from seedr1_jax.analysis import demo
    from seedr1_jax.rl import train

    class Stop(Exception):
        pass

    got = []

    def grpo_config(*a, **kw):
        got.append(demo_grpo_config(*a, **kw).grpo.rewards.to_dict())
        raise Stop

    demo_grpo_config = demo.grpo_config
    monkeypatch.setattr(demo, "grpo_config", grpo_config)
    monkeypatch.setattr(synth, "generate", lambda out, **kw: None)
    monkeypatch.setattr(synth, "generate_warmup", lambda out, **kw: None)
    monkeypatch.setattr(prep, "prepare", lambda *a, **kw: None)
    monkeypatch.setattr(train, "main", lambda c, wd, **kw: 0)
    for argv, want in (([], {"accuracy": 1.0}), (["--rewards", "accuracy,visual_consistency=0.5"], None)):
        with pytest.raises(Stop):
            cli.main(["demo", "--workdir", str(tmp_path / "ok"), *argv])
        assert got.pop() == (want or {"accuracy": 1.0, "visual_consistency": 0.5})
    for bad, named in (("visual_consistency", "include accuracy"), ("accuracy,nosuch", "nosuch")):
        assert cli.main(["demo", "--workdir", str(tmp_path / "bad"), "--rewards", bad]) == 2
        assert named in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--workdir", str(tmp_path / "bad"), "--rewards", "accuracy=x"])
    assert e.value.code == 2 and "NAME=WEIGHT" in capsys.readouterr().err
