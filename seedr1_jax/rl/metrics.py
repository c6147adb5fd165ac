"""Training metrics: TensorBoard + JSONL + console writer, MFU peak table, and the metrics plot."""

from __future__ import annotations

import json
import os

import jax

from seedr1_jax.core import fs


class MetricsWriter:
    """Per-step scalars to TensorBoard, a JSONL file and the console (process 0 only)."""

    def __init__(self, workdir: str, resume_step: int | None = None):
        """resume_step: the restored checkpoint's step. Rows the interrupted run wrote after it are dropped
        (metrics.jsonl, samples.jsonl) or marked stale for TensorBoard (a SessionLog START at resume_step + 1
        makes TensorBoard's reader discard them), so every step appears exactly once."""
        self.enabled = jax.process_index() == 0
        self.jsonl = os.path.join(workdir, "metrics.jsonl")
        self.pending: list[str] = []  # flushed every step locally, at checkpoints on object stores
        self.tb = None
        if self.enabled:
            fs.makedirs(workdir)
            for name in ("metrics.jsonl", "samples.jsonl"):
                truncate_after(os.path.join(workdir, name), resume_step or 0)
            try:
                from tensorboard.summary.writer.event_file_writer import EventFileWriter

                self.tb = EventFileWriter(os.path.join(workdir, "tb"))
                if resume_step:
                    from tensorboard.compat.proto import event_pb2

                    start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
                    self._event(resume_step + 1, session_log=start)
            except Exception as e:  # noqa: BLE001 - TensorBoard is optional
                print(f"TensorBoard disabled: {e}")

    def _event(self, step: int, **fields):
        import time

        from tensorboard.compat.proto import event_pb2

        self.tb.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), **fields))

    def write(self, step: int, scalars: dict[str, float]):
        if not self.enabled:
            return
        self.pending.append(json.dumps({"step": step, **scalars}))
        if not fs.remote(self.jsonl):
            self.flush()
        if self.tb is not None:
            from tensorboard.compat.proto import summary_pb2

            values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
            self._event(step, summary=summary_pb2.Summary(value=values))
            self.tb.flush()

    def text(self, step: int, name: str, texts: list[str]):
        if self.enabled and self.tb is not None:
            from tensorboard.compat.proto import summary_pb2
            from tensorboard.plugins.text import summary as text_summary

            pb = text_summary.pb(name, "\n\n---\n\n".join(texts))  # a TensorFlow proto when TF is installed
            self._event(step, summary=summary_pb2.Summary.FromString(pb.SerializeToString()))

    def flush(self):
        if self.enabled:
            fs.append_lines(self.jsonl, self.pending)
        self.pending = []

    def close(self):
        self.flush()
        if self.tb is not None:
            self.tb.close()


def truncate_after(path: str, step: int) -> None:
    """Keeps the JSONL rows of `path` whose "step" is <= step (and drops a torn last line)."""
    if not fs.exists(path):
        return
    lines = fs.read_text(path).splitlines()
    keep = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    if len(keep) != len(lines):
        fs.write_text(path, "".join(x + "\n" for x in keep))


# peak dense bf16 FLOP/s per chip, for the MFU estimate
PEAK_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5": 459e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
}


def peak_flops() -> float | None:
    kind = jax.devices()[0].device_kind
    for k, v in sorted(PEAK_FLOPS.items(), key=lambda kv: -len(kv[0])):
        if kind.startswith(k):
            return v * jax.device_count()
    return None


def plot_metrics(workdir: str, keys=("reward_mean", "kl", "loss")) -> str | None:
    """metrics.jsonl -> metrics.png (one panel per key); returns the path, or None without data."""
    path = os.path.join(workdir, "metrics.jsonl")
    if jax.process_index() != 0 or not fs.exists(path):
        return None
    rows = [json.loads(line) for line in fs.read_text(path).splitlines() if line.strip()]
    keys = [k for k in keys if any(k in r for r in rows)]
    if not rows or not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for ax, k in zip(axes[0], keys):
        pts = [(r["step"], r[k]) for r in rows if k in r]
        ax.plot(*zip(*pts), marker="o", ms=3)
        ax.set_title(k)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = os.path.join(workdir, "metrics.png")
    local = out if not fs.remote(out) else "/tmp/seedr1_metrics.png"
    fig.savefig(local, dpi=100)
    plt.close(fig)
    if local != out:
        fs.copy(local, out)
    return out
