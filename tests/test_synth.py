"""Synthetic L1/L2/L3 data: text alone is at chance, the pixels decide the answer, the evidence span is right."""

import collections
import json
import math
import os
import re

import numpy as np
import pytest

from data_prep import synth
from seedr1_jax.data.pipeline import training_options


def _read(root, name):
    with open(os.path.join(root, "annotations", name)) as f:
        return [json.loads(line) for line in f]


def _words(text):
    return re.findall(r"[a-z]+", text.lower())


def _as_mc(train, order="shuffle"):
    """Training records -> (question, options, letter) the way the input pipeline builds them (seeded shuffle,
    or sorted: `data.option_order`)."""
    out = []
    for r in train:
        opts, letter = training_options(r["answer"], r["negative_answers"], 0, 0, str(r["sample_id"]), order=order)
        out.append((r["question"], opts, letter))
    return out


def _val_mc(recs):
    return [(r["question"], [r[f"choice_{c}"] for c in "abcd"], r["golden_choice_idx"]) for r in recs]


class TextOnly:
    """Naive-Bayes text-only answerer: letter prior, question words given the letter, and per-word odds of an
    option being the correct one (catches answer-length, answer-word and letter biases)."""

    def fit(self, samples):
        self.prior = collections.Counter(letter for _, _, letter in samples)
        self.qw = collections.defaultdict(collections.Counter)
        self.pos, self.neg = collections.Counter(), collections.Counter()
        for q, opts, letter in samples:
            self.qw[letter].update(_words(q))
            for k, o in enumerate(opts):
                (self.pos if "ABCD"[k] == letter else self.neg).update(_words(o) + [f"#len{len(o.split())}"])
        self.n = len(samples)
        return self

    def predict(self, q, opts):
        def score(k, o):
            s = math.log(self.prior["ABCD"[k]] + 1)
            tot = sum(self.qw["ABCD"[k]].values()) + 1000
            s += sum(math.log((self.qw["ABCD"[k]][w] + 1) / tot) for w in _words(q))
            npos, nneg = sum(self.pos.values()) + 1000, sum(self.neg.values()) + 1000
            for w in _words(o) + [f"#len{len(o.split())}"]:
                s += math.log((self.pos[w] + 1) / npos) - math.log((self.neg[w] + 1) / nneg)
            return s

        return "ABCD"[int(np.argmax([score(k, o) for k, o in enumerate(opts)]))]

    def accuracy(self, samples):
        return float(np.mean([self.predict(q, o) == letter for q, o, letter in samples]))


@pytest.fixture(scope="module", params=synth.OPTION_ORDERS)
def text_data(tmp_path_factory, request):
    root = str(tmp_path_factory.mktemp("text") / "data")
    synth.generate(root, num_train=600, num_val=400, seed=1, media=False, option_order=request.param)
    return root, request.param


@pytest.fixture(scope="module")
def text_root(text_data):
    return text_data[0]


def test_text_only_baseline_is_at_chance(text_data):
    """Whichever way the options are listed (sorted: the letter follows from the colour; shuffled), the text
    alone does not tell the answer."""
    root, order = text_data
    clf = TextOnly().fit(_as_mc(_read(root, "training_6k.jsonl"), order))
    for level in (1, 2, 3):
        recs = _read(root, f"validation_L{level}.jsonl")
        if order == "sorted":
            assert all([r[f"choice_{c}"] for c in "abcd"] == sorted(r[f"choice_{c}"] for c in "abcd") for r in recs)
        acc = clf.accuracy(_val_mc(recs))
        assert acc <= 0.35, f"L{level}: a text-only classifier scores {acc:.1%} (chance 25%): the text leaks the answer"
    letters = collections.Counter(letter for _, _, letter in _as_mc(_read(root, "training_6k.jsonl"), order))
    assert min(letters.values()) > 0.15 * sum(letters.values())  # every letter is a common answer


