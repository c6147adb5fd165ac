"""The toy base model's pre-training curriculum: broad synthetic perception plus the answer format, written as an
SFT split (`training_with_cot_6k.jsonl` under its own root) that `seedr1 prep --split train_cot` reads.

What the base sees, fixed before any study result was looked at (docs/results.md repeats it):
- Rendering styles: a wide family, not the study's four environments. Each sample draws its own style: any of the
  4 backgrounds (noise, stripes, gradient, checker) in a random base colour (from grey to saturated: see
  `random_environment`), any of the 4 shapes (square, circle,
  triangle, diamond), any of the 3 camera motions (static, pan, shake), a random palette shift per channel in
  [0.8, 1.05], either frame shape (landscape EpicKitchens-like, portrait Ego4D-like). The study's `kitchen`
  (train, L1) and the L2/L3 environments (`workshop`, `garden`, `street`) are points of this family, so the base
  has seen their kind of pixels; post-training (SFT on train_cot, GRPO on train) sees only `kitchen`.
- Questions about what the clip and image show, never about what to do: the object's colour, its shape, how the
  camera moves, whether the object stays in view or leaves it, whether the current image shows it. Half are
  free-form (`<answer>red</answer>`), half multiple choice over the attribute's values in a random order
  (`<answer>C. red</answer>`), with the SEED-Bench-R1 instruction text. The `<think>` describes the scene.
- Never: the SEED-Bench-R1 question (what action to take next, which item to put away), action options ("wash the
  red cup"), goals, verbs or objects of the study's tasks. Mapping a question about the next action to the option
  naming the colour seen is what post-training has to learn.
- Stages, in this order (`STYLES`): `plain`, one fact on kitchen's kind of pixels (a grey noise background, no
  palette shift, any shape and motion; colour questions only, the object in view throughout and in the image, the
  `<think>` naming shape and colour), then `full` (the whole family, every question). Trained from scratch on the
  whole curriculum at once the model never started to perceive, nor on kitchen's pixels with every question; with
  colour questions only it began to (docs/results.md, "The toy base").
- A third stage, `match`, added after the two-stage base's study was looked at (docs/results.md): that base named the
  colour it saw (100%) but picked option letters at chance, even on the curriculum's own "C. red" questions, so its
  Vanilla answered below chance. `match` asks "Which option describes the object?" over four options of one phrase
  (`PHRASES`, no task word) that differ by the colour alone, multiple choice only, across the whole family: the
  reading skill (find the option naming what you saw) an instruction-tuned model brings; which action to take next
  would still be post-training's to learn. It did not teach it: 300 steps on 800 records, then 600 on 3000 more,
  on the default base left the letters at chance (29.2%, then 25.0% of 96 held-out; colour named 100%), so no
  recipe uses it (`toy_base.STAGES`); it stays for the next attempt.
- A fourth, `lookup`: the plainest form of that skill (image-only, the colour question, four bare colour names in a
  random order, so the letter sits two tokens before the colour the `<think>` just named). 600 steps on 2000
  records from the default base: held-out letters 19.8% (chance 25). In no recipe either (docs/results.md).
- A sixth, `read_text` (session 12): `read` with a text-only prompt (no clip, no image; the `<think>`'s description
  is drawn from the scene all the same, a guess the reading then follows). The reading is a text skill that needs
  many more examples than a multimodal step affords: the quick base's 400 steps x 8 of `read` copied no option,
  the text probe took 800 x 32. A text-only prompt is ~100 tokens (`toy_base.STAGE_CONFIG`). 500 x 32 of it before
  `read` (quick base): the answer named what the `<think>` stated 38% of the time (chance 27), and the pixels were
  partly unlearned (colour named 40% after `read`, 71% without `read_text`). In no recipe (docs/results.md).
- A fifth, `read` (session 12): every question multiple choice over the attribute's
  values in a random order (the colour's as phrases half the time), the `<think>` the scene description followed by
  the options read in order up to the one it names (`A is red. B is blue.`), the answer the last letter read
  (`<answer>B</answer>`, the study's answer format). Each token is then a forward copy from the prompt or a
  comparison with the description, not the backward lookup (find the colour, copy the letter before it) that
  `letter`-style answers need: a random `toy` model learned it to 100% of held-out text prompts in 800 steps, the
  backward lookup stayed at chance in 1000 (scripts/probe_option_lookup.py, docs/results.md). The quick base's 400
  steps of it did not read: its `<think>` wrote a memorised list (`A is circle. B is square.` for `open the blue
  box`), which fits a closed set of option texts as well as a copy does. In no recipe since session 13.
- A seventh, `read_any` (session 13, the last stage of every recipe): `read` with the colour, shape and motion
  options one phrase of two filler words around the value (`maka the green belonged`), the words drawn per sample
  from ~18.5k single-token words of the tokenizer (`filler_words`: never a task word or an attribute value). No
  list can be memorised; the reading must copy the prompt's options, as it must on the study's `open the blue box`.
- An eighth, `read_generic` (session 14, in no recipe yet): `read_any` with half of its colour, shape and motion
  questions one of `GENERIC_QUESTIONS` (`Which option fits the video?`), which name no attribute. The reading bases
  read and stop on questions that name the attribute and stop at option A on the study's, which names none
  (docs/results.md): which attribute to compare is then to be read off the options. 1200 steps of it on the quick
  prefix: Vanilla follows what it sees 21.9% of 96 L1-validation samples (`read_any`'s 1200 steps: 20.8; chance
  25), perception 51% (64%): no gain, so in no recipe.
- A ninth, `read_distinct` (session 15, in no recipe yet): `read_any` with two fillers drawn per option instead of
  per sample. `read_any`'s options share their fillers, so after the first reading the `<think>` can copy its own
  last reading; the quick `read_any` base copied none of 80 readings from the prompt (docs/results.md). Here every
  reading needs the prompt's option.
Everything is a function of the seed.
"""

