"""Metrics after a resume: every step exactly once in metrics.jsonl, samples.jsonl and TensorBoard."""

import json

from tensorboard.backend.event_processing import event_accumulator

from seedr1_jax.rl.metrics import MetricsWriter


def test_resumed_writer_never_duplicates_rows(tmp_path):
    w = MetricsWriter(str(tmp_path))
    for step in range(1, 5):  # the interrupted run got to step 4, its last checkpoint was step 2
        w.write(step, {"loss": float(step)})
    w.close()
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps({"step": s, "completion": "x"}) + "\n" for s in (2, 4)))
    w = MetricsWriter(str(tmp_path), resume_step=2)
    for step in (3, 4):
        w.write(step, {"loss": 10.0 * step})
    w.close()
    rows = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    assert [json.loads(x)["step"] for x in open(tmp_path / "samples.jsonl")] == [2]
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
