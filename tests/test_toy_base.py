"""The toy base and its curriculum: the curriculum never shows the study's task, the base rebuilds bit-identically
from its recipe, and a built base is found in its cache instead of being trained again."""

import json
import os
import re

import pytest

from data_prep import curriculum, synth
from seedr1_jax.analysis import toy_base


def test_curriculum_is_perception_not_the_task(tmp_path):
    kinds = curriculum.generate(str(tmp_path), 60, seed=0, media=False)
    assert sum(kinds.values()) == 60 and set(kinds) <= set(curriculum.QUESTIONS) and len(kinds) >= 4
    recs = [json.loads(x) for x in open(tmp_path / "annotations" / "training_with_cot_6k.jsonl")]
    task_words = set(synth.VERBS + synth.OBJECTS + synth.GOALS) - {"open", "move", "take"}
    for r in recs:
        text = r["prompt"][0]["content"][-1]["text"]
        assert not any(re.search(rf"\b{re.escape(w)}\b", text) for w in task_words), text
        assert "what action" not in text.lower() and "put away" not in text.lower()
        assert re.fullmatch(r"<think>[^<]+</think><answer>([A-E]\. )?[a-z]+</answer>", r["response"]), r["response"]
    styles = {(c["type"]) for r in recs for c in r["prompt"][0]["content"]}
    assert styles == {"video", "image", "text"}
    # the same seed writes the same records; another seed does not
    again = tmp_path / "again"
    curriculum.generate(str(again), 60, seed=0, media=False)
    assert (again / "annotations" / "training_with_cot_6k.jsonl").read_text() == (
        tmp_path / "annotations" / "training_with_cot_6k.jsonl"
    ).read_text()


def test_plain_stage_is_kitchens_kind_of_pixels(tmp_path):
    """The first pre-training stage draws every sample on kitchen's grey noise background (no palette shift), any
    shape and motion, and asks only the colour; an unknown style is refused."""
    import numpy as np

    rng = np.random.default_rng(1)
    plain = [curriculum.random_environment(rng, "plain") for _ in range(200)]
    kitchen = synth.ENVIRONMENTS["kitchen"]
    assert all(c == 0 for _, c in plain)
    assert {(e.background, e.bg_rgb, e.tint) for e, _ in plain} == {(kitchen.background, kitchen.bg_rgb, kitchen.tint)}
    assert {e.shape for e, _ in plain} == set(curriculum.SHAPES) and {e.motion for e, _ in plain} == set(
        curriculum.MOTIONS
    )
    kinds = curriculum.generate(str(tmp_path), 60, seed=0, media=False, style="plain")
    assert set(kinds) == {"colour"}  # one fact to learn first
    recs = [json.loads(x) for x in open(tmp_path / "annotations" / "training_with_cot_6k.jsonl")]
    assert {r["chroma"] for r in recs} == {0.0}
    for r in recs:  # the think names shape and colour only
        assert re.fullmatch(r"<think>The [a-z]+ in the (video and the )?image is [a-z]+\.</think>.*", r["response"])
    with pytest.raises(ValueError, match="style 'kitchen'"):
        curriculum.generate(str(tmp_path / "x"), 2, style="kitchen")


def test_match_stage_reads_options_without_the_task(tmp_path):
    """The `match` stage: multiple choice only, four options of one phrase that differ by the colour alone (as the
    study's options do), the right one naming the colour the `<think>` states, never a task word."""
    kinds = curriculum.generate(str(tmp_path), 80, seed=0, media=False, style="match")
    assert set(kinds) == {"colour"}
    recs = [json.loads(x) for x in open(tmp_path / "annotations" / "training_with_cot_6k.jsonl")]
    task_words = set(synth.VERBS + synth.OBJECTS + synth.GOALS) - {"open", "move", "take"}
    letters, phrases = set(), set()
    for r in recs:
        text = r["prompt"][0]["content"][-1]["text"]
        options = re.findall(r"^[A-D]\. (.+)$", text, flags=re.M)
        colours = [[c for c in synth.COLORS if re.search(rf"\b{c}\b", o)] for o in options]
        assert len(options) == 4 and sorted(sum(colours, [])) == sorted(synth.COLORS), text
        assert len({re.sub("|".join(synth.COLORS), "_", o) for o in options}) == 1  # one phrase, the colour differs
        seen = re.search(r"is ([a-z]+)[.;]", r["response"]).group(1)
        letter, said = re.search(r"<answer>([A-D])\. (.+)</answer>", r["response"]).groups()
        assert options["ABCD".index(letter)] == said and seen in said.split()
        assert not any(re.search(rf"\b{re.escape(w)}\b", text) for w in task_words), text
        letters.add(letter)
        phrases.add(re.sub("|".join(curriculum.SHAPES), "#", re.sub("|".join(synth.COLORS), "_", said)))
    assert letters == set("ABCD") and len(phrases) == len(curriculum.PHRASES)