from __future__ import annotations

import functools
import os
import re

import numpy as np

from data_prep.synth import (
    COLORS,
    FPS_CHOICES,
    FRAME_SIZE,
    GOALS,
    L3_VOCAB,
    OBJECTS,
    VERBS,
    Environment,
    _dirs,
    _write_jsonl,
    clip_frames,
    observation_image,
    read_options,
    write_mp4,
    write_png,
)

VERSION = 2  # bump when what the generator writes changes: the toy base's cache key includes it
BACKGROUNDS = ("noise", "stripes", "gradient", "checker")
SHAPES = ("square", "circle", "triangle", "diamond")
MOTIONS = {"static": "still", "pan": "panning", "shake": "shaking"}
QUESTIONS = {
    "colour": ("What colour is the object in the {where}?", "Which colour does the {shape} have?"),
    "shape": ("What shape is the object in the {where}?", "Which shape is the {colour} object?"),
    "motion": ("Is the camera still, panning or shaking in the video?", "How does the camera move?"),
    "stays": ("Is the object still in view at the end of the video?", "Does the {colour} {shape} stay in view?"),
    "in_image": ("Is there an object in the current image?", "Does the image show the {shape}?"),
}
IMAGE_ONLY = ("colour", "shape")  # questions that an image without a clip can answer


# the curriculum's styles, a base's stages draw from them (module docstring)
STYLES = ("plain", "full", "match", "lookup", "read", "read_text", "read_any", "read_generic", "read_distinct")
# style "match": options that are phrases around the attribute's value, all of one template per sample (the study's
# options, "wash the red cup", share their words but the colour: finding the option that names what was seen is a
# reading skill an instruction-tuned model has, the action it names is not)
PHRASES = ("the {v} {shape}", "a {shape} that is {v}", "something {v}", "{v} all over", "the one in {v}")
FILLER_KINDS = ("colour", "shape", "motion")  # style "read_any": their options are `<word> the <value> <word>`
# style "read_distinct": `read_any` with two filler words drawn per option, not per sample. `read_any`'s options share
# their fillers, so every reading after the first can copy the `<think>`'s own last reading instead of the prompt (the
# quick base copied 0 of 80 readings from the prompt, docs/results.md); here each reading needs the prompt's option
# style "read_generic": `read_any`, with half of its colour/shape/motion questions one of these, which name no
# attribute (the study's question names none either: which attribute the options differ in is to be read off them)
GENERIC_QUESTIONS = (
    "Which option fits the {where}?",
    "Which of these is right about the {where}?",
    "Pick the option that matches what you see.",
)


