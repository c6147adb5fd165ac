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
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration  # noqa: E402

from seedr1_jax.qwen2_vl import Qwen2VL, prepare_inputs  # noqa: E402


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
    heads = args.width // 64
    cfg = Qwen2VLConfig(
        text_config=dict(
            vocab_size=151936,
            hidden_size=args.width,
            intermediate_size=4 * args.width,
            num_hidden_layers=args.layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 4),
            rope_parameters={"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 1e6},
        ),
        vision_config=dict(
            depth=args.vision_layers,
            embed_dim=args.vision_width,
            num_heads=args.vision_width // 64,
            hidden_size=args.width,
            mlp_ratio=4,
        ),
    )
    torch.manual_seed(0)
    hf = Qwen2VLForConditionalGeneration(cfg).eval().to(getattr(torch, args.dtype))
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = Qwen2VL.from_pretrained(d, dtype=args.dtype)

    rng = np.random.default_rng(0)
    text = lambda n: list(rng.integers(0, 150000, n))  # noqa: E731
    ids = (
        text(20)
        + [cfg.vision_start_token_id]
        + [cfg.video_token_id] * 648
        + [cfg.vision_end_token_id]
        + [cfg.vision_start_token_id]
        + [cfg.image_token_id] * 81
        + [cfg.vision_end_token_id]
        + text(150)
    )
    ids = np.array([ids])
    video = rng.standard_normal((8 * 18 * 18, 1176)).astype(np.float32)
    image = rng.standard_normal((18 * 18, 1176)).astype(np.float32)
    vgrid, igrid = np.array([[8, 18, 18]]), np.array([[1, 18, 18]])
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

    mm = torch.zeros_like(torch.from_numpy(ids))
    mm[torch.from_numpy(ids) == cfg.image_token_id] = 1
    mm[torch.from_numpy(ids) == cfg.video_token_id] = 2
    tin = dict(
        input_ids=torch.from_numpy(ids),
        pixel_values=torch.from_numpy(image).to(hf.dtype),
        image_grid_thw=torch.from_numpy(igrid),
        pixel_values_videos=torch.from_numpy(video).to(hf.dtype),
        video_grid_thw=torch.from_numpy(vgrid),
        mm_token_type_ids=mm,
    )

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