def test_text_only_baseline_catches_a_planted_cue(text_root, text_data):
    """The chance-level result above is not a weak classifier: a dataset whose answers are mostly red (a cue a
    careless generator could leave) is caught."""
    train = _read(text_root, "training_6k.jsonl")
    biased = [r for r in train if " red " in r["answer"] or r["sample_id"] % 8 == 0]
    clf = TextOnly().fit(_as_mc(biased, text_data[1]))
    val = [r for r in _read(text_root, "validation_L1.jsonl") if " red " in r["answer"] or r["sample_id"] % 8 == 0]
    assert clf.accuracy(_val_mc(val)) >= 0.45  # 52% measured; chance is 25%


def test_levels_environments_and_tasks(text_root):
    train = _read(text_root, "training_6k.jsonl")
    l1, l2, l3 = (_read(text_root, f"validation_L{k}.jsonl") for k in (1, 2, 3))
    assert {r["environment"] for r in train} == {r["environment"] for r in l1} == set(synth.TRAIN_ENVS)
    assert {r["environment"] for r in l2} | {r["environment"] for r in l3} == set(synth.UNSEEN_ENVS)
    assert {r["task_family"] for r in train + l1 + l2} == {"next_object"}
    assert {r["task_family"] for r in l3} == {"put_away"}
    assert {r["domain"] for r in l3} == set(synth.DOMAINS) and all(isinstance(r["sample_id"], str) for r in l3)
    for r in l1 + l2 + l3:  # every option set names the four palette colours once
        colours = sorted(w for c in "abcd" for w in r[f"choice_{c}"].split() if w in synth.COLORS)
        assert colours == sorted(synth.COLORS)
    letters = collections.Counter(r["golden_choice_idx"] for r in l1 + l2 + l3)
    assert min(letters.values()) > 0.2 * sum(letters.values())


def _dominant_colour(pixels, env):
    """The palette colour (as rendered in `env`) that most pixels are close to, or None."""
    hits = {c: int((np.abs(pixels.astype(int) - synth.env_color(env, c)).sum(-1) < 70).sum()) for c in synth.COLORS}
    best = max(hits, key=hits.get)
    return best if hits[best] > 30 else None


def test_pixels_decide_the_answer_and_evidence_frames(tmp_path):
    """An oracle reading only pixels answers every sample; the object is visible exactly in `evidence_frames`."""
    import av
    from PIL import Image

    root = str(tmp_path / "data")
    synth.generate(root, num_train=4, num_val=12, seed=2)
    for level in (1, 2, 3):
        for r in _read(root, f"validation_L{level}.jsonl"):
            env = synth.ENVIRONMENTS[r["environment"]]
            src = r["video_source"]
            img = np.asarray(Image.open(f"{root}/images/{src}/{r['current_observation_basename']}").convert("RGB"))
            seen = _dominant_colour(img, env)
            assert (seen is not None) == r["evidence_in_image"]
            if r["task_progress_metadata"]:
                with av.open(f"{root}/videos/{src}/{r['video_basename']}") as c:
                    frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
                ev = r["evidence_frames"]
                per_frame = [_dominant_colour(f, env) for f in frames]
                inside = per_frame[ev["start_frame"] : ev["stop_frame"] + 1]
                # (the frames next to the span may show a sliver after compression)
                outside = per_frame[: max(ev["start_frame"] - 1, 0)] + per_frame[ev["stop_frame"] + 2 :]
                assert sum(c is not None for c in inside) >= 0.9 * len(inside)
                assert all(c is None for c in outside)
                seen = seen or collections.Counter(c for c in inside if c).most_common(1)[0][0]
            else:
                assert r["evidence_frames"] is None
            assert f" {seen} " in r["answer"], (level, r["answer"], seen)