def test_lookup_stage_is_image_only_colour_choices(tmp_path):
    """The `lookup` stage: no video, the colour question, four bare colour names in a random order, the answer's
    letter the one before the colour the `<think>` names."""
    assert set(curriculum.generate(str(tmp_path), 40, seed=0, media=False, style="lookup")) == {"colour"}
    letters = set()
    for line in open(tmp_path / "annotations" / "training_with_cot_6k.jsonl"):
        r = json.loads(line)
        content = r["prompt"][0]["content"]
        assert [c["type"] for c in content] == ["image", "text"]
        options = re.findall(r"^([A-D])\. (.+)$", content[-1]["text"], flags=re.M)
        assert sorted(o for _, o in options) == sorted(synth.COLORS)
        seen = re.search(r"is ([a-z]+)\.</think>", r["response"]).group(1)
        letter = re.search(r"<answer>([A-D])\. ([a-z]+)</answer>", r["response"]).group(1)
        assert dict(options)[letter] == seen
        letters.add(letter)
    assert letters == set("ABCD")


@pytest.mark.parametrize("style", ["read", "read_text", "read_any", "read_generic", "read_distinct"])
def test_read_stage_reads_the_options_in_order(tmp_path, style):
    """The `read` stage: every question multiple choice; the `<think>` describes the scene, then copies the options
    in order (`A is ...`) up to the one the description names, and the answer is the last letter copied; the colour
    question's options are phrases half the time; never a task word. `read_text`: the same with a text-only prompt,
    which `seedr1 prep` takes (no frames, no image). `read_any`: the colour, shape and motion options are one phrase
    of two filler words around the value (`<w1> the <value> <w2>`), drawn afresh per sample from a large pool, so
    only a copy of the prompt reads them. `read_generic`: `read_any` with half of those questions naming no
    attribute (`Which option fits the video?`). `read_distinct`: `read_any` with two fillers per option, so no two
    options share one and no reading can be copied from the one before it."""
    kinds = curriculum.generate(str(tmp_path), 120, seed=0, media=False, style=style)
    assert set(kinds) == set(curriculum.QUESTIONS)
    task_words = set(synth.VERBS + synth.OBJECTS + synth.GOALS) - {"open", "move", "take"}
    letters, phrased, fillers, generic, filled = set(), 0, set(), 0, 0
    generic_questions = {q.format(where=w) for q in curriculum.GENERIC_QUESTIONS for w in ("video", "image")}
    for line in open(tmp_path / "annotations" / "training_with_cot_6k.jsonl"):
        r = json.loads(line)
        text = r["prompt"][0]["content"][-1]["text"]
        assert not any(re.search(rf"\b{re.escape(w)}\b", text) for w in task_words), text
        options = re.findall(r"^[A-E]\. (.+)$", text, flags=re.M)
        m = re.fullmatch(r"<think>([^<]+?)((?: [A-E] is [^.<]+\.)+)</think><answer>([A-E])</answer>", r["response"])
        assert m and len(options) >= 2, r["response"]
        scene, read, letter = m.groups()
        right = options["ABCDE".index(letter)]
        assert read == "".join(f" {'ABCDE'[i]} is {o}." for i, o in enumerate(options[: "ABCDE".index(letter) + 1]))
        values = {"colour": synth.COLORS, "shape": curriculum.SHAPES, "motion": curriculum.MOTIONS.values()}
        if r["question_kind"] in values:  # the one option naming the value the description states
            named = [v for v in values[r["question_kind"]] if re.search(rf"\b{v}\b", scene)]
            assert [bool(re.search(rf"\b{named[0]}\b", o)) for o in options] == [o == right for o in options]
        phrased += r["question_kind"] == "colour" and options[0] not in synth.COLORS
        letters.add(letter)
        if style in ("read_any", "read_generic", "read_distinct") and r["question_kind"] in values:
            fill = [re.sub(rf"\b({'|'.join(values[r['question_kind']])})\b", "_", o) for o in options]
            assert all(re.fullmatch(r"[a-z]+ the _ [a-z]+", f) for f in fill), options
            # read_any: one filler pair for all options; read_distinct: a pair per option (no repeat, nearly surely)
            assert len(set(fill)) == (len(options) if style == "read_distinct" else 1), options
            fillers.add(options[0].split(" the ")[0])
            filled += 1
        question = text.split("\n")[0]
        if question in generic_questions:  # names no attribute: the options say which one they differ in
            assert style == "read_generic" and r["question_kind"] in values, r
            generic += 1
        assert (len(r["prompt"][0]["content"]) == 1) == (style == "read_text")  # the text item alone
    assert letters == set("ABCD") and phrased > 0
    if style in ("read_any", "read_generic", "read_distinct"):  # a fresh filler (nearly) every sample
        assert len(fillers) >= 0.9 * phrased and len(curriculum.filler_words()) > 10000
    if style == "read_generic":  # about half of the colour/shape/motion questions
        assert 0.25 * filled < generic < 0.75 * filled, (generic, filled)
    if style == "read_text":
        from data_prep import prep

        report = prep.prepare(str(tmp_path), "train_cot", str(tmp_path / "tfr"), max_frames=0, progress=False)
        assert report["written"] == 120 and report["skipped"] == 0


