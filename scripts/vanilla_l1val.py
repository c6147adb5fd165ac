"""A toy base as the study's Vanilla on L1-validation samples: the yardstick for curriculum decisions (issue 20),
which never touches the study's test splits (`synth` seed `study.L1VAL_SEED`; the test splits are seed 0's).

    python scripts/vanilla_l1val.py ~/.cache/seedr1/toy_base-KEY/run [--step N] [--num 96] [--workdir /tmp/l1val]

Prints one JSON line: accuracy and `study.reasoning` (the <think> names the colour shown, the answer follows it, both
tags, the most common letter), as the study scores a cell. The rows go to WORKDIR/<name>/ (a rerun reuses them).
docs/results.md, "The toy base", has what it measured.
"""

import argparse
import json
import os


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a base's run folder (a model.init)")
    ap.add_argument("--step", type=int, default=None, help="a checkpoint step (default: the last)")
    ap.add_argument("--num", type=int, default=96, help="L1-validation samples")
    ap.add_argument("--workdir", default="/tmp/seedr1_l1val")
    ap.add_argument("--name", default=None, help="the rows' folder name (default: from the run folder and step)")
    a = ap.parse_args()

    from data_prep import prep, synth
    from seedr1_jax.analysis import study
    from seedr1_jax.models.processor import load_tokenizer

    root, tfr = os.path.join(a.workdir, f"data_{a.num}"), os.path.join(a.workdir, f"tfrecords_{a.num}")
    if not os.path.isdir(os.path.join(root, "annotations")):
        synth.generate(root, num_train=1, num_val=a.num, seed=study.L1VAL_SEED, option_order="sorted")
    if not prep.prepared(tfr, "L1"):
        prep.prepare(root, "L1", tfr, max_frames=4, progress=False, workers=1)
    c = study.arm_config("vanilla", study.BUDGETS["quick"], tfr, a.run, 0, {})
    name = a.name or f"{os.path.basename(os.path.dirname(os.path.abspath(a.run)))}_{a.step or 'last'}"
    out_dir = os.path.join(a.workdir, name)
    os.makedirs(out_dir, exist_ok=True)
    r = study._evaluate(a.run, "L1", c, tfr, load_tokenizer(), step=a.step, tag="val", out_dir=out_dir)
    print(json.dumps(dict(name=name, n=r["n"], accuracy=r["accuracy"]["L1"], reasoning=r["reasoning"])))


if __name__ == "__main__":  # prep spawns its workers: they import this file
    main()
