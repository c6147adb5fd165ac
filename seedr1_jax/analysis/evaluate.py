"""Evaluation on L1/L2/L3/LongVideoBench: greedy decoding, per-sample JSONL (resumable), accuracy tables."""

from __future__ import annotations

import json
import os
import posixpath
import time

import jax
import numpy as np

from seedr1_jax.core import fs
from seedr1_jax.models.config import ConfigError
from seedr1_jax.parallel import sharding
from seedr1_jax.rl import rewards

SPLITS = ("L1", "L2", "L3", "lvb")
# docs/recipe.md section 8: the paper's numbers (Qwen2-VL-7B), printed beside ours for comparison
REFERENCE = {
    "Vanilla": {
        "L1": 34.79,
        "L2": 34.02,
        "L3": 31.57,
        "Daily life": 31.21,
        "Hobbies": 32.30,
        "Recreation": 33.33,
        "Work": 30.69,
        "lvb": 33.1,
    },
    "SFT": {
        "L1": 43.79,
        "L2": 44.10,
        "L3": 38.15,
        "Daily life": 38.27,
        "Hobbies": 41.02,
        "Recreation": 32.24,
        "Work": 38.61,
        "lvb": 40.2,
    },
    "GRPO": {
        "L1": 46.01,
        "L2": 50.16,
        "L3": 44.89,
        "Daily life": 48.52,
        "Hobbies": 45.08,
        "Recreation": 43.72,
        "Work": 41.34,
        "lvb": 43.6,
    },
}


def read_results(path: str) -> list[dict]:
    """The per-sample JSONL; a torn last line (the process was killed mid-write) is dropped."""
    if not fs.exists(path):
        return []
    out = []
    for line in fs.read_text(path).splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _repair(path: str, rows: list[dict]) -> None:
    """Rewrites the file without a torn last line, so appends start on a clean line."""
    if not fs.exists(path):
        return
    text = fs.read_text(path)
    if text and not text.endswith("\n"):
        fs.write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def accuracy_table(rows: list[dict], split: str) -> dict[str, float]:
    """Accuracy in % overall (key = split) and, where rows carry a domain (L3), per domain."""
    if not rows:
        return {}
    table = {split: 100.0 * float(np.mean([r["reward"] for r in rows]))}
    domains = sorted({r["domain"] for r in rows if r.get("domain")})
    for d in domains:
        table[d] = 100.0 * float(np.mean([r["reward"] for r in rows if r.get("domain") == d]))
    return table


def format_table(table: dict[str, float], split: str, n: int, label: str = "this run") -> str:
    cols = [split] + [k for k in table if k != split]
    head = f"{'model':<12}" + "".join(f"{c:>12}" for c in cols)
    lines = [
        f"accuracy (%) on {split}, {n} samples",
        head,
        f"{label:<12}" + "".join(f"{table[c]:>12.2f}" for c in cols),
    ]
    for name, ref in REFERENCE.items():
        if all(c in ref for c in cols):
            lines.append(f"{'paper ' + name:<12}" + "".join(f"{ref[c]:>12.2f}" for c in cols))
    return "\n".join(lines)


def whole_batches() -> dict:
    """`eval_batches` arguments that give every process the whole batch (what `evaluate` expects)."""
    return dict(process_index=0, process_count=1)


