"""Where each arm of a finished `seedr1 study` looks: the `seedr1 attention` summary of every trained (arm, seed)
cell and of the base, each read with the arm's own data settings (`data.max_frames`, `data.frame_sampling`,
`data.max_prompt_len` from the cell's run_config.json), on the first `--num` samples of a split.

    python scripts/study_attention.py STUDY_WORKDIR [--split L1] [--num 16]

Prints, per arm, the `<think>` tokens' share of their attention on the visual tokens, the video's part of it, and
the share of the video attention on the evidence frames (mean [95% t-interval] over seeds), beside what attention
spread evenly over the frames read would give (the evidence frames' share of them) and the base read the same way.
Each cell's figures and JSON go to STUDY_WORKDIR/attention/<arm>/<seed> (a rerun reuses them). The frames arms'
figures are in docs/results.md, "The toy study".
"""

import argparse
import glob
import json
import os


def measure(ckpt: str, out: str, tfr: str, split: str, num: int, run_config: dict) -> dict:
    """The reasoning span's summary ({visual, video_of_visual, evidence}) and the even-spread evidence share."""
    from seedr1_jax.analysis import attention

    d = run_config["data"]
    if not os.path.exists(os.path.join(out, "summary.json")):
        attention.run(
            ckpt,
            tfrecord_dir=tfr,
            split=split,
            out=out,
            num=num,
            max_new_tokens=run_config["eval"]["max_new_tokens"],
            repetition_penalty=run_config["eval"]["repetition_penalty"],
            max_frames=d["max_frames"],
            max_prompt_len=d["max_prompt_len"],
            frame_sampling=d.get("frame_sampling", "first"),
        )
    with open(os.path.join(out, "summary.json")) as f:
        (m,) = json.load(f)["summary"].values()
    even = []
    for path in glob.glob(os.path.join(out, "*.json")):
        if not path.endswith("summary.json"):
            with open(path) as f:
                ev = json.load(f)["evidence_frames"]
            if ev:
                even.append(len([e for e in ev if e < d["max_frames"]]) / d["max_frames"])
    return dict(m["reasoning"], even=sum(even) / len(even) if even else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workdir", help="a `seedr1 study --workdir` folder with study.json")
    ap.add_argument("--split", default="L1")
    ap.add_argument("--num", type=int, default=16)
    a = ap.parse_args()

    from seedr1_jax.analysis.verdicts import mean_ci

    with open(os.path.join(a.workdir, "study.json")) as f:
        s = json.load(f)
    tfr = os.path.join(a.workdir, "tfrecords")
    lines = [
        f"`<think>` attention, {a.num} {a.split} samples, all layers; mean [95% t-interval] over {s['seeds']} seeds",
        "",
        "| arm | visual share | video of visual | evidence share of video | even spread | the base, read so |",
        "|---|---|---|---|---|---|",
    ]
    for arm in [x for x in s["arms"] if x["method"] != "vanilla"]:
        name, cells = arm["name"], []
        for seed in range(s["seeds"]):
            run = os.path.join(a.workdir, f"seed{seed}", name.lower())
            with open(os.path.join(run, "run_config.json")) as f:
                rc = json.load(f)
            out = os.path.join(a.workdir, "attention", name, str(seed))
            cells.append(measure(run, out, tfr, a.split, a.num, rc))
            print(f"{name} seed {seed}: {cells[-1]}", flush=True)
        base = measure(s["base"]["dir"], os.path.join(a.workdir, "attention", name, "base"), tfr, a.split, a.num, rc)

        def ci(key, rows=cells):
            m = mean_ci([100 * r[key] for r in rows if r[key] is not None])
            return f"{m['mean']:.1f} [{m['lo']:.1f}, {m['hi']:.1f}]"

        lines.append(
            f"| {name} | {ci('visual')} | {ci('video_of_visual')} | {ci('evidence')} | {100 * cells[0]['even']:.1f} "
            f"| {100 * base['visual']:.1f} / {100 * base['video_of_visual']:.1f} / {100 * base['evidence']:.1f} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
