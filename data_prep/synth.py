"""`seedr1 synth`: synthetic SEED-Bench-R1 data with the paper's three generalisation levels (docs/recipe.md section 1).

Every sample shows one coloured object; the correct option is the only one naming its colour. The four options
of a sample always name the same four colours (red, green, blue, yellow) in a random order, and the answer's
colour and letter are uniform, so the text alone carries no cue: only the pixels tell the answer.

- train / train_cot / L1 ("EpicKitchens"): one environment, `kitchen` (grey noise background, squares, static
  camera, the base palette) and one task family, `next_object` ("what action should I take next": the object
  slides through the clip and sits in the current-observation image; answer "<verb> the <colour> <object>").
- L2 ("Ego4D"): the same task in environments never seen in training (`workshop`, `garden`, `street`: striped,
  gradient or checkered backgrounds, circles/triangles/diamonds, panning or shaking camera, shifted palette).
- L3 ("Ego4D"): unseen environments AND a new task family, `put_away` (the object is carried out of view
  during the clip; the current image shows the empty surface, so the evidence is in the video only; question,
  verbs and objects per L3 `domain`: Daily life / Hobbies / Recreation / Work; string sample ids).

Every record of train/L1/L2/L3 also carries where the answer's evidence is (read by attention diagnostics;
`seedr1 prep` ignores unknown fields): `evidence_frames` = {"start_frame", "stop_frame"} (inclusive) in the
clip's own frame numbering (0 = the mp4's first frame, the numbering of prep's `frame_indices`), or null for
an image-only sample, and `evidence_in_image` (bool). `generate_warmup` writes a generic format warm-up set
(random letters, no task knowledge) used as the shared "Vanilla" start by `seedr1 study`.
Everything is a function of the seed.

Layout written under DATA_ROOT:
  annotations/training_6k.jsonl            EgoPlan-IT style (answer + negative_answers)
  annotations/training_with_cot_6k.jsonl   SFT prompt (chat messages with relative media paths) + response
  annotations/validation_L1.jsonl          EpicKitchens, int sample ids
  annotations/validation_L2.jsonl          Ego4D, int sample ids
  annotations/validation_L3.jsonl          Ego4D, string sample ids, domain/scenario/task_start_frame
  annotations/longvideobench_val.jsonl     LongVideoBench style (candidates, correct_choice, video_path, id)
  videos/{EpicKitchens,Ego4D,LongVideoBench}/*.mp4   H.264 clips, varying length and frame rate
  images/{EpicKitchens,Ego4D}/*.png                  current observations
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230), "yellow": (240, 220, 20)}


@dataclasses.dataclass(frozen=True)
class Environment:
    """A rendering style: where the clip and image seem to be recorded."""

    source: str  # video_source folder
    background: str  # noise, stripes, gradient, checker
    bg_rgb: tuple[int, int, int]
    shape: str  # square, circle, triangle, diamond
    motion: str  # static, pan, shake (camera motion)
    tint: tuple[float, float, float]  # palette shift: object colour = COLORS * tint (clipped)


ENVIRONMENTS = {
    "kitchen": Environment("EpicKitchens", "noise", (128, 128, 128), "square", "static", (1.0, 1.0, 1.0)),
    "workshop": Environment("Ego4D", "stripes", (95, 105, 130), "circle", "pan", (0.85, 0.9, 1.0)),
    "garden": Environment("Ego4D", "gradient", (150, 140, 110), "triangle", "shake", (1.0, 0.85, 0.8)),
    "street": Environment("Ego4D", "checker", (90, 90, 90), "diamond", "pan", (0.9, 1.0, 0.9)),
}
TRAIN_ENVS, UNSEEN_ENVS = ("kitchen",), ("workshop", "garden", "street")

VERBS = ["pick up", "wash", "put down", "open", "move", "take", "close", "rinse"]
OBJECTS = ["cup", "plate", "bowl", "pan", "knife", "sponge", "lid", "bottle", "box", "towel"]
GOALS = ["wash the dishes", "make tea", "cook rice", "clean the table", "prepare a salad", "fix the shelf"]
DOMAINS = ["Daily life", "Hobbies", "Recreation", "Work"]
# the L3 task family: per domain, (goals, objects); the verb is always "put away"
L3_VOCAB = {
    "Daily life": (["tidy the bedroom", "do the laundry"], ["shirt", "pillow", "basket", "lamp"]),
    "Hobbies": (["paint a picture", "knit a scarf"], ["brush", "yarn", "canvas", "palette"]),
    "Recreation": (["pack for a picnic", "play catch"], ["ball", "kite", "frisbee", "blanket"]),
    "Work": (["file the reports", "set up the desk"], ["folder", "stapler", "binder", "mug"]),
}
FPS_CHOICES = [8, 12, 24, 30]
OPTION_ORDERS = ("sorted", "shuffle")  # how a sample's four options are listed (see `order_options`)
WARMUP_THINKS = ("describe", "read")  # what a warm-up `<think>` holds (`generate_warmup`)
# (width, height): not square, so the 252x252 resize really drops the aspect ratio
FRAME_SIZE = {"EpicKitchens": (128, 96), "Ego4D": (96, 128), "LongVideoBench": (128, 72)}
VIDEO_Q = "Considering the progress shown in the video and my current observation in the last frame, what action should I take next in order to {goal}?"  # noqa: E501
IMAGE_Q = "Considering my current observation shown in the image, what action should I take next in order to {goal}?"
L3_Q = "Considering the progress shown in the video and my current observation in the last frame, which item should I put away next in order to {goal}?"  # noqa: E501
LVB_Q = "Which object's colour matches the shape shown moving through the video?"


# ---- rendering --------------------------------------------------------------------------------------
def env_color(env: Environment, color: str) -> tuple[int, int, int]:
    return tuple(int(min(255, c * t)) for c, t in zip(COLORS[color], env.tint))


def _background(rng, env: Environment, w, h):
    """uint8[h, 2w, 3]: twice as wide as the frame so a panning camera can slide over it."""
    base = np.asarray(env.bg_rgb, np.float32)
    yy, xx = np.mgrid[0:h, 0 : 2 * w]
    if env.background == "stripes":
        img = base + 30 * ((xx // 8) % 2)[..., None]
    elif env.background == "gradient":
        img = base * (0.7 + 0.6 * yy / h)[..., None]
    elif env.background == "checker":
        img = base + 60 * (((xx // 12) + (yy // 12)) % 2)[..., None]
    else:
        img = np.broadcast_to(base, (h, 2 * w, 3))
    img = img + rng.normal(0, 10, size=(h, 2 * w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _mask(shape: str, s: int) -> np.ndarray:
    """bool[s, s]: the object's silhouette."""
    yy, xx = np.mgrid[0:s, 0:s] + 0.5
    c = s / 2
    if shape == "circle":
        return (yy - c) ** 2 + (xx - c) ** 2 <= c**2
    if shape == "triangle":
        return np.abs(xx - c) <= yy / 2
    if shape == "diamond":
        return np.abs(xx - c) + np.abs(yy - c) <= c
    return np.ones((s, s), bool)