def test_warmup_has_no_task_knowledge(tmp_path):
    """The Vanilla warm-up looks like the task (clips, images, coloured options) and describes what is seen, but
    its letters ignore the pixels."""
    colours = synth.generate_warmup(str(tmp_path / "w"), num=400, seed=0, media=False)
    recs = _read(str(tmp_path / "w"), "training_with_cot_6k.jsonl")
    assert len(recs) == len(colours) == 400
    assert sum(any(c["type"] == "video" for c in r["prompt"][0]["content"]) for r in recs) == 320
    thinks = [re.search(r"<think>(.*)</think>", r["response"]).group(1) for r in recs]
    assert [set(_words(t)) & set(synth.COLORS) for t in thinks] == [{c} for c in colours]  # perception only
    answers = [re.fullmatch(r"<think>.*</think><answer>([ABCD])</answer>", r["response"]).group(1) for r in recs]
    options = [re.findall(r"\n([ABCD])\. (.*)", r["prompt"][0]["content"][-1]["text"]) for r in recs]
    named = [dict(o)[a].split()[-2] for o, a in zip(options, answers)]  # "<verb> the <colour> <object>"
    hit = np.mean([n == c for n, c in zip(named, colours)])
    assert 0.18 < hit < 0.32, hit  # the answered option shows the seen colour at chance (25%)
    letters = collections.Counter(answers)
    assert sorted(letters) == list("ABCD") and min(letters.values()) > 70


def test_warmup_reading_stops_at_a_random_letter(tmp_path):
    """`think="read"` (the demo's warm-up): the `<think>` copies the options in their listed order up to the
    answer letter and stops there; where it stops ignores the pixels, so the warm-up still holds no task knowledge."""
    colours = synth.generate_warmup(str(tmp_path / "w"), num=400, seed=0, media=False, think="read")
    recs = _read(str(tmp_path / "w"), "training_with_cot_6k.jsonl")
    hits, letters = [], collections.Counter()
    for r, colour in zip(recs, colours):
        m = re.fullmatch(
            r"<think>(The .*? is (\w+)\.)((?: [ABCD] is [^.]*\.)+)</think><answer>([ABCD])</answer>", r["response"]
        )
        assert m and m.group(2) == colour, r["response"]
        options = re.findall(r"\n([ABCD])\. (.*)", r["prompt"][0]["content"][-1]["text"])
        read = re.findall(r" ([ABCD]) is ([^.]*)\.", m.group(3))
        assert read == options[: len(read)] and read[-1][0] == m.group(4)  # in order, stopped at the answer
        hits.append(read[-1][1].split()[-2] == colour)
        letters[m.group(4)] += 1
    assert 0.18 < np.mean(hits) < 0.32, np.mean(hits)  # the reading stops on the seen colour at chance (25%)
    assert sorted(letters) == list("ABCD") and min(letters.values()) > 70
    with pytest.raises(ValueError, match="think must be one of"):
        synth.generate_warmup(str(tmp_path / "x"), num=1, think="letters")


def test_prep_keeps_the_evidence_span_for_attention(tmp_path):
    """`seedr1 prep` stores each record's evidence span; the attention diagnostic maps it onto sampled frames."""
    from data_prep import prep
    from seedr1_jax import data
    from seedr1_jax.analysis import attention

    root = str(tmp_path / "data")
    synth.generate(root, num_train=2, num_val=6, seed=5)
    out = str(tmp_path / "tfr")
    assert prep.prepare(root, "L1", out, workers=1, progress=False)["skipped"] == 0
    recs = {str(r["sample_id"]): r for r in _read(root, "validation_L1.jsonl")}
    cfg = data.default_config()
    cfg.tfrecord_dir, cfg.split = out, "L1"
    with_video = 0
    for _, ex in data.examples(cfg, 0, 1, epochs=1, shuffle=False):
        r = recs[ex["sample_id"].decode()]
        frames = attention.evidence_frames(ex)
        if r["evidence_frames"] is None:
            assert ex["evidence_start_frame"] == -1 and frames is None
            continue
        with_video += 1
        span = r["evidence_frames"]
        assert (ex["evidence_start_frame"], ex["evidence_stop_frame"]) == (span["start_frame"], span["stop_frame"])
        picked = [int(ex["frame_indices"][j]) for j in frames]
        assert picked and all(span["start_frame"] <= f <= span["stop_frame"] for f in picked)
    assert with_video >= 1
