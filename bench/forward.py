"""Forward-pass speed: our jitted Qwen2-VL forward vs transformers on the same weights and input.

Input: one SEED-Bench-R1 prompt (16-frame 252x252 video -> 648 tokens, 252x252 image -> 81 tokens,
~170 text tokens: ~900 tokens), on a small-but-realistic random model. Prints times and the ratio.

    python bench/forward.py [--width 512 --layers 4 --repeats 5 --dtype float32] [--hlo-hash]

--hlo-hash also prints a hash of the lowered forward program: equal hashes before/after a change prove the
forward is untouched, where CPU timings on a shared machine are noisy.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import IMAGE_GRID, VIDEO_GRID, hf_config, prompt, torch_inputs  # noqa: E402
from transformers import Qwen2VLForConditionalGeneration  # noqa: E402

from seedr1_jax.models.qwen2_vl.model import Qwen2VL, prepare_inputs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vision-width", type=int, default=256)
    ap.add_argument("--vision-layers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--hlo-hash", action="store_true")
    args = ap.parse_args()
    cfg = hf_config(args.width, args.layers, args.vision_width, args.vision_layers, max(1, args.width // 256))
    torch.manual_seed(0)
    hf = Qwen2VLForConditionalGeneration(cfg).eval().to(getattr(torch, args.dtype))
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = Qwen2VL.from_pretrained(d, dtype=args.dtype)

    rng = np.random.default_rng(0)
    ids, image, video = prompt(cfg, rng)
    ids = np.array([ids])
    vgrid, igrid = np.array([VIDEO_GRID]), np.array([IMAGE_GRID])
    print(
        f"model: text {args.width}x{args.layers}, vision {args.vision_width}x{args.vision_layers}, "
        f"{args.dtype}; tokens {ids.shape[1]}; devices {jax.devices()[0].platform} x{jax.device_count()}"
    )

    inputs = prepare_inputs(ours.cfg, ids, None, image, igrid, video, vgrid)
    fwd = jax.jit(lambda m, x: m.logits(m.forward(**x)))
    import flax.nnx as nnx

    gd, st = nnx.split(ours)
    run = jax.jit(lambda st, x: fwd(nnx.merge(gd, st), x))
    dev_inputs = jax.device_put(inputs)
    if args.hlo_hash:
        import hashlib

        text = run.lower(st, dev_inputs).as_text()
        print(f"forward program sha256: {hashlib.sha256(text.encode()).hexdigest()[:16]} ({len(text)} chars)")
    t0 = time.perf_counter()
    run(st, dev_inputs).block_until_ready()
    compile_s = time.perf_counter() - t0

    def ours_once():
        run(st, dev_inputs).block_until_ready()

    tin = torch_inputs(cfg, ids, image, video, hf.dtype)

    def hf_once():
        with torch.no_grad():
            hf(**tin)

    def best(fn):
        fn()
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return min(ts)

    t_ours, t_hf = best(ours_once), best(hf_once)
    print(
        f"ours (jit, compile {compile_s:.1f}s): {t_ours * 1e3:.1f} ms   transformers: {t_hf * 1e3:.1f} ms   "
        f"ratio transformers/ours = {t_hf / t_ours:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
