"""The `seedr1` command: demo, synth, prep, train, eval, import-hf, export-hf, aot, attention, pretrain-toy, study."""

from __future__ import annotations

import argparse
import os
import sys


def _add(sub, name, help_):
    p = sub.add_parser(name, help=help_, description=help_)
    return p


def _reward_weights(text: str) -> dict:
    """`accuracy,visual_consistency=0.5` -> {"accuracy": 1.0, "visual_consistency": 0.5}."""
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, _, w = item.partition("=")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: give NAME or NAME=WEIGHT (a number)") from None
    if not out:
        raise argparse.ArgumentTypeError("name at least one reward, e.g. accuracy")
    return out


def build_parser() -> argparse.ArgumentParser:
    from seedr1_jax.data.pipeline import FRAME_SAMPLING

    ap = argparse.ArgumentParser(prog="seedr1", description="SEED-Bench-R1 GRPO/SFT for Qwen2-VL in JAX")
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = _add(sub, "demo", "toy-scale end to end on CPU on data and a model it makes itself (no network)")
    p.add_argument("--workdir", default="workdir/demo")
    p.add_argument("--seed", type=int, default=0, help="draws data, init and sampling (0: the measured run)")
    p.add_argument(
        "--family", default="qwen2_vl", help="the tiny model's family: qwen2_vl (default), qwen2_5_vl or qwen3_vl"
    )
    p.add_argument(
        "--lora", type=int, default=0, metavar="RANK", help="GRPO trains rank-RANK LoRA adapters (0: every weight)"
    )
    p.add_argument(
        "--warmup-think",
        choices=("describe", "read"),
        default="describe",
        help="the warm-up's <think>: the scene description (default), or it then reads the options in order up to "
        "its random letter (docs/results.md: measured, no gain)",
    )
    p.add_argument(
        "--rewards",
        type=_reward_weights,
        default=None,
        metavar="NAME[=W],...",
        help="GRPO's rewards, weight 1 unless given (default accuracy: the outcome only; e.g. "
        "accuracy,visual_consistency adds the process reward; the accuracy reward must be one of them)",
    )

    p = _add(sub, "synth", "write a synthetic dataset in the SEED-Bench-R1 on-disk layout")
    p.add_argument("--out", required=True, help="DATA_ROOT to create")
    p.add_argument("--num-train", type=int, default=64)
    p.add_argument("--num-val", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--option-order",
        choices=("sorted", "shuffle"),
        default="sorted",
        help="list each sample's options alphabetically (the toy default: the letter follows from the colour "
        "seen) or in random order (the real benchmarks'); pair with --config.data.option_order",
    )

    p = _add(sub, "prep", "decode, sample and resize frames; write TFRecords for one split")
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", required=True, help="train, train_cot, L1, L2, L3 or lvb")
    p.add_argument("--out", required=True)
    p.add_argument("--strict", action="store_true", help="fail on the first bad sample instead of skipping it")
    p.add_argument("--workers", type=int, default=None, help="decode processes (default: all cores)")
    p.add_argument("--frame-format", choices=("png", "jpeg"), default="png", help="png: lossless; jpeg: ~3x smaller")
    p.add_argument(
        "--frame-size",
        type=int,
        default=252,
        help="frame and image side in pixels: 252 (patch-14 models: Qwen2-VL, Qwen2.5-VL) or 256 (released Qwen3-VL)",
    )

    p = _add(sub, "train", "GRPO or SFT (chosen by the config); resumes from --workdir")
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)

    p = _add(sub, "eval", "accuracy on L1/L2/L3/lvb; per-sample JSONL; resumable")
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--ckpt", default=None)
    p.add_argument("--hf-dir", default=None)
    p.add_argument("--attention-stats", action="store_true", help="add the `seedr1 attention` summary metrics")
    p.add_argument("--attention-samples", type=int, default=8, help="samples for --attention-stats")

    p = _add(sub, "import-hf", "HF Qwen2-VL folder (config.json + safetensors) -> our checkpoint")
    p.add_argument("--hf-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default=None, help="parameter dtype (default: the checkpoint's)")

    p = _add(sub, "export-hf", "our checkpoint -> HF folder loadable by transformers")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default=None, help="tensor dtype to write (default: the imported checkpoint's)")
    p.add_argument(
        "--adapter-only",
        action="store_true",
        help="a LoRA run: write its adapters alone as a PEFT folder (default: the merged full model)",
    )

    p = _add(sub, "aot", "compile the GRPO/SFT programs for a TPU topology; memory, FLOPs and predicted step time")
    p.add_argument("--config", required=True)
    p.add_argument("--topology", default=None, help="e.g. v5p:4x4x4, v4:4x4x4, v5e:2x2")
    p.add_argument("--validate-cpu", action="store_true", help="predicted vs measured seconds on this CPU")
    p.add_argument(
        "--validate", action="store_true", help="predicted vs measured seconds on this machine's first device (a GPU)"
    )
    p.add_argument("--validate-json", default=None, help="--validate/--validate-cpu: also write the figures here")
    p.add_argument("--programs", default="update,logprobs,sampler", help="--validate: which programs to time")
    p.add_argument("--search", action="store_true", help="rank mesh shapes x remat policies that fit")
    p.add_argument("--meshes", default=None, help="--search only these, e.g. '1,32,1;1,8,4' (default: all)")
    p.add_argument("--remats", default=None, help="--search only these remat policies, comma-separated")
    p.add_argument("--chip", default=None, help="predict for another chip of roofline.CHIPS (h100, a100, v5p, ...)")
    p.add_argument("--devices", type=int, default=None, help="use the topology's first N devices (e.g. 1 GPU)")
    p.add_argument("--save-hlo", default=None, help="write each compiled program's HLO text to this folder")
    # ---- attention (issue 10) ----
    p = _add(sub, "attention", "where generated tokens look: heatmaps over frames/image, per-token plots, summary")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="`seedr1 import-hf` or `seedr1 train` folder")
    src.add_argument("--hf-dir", help="Hugging Face Qwen2-VL folder")
    p.add_argument("--tfrecord-dir", required=True, help="`seedr1 prep --out` folder")
    p.add_argument("--split", required=True, help="prepared split, e.g. L1")
    p.add_argument("--out", required=True)
    p.add_argument("--num", type=int, default=8)
    p.add_argument("--layers", type=int, nargs="+", default=None, help="decoder layers to average (default all)")
    p.add_argument("--compare", default=None, help="a second checkpoint (ours or HF) drawn side by side")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--repetition-penalty", type=float, default=1.05)
    p.add_argument("--max-frames", type=int, default=16, help="as prepared (the tiny config uses 4)")
    p.add_argument(
        "--frame-sampling",
        choices=FRAME_SAMPLING,
        default="first",
        help="a clip prepared with more than --max-frames keeps its first frames or an even spread, as the run's "
        "data.frame_sampling",
    )
    p.add_argument("--max-prompt-len", type=int, default=1024)
    p.add_argument("--dtype", default="float32", help="compute dtype (bfloat16 for a 7B model on one GPU)")
    p = _add(sub, "pretrain-toy", "build (or find cached) the toy study's base model; prints its folder")
    p.add_argument("--out", default=None, help="the base's folder (default: $SEEDR1_CACHE or ~/.cache/seedr1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=("default", "quick", "smoke"), default="default", help="recipe size")
    # `seedr1 study` (issue 9): toy-scale Vanilla vs SFT vs GRPO on synthetic L1/L2/L3
    p = _add(sub, "study", "toy-scale Vanilla vs SFT vs GRPO on synthetic L1/L2/L3 shifts; table + plot")
    p.add_argument("--workdir", required=True)
    p.add_argument("--seeds", type=int, default=None, help="training seeds (default 5; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smaller data, base and budget (<= 15 minutes on 2 CPU cores)")
    p.add_argument("--tune", action="store_true", help="search each method's hyper-parameters on L1-val")
    p.add_argument("--arms", default=None, help="an arm file (default: configs/arms/paper.py, which documents it)")
    return ap


def _config_from_argv(path: str, extra: list[str]):
    """Loads a ml-collections config file and applies `--config.a.b=v` overrides; ConfigError on any mistake."""
    from absl import flags
    from ml_collections import config_flags

    from seedr1_jax.models.config import ConfigError

    file = path.split(":", 1)[0]
    if not os.path.isfile(file):
        raise ConfigError(
            f"--config {path}: {file} not found; pass a config file such as configs/grpo_qwen2vl_7b.py:gpu "
            "or configs/tiny.py (path relative to the current folder)"
        )
    for arg in extra:
        if not arg.startswith("--config."):
            raise ConfigError(f"unknown option {arg.split('=', 1)[0]}; overrides look like --config.optim.lr=1e-6")

    def load(argv):
        fv = flags.FlagValues()
        config_flags.DEFINE_config_file("config", default=path, flag_values=fv, sys_argv=argv)
        fv(argv)
        return fv.config

    argv = ["seedr1", f"--config={path}", *extra]
    try:
        return load(argv)
    except flags.IllegalFlagValueError as e:  # "flag --config.optim.lr=abc: could not convert ..."
        msg = str(e).removeprefix("flag ")
        raise ConfigError(f"{msg}; give a value of the type {file} uses for that field") from None
    except flags.Error as e:
        raise ConfigError(f"{e} (config {file})") from None
    except (AttributeError, KeyError):  # an override names a field the config does not have
        base = load(["seedr1", f"--config={path}"])
        for arg in extra:
            key = arg[len("--config.") :].split("=", 1)[0]
            node = base
            for part in key.split("."):
                if not (hasattr(node, "keys") and part in node.keys()):
                    near = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else ""
                    raise ConfigError(
                        f"--config.{key}: {file} has no field {key!r}; check the spelling"
                        + (f" (fields there: {near})" if near and len(near) < 200 else "")
                    ) from None
                node = node[part]
        raise
    except OSError as e:  # the config module itself failed to load
        raise ConfigError(f"--config {path}: could not load it ({str(e).splitlines()[0]})") from None


def _user_error(e: BaseException, args, extra) -> str | None:
    """The one/two-line message for an error the user can fix, or None for a bug (then: traceback)."""
    from seedr1_jax.models.config import ConfigError

    if isinstance(e, ConfigError):
        return str(e)
    try:
        from data_prep.prep import PrepError

        if isinstance(e, PrepError):
            return str(e)
    except ImportError:
        pass
    if type(e).__name__ == "DataLossError":  # tf.errors: a damaged .tfrecord, which tf does not name
        first = str(e).strip().splitlines()[0][-200:] if str(e).strip() else ""
        return _tfrecord_damage(args, extra) or f"a prepared .tfrecord file is damaged ({first}); re-run seedr1 prep"
    if isinstance(e, PermissionError):
        return f"{e.strerror or e}: {e.filename or ''}; check its permissions or choose another path"
    if isinstance(e, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")
    return None


def _tfrecord_damage(args, extra) -> str | None:
    """Finds the damaged shard of the split this command read and names it with the fix."""
    from seedr1_jax import data

    try:
        cfg = _config_from_argv(args.config, extra)
        split = getattr(args, "split", None) or cfg.data.split
        where = cfg.data.tfrecord_dir
        if args.cmd == "eval":
            where = cfg.eval.get(split, "") or where
        bad = data.damaged_tfrecords(data.find_split_dir(where, split))
    except Exception:  # noqa: BLE001 -- best effort: the generic message still applies
        return None
    if not bad:
        return None
    return (
        f"{bad[0]} is damaged (truncated or corrupt TFRecord); re-run "
        f"`seedr1 prep --data-root DATA_ROOT --split {split} --out {where}`"
    )


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    ap = build_parser()
    args, extra = ap.parse_known_args(argv)
    if extra and args.cmd not in ("train", "eval", "aot"):
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from seedr1_jax.core.platform import persistent_compile_cache, skip_tpu_probe_without_tpu

    persistent_compile_cache()
    skip_tpu_probe_without_tpu()
    try:
        return int(_run(args, extra) or 0)
    except Exception as e:
        msg = _user_error(e, args, extra)
        if msg is None or debug:
            raise
        print(f"seedr1 {args.cmd}: error: {msg}", file=sys.stderr)
        print("(run `seedr1 --debug ...` for the full traceback)", file=sys.stderr)
        return 2


def _run(args, extra):
    if args.cmd == "demo":
        from seedr1_jax.analysis.demo import run

        return run(
            args.workdir,
            seed=args.seed,
            family=args.family,
            lora=args.lora,
            warmup_think=args.warmup_think,
            rewards=args.rewards,
        )
    if args.cmd == "synth":
        from data_prep.synth import run

        return run(
            args.out, num_train=args.num_train, num_val=args.num_val, seed=args.seed, option_order=args.option_order
        )
    if args.cmd == "prep":
        from data_prep.prep import run

        return run(
            args.data_root,
            args.split,
            args.out,
            strict=args.strict,
            workers=args.workers,
            frame_format=args.frame_format,
            frame_size=args.frame_size,
        )
    if args.cmd == "import-hf":
        from seedr1_jax.models.checkpoint import import_hf

        return import_hf(args.hf_dir, args.out, dtype=args.dtype)
    if args.cmd == "export-hf":
        from seedr1_jax.models.checkpoint import export_hf

        return export_hf(args.ckpt, args.out, dtype=args.dtype, adapter_only=args.adapter_only)
    if args.cmd == "train":
        from seedr1_jax.rl.preflight import validate_train
        from seedr1_jax.rl.train import main as train_main

        cfg = _config_from_argv(args.config, extra)
        validate_train(cfg, args.workdir)  # before the model loads; leaves no workdir behind on failure
        return train_main(cfg, args.workdir)
    if args.cmd == "eval":
        from seedr1_jax.analysis.evaluate import main as eval_main
        from seedr1_jax.analysis.evaluate import validate_eval

        cfg = _config_from_argv(args.config, extra)
        validate_eval(cfg, args.workdir, args.split, ckpt=args.ckpt, hf_dir=args.hf_dir)
        att = args.attention_samples if args.attention_stats else 0
        return eval_main(cfg, args.workdir, args.split, ckpt=args.ckpt, hf_dir=args.hf_dir, attention_samples=att)
    if args.cmd == "aot":
        from seedr1_jax.perf.aot import main as aot_main

        if args.validate_cpu or args.validate:
            from seedr1_jax.perf.validate import validate

            platform = "cpu" if args.validate_cpu else None
            cfg = _config_from_argv(args.config, extra)
            progs = tuple(args.programs.split(","))
            return validate(cfg, platform, out_json=args.validate_json, save_hlo=args.save_hlo, programs=progs)
        if not args.topology:
            from seedr1_jax.models.config import ConfigError

            raise ConfigError(
                "seedr1 aot needs --topology (e.g. v5p:4x4x2) unless --validate or --validate-cpu is given"
            )
        return aot_main(
            _config_from_argv(args.config, extra),
            args.topology,
            chip=args.chip,
            devices=args.devices,
            search_=args.search,
            meshes=args.meshes,
            remats=args.remats,
            save_hlo=args.save_hlo,
        )
    if args.cmd == "attention":  # issue 10
        from seedr1_jax.analysis.attention import run as attention_run

        kw = {
            k: getattr(args, k) for k in ("num", "layers", "compare", "max_new_tokens", "repetition_penalty", "dtype")
        }
        return attention_run(
            args.ckpt,
            args.hf_dir,
            tfrecord_dir=args.tfrecord_dir,
            split=args.split,
            out=args.out,
            max_frames=args.max_frames,
            max_prompt_len=args.max_prompt_len,
            frame_sampling=args.frame_sampling,
            **kw,
        )
    if args.cmd == "pretrain-toy":
        from seedr1_jax.analysis.toy_base import run as pretrain_run

        return pretrain_run(args.out, size=args.size, seed=args.seed)
    if args.cmd == "study":
        from seedr1_jax.analysis.study import run as study_run

        return study_run(args.workdir, seeds=args.seeds, quick=args.quick, tune_arms=args.tune, arms_file=args.arms)
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
