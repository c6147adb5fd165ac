"""The `seedr1` command: demo, synth, prep, train, eval, import-hf, export-hf, aot."""

from __future__ import annotations

import argparse
import os
import sys


def _add(sub, name, help_):
    p = sub.add_parser(name, help=help_, description=help_)
    return p


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="seedr1", description="SEED-Bench-R1 GRPO/SFT for Qwen2-VL in JAX")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = _add(sub, "demo", "toy-scale end to end on CPU on data and a model it makes itself (no network)")
    p.add_argument("--workdir", default="workdir/demo")

    p = _add(sub, "synth", "write a synthetic dataset in the SEED-Bench-R1 on-disk layout")
    p.add_argument("--out", required=True, help="DATA_ROOT to create")
    p.add_argument("--num-train", type=int, default=64)
    p.add_argument("--num-val", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)

    p = _add(sub, "prep", "decode, sample and resize frames; write TFRecords for one split")
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", required=True, help="train, train_cot, L1, L2, L3 or lvb")
    p.add_argument("--out", required=True)
    p.add_argument("--strict", action="store_true", help="fail on the first bad sample instead of skipping it")
    p.add_argument("--workers", type=int, default=None, help="decode processes (default: all cores)")

    p = _add(sub, "train", "GRPO or SFT (chosen by the config); resumes from --workdir")
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)

    p = _add(sub, "eval", "accuracy on L1/L2/L3/lvb; per-sample JSONL; resumable")
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--ckpt", default=None)
    p.add_argument("--hf-dir", default=None)

    p = _add(sub, "import-hf", "HF Qwen2-VL folder (config.json + safetensors) -> our checkpoint")
    p.add_argument("--hf-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default=None, help="parameter dtype (default: the checkpoint's)")

    p = _add(sub, "export-hf", "our checkpoint -> HF folder loadable by transformers")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default=None, help="tensor dtype to write (default: the imported checkpoint's)")

    p = _add(sub, "aot", "compile the train step and sampler for a TPU topology; report memory and FLOPs")
    p.add_argument("--config", required=True)
    p.add_argument("--topology", required=True, help="e.g. v5p:4x4x4, v4:4x4x4, v5e:2x2")
    # `seedr1 study` (issue 9): toy-scale Vanilla vs SFT vs GRPO on synthetic L1/L2/L3
    p = _add(sub, "study", "toy-scale Vanilla vs SFT vs GRPO on synthetic L1/L2/L3 shifts; table + plot")
    p.add_argument("--workdir", required=True)
    p.add_argument("--seeds", type=int, default=None, help="training seeds (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smaller data and budget (<= 10 minutes on 2 CPU cores)")
    return ap


def _config_from_argv(path: str, extra: list[str]):
    """Loads a ml-collections config file and applies `--config.a.b=v` overrides."""
    from absl import flags
    from ml_collections import config_flags

    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", default=path, flag_values=fv)
    fv(["seedr1", f"--config={path}", *extra])
    return fv.config


def _quiet_libtpu_off_tpu():
    """With libtpu installed (the `aot` extra) on a machine without TPUs, keep jax off the TPU backend:
    otherwise it probes for TPU hosts and takes libtpu's process lock at every start."""
    import glob

    if "JAX_PLATFORMS" in os.environ or glob.glob("/dev/accel*") or glob.glob("/dev/vfio/*"):
        return
    if not glob.glob("/dev/nvidia[0-9]*"):
        os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = build_parser()
    args, extra = ap.parse_known_args(argv)
    if extra and args.cmd not in ("train", "eval", "aot"):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _quiet_libtpu_off_tpu()
    from .config import ConfigError

    try:
        return int(_run(args, extra) or 0)
    except (ConfigError, FileNotFoundError) as e:
        print(f"seedr1 {args.cmd}: error: {e}", file=sys.stderr)
        return 2


def _run(args, extra):
    if args.cmd == "demo":
        from .demo import run

        return run(args.workdir)
    if args.cmd == "synth":
        from data_prep.synth import run

        return run(args.out, num_train=args.num_train, num_val=args.num_val, seed=args.seed)
    if args.cmd == "prep":
        from data_prep.prep import run

        return run(args.data_root, args.split, args.out, strict=args.strict, workers=args.workers)
    if args.cmd == "import-hf":
        from .checkpoint import import_hf

        return import_hf(args.hf_dir, args.out, dtype=args.dtype)
    if args.cmd == "export-hf":
        from .checkpoint import export_hf

        return export_hf(args.ckpt, args.out, dtype=args.dtype)
    if args.cmd == "train":
        from .train import main as train_main

        return train_main(_config_from_argv(args.config, extra), args.workdir)
    if args.cmd == "eval":
        from .evaluate import main as eval_main

        cfg = _config_from_argv(args.config, extra)
        return eval_main(cfg, args.workdir, args.split, ckpt=args.ckpt, hf_dir=args.hf_dir)
    if args.cmd == "aot":
        from .aot import main as aot_main

        return aot_main(_config_from_argv(args.config, extra), args.topology)
    if args.cmd == "study":
        from .study import run as study_run

        return study_run(args.workdir, seeds=args.seeds, quick=args.quick)
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