@functools.lru_cache(maxsize=1)
def filler_words() -> tuple[str, ...]:
    """Style `read_any`'s filler: every lowercase word of 3-8 letters that is one token of the Qwen2 tokenizer
    (~18.6k, in sorted order), less the study's task words (verbs, objects, goals, L3) and the attribute values. Drawn
    at random around the value, the options can only be read by copying them from the prompt: a memorised option
    list (what the `read` base wrote: `A is circle. B is square.` for `open the blue box`) no longer fits."""
    from seedr1_jax.models.processor import load_tokenizer

    task = " ".join([*VERBS, *OBJECTS, *GOALS, *(w for g, o in L3_VOCAB.values() for w in [*g, *o])])
    values = [*COLORS, *SHAPES, *MOTIONS, *MOTIONS.values(), "yes", "no", "the", "stays", "leaves", "view"]
    banned = set(task.split()) | set(values)
    vocab = load_tokenizer().get_vocab()
    return tuple(sorted(t[1:] for t in vocab if re.fullmatch(r"\u0120[a-z]{3,8}", t) and t[1:] not in banned))


def random_environment(rng, style: str = "full") -> tuple[Environment, float]:
    """(one rendering style drawn from the family, its chroma). The chroma c ~ U(0, 1) scales how far the
    background's colour and the palette shift depart from neutral (c = 0: a grey background and no shift, as in
    `kitchen`; c = 1: any colour in [70, 170] per channel and any shift in [0.8, 1.05]). Style "plain": c = 0 on
    kitchen's grey noise background (any shape and motion)."""
    full = style != "plain"
    c = float(rng.uniform()) if full else 0.0
    grey = float(rng.integers(70, 171)) if full else 128.0
    bg = grey + c * (rng.integers(70, 171, size=3) - grey)
    tint = 1.0 + c * (rng.uniform(0.8, 1.05, size=3) - 1.0)
    env = Environment(
        source=("EpicKitchens", "Ego4D")[int(rng.integers(2))],
        background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))] if full else "noise",
        bg_rgb=tuple(int(round(x)) for x in bg),
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        motion=tuple(MOTIONS)[int(rng.integers(len(MOTIONS)))],
        tint=tuple(float(x) for x in np.round(tint, 3)),
    )
    return env, c


def _answers(kind: str, env: Environment, colour: str, stays: bool, in_image: bool) -> tuple[str, list[str]]:
    """(the right value, every value of the attribute) for a question kind."""
    if kind == "colour":
        return colour, list(COLORS)
    if kind == "shape":
        return env.shape, list(SHAPES)
    if kind == "motion":
        return MOTIONS[env.motion], list(MOTIONS.values())
    if kind == "stays":
        return ("yes" if stays else "no"), ["yes", "no"]
    return ("yes" if in_image else "no"), ["yes", "no"]


def describe(env: Environment, colour: str, with_video: bool, stays: bool, brief: bool = False) -> str:
    """The `<think>`: what the clip and the image show (`brief`: the shape and colour only)."""
    if not with_video:
        return f"The {env.shape} in the image is {colour}."
    if brief:
        return f"The {env.shape} in the video and the image is {colour}."
    went = "stays in view" if stays else "leaves the view"
    return f"The {env.shape} in the video is {colour}; it {went}; the camera is {MOTIONS[env.motion]}."