def _paste(img, mask, rgb, y, x):
    s = mask.shape[0]
    y, x = max(0, min(y, img.shape[0] - s)), max(0, min(x, img.shape[1] - s))
    img[y : y + s, x : x + s][mask] = rgb


def observation_image(rng, env: Environment, color: str | None, w=160, h=120) -> np.ndarray:
    """uint8[h, w, 3]: the environment's background, with a large object of `color` (None: the empty surface)."""
    img = np.ascontiguousarray(_background(rng, env, w, h)[:, :w])
    s = int(rng.integers(h // 3, h // 2 + 1))
    y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
    if color is not None:
        _paste(img, _mask(env.shape, s), env_color(env, color), y, x)
    return img


def clip_frames(rng, env: Environment, color: str, n: int, w: int, h: int, visible: tuple[int, int]) -> np.ndarray:
    """uint8[n, h, w, 3]: the object slides across frames visible[0]..visible[1] (inclusive) over the background,
    seen through the environment's camera motion."""
    bg = _background(rng, env, w, h)
    s = h // 3
    mask, rgb = _mask(env.shape, s), env_color(env, color)
    y = int(rng.integers(0, h - s))
    frames = np.empty((n, h, w, 3), np.uint8)
    a, b = visible
    for i in range(n):
        dx = int(round(w * i / max(n - 1, 1))) if env.motion == "pan" else 0
        dy, jx = (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))) if env.motion == "shake" else (0, 0)
        f = np.roll(bg, -dx - jx, axis=1)[:, :w]
        f = np.roll(f, dy, axis=0)
        f = np.ascontiguousarray(f)
        if a <= i <= b:
            x = int(round((w - s) * (i - a) / max(b - a, 1)))
            _paste(f, mask, rgb, y + dy, x)
        frames[i] = f
    return frames