def test_environments_cover_the_study_styles():
    """The base's rendering family contains the study's kinds of pixels (kitchen, and L2/L3's): every background,
    shape and camera motion the four environments use is drawn."""
    import numpy as np

    rng = np.random.default_rng(0)
    drawn, chroma = zip(*[curriculum.random_environment(rng) for _ in range(400)])
    # from neutral (grey background, no palette shift: kitchen's kind) to fully coloured
    grey = [e for e, c in zip(drawn, chroma) if c < 0.05]
    assert grey and all(max(e.bg_rgb) - min(e.bg_rgb) <= 5 and max(abs(t - 1) for t in e.tint) < 0.02 for e in grey)
    assert max(max(e.bg_rgb) - min(e.bg_rgb) for e in drawn) > 60 and min(min(e.tint) for e in drawn) < 0.82
    for env in synth.ENVIRONMENTS.values():
        assert env.background in {e.background for e in drawn}
        assert env.shape in {e.shape for e in drawn} and env.motion in {e.motion for e in drawn}


@pytest.mark.slow
def test_base_rebuilds_bit_identically_and_is_cached(smoke_base_cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEEDR1_CACHE", smoke_base_cache)
    a = toy_base.build(size="smoke")  # the run's shared build (conftest.smoke_base_cache), found in its cache
    monkeypatch.setenv("SEEDR1_CACHE", str(tmp_path / "cache_b"))  # where b's first stages go
    b = toy_base.build(str(tmp_path / "b"), size="smoke")  # from scratch, in another process and folder
    assert a["key"] == b["key"] and a["params_sha256"] == b["params_sha256"]
    assert toy_base.params_hash(a["dir"]) == a["params_sha256"]
    capsys.readouterr()
    again = toy_base.build(str(tmp_path / "b"), size="smoke")  # found, not trained again
    assert again["params_sha256"] == b["params_sha256"] and "built already" in capsys.readouterr().out
    other, _ = toy_base.recipe("smoke", seed=1)
    assert toy_base.key(other) != b["key"]  # another recipe, another cache entry
    stages = list(toy_base.STAGES["smoke"])
    assert [s[0] for s in b["recipe"]["stages"]] == stages == ["plain", "full", "read_any"]
    assert list(b["perception_stages"]) == stages
    # each stage is trained on the cached base of the stages before it: a recipe with one more stage reuses it
    prior = json.loads((tmp_path / "cache_b" / f"toy_base-{b['prior']}" / "base.json").read_text())
    assert prior["recipe"] == toy_base.with_stages(b["recipe"], b["recipe"]["stages"][:-1])
    assert prior["key"] == b["prior"]
    assert b["seconds"] > prior["seconds"] and len(os.listdir(tmp_path / "cache_b")) == len(stages) - 1
    capsys.readouterr()
    toy_base.build(str(tmp_path / "c"), size="smoke")  # the same recipe elsewhere: only its last stage trains
    assert capsys.readouterr().out.count("stage ") == 1
    assert os.path.isfile(os.path.join(b["dir"], "model.json"))
    # built: only the model stays (its last step); the stage's data and earlier checkpoints are removed
    assert sorted(os.listdir(tmp_path / "b")) == ["base.json", "run"]
    assert os.listdir(os.path.join(b["dir"], "checkpoints")) == [str(b["recipe"]["stages"][-1][2])]
    # what it perceives is measured at build time on held-out curriculum prompts (multiple choice, scored)
    p = a["perception"]
    assert p == b["perception"] and p["all"]["n"] == sum(
        v["n"] for k, v in p.items() if k not in ("all", "descriptions", "by_chroma", "describes", "follows", "copies")
    )
    assert all(
        0 <= v["accuracy"] <= 100 and 0 < v["chance"] < 100
        for k, v in p.items()
        if k not in ("descriptions", "by_chroma", "describes", "copies")
    )
    assert 0 <= p.get("follows", {"accuracy": 0})["accuracy"] <= 100
    # the option readings of a reading stage are scored against the options' text (none read: no entry)
    assert "copies" not in p or (0 <= p["copies"]["accuracy"] <= 100 and p["copies"]["n"] > 0)
    # the descriptions are scored on every prompt, per attribute the truth states
    assert p["describes"] and set(p["describes"]) <= set(toy_base.ATTRIBUTES)
    assert all(0 <= v["accuracy"] <= 100 and v["n"] <= 16 for v in p["describes"].values())


def test_describes_right_scores_each_stated_attribute():
    truth = "<think>The circle in the video is red; it leaves the view; the camera is panning.</think><answer>no"
    said = "The circle in the video is blue; it leaves the view; the camera is still or panning."
    assert toy_base.describes_right(truth, said) == dict(colour=False, shape=True, motion=False, stays=True)
    brief = "<think>The square in the video and the image is green.</think><answer>green</answer>"
    assert toy_base.describes_right(brief, "The square in the video and the image is green.") == dict(
        colour=True, shape=True
    )


def test_key_ignores_grpo_fields_and_fields_at_their_neutral_value():
    """A base's key changes with what changes the built model, not with a field added later at the value that
    builds the same model (data.shards 0 = one shard per process) or with GRPO options SFT never reads."""
    rec, _ = toy_base.recipe("smoke")
    k = toy_base.key(rec)
    assert "grpo" not in rec["config"] and "shards" not in rec["config"]["data"]
    assert toy_base.key(toy_base.recipe("smoke", overrides={"data.shards": 0})[0]) == k
    assert toy_base.key(toy_base.recipe("smoke", overrides={"grpo.beta": 0.5})[0]) == k
    assert toy_base.key(toy_base.recipe("smoke", overrides={"data.shards": 2})[0]) != k
    assert toy_base.key(toy_base.recipe("smoke", overrides={"optim.lr": 1e-4})[0]) != k
    assert toy_base.key(toy_base.recipe("smoke", overrides={"model.lora.alpha": 8.0})[0]) == k  # LoRA off
    assert toy_base.key(toy_base.recipe("smoke", overrides={"model.lora.rank": 4})[0]) != k


def test_built_bases_keep_their_keys_when_model_families_add_config_fields():
    """The bases built and documented in docs/results.md keep their keys: the two-stage bases of sessions 8-11
    (default 12f8bea4e34fe57e, quick ecfd339df3fef940) are the recipes' first two stages, the three-stage quick base
    of session 12 (plain, full, read) a3f4d696465f6099, session 13's (plain, full, read_any x 1200 steps)
    ebdc7281d0f59c38, session 14's (read_any x 2400 steps, the same 100 warm-up steps) 832a02f9660c763a.
    Model config fields added for other families (Qwen2.5-VL's
    windows, Qwen3-VL's DeepStack, ...) are left out of the key at the value that builds the same Qwen2-VL, and
    still count when they differ."""
    old = {"model.init": "preset:toy"}  # every base up to session 17: the toy with Qwen2's whole vocabulary
    for size, two_stage in (("default", "12f8bea4e34fe57e"), ("quick", "ecfd339df3fef940")):
        rec = toy_base.recipe(size, overrides=old)[0]
        assert [s[0] for s in rec["stages"]][:2] == ["plain", "full"]
        assert toy_base.key(toy_base.with_stages(rec, rec["stages"][:2])) == two_stage
    rec = toy_base.recipe("quick", overrides=old)[0]
    assert toy_base.key(rec) == "832a02f9660c763a"
    assert toy_base.key(toy_base.recipe("default", overrides=old)[0]) == "821508dbab779730"
    assert toy_base.key(toy_base.recipe("quick")[0]) != "832a02f9660c763a"  # the vocabulary subset is another base
    assert rec["stage_config"] == {"read_any": toy_base.STAGE_CONFIG["read_any"]}
    half = dict(rec, stages=rec["stages"][:2] + [["read_any", 3200, 1200]])
    half["stage_config"] = {"read_any": {"optim.lr": 1e-3, "optim.warmup_ratio": 100 / 1200}}
    assert toy_base.key(half) == "ebdc7281d0f59c38"
    three = toy_base.with_stages(rec, rec["stages"][:2] + [["read", 1600, 400]])
    assert toy_base.key(three) == "a3f4d696465f6099"
    # a stage with its own config (STAGE_CONFIG) carries it in the recipe, so in the key; the measured
    # four-stage quick base (plain, full, read_text, read) of session 12 is 679cde9315b0b4fd
    four = toy_base.with_stages(rec, rec["stages"][:2] + [["read_text", 8000, 500], ["read", 1600, 400]])
    assert four["stage_config"] == {"read_text": toy_base.STAGE_CONFIG["read_text"]} and "stage_config" not in three
    assert toy_base.key(four) == "679cde9315b0b4fd"
    rec, _ = toy_base.recipe("smoke")
    assert not {"family", "frame_blocks", "window_size"} & {*rec["model"], *rec["model"]["vision"]}
    other = dict(rec, model=dict(rec["model"], family="qwen3_vl"))
    assert toy_base.key(other) != toy_base.key(rec)