def evaluate(
    model, batches, out_path: str, tokenizer, *, mesh=None, max_new_tokens=256, repetition_penalty=1.05, progress=True
) -> list[dict]:
    """Greedy-decodes every batch whose samples are not yet in `out_path` and appends one JSON line per sample.

    batches: iterable of host batches (the data pipeline's layout plus `sample_id`, `answer`, `prompt`, and
    optionally `domain`, `valid` (bool[B], False on padding rows of the last batch)). Returns all rows.
    With several JAX processes every process passes the whole batch (`eval_batches(..., **whole_batches())`):
    each feeds its own rows to the mesh, the decoded tokens are gathered, and process 0 writes every row.
    """
    from tqdm import tqdm

    from seedr1_jax.rl.sampler import greedy

    done = read_results(out_path)
    _repair(out_path, done)
    seen = {str(r["sample_id"]) for r in done}
    writer = jax.process_index() == 0
    rows = list(done)
    bar = tqdm(batches, desc=f"eval -> {os.path.basename(out_path)}", disable=not progress or not writer)
    for hb in bar:
        ids = [str(x) for x in hb["sample_id"]]
        valid = np.asarray(hb.get("valid", np.ones(len(ids), bool)))
        todo = [i for i, s in enumerate(ids) if valid[i] and s not in seen]
        if not todo:
            continue
        batch = hb
        if mesh is not None:
            multi = jax.process_count() > 1
            batch = sharding.shard_batch(sharding.take_rows(hb, sharding.local_rows(len(ids))) if multi else hb, mesh)
        out = greedy(model, batch, max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
        tokens, mask = sharding.to_host(out["tokens"]), sharding.to_host(out["mask"])
        texts = tokenizer.batch_decode([t[: int(m.sum())] for t, m in zip(tokens, mask)], skip_special_tokens=True)
        lines = []
        for i in todo:
            r = {
                "sample_id": ids[i],
                "prompt": str(hb["prompt"][i]) if "prompt" in hb else "",
                "response": texts[i],
                "answer": str(hb["answer"][i]),
                "reward": rewards.accuracy_reward(texts[i], str(hb["answer"][i])),
            }
            if "domain" in hb and str(hb["domain"][i]):
                r["domain"] = str(hb["domain"][i])
            rows.append(r)
            seen.add(ids[i])
            lines.append(json.dumps(r))
        if writer:
            fs.makedirs(posixpath.dirname(out_path) or ".")  # only now: a failed start leaves no folder behind
            fs.append_lines(out_path, lines)  # a kill loses at most the batch in flight
        bar.set_postfix(acc=f"{100 * np.mean([r['reward'] for r in rows]):.1f}%")
    return rows


def main(config, workdir: str, split: str, ckpt=None, hf_dir=None, attention_samples: int = 0) -> int:
    from seedr1_jax import data
    from seedr1_jax.models import from_pretrained
    from seedr1_jax.models.checkpoint import load_params
    from seedr1_jax.models.processor import load_tokenizer

    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    ev = config.eval
    # one `seedr1 prep --out DIR` folder can hold every split; eval.<split> points elsewhere if set. The
    # prepared data must hold exactly this split (checked before the model loads).
    tfrecord_dir = ev.get(split, "") or config.data.tfrecord_dir
    data.find_split_dir(tfrecord_dir, split, f"eval.{split}" if ev.get(split, "") else "data.tfrecord_dir")
    sharding.maybe_initialize_distributed()
    mesh = sharding.make_mesh(tuple(config.mesh.shape))
    rules = sharding.ROLLOUT_RULES
    dtype = config.model.dtype
    with jax.set_mesh(mesh):
        if hf_dir:
            model, label = from_pretrained(hf_dir, dtype=dtype, mesh=mesh, rules=rules), "base (HF)"
        else:
            src = ckpt or workdir
            model, label = load_params(src, mesh=mesh, rules=rules, dtype=dtype), "checkpoint"
        batches = data.eval_batches(config.data, model.cfg, tfrecord_dir, split=split, **whole_batches())
        out = fs.join(workdir, f"eval_{split}.jsonl")
        t0 = time.time()
        rows = evaluate(
            model,
            batches,
            out,
            load_tokenizer(),
            mesh=mesh,
            max_new_tokens=ev.max_new_tokens,
            repetition_penalty=ev.repetition_penalty,
        )
        if attention_samples:  # issue 10: attention summary metrics on a subsample (seedr1_jax/attention.py)
            from seedr1_jax.analysis.attention import eval_stats

            kw = dict(max_new_tokens=ev.max_new_tokens, repetition_penalty=ev.repetition_penalty, label=label)
            att, att_text = eval_stats(model, config.data, tfrecord_dir, split, num=attention_samples, **kw)
    table = accuracy_table(rows, split)
    if jax.process_index() == 0:
        print(format_table(table, split, len(rows), label))
        print(f"per-sample results: {out} ({time.time() - t0:.0f}s)")
        summary = {"split": split, "n": len(rows), "accuracy": table}
        if attention_samples:
            print(att_text)
            summary["attention"] = att
        fs.makedirs(workdir)
        fs.write_text(fs.join(workdir, f"eval_{split}_summary.json"), json.dumps(summary, indent=2))
    return 0


# ---- evaluation during training -------------------------------------------------------------------------
def evaluate_params(model, batches, tokenizer, *, mesh=None, max_new_tokens=256, repetition_penalty=1.05) -> float:
    """Accuracy in % of `model` on every valid row of `batches` (greedy, as `seedr1 eval`), nothing written."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        rows = evaluate(
            model,
            batches,
            os.path.join(d, "eval.jsonl"),
            tokenizer,
            mesh=mesh,
            max_new_tokens=max_new_tokens,
            repetition_penalty=repetition_penalty,
            progress=False,
        )
    return 100.0 * float(np.mean([r["reward"] for r in rows])) if rows else float("nan")


def eval_callback(
    config, tfrecord_dir: str, split: str = "L1", every: int = 0, tokenizer=None, mesh=None, at_end: bool = True
):
    """A `train.main` callback: every `every` steps (and at the last one unless `at_end` is False), the held-out
    accuracy on `split` as `eval_<split>_accuracy` (%), decoded as `seedr1 eval` does (config.eval's
    max_new_tokens and repetition_penalty)."""
    from seedr1_jax import data
    from seedr1_jax.models.processor import load_tokenizer

    if every <= 0:
        raise ConfigError(f"train.eval_every={every}: evaluation during training needs a step interval > 0")
    tokenizer = tokenizer or load_tokenizer()
    last = int(config.train.num_steps)

    def cb(step: int, model) -> dict[str, float]:
        if step % every and not (at_end and step == last):
            return {}
        if step == last and not at_end:
            return {}
        batches = data.eval_batches(config.data, model.cfg, tfrecord_dir, split=split, **whole_batches())
        acc = evaluate_params(
            model,
            batches,
            tokenizer,
            mesh=mesh,
            max_new_tokens=config.eval.max_new_tokens,
            repetition_penalty=config.eval.repetition_penalty,
        )
        return {f"eval_{split}_accuracy": acc}

    return cb


def validate_eval(config, workdir: str, split: str, ckpt=None, hf_dir=None) -> None:
    """Everything `seedr1 eval` can check before loading a model: the split's prepared data, the weights, the
    output folder. Raises ConfigError naming what to fix."""
    from seedr1_jax.data.pipeline import find_split_dir
    from seedr1_jax.rl.preflight import DTYPES, _need, check_writable

    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    d = config.data
    _need(d.batch_size >= 1, "data.batch_size", d.batch_size, "must be >= 1")
    _need(d.get("eval_batch_size", 0) >= 0, "data.eval_batch_size", d.get("eval_batch_size"), "must be >= 0")
    _need(d.max_frames >= 2 and d.max_frames % 2 == 0, "data.max_frames", d.max_frames, "must be even and >= 2")
    _need(config.model.dtype in DTYPES, "model.dtype", config.model.dtype, f"use one of {', '.join(DTYPES)}")
    own = config.eval.get(split, "")
    find_split_dir(str(own or config.data.tfrecord_dir), split, f"eval.{split}" if own else "data.tfrecord_dir")
    if hf_dir:
        if not fs.exists(fs.join(hf_dir, "config.json")):
            raise ConfigError(f"--hf-dir {hf_dir}: no config.json; pass a Hugging Face Qwen2-VL folder")
    else:
        src = ckpt or workdir
        flag = "--ckpt" if ckpt else "--workdir"
        if not fs.exists(fs.join(src, "model.json")):
            raise ConfigError(
                f"{flag} {src} holds no model (model.json); train there first, or pass --ckpt DIR or --hf-dir DIR"
            )
    check_writable(workdir)