def write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    """H.264 mp4 (yuv420p, no B-frames, one thread so the bytes are reproducible)."""
    import av

    with av.open(path, mode="w") as out:
        st = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18", "threads": "1"})
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def write_png(path: str, img: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(img).save(path)


# ---- samples ----------------------------------------------------------------------------------------
def _episode(rng, root, env_name, stem, task="next_object", with_video=True, domain=None, media=True):
    """One sample's shared annotation fields; writes its media when `media`.

    Returns (record, colour, (verb, object)). The record rng draws are the same with and without media.
    """
    env = ENVIRONMENTS[env_name]
    source = env.source
    color = list(COLORS)[int(rng.integers(len(COLORS)))]
    if task == "put_away":
        goals, objs = L3_VOCAB[domain]
        goal, verb, obj = goals[int(rng.integers(len(goals)))], "put away", objs[int(rng.integers(len(objs)))]
    else:
        goal = GOALS[int(rng.integers(len(GOALS)))]
        verb, obj = VERBS[int(rng.integers(len(VERBS)))], OBJECTS[int(rng.integers(len(OBJECTS)))]
    start = int(rng.integers(0, 500))
    mrng = np.random.default_rng(int(rng.integers(2**62)))  # pixels: their own stream
    rec = dict(video_source=source, video_id=stem.rsplit("_", 1)[0], task_goal=goal, task_progress_metadata=[])
    rec.update(environment=env_name, task_family=task, evidence_frames=None, evidence_in_image=task != "put_away")
    obs_frame = start
    if with_video:
        fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
        n = int(rng.integers(max(4, fps // 2), fps * 10))  # 0.5 s .. 10 s
        if task == "put_away":  # visible from the start, carried out of view in the middle of the clip
            visible = (0, int(rng.integers(n // 2, 2 * n // 3 + 1)))
        else:  # enters in the first third and stays
            visible = (int(rng.integers(0, n // 3 + 1)), n - 1)
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(2, n - 1), replace=False))
        bounds = [0, *cuts.tolist(), n]
        rec["task_progress_metadata"] = [
            {"narration_text": f"step {i + 1} of {goal}", "start_frame": start + a, "stop_frame": start + b - 1}
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
        rec["evidence_frames"] = {"start_frame": visible[0], "stop_frame": visible[1]}
        obs_frame = start + n
        if media:
            w, h = FRAME_SIZE[source]
            frames = clip_frames(mrng, env, color, n, w, h, visible)
            write_mp4(os.path.join(root, "videos", source, stem + ".mp4"), frames, fps)
    q = L3_Q if task == "put_away" else VIDEO_Q if with_video else IMAGE_Q
    rec.update(
        video_basename=stem + ".mp4",
        current_observation_basename=stem + ".png",
        current_observation_frame=obs_frame,
        question=q.format(goal=goal),
    )
    if media:
        img = observation_image(mrng, env, None if task == "put_away" else color)
        write_png(os.path.join(root, "images", source, stem + ".png"), img)
    return rec, color, (verb, obj)


def _options(color, verb, obj, rng):
    """The correct action and the 3 distractors: the same action with each other palette colour."""
    others = [c for c in COLORS if c != color]
    return f"{verb} the {color} {obj}", [f"{verb} the {others[i]} {obj}" for i in rng.permutation(len(others))]


def order_options(answer: str, others: list[str], gold: int, option_order: str) -> tuple[list[str], int]:
    """The four options and the answer's index: `gold` places the answer among `others` ("shuffle"), or the
    options are sorted alphabetically ("sorted": then the letter is a function of the colour seen)."""
    opts = others[:gold] + [answer] + others[gold:]
    if option_order == "sorted":
        opts = sorted(opts)
    elif option_order != "shuffle":
        raise ValueError(f"option_order must be one of {OPTION_ORDERS}, got {option_order!r}")
    return opts, opts.index(answer)


def _validation(rng, root, level, n, media=True, option_order="shuffle"):
    out = []
    for i in range(n):
        env = ("kitchen",) if level == 1 else UNSEEN_ENVS
        env_name = env[int(rng.integers(len(env)))]
        stem = f"{ENVIRONMENTS[env_name].source[:2].lower()}{level}_{i:05d}"
        domain = DOMAINS[i % len(DOMAINS)] if level == 3 else None
        rec, color, (verb, obj) = _episode(
            rng,
            root,
            env_name,
            stem,
            task="put_away" if level == 3 else "next_object",
            with_video=level == 3 or i % 4 != 3,
            domain=domain,
            media=media,
        )
        answer, neg = _options(color, verb, obj, rng)
        opts, gold = order_options(answer, neg, int(rng.integers(4)), option_order)
        rec.update({f"choice_{'abcd'[j]}": o for j, o in enumerate(opts)})
        rec.update(golden_choice_idx="ABCD"[gold], answer=answer, sample_id=i)
        if level == 3:
            rec.update(
                sample_id=f"{rng.bytes(4).hex()}-{rng.bytes(2).hex()}-{rng.bytes(6).hex()}_{i}",
                domain=domain,
                scenario=f"scenario {int(rng.integers(20))}",
                task_start_frame=int(rng.integers(0, 100)),
            )
        out.append(rec)
    return out


def describe(rec: dict, color: str) -> str:
    """What the sample shows, in words: where the evidence is and its colour."""
    shape = ENVIRONMENTS[rec["environment"]].shape
    where = "video and the image" if rec["task_progress_metadata"] else "image"
    return f"The {shape} in the {where} is {color}."


def cot_response(rec: dict, color: str, letter: str, answer: str) -> str:
    """The distilled-style chain of thought: names where the evidence is and what it shows."""
    return f"<think>{describe(rec, color)}</think><answer>{letter}. {answer}</answer>"


def _sft_record(rec, source, opts, response):
    from seedr1_jax.models.processor import question_text

    content = []
    if rec["task_progress_metadata"]:
        content.append({"type": "video", "video": f"videos/{source}/{rec['video_basename']}"})
    content.append({"type": "image", "image": f"images/{source}/{rec['current_observation_basename']}"})
    content.append({"type": "text", "text": question_text(rec["question"], opts)})
    return {"prompt": [{"role": "user", "content": content}], "response": response}


def _write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _dirs(out):
    for d in ("annotations", *(f"videos/{s}" for s in FRAME_SIZE), "images/EpicKitchens", "images/Ego4D"):
        os.makedirs(os.path.join(out, d), exist_ok=True)


def generate(
    out: str, num_train: int = 64, num_val: int = 32, seed: int = 0, media: bool = True, option_order: str = "sorted"
) -> dict[str, int]:
    """Writes the dataset (annotations only when `media` is False); returns {annotation file: record count}.

    option_order: how validation and train_cot options are listed ("sorted" or "shuffle", `order_options`);
    the training split stores answer + negatives and the input pipeline orders them (`data.option_order`).
    """
    rng = np.random.default_rng(seed)
    _dirs(out)
    files = {}

    train, cot = [], []
    for i in range(num_train):
        stem = f"P{i % 7:02d}_{i:05d}"
        rec, color, (verb, obj) = _episode(rng, out, "kitchen", stem, with_video=i % 5 != 4, media=media)
        answer, neg = _options(color, verb, obj, rng)
        rec.update(sample_id=i, answer=answer, negative_answers=neg, extra_unused_field={"ignored": True})
        train.append(rec)
        if i < max(num_train // 2, 1):
            opts = [*neg, answer]
            opts = [opts[j] for j in rng.permutation(4)]
            opts, gold = order_options(answer, [o for o in opts if o != answer], opts.index(answer), option_order)
            letter = "ABCD"[gold]
            cot.append(_sft_record(rec, "EpicKitchens", opts, cot_response(rec, color, letter, answer)))
    _write_jsonl(os.path.join(out, "annotations", "training_6k.jsonl"), train)
    _write_jsonl(os.path.join(out, "annotations", "training_with_cot_6k.jsonl"), cot)
    files.update({"training_6k.jsonl": len(train), "training_with_cot_6k.jsonl": len(cot)})

    for level in (1, 2, 3):
        recs = _validation(rng, out, level, num_val, media=media, option_order=option_order)
        _write_jsonl(os.path.join(out, "annotations", f"validation_L{level}.jsonl"), recs)
        files[f"validation_L{level}.jsonl"] = len(recs)

    lvb, env = [], ENVIRONMENTS["kitchen"]
    for i in range(num_val):
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
        n = int(rng.integers(fps * 2, fps * 12))
        w, h = FRAME_SIZE["LongVideoBench"]
        name = f"lvb_{i:05d}.mp4"
        mrng = np.random.default_rng(int(rng.integers(2**62)))
        if media:
            frames = clip_frames(mrng, env, color, n, w, h, (0, n - 1))
            write_mp4(os.path.join(out, "videos", "LongVideoBench", name), frames, fps)
        verb, obj = VERBS[int(rng.integers(len(VERBS)))], OBJECTS[int(rng.integers(len(OBJECTS)))]
        answer, neg = _options(color, verb, obj, rng)
        neg = neg[: int(rng.integers(3, 4))]
        k = int(rng.integers(len(neg) + 1))
        cands = neg[:k] + [answer] + neg[k:]
        lvb.append(
            dict(id=f"lvb{i:05d}", video_id=f"v{i:05d}", question=LVB_Q, candidates=cands, correct_choice=k)
            | dict(video_path=f"LongVideoBench/{name}", duration=round(n / fps, 3))
        )
    _write_jsonl(os.path.join(out, "annotations", "longvideobench_val.jsonl"), lvb)
    files["longvideobench_val.jsonl"] = len(lvb)
    return files


def read_options(opts: list[str], upto: int) -> str:
    """The options read in order up to index `upto` (` A is red. B is blue.`): the reading a `<think>` writes in the
    curriculum's `read` styles and the `read` warm-up."""
    return "".join(f" {'ABCDE'[i]} is {o}." for i, o in enumerate(opts[: upto + 1]))


def generate_warmup(
    out: str, num: int = 64, seed: int = 0, option_order: str = "sorted", media: bool = True, think: str = "describe"
) -> list[str]:
    """The "Vanilla" warm-up set (as `training_with_cot_6k.jsonl` under `out`): prompts shaped like the task's
    (kitchen clips + observation images, the same questions and four coloured options, listed by
    `option_order`), responses `<think>The <shape> in the video and the image is <colour>.</think><answer>X</answer>`:
    the think describes what is seen (perception, like a pretrained captioner's), the letter X is drawn uniformly
    at random, independently of the pixels. It teaches the answer format and to describe the scene, not which
    option to choose. `think="read"`: the `<think>` goes on to read the options in order up to that random letter
    (`... is red. A is wash the blue cup. B is wash the red cup.`), the answer the last letter read: the mechanism
    "answer the option where the reading stopped" without knowing where to stop (the stop is as random as the
    letter), which leaves GRPO a forward comparison to learn rather than the backward lookup (find the option
    naming the colour, copy the letter before it) that a small random model does not find (docs/results.md). Returns
    the colour each sample shows (for tests; not written)."""
    if think not in WARMUP_THINKS:
        raise ValueError(f"think must be one of {WARMUP_THINKS}, got {think!r}")
    rng = np.random.default_rng([seed, 7])
    _dirs(out)
    recs, colours = [], []
    for i in range(num):
        stem = f"W{i:02d}_{i:05d}"
        rec, color, (verb, obj) = _episode(rng, out, "kitchen", stem, with_video=i % 5 != 4, media=media)
        answer, neg = _options(color, verb, obj, rng)
        opts, _ = order_options(answer, neg, int(rng.integers(4)), option_order)
        k = int(rng.integers(4))  # the response's letter: independent of the colour
        reading = read_options(opts, k) if think == "read" else ""
        response = f"<think>{describe(rec, color)}{reading}</think><answer>{'ABCD'[k]}</answer>"
        recs.append(_sft_record(rec, "EpicKitchens", opts, response))
        colours.append(color)
    _write_jsonl(os.path.join(out, "annotations", "training_with_cot_6k.jsonl"), recs)
    return colours


def run(out: str, num_train: int = 64, num_val: int = 32, seed: int = 0, option_order: str = "sorted") -> int:
    """`seedr1 synth`: writes the dataset and prints what it wrote; returns the exit code."""
    if num_train < 1 or num_val < 1:
        print("seedr1 synth: error: --num-train and --num-val must be >= 1")
        return 2
    t0 = time.perf_counter()
    files = generate(out, num_train=num_train, num_val=num_val, seed=seed, option_order=option_order)
    for name, n in files.items():
        print(f"  annotations/{name}: {n} records")
    print(f"synthetic SEED-Bench-R1 data written to {out} in {time.perf_counter() - t0:.1f}s")
    return 0
