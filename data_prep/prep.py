"""`seedr1 prep`: one SEED-Bench-R1 split -> TFRecord shards via the TFDS builder, skipping and reporting bad input.

Bad samples (malformed line, missing field, wrong option count, path escaping DATA_ROOT, missing/corrupt/empty
video, unreadable image, duplicate id) are skipped and listed with file, line and reason in
OUT/prep_report_<split>.json; `strict=True` stops at the first one instead. Decoding runs in `workers`
processes; the output does not depend on their number (examples are consumed in annotation order).

Re-prep is atomic: the split is built in a temporary folder inside OUT and replaces the previous one only once
it is complete, so a failed or interrupted run (error, Ctrl-C, an annotation file with no usable sample) leaves
the previous split untouched.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import posixpath
import re
import shutil
import sys
import tempfile
import time
import uuid

from data_prep import annotations as ann
from data_prep.media import FRAME_FORMATS, decode_or_reason
from seedr1_jax.core import fs
from seedr1_jax.data.pipeline import CURRENT, is_version
from seedr1_jax.models.config import ConfigError
from seedr1_jax.models.processor import SIZE


class PrepError(RuntimeError):
    """A bad sample under --strict; the message says which and where."""


class EmptySplitError(ConfigError):
    """The annotation file yields no usable sample (empty, or every line skipped)."""


def collect_items(data_root: str, split: str, skips: list, strict: bool = False) -> tuple[str, list[dict]]:
    """Parses and validates the split's annotation file.

    Returns (annotation path, work items in file order); appends {file, line, sample_id, reason} to `skips`.
    """
    path = ann.find_annotation_file(data_root, split)
    rel = os.path.relpath(path, data_root)
    items, seen = [], set()

    def skip(line, reason, sid=""):
        if strict:
            raise PrepError(f"{rel}:{line}: {reason} (--strict)")
        skips.append({"file": rel, "line": line, "sample_id": sid, "reason": reason})

    for line, rec, err in ann.read_lines(path):
        if err:
            skip(line, err)
            continue
        try:
            item = ann.parse(split, rec, data_root)
        except ann.BadSample as e:
            sid = rec.get("sample_id", rec.get("id", "")) if isinstance(rec, dict) else ""
            skip(line, str(e), str(sid))
            continue
        if not item["sample_id"]:
            item["sample_id"] = f"{split.lower()}_{line}"
        if item["sample_id"] in seen:
            skip(line, f"duplicate sample_id {item['sample_id']!r}", item["sample_id"])
            continue
        seen.add(item["sample_id"])
        item.update(file=rel, line=line)
        items.append(item)
    return path, items


def decoded(
    items: list[dict], workers: int, max_frames: int, progress: bool = True, fmt: str = "png", size: int = SIZE
):
    """Yields (item, example or None, reason or None) in item order, decoding in `workers` processes.

    A worker that dies (a decoder crash) does not end the run: the samples in flight are retried one by one
    in fresh processes and the one that kills its process is reported as "decoder crashed".
    """
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc="prep", unit="sample", disable=not progress)
    if workers <= 1:
        for i, it in enumerate(items):
            yield it, *decode_or_reason((i, it, max_frames, fmt, size))[1:]
            bar.update()
        bar.close()
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that has TensorFlow's threads
    pending, nxt, window = {}, 0, 4 * workers
    pool = cf.ProcessPoolExecutor(workers, mp_context=ctx)
    try:
        for i in range(len(items)):
            while nxt < len(items) and nxt < i + window:
                pending[nxt] = pool.submit(decode_or_reason, (nxt, items[nxt], max_frames, fmt, size))
                nxt += 1
            try:
                _, ex, reason = pending.pop(i).result()
            except cf.process.BrokenProcessPool:
                pool.shutdown(cancel_futures=True)
                ex, reason = _isolated(ctx, items[i], i, max_frames, fmt, size)
                pool = cf.ProcessPoolExecutor(workers, mp_context=ctx)
                for j in list(pending):
                    pending[j] = pool.submit(decode_or_reason, (j, items[j], max_frames, fmt, size))
            yield items[i], ex, reason
            bar.update()
    finally:
        pool.shutdown(cancel_futures=True)
        bar.close()


def _isolated(ctx, item, i, max_frames, fmt, size):
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as one:
        try:
            return one.submit(decode_or_reason, (i, item, max_frames, fmt, size)).result()[1:]
        except cf.process.BrokenProcessPool:
            return None, "decoder crashed on this file (corrupt video)"


def prepare(
    data_root,
    split,
    out,
    strict=False,
    workers=None,
    max_frames=16,
    progress=True,
    frame_format="png",
    frame_size=SIZE,
) -> dict:
    """Builds OUT/seed_bench_r1/<split>/1.0.0 and OUT/prep_report_<split>.json; returns the report dict.

    frame_format: "png" (lossless, the default) or "jpeg" (quality 95; smaller, see README). frame_size: the side
    every frame and image is resized to (252 for the 14-pixel patches of Qwen2-VL / Qwen2.5-VL, 256 for the
    released Qwen3-VL's 16; a multiple of 28 or 32, which `seedr1 train` checks against the model). The previous split,
    if any, is replaced only when the new one is complete (module docstring). Raises EmptySplitError (after
    writing the report) when no sample can be written.
    """
    import tensorflow_datasets as tfds

    from data_prep.seed_bench_r1 import SeedBenchR1, tfds_split

    t0 = time.perf_counter()
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"DATA_ROOT {data_root} is not a folder")
    if frame_format not in FRAME_FORMATS:
        raise ConfigError(f"frame format {frame_format!r}: choose one of {', '.join(FRAME_FORMATS)}")
    frame_size = int(frame_size)
    if frame_size < 28 or frame_size % 28 and frame_size % 32:
        raise ConfigError(
            f"--frame-size {frame_size}: use a multiple of 28 (patch 14, 2 x 2 merged; 252 by default) or of 32 "
            "(patch 16: 256 for Qwen3-VL)"
        )
    workers = max(1, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    skips: list[dict] = []
    path, items = collect_items(data_root, split, skips, strict)
    written = []

    def examples():
        for item, ex, reason in decoded(items, workers, max_frames, progress, frame_format, frame_size):
            if reason is not None:
                if strict:
                    raise PrepError(f"{item['file']}:{item['line']}: {reason} (--strict)")
                skips.append(
                    {"file": item["file"], "line": item["line"], "sample_id": item["sample_id"], "reason": reason}
                )
                continue
            ex["source_line"] = item["line"]
            written.append(item["sample_id"])
            yield item["line"], ex

    def report(output_dir, error=None):
        skips.sort(key=lambda s: s["line"])
        rep = {
            "split": split,
            "annotation_file": path,
            "output_dir": output_dir,
            "tfds_split": tfds_split(split),
            "frame_format": frame_format,
            "frame_size": frame_size,
            "written": len(written),
            "skipped": len(skips),
            "seconds": round(time.perf_counter() - t0, 2),
            "workers": workers,
            "skips": skips,
        }
        if error:
            rep["error"] = error
        fs.makedirs(out)
        fs.write_text(report_path(out, split), json.dumps(rep, indent=1))
        return rep

    def empty():
        why = "it has no records" if not skips else f"all {len(skips)} record(s) were skipped"
        msg = (
            f"{path}: no usable sample for split {split!r} ({why}; see {report_path(out, split)}); "
            "fix the annotation file or its media. Any previously prepared split was kept."
        )
        report(None, msg)
        return EmptySplitError(msg)

    if not items:
        raise empty()
    tfds.disable_progress_bar()  # ours (per sample) is the one that matters
    fs.makedirs(out)
    remote = fs.remote(out)
    if not remote:
        _remove_stale_builds(out, split)
    # built beside the destination (same filesystem: the swap is a rename); for a bucket, locally, then uploaded
    tmp = tempfile.mkdtemp(prefix=f".prep_{split}_{os.getpid()}_", dir=None if remote else out)
    try:
        builder = SeedBenchR1(
            config=split, data_dir=tmp, examples=examples, frame_format=frame_format, frame_size=frame_size
        )
        try:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(
                    try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP
                )
            )
        except PrepError:
            raise
        except Exception:
            if written:
                raise
            raise empty() from None  # TFDS's "No examples were yielded"
        final = fs.join(out, os.path.relpath(builder.data_dir, tmp))
        if remote:
            final = _publish_remote(builder.data_dir, posixpath.dirname(final))
        else:
            _replace_dir(builder.data_dir, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(final)


def _publish_remote(build: str, split_root: str) -> str:
    """Uploads the finished local `build` (a version folder) for an object store, which has no rename: to a
    fresh folder `split_root/builds/<stamp>/<version>`, then switches the one-object pointer
    `split_root/CURRENT` to it (readers follow it: `pipeline.prepared_splits`). Until that write the old split
    is what every reader sees, whole; a prep killed mid-upload leaves an unreferenced build, removed here by the
    next prep of the split along with the builds the pointer no longer names. Returns the new version folder."""
    rel = posixpath.join("builds", f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}", os.path.basename(build))
    fs.copy_tree(build, fs.join(split_root, rel))
    fs.write_text(fs.join(split_root, CURRENT), rel + "\n")
    keep = rel.split("/")[1]
    for name in fs.listdir(split_root):
        if is_version(name):  # the local layout's version folder, shadowed by the pointer now
            fs.rmtree(fs.join(split_root, name))
    for name in fs.listdir(fs.join(split_root, "builds")):
        if name != keep:
            fs.rmtree(fs.join(split_root, "builds", name))
    return fs.join(split_root, rel)


def _remove_stale_builds(out: str, split: str) -> None:
    """Removes the temporary build folders of earlier preps of `split` whose process is gone (killed -9)."""
    pattern = re.compile(rf"^\.prep_{re.escape(split)}_(\d+)_")
    for name in os.listdir(out):
        m = pattern.match(name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)
        except (PermissionError, OverflowError):
            pass  # alive (another user's) or not a pid we can check: leave it


def _replace_dir(new: str, dest: str) -> None:
    """Moves the folder `new` to `dest`, replacing any folder there; `dest` is never left missing or partial
    (the old folder is renamed aside first and removed only after the new one is in place)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    old = None
    if os.path.exists(dest):
        old = tempfile.mkdtemp(prefix=".old_", dir=os.path.dirname(dest))
        os.replace(dest, os.path.join(old, "split"))
    try:
        os.replace(new, dest)
    except BaseException:
        if old is not None:
            os.replace(os.path.join(old, "split"), dest)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def report_path(out: str, split: str) -> str:
    return os.path.join(out, f"prep_report_{split}.json")


def prepared(out: str, split: str) -> bool:
    """Whether `split` was prepared under `out`: its report is there and says no error (a failed prep writes its
    report too, naming the error, so the report alone does not mean the split is there)."""
    try:
        rep = json.loads(fs.read_text(report_path(out, split)))
    except (FileNotFoundError, ValueError):
        return False
    return "error" not in rep and rep.get("written", 0) > 0


def run(data_root, split, out, strict=False, workers=None, frame_format="png", frame_size=SIZE) -> int:
    """`seedr1 prep`: returns 0 on success (bad samples skipped and reported), 1 on a --strict failure, 2 on a
    user error (unknown split, nothing usable in the annotation file)."""
    try:
        rep = prepare(
            data_root, split, out, strict=strict, workers=workers, frame_format=frame_format, frame_size=frame_size
        )
    except PrepError as e:
        print(f"seedr1 prep: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # ConfigError included
        print(f"seedr1 prep: error: {e}", file=sys.stderr)
        return 2
    print(
        f"prep {split}: wrote {rep['written']} samples, skipped {rep['skipped']} "
        f"({rep['seconds']:.1f}s, {rep['workers']} workers) -> {rep['output_dir']}"
    )
    for s in rep["skips"][:20]:
        print(f"  skipped {s['file']}:{s['line']}: {s['reason']}")
    if rep["skipped"] > 20:
        print(f"  ... {rep['skipped'] - 20} more")
    if rep["skipped"]:
        print(f"  report: {report_path(out, split)}")
    return 0
