"""`seedr1 prep`: one SEED-Bench-R1 split -> TFRecord shards via the TFDS builder, skipping and reporting bad input.

Bad samples (malformed line, missing field, wrong option count, path escaping DATA_ROOT, missing/corrupt/empty
video, unreadable image, duplicate id) are skipped and listed with file, line and reason in
OUT/prep_report_<split>.json; `strict=True` stops at the first one instead. Decoding runs in `workers`
processes; the output does not depend on their number (examples are consumed in annotation order).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import time

from data_prep import annotations as ann
from data_prep.media import decode_or_reason


class PrepError(RuntimeError):
    """A bad sample under --strict, or a problem with the whole split; the message says which and where."""


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


def decoded(items: list[dict], workers: int, max_frames: int, progress: bool = True):
    """Yields (item, example or None, reason or None) in item order, decoding in `workers` processes.

    A worker that dies (a decoder crash) does not end the run: the samples in flight are retried one by one
    in fresh processes and the one that kills its process is reported as "decoder crashed".
    """
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc="prep", unit="sample", disable=not progress)
    if workers <= 1:
        for i, it in enumerate(items):
            yield it, *decode_or_reason((i, it, max_frames))[1:]
            bar.update()
        bar.close()
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that has TensorFlow's threads
    pending, nxt, window = {}, 0, 4 * workers
    pool = cf.ProcessPoolExecutor(workers, mp_context=ctx)
    try:
        for i in range(len(items)):
            while nxt < len(items) and nxt < i + window:
                pending[nxt] = pool.submit(decode_or_reason, (nxt, items[nxt], max_frames))
                nxt += 1
            try:
                _, ex, reason = pending.pop(i).result()
            except cf.process.BrokenProcessPool:
                pool.shutdown(cancel_futures=True)
                ex, reason = _isolated(ctx, items[i], i, max_frames)
                pool = cf.ProcessPoolExecutor(workers, mp_context=ctx)
                for j in list(pending):
                    pending[j] = pool.submit(decode_or_reason, (j, items[j], max_frames))
            yield items[i], ex, reason
            bar.update()
    finally:
        pool.shutdown(cancel_futures=True)
        bar.close()


def _isolated(ctx, item, i, max_frames):
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as one:
        try:
            return one.submit(decode_or_reason, (i, item, max_frames)).result()[1:]
        except cf.process.BrokenProcessPool:
            return None, "decoder crashed on this file (corrupt video)"


def prepare(data_root, split, out, strict=False, workers=None, max_frames=16, progress=True) -> dict:
    """Builds OUT/seed_bench_r1/<split>/1.0.0 and OUT/prep_report_<split>.json; returns the report dict."""
    import tensorflow_datasets as tfds

    from data_prep.seed_bench_r1 import SeedBenchR1, tfds_split

    t0 = time.perf_counter()
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f"DATA_ROOT {data_root} is not a folder")
    workers = max(1, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    skips: list[dict] = []
    path, items = collect_items(data_root, split, skips, strict)
    written = []

    def examples():
        for item, ex, reason in decoded(items, workers, max_frames, progress):
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

    tfds.disable_progress_bar()  # ours (per sample) is the one that matters
    builder = SeedBenchR1(config=split, data_dir=out, examples=examples)
    if os.path.isdir(builder.data_dir):  # re-running prep replaces the split
        shutil.rmtree(builder.data_dir)
    builder = SeedBenchR1(config=split, data_dir=out, examples=examples)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
    )
    dl = os.path.join(out, "downloads")
    if os.path.isdir(dl) and not any(files for _, _, files in os.walk(dl)):
        shutil.rmtree(dl)  # TFDS makes an empty download folder; nothing is downloaded
    skips.sort(key=lambda s: s["line"])
    report = {
        "split": split,
        "annotation_file": path,
        "output_dir": builder.data_dir,
        "tfds_split": tfds_split(split),
        "written": len(written),
        "skipped": len(skips),
        "seconds": round(time.perf_counter() - t0, 2),
        "workers": workers,
        "skips": skips,
    }
    os.makedirs(out, exist_ok=True)
    with open(report_path(out, split), "w") as f:
        json.dump(report, f, indent=1)
    return report


def report_path(out: str, split: str) -> str:
    return os.path.join(out, f"prep_report_{split}.json")


def run(data_root, split, out, strict=False, workers=None) -> int:
    """`seedr1 prep`: returns 0 on success (bad samples skipped and reported), 1 on a --strict failure."""
    try:
        rep = prepare(data_root, split, out, strict=strict, workers=workers)
    except (PrepError, ValueError) as e:
        print(f"seedr1 prep: error: {e}")
        return 1
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
