"""Sampler prefix-sharing gain: one call with G=8 (vision tower + prompt prefill once per prompt, KV cache
copied to the group) vs 8 calls with G=1 (the reference design: G separate `generate` calls), same prompts,
same number of sampled tokens. Prompt: SEED-Bench-R1-shaped, ~900 tokens (16-frame 252x252 video -> 648
tokens, 252x252 image -> 81 tokens, ~170 text tokens), on a small random model. Prints tokens/s and the ratio.

    python bench/sampler.py [--prompts 2 --group 8 --new-tokens 32 --width 256 --layers 4 --repeats 2]
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import IMAGE_GRID, VIDEO_GRID, rollout_parser  # noqa: E402
from flax import nnx  # noqa: E402

from seedr1_jax.models.config import ModelConfig, TextConfig, VisionConfig  # noqa: E402
from seedr1_jax.models.qwen2_vl.model import Qwen2VL, per_sample_inputs  # noqa: E402
from seedr1_jax.rl import sampler  # noqa: E402

VIDEO, IMAGE = VIDEO_GRID, IMAGE_GRID


def prompt_batch(cfg: ModelConfig, n: int, rng) -> dict:
    """n left-padded prompts in the training-batch layout (text, video, image, text)."""
    m2 = cfg.vision.spatial_merge_size**2
    rows = []
    for i in range(n):
        text = lambda k: list(rng.integers(0, 150000, k))  # noqa: E731
        vs, ve = cfg.vision_start_token_id, cfg.vision_end_token_id
        rows.append(
            text(20 + 3 * i)
            + [vs, *[cfg.video_token_id] * (np.prod(VIDEO) // m2), ve]
            + [vs, *[cfg.image_token_id] * (np.prod(IMAGE) // m2), ve]
            + text(150)
        )
    t = max(map(len, rows))
    ids, am = np.full((n, t), sampler.ENDOFTEXT, np.int32), np.zeros((n, t), np.int32)
    for i, r in enumerate(rows):
        ids[i, t - len(r) :], am[i, t - len(r) :] = r, 1
    pixel_rows = [
        rng.standard_normal((np.prod(IMAGE) + np.prod(VIDEO), cfg.vision.patch_dim)).astype(np.float32)
        for _ in range(n)
    ]
    return per_sample_inputs(cfg, ids, am, pixel_rows, [[IMAGE]] * n, [[VIDEO]] * n)


def main():
    ap = rollout_parser(__doc__)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    b, g, c = args.prompts, args.group, args.new_tokens
    w = args.width
    cfg = ModelConfig(
        vision=VisionConfig(depth=args.layers, embed_dim=128, num_heads=2, out_dim=w),
        text=TextConfig(
            vocab_size=151936,
            hidden_size=w,
            intermediate_size=4 * w,
            num_layers=args.layers,
            num_heads=w // 64,
            num_kv_heads=max(1, w // 256),
            mrope_section=(8, 12, 12),
        ),
        dtype=args.dtype,
    )
    model = Qwen2VL(cfg, rngs=nnx.Rngs(0))
    batch = prompt_batch(cfg, b, np.random.default_rng(0))
    print(
        f"model text {w}x{args.layers}, vision 128x{args.layers}, {args.dtype}; {b} prompts x G={g}, {c} new tokens "
        f"(no stop), prompt {batch['input_ids'].shape[1]} tokens; {jax.devices()[0].platform} x{jax.device_count()}"
    )

    def run(gg, key):
        out = sampler.generate(model, batch, rng=key, group_size=gg, max_new_tokens=c, stop_ids=())
        return out["tokens"].block_until_ready()

    run(g, jax.random.key(0))  # compile both shapes
    run(1, jax.random.key(0))
    shared, separate = [], []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        run(g, jax.random.key(1 + r))
        shared.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(g):
            run(1, jax.random.key(100 * r + i))
        separate.append(time.perf_counter() - t0)
    sh, se = min(shared), min(separate)
    toks = b * g * c
    print(f"shared prefill, 1 call G={g}:  {sh:7.2f}s  {toks / sh:8.1f} tok/s")
    print(f"{g} calls of G=1:              {se:7.2f}s  {toks / se:8.1f} tok/s")
    print(f"prefix-sharing gain: {se / sh:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