def sample(rng, root: str, stem: str, media: bool = True, style: str = "full") -> dict:
    """One curriculum record (an SFT record: chat prompt with relative media paths + response); writes its media."""
    from seedr1_jax.models.processor import INSTRUCTION, question_text

    env, chroma = random_environment(rng, style)
    colour = tuple(COLORS)[int(rng.integers(len(COLORS)))]
    with_video = style != "lookup" and rng.random() < 0.8
    stays = bool(rng.random() < 0.5) if with_video else True
    if style == "plain":  # one fact to learn, shown everywhere: the object stays in view and is in the image
        stays = True
    in_image = stays
    kinds = ("colour",) if style in ("plain", "match", "lookup") else tuple(QUESTIONS) if with_video else IMAGE_ONLY
    kind = kinds[int(rng.integers(len(kinds)))]
    template = QUESTIONS[kind][int(rng.integers(len(QUESTIONS[kind])))]
    if style == "match":
        template = "Which option describes the object in the {where}?"
    if style == "read_generic" and kind in FILLER_KINDS and rng.random() < 0.5:
        template = GENERIC_QUESTIONS[int(rng.integers(len(GENERIC_QUESTIONS)))]
    question = template.format(shape=env.shape, colour=colour, where="video" if with_video else "image")
    right, values = _answers(kind, env, colour, stays, in_image)
    think = describe(env, colour, with_video, stays, brief=style == "plain")
    reads = style in ("read", "read_text", "read_any", "read_generic", "read_distinct")
    if style in ("read_any", "read_generic") and kind in FILLER_KINDS:  # options: two random words around a value
        words = filler_words()
        w1, w2 = (words[int(i)] for i in rng.integers(len(words), size=2))
        right, values = f"{w1} the {right} {w2}", [f"{w1} the {v} {w2}" for v in values]
    elif style == "read_distinct" and kind in FILLER_KINDS:  # two random words around each option's value
        words = filler_words()
        ws = [words[int(i)] for i in rng.integers(len(words), size=2 * len(values))]
        values = [f"{ws[2 * j]} the {v} {ws[2 * j + 1]}" for j, v in enumerate(values)]
        right = next(x for x in values if x.split()[2] == right)
    elif style == "match" or (reads and kind == "colour" and rng.random() < 0.5):
        phrase = PHRASES[int(rng.integers(len(PHRASES)))]  # every option one phrase around a value
        right, values = phrase.format(v=right, shape=env.shape), [phrase.format(v=v, shape=env.shape) for v in values]
    if style in ("match", "lookup") or reads or rng.random() < 0.5:  # multiple choice, values in a random order
        opts = [values[i] for i in rng.permutation(len(values))]
        letter = "ABCDE"[opts.index(right)]
        text, answer = question_text(question, opts), f"{letter}. {right}"
        if reads:  # read the options in order up to the one that fits, answer the last letter read
            think += read_options(opts, opts.index(right))
            answer = letter
    else:
        text, answer = question + INSTRUCTION, right
    mrng = np.random.default_rng(int(rng.integers(2**62)))  # pixels: their own stream
    content = [{"type": "video", "video": f"videos/{env.source}/{stem}.mp4"}] if with_video else []
    content.append({"type": "image", "image": f"images/{env.source}/{stem}.png"})
    if style == "read_text":  # no pixels: the <think>'s description is the scene's all the same (a guess to read by)
        content, media = [], False
    content.append({"type": "text", "text": text})
    if with_video:
        fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
        n = int(rng.integers(max(4, fps // 2), fps * 10))
        visible = (int(rng.integers(0, n // 3 + 1)), n - 1) if stays else (0, int(rng.integers(n // 3, 2 * n // 3 + 1)))
        if media:
            w, h = FRAME_SIZE[env.source]
            frames = clip_frames(mrng, env, colour, n, w, h, visible)
            write_mp4(os.path.join(root, "videos", env.source, stem + ".mp4"), frames, fps)
    if media:
        img = observation_image(mrng, env, colour if in_image else None)
        write_png(os.path.join(root, "images", env.source, stem + ".png"), img)
    response = f"<think>{think}</think><answer>{answer}</answer>"
    return {
        "prompt": [{"role": "user", "content": content}],
        "response": response,
        "question_kind": kind,
        "chroma": round(chroma, 3),
    }


def generate(out: str, num: int, seed: int = 0, media: bool = True, style: str = "full") -> dict[str, int]:
    """Writes `num` curriculum records of a style (STYLES) as `annotations/training_with_cot_6k.jsonl` under `out`
    (+ media)."""
    if style not in STYLES:
        raise ValueError(f"curriculum style {style!r}: use one of {STYLES}")
    rng = np.random.default_rng([seed, VERSION, 11, STYLES.index(style)])
    _dirs(out)
    recs = [sample(rng, out, f"C{i % 9:02d}_{i:05d}", media=media, style=style) for i in range(num)]
    _write_jsonl(os.path.join(out, "annotations", "training_with_cot_6k.jsonl"), recs)
    kinds = {}
    for r in recs:
        kinds[r["question_kind"]] = kinds.get(r["question_kind"], 0) + 1
    return kinds
