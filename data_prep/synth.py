"""`seedr1 synth`: a small synthetic dataset in the exact SEED-Bench-R1 on-disk layout (docs/recipe.md section 1).

The visual rule a tiny model can learn: every sample has one target colour. The current-observation image
shows a large square of that colour on a grey background and the task-progress clip shows a square of the
same colour moving across the frame; the correct option is the only one naming that colour (the distractors
name other colours). Everything is a function of the seed.

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

import json
import os
import time

import numpy as np

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 60, 230),
    "yellow": (240, 220, 20),
    "purple": (150, 40, 190),
    "orange": (250, 140, 10),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
}
VERBS = ["pick up", "wash", "put down", "open", "move", "take", "close", "rinse"]
OBJECTS = ["cup", "plate", "bowl", "pan", "knife", "sponge", "lid", "bottle", "box", "towel"]
GOALS = ["wash the dishes", "make tea", "cook rice", "clean the table", "prepare a salad", "fix the shelf"]
DOMAINS = ["Daily life", "Hobbies", "Recreation", "Work"]
FPS_CHOICES = [8, 12, 24, 30]
# (width, height): not square, so the 252x252 resize really drops the aspect ratio
FRAME_SIZE = {"EpicKitchens": (128, 96), "Ego4D": (96, 128), "LongVideoBench": (128, 72)}
VIDEO_Q = "Considering the progress shown in the video and my current observation in the last frame, what action should I take next in order to {goal}?"  # noqa: E501
IMAGE_Q = "Considering my current observation shown in the image, what action should I take next in order to {goal}?"
LVB_Q = "Which object's colour matches the square shown moving through the video?"


def _background(rng, w, h):
    return np.clip(rng.normal(128, 12, size=(h, w, 3)), 0, 255).astype(np.uint8)


def observation_image(rng, color, w=160, h=120) -> np.ndarray:
    """uint8[h, w, 3]: grey noise with a large square of `color` (at least a third of the shorter side)."""
    img = _background(rng, w, h)
    s = int(rng.integers(h // 3, h // 2 + 1))
    y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
    img[y : y + s, x : x + s] = COLORS[color]
    return img


def clip_frames(rng, color, n, w, h) -> np.ndarray:
    """uint8[n, h, w, 3]: a square of `color` moving left to right over grey noise."""
    bg = _background(rng, w, h)
    s = h // 3
    y = int(rng.integers(0, h - s))
    frames = np.repeat(bg[None], n, axis=0)
    for i in range(n):
        x = int(round((w - s) * i / max(n - 1, 1)))
        frames[i, y : y + s, x : x + s] = COLORS[color]
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


def _options(rng, color, k):
    """The correct action and k distractors that differ only in the colour word."""
    verb, obj = VERBS[int(rng.integers(len(VERBS)))], OBJECTS[int(rng.integers(len(OBJECTS)))]
    others = [c for c in COLORS if c != color]
    neg = [others[i] for i in rng.permutation(len(others))[:k]]
    return f"{verb} the {color} {obj}", [f"{verb} the {c} {obj}" for c in neg]


def _episode(rng, root, source, stem, with_video):
    """Writes one sample's media; returns the shared annotation fields (and the colour)."""
    color = list(COLORS)[int(rng.integers(len(COLORS)))]
    goal = GOALS[int(rng.integers(len(GOALS)))]
    start = int(rng.integers(0, 500))
    rec = dict(video_source=source, video_id=stem.rsplit("_", 1)[0], task_goal=goal, task_progress_metadata=[])
    obs_frame = start
    if with_video:
        fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
        n = int(rng.integers(max(2, fps // 2), fps * 10))  # 0.5 s .. 10 s
        w, h = FRAME_SIZE[source]
        write_mp4(os.path.join(root, "videos", source, stem + ".mp4"), clip_frames(rng, color, n, w, h), fps)
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(2, n - 1), replace=False))
        bounds = [0, *cuts.tolist(), n]
        rec["task_progress_metadata"] = [
            {"narration_text": f"step {i + 1} of {goal}", "start_frame": start + a, "stop_frame": start + b - 1}
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
        obs_frame = start + n
    rec.update(
        video_basename=stem + ".mp4",
        current_observation_basename=stem + ".png",
        current_observation_frame=obs_frame,
        question=(VIDEO_Q if with_video else IMAGE_Q).format(goal=goal),
    )
    write_png(os.path.join(root, "images", source, stem + ".png"), observation_image(rng, color))
    return rec, color


def _validation(rng, root, source, n, level):
    out = []
    for i in range(n):
        stem = f"{source[:2].lower()}{level}_{i:05d}"
        rec, color = _episode(rng, root, source, stem, with_video=i % 4 != 3)
        answer, neg = _options(rng, color, 3)
        gold = int(rng.integers(4))
        opts = neg[:gold] + [answer] + neg[gold:]
        rec.update({f"choice_{'abcd'[j]}": o for j, o in enumerate(opts)})
        rec.update(golden_choice_idx="ABCD"[gold], answer=answer, sample_id=i)
        if level == 3:
            rec.update(
                sample_id=f"{rng.bytes(4).hex()}-{rng.bytes(2).hex()}-{rng.bytes(6).hex()}_{i}",
                domain=DOMAINS[i % len(DOMAINS)],
                scenario=f"scenario {int(rng.integers(20))}",
                task_start_frame=int(rng.integers(0, 100)),
            )
        out.append(rec)
    return out


def _write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def generate(out: str, num_train: int = 64, num_val: int = 32, seed: int = 0) -> dict[str, int]:
    """Writes the dataset; returns {annotation file name: record count}."""
    from seedr1_jax.processor import question_text

    rng = np.random.default_rng(seed)
    for d in ("annotations", *(f"videos/{s}" for s in FRAME_SIZE), "images/EpicKitchens", "images/Ego4D"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    files = {}

    train, cot = [], []
    for i in range(num_train):
        stem = f"P{i % 7:02d}_{i:05d}"
        rec, color = _episode(rng, out, "EpicKitchens", stem, with_video=i % 5 != 4)
        answer, neg = _options(rng, color, int(rng.integers(3, 6)))
        rec.update(sample_id=i, answer=answer, negative_answers=neg, extra_unused_field={"ignored": True})
        train.append(rec)
        if i < max(num_train // 2, 1):
            opts = [*neg[:3], answer]
            order = rng.permutation(4)
            opts = [opts[j] for j in order]
            letter = "ABCD"[opts.index(answer)]
            content = []
            if rec["task_progress_metadata"]:
                content.append({"type": "video", "video": f"videos/EpicKitchens/{rec['video_basename']}"})
            content.append({"type": "image", "image": f"images/EpicKitchens/{rec['current_observation_basename']}"})
            content.append({"type": "text", "text": question_text(rec["question"], opts)})
            response = (
                f"<think>The square in my current observation is {color}, so the next action involves the "
                f"{color} object.</think><answer>{letter}. {answer}</answer>"
            )
            cot.append({"prompt": [{"role": "user", "content": content}], "response": response})
    _write_jsonl(os.path.join(out, "annotations", "training_6k.jsonl"), train)
    _write_jsonl(os.path.join(out, "annotations", "training_with_cot_6k.jsonl"), cot)
    files.update({"training_6k.jsonl": len(train), "training_with_cot_6k.jsonl": len(cot)})

    for level, source in ((1, "EpicKitchens"), (2, "Ego4D"), (3, "Ego4D")):
        recs = _validation(rng, out, source, num_val, level)
        _write_jsonl(os.path.join(out, "annotations", f"validation_L{level}.jsonl"), recs)
        files[f"validation_L{level}.jsonl"] = len(recs)

    lvb = []
    for i in range(num_val):
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
        n = int(rng.integers(fps * 2, fps * 12))
        w, h = FRAME_SIZE["LongVideoBench"]
        name = f"lvb_{i:05d}.mp4"
        write_mp4(os.path.join(out, "videos", "LongVideoBench", name), clip_frames(rng, color, n, w, h), fps)
        answer, neg = _options(rng, color, int(rng.integers(3, 5)))
        k = int(rng.integers(len(neg) + 1))
        cands = neg[:k] + [answer] + neg[k:]
        lvb.append(
            dict(id=f"lvb{i:05d}", video_id=f"v{i:05d}", question=LVB_Q, candidates=cands, correct_choice=k)
            | dict(video_path=f"LongVideoBench/{name}", duration=round(n / fps, 3))
        )
    _write_jsonl(os.path.join(out, "annotations", "longvideobench_val.jsonl"), lvb)
    files["longvideobench_val.jsonl"] = len(lvb)
    return files


def run(out: str, num_train: int = 64, num_val: int = 32, seed: int = 0) -> int:
    """`seedr1 synth`: writes the dataset and prints what it wrote; returns the exit code."""
    if num_train < 1 or num_val < 1:
        print("seedr1 synth: error: --num-train and --num-val must be >= 1")
        return 2
    t0 = time.perf_counter()
    files = generate(out, num_train=num_train, num_val=num_val, seed=seed)
    for name, n in files.items():
        print(f"  annotations/{name}: {n} records")
    print(f"synthetic SEED-Bench-R1 data written to {out} in {time.perf_counter() - t0:.1f}s")
    return 0
