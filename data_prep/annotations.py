"""Annotation files of SEED-Bench-R1 splits -> validated work items (text fields + media paths), or skip reasons.

Pure Python, no TensorFlow: the decode workers import this module. Each split has its own schema
(docs/recipe.md section 1); unknown extra fields are ignored.
"""

from __future__ import annotations

import json
import os

SPLIT_FILES = {
    "train": ("training_6k.jsonl",),
    "train_cot": ("training_with_cot_6k.jsonl",),
    "L1": ("validation_L1.jsonl",),
    "L2": ("validation_L2.jsonl",),
    "L3": ("validation_L3.jsonl",),
    "lvb": ("longvideobench_val.jsonl", "longvideobench_val.json", "lvb_val.json"),
}
MAX_OPTIONS = 5


class BadSample(Exception):
    """A sample that cannot be used; the message is the reason recorded in the prep report."""


def find_annotation_file(data_root: str, split: str) -> str:
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLIT_FILES)}")
    for name in SPLIT_FILES[split]:
        path = os.path.join(data_root, "annotations", name)
        if os.path.exists(path):
            return path
    want = " or ".join(os.path.join(data_root, "annotations", n) for n in SPLIT_FILES[split])
    raise FileNotFoundError(f"annotation file for split {split!r} not found: expected {want}")


def read_lines(path: str):
    """Yields (line number, raw record or None, error or None) for a .jsonl file or a .json list."""
    with open(path, encoding="utf-8", errors="replace") as f:
        if path.endswith(".json"):
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                yield 1, None, f"malformed JSON file: {e}"
                return
            if not isinstance(data, list):
                yield 1, None, "a .json annotation file must hold a list of records"
                return
            for i, rec in enumerate(data, 1):
                yield i, rec, None
            return
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line), None
            except json.JSONDecodeError as e:
                yield i, None, f"malformed JSON line: {e.msg} at column {e.colno}"


def _field(rec: dict, name: str, kind=str):
    if name not in rec or rec[name] is None:
        raise BadSample(f"missing required field {name!r}")
    v = rec[name]
    if kind is str and isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, kind):
        raise BadSample(f"field {name!r} has type {type(v).__name__}, expected {kind.__name__}")
    return v


def _inside(root: str, *parts: str, exists: bool = True) -> str:
    """DATA_ROOT-relative media path -> absolute path; raises BadSample when it escapes DATA_ROOT or (`exists`) is
    not a file."""
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, *parts))
    if os.path.isabs(parts[-1]) or os.path.commonpath([base, path]) != base:
        raise BadSample(f"media path {os.path.join(*parts)!r} escapes DATA_ROOT")
    if exists and not os.path.isfile(path):
        raise BadSample(f"missing file {os.path.relpath(path, base)}")
    return path


def _options(opts, lo: int, hi: int) -> list[str]:
    if not isinstance(opts, list) or not lo <= len(opts) <= hi:
        n = len(opts) if isinstance(opts, list) else "no list of"
        raise BadSample(f"wrong option count: {n} options, expected {lo}..{hi}")
    if not all(isinstance(o, str) and o.strip() for o in opts):
        raise BadSample("every option must be a non-empty string")
    return opts


def parse(split: str, rec, data_root: str, media: bool = True) -> dict:
    """One raw record -> a work item: text fields plus `video`/`image` absolute paths (or None). `media=False`:
    the text alone (the media paths are not required to exist; `data_prep.toy_vocab` reads text-only sets).

    Raises BadSample with the reason for anything unusable.
    """
    if not isinstance(rec, dict):
        raise BadSample(f"record is a {type(rec).__name__}, expected a JSON object")
    item = dict(
        sample_id="",
        question="",
        user_text="",
        options=[],
        golden_letter="",
        answer="",
        negative_answers=[],
        task_goal="",
        domain="",
        video_source="",
        response="",
        evidence_start_frame=-1,  # optional: clip frames that show the answer's evidence (synthetic data)
        evidence_stop_frame=-1,
        video=None,
        image=None,
    )
    if split == "lvb":
        cands = _options(_field(rec, "candidates", list), 2, MAX_OPTIONS)
        k = _field(rec, "correct_choice", int)
        if not 0 <= k < len(cands):
            raise BadSample(f"correct_choice {k} is outside the {len(cands)} candidates")
        item.update(sample_id=_field(rec, "id"), question=_field(rec, "question"), options=cands)
        item.update(golden_letter="ABCDE"[k], answer=cands[k], video_source="LongVideoBench")
        item["video"] = _inside(data_root, "videos", _field(rec, "video_path"), exists=media)
        return item
    if split == "train_cot":
        return _parse_cot(rec, data_root, item, media)

    source = _field(rec, "video_source")
    item.update(sample_id=_field(rec, "sample_id"), question=_field(rec, "question"), video_source=source)
    item.update(answer=_field(rec, "answer"), task_goal=str(rec.get("task_goal") or ""))
    if split == "L3":
        item["domain"] = _field(rec, "domain")
    progress = rec.get("task_progress_metadata", [])
    if not isinstance(progress, list):
        raise BadSample("field 'task_progress_metadata' must be a list")
    if split == "train":
        item["negative_answers"] = _options(_field(rec, "negative_answers", list), 3, 1000)
    else:
        if any(f"choice_{c}" in rec for c in "efgh"):
            raise BadSample("wrong option count: more than 4 choices (choice_e...)")
        item["options"] = [_field(rec, f"choice_{c}") for c in "abcd"]
        _options(item["options"], 4, 4)
        gold = _field(rec, "golden_choice_idx")
        if gold not in ("A", "B", "C", "D"):
            raise BadSample(f"golden_choice_idx {gold!r} is not a letter A..D")
        item["golden_letter"] = gold
    ev = rec.get("evidence_frames")  # optional {start_frame, stop_frame} in the clip's numbering; else ignored
    if isinstance(ev, dict) and all(isinstance(ev.get(k), int) for k in ("start_frame", "stop_frame")):
        item.update(evidence_start_frame=ev["start_frame"], evidence_stop_frame=ev["stop_frame"])
    if progress:
        item["video"] = _inside(data_root, "videos", source, _field(rec, "video_basename"), exists=media)
    item["image"] = _inside(data_root, "images", source, _field(rec, "current_observation_basename"), exists=media)
    return item


def _parse_cot(rec: dict, data_root: str, item: dict, media: bool = True) -> dict:
    msgs = _field(rec, "prompt", list)
    user = next((m for m in msgs if isinstance(m, dict) and m.get("role") == "user"), None)
    if user is None or not isinstance(user.get("content"), list):
        raise BadSample("field 'prompt' has no user message with a content list")
    texts = []
    for c in user["content"]:
        if not isinstance(c, dict):
            raise BadSample("prompt content items must be objects")
        for kind in ("video", "image"):
            if isinstance(c.get(kind), str):
                path = c[kind]
                # paths may be relative to DATA_ROOT or to DATA_ROOT/{videos,images}
                sub = kind + "s"
                first = os.path.normpath(path).split(os.sep)[0]
                item[kind] = (
                    _inside(data_root, path, exists=media)
                    if first == sub
                    else _inside(data_root, sub, path, exists=media)
                )
        if c.get("type") == "text" or "text" in c:
            texts.append(str(c.get("text", "")))
    if not texts:
        raise BadSample("prompt has no text item")
    item.update(user_text="".join(texts), response=_field(rec, "response"))
    item["sample_id"] = str(rec.get("sample_id", rec.get("id", "")))
    return item
