"""GRPO step time: ours (shared-prefill sampler + jitted update) vs the reference design in PyTorch/transformers
(G sequential `generate` calls per prompt, then policy and reference forwards and a backward + AdamW), on the
same random model and the same SEED-Bench-R1-shaped prompts (16-frame 252x252 video + image + ~150 text tokens).
Also the sampler's prefix-sharing gain: one G-way call vs G calls of G=1. Prints times and ratios.

    python bench/grpo_step.py [--prompts 2 --group 8 --new-tokens 32 --width 256 --layers 4]
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import IMAGE_GRID, VIDEO_GRID, hf_config, prompt, rollout_parser, torch_inputs  # noqa: E402
from flax import nnx  # noqa: E402
from transformers import Qwen2VLForConditionalGeneration  # noqa: E402

from seedr1_jax.models.qwen2_vl.model import Qwen2VL, per_sample_inputs  # noqa: E402
from seedr1_jax.rl import grpo, sampler  # noqa: E402


def build_prompts(cfg, n, rng):
    """n prompts in both layouts: transformers (flat, per prompt) and ours (per-sample training batch)."""
    rows = [prompt(cfg, rng, lead=20 + i) for i in range(n)]
    flat = [torch_inputs(cfg, np.array([ids]), image, video) for ids, image, video in rows]
    t = max(len(r[0]) for r in rows)
    ids = np.full((n, t), 151643, np.int32)
    am = np.zeros((n, t), np.int32)
    for i, (r, _, _) in enumerate(rows):
        ids[i, t - len(r) :] = r
        am[i, t - len(r) :] = 1
    return flat, ids, am, rows


def ours_batch(model_cfg, ids, am, rows):
    return per_sample_inputs(
        model_cfg,
        ids,
        am,
        [np.concatenate([image, video]) for _, image, video in rows],
        [[IMAGE_GRID]] * len(rows),
        [[VIDEO_GRID]] * len(rows),
    )


def random_rollout(args):
    """(our random fp32 model, its prompt batch, prompt ids, one G-way rollout's tokens and mask) from the rollout
    flags (`common.rollout_parser`): the shared start of the LoRA and reference-placement benches."""
    hcfg = hf_config(args.width, args.layers, 128, args.layers, max(1, args.width // 256))
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        Qwen2VLForConditionalGeneration(hcfg).save_pretrained(d)
        model = Qwen2VL.from_pretrained(d, dtype="float32")
    _, ids, am, rows = build_prompts(hcfg, args.prompts, np.random.default_rng(0))
    batch = ours_batch(model.cfg, ids, am, rows)
    g, c = args.group, args.new_tokens
    out = sampler.generate(model, batch, rng=jax.random.key(0), group_size=g, max_new_tokens=c, stop_ids=())
    return model, batch, ids, out["tokens"], out["mask"]


def main():
    ap = rollout_parser(__doc__)
    args = ap.parse_args()
    b, g, c = args.prompts, args.group, args.new_tokens
    hcfg = hf_config(args.width, args.layers, 128, args.layers, max(1, args.width // 256))
    torch.manual_seed(0)
    hf = Qwen2VLForConditionalGeneration(hcfg).eval()
    hf.generation_config.eos_token_id = None  # fixed-length rollouts on both sides
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        model = Qwen2VL.from_pretrained(d, dtype="float32")
    ref_hf = Qwen2VLForConditionalGeneration(hcfg).eval()
    ref_hf.load_state_dict(hf.state_dict())
    rng = np.random.default_rng(0)
    flat, ids, am, rows = build_prompts(hcfg, b, rng)
    batch = ours_batch(model.cfg, ids, am, rows)
    print(
        f"model text {args.width}x{args.layers}, vision 128x{args.layers}; {b} prompts x G={g}, {c} new tokens, "
        f"prompt {ids.shape[1]} tokens; CPU x{jax.device_count()}"
    )

    # ---- reference design: G sequential generate calls per prompt, then policy + ref forward, backward ----
    opt = torch.optim.AdamW(hf.parameters(), lr=1e-6, weight_decay=0.0)

    def torch_step():
        t0 = time.perf_counter()
        seqs = []
        for tin in flat:
            mm = tin["mm_token_type_ids"]
            for _ in range(g):
                with torch.no_grad():
                    out = hf.generate(
                        **tin,
                        do_sample=True,
                        temperature=1.0,
                        top_k=50,
                        max_new_tokens=c,
                        min_new_tokens=c,
                    )
                seqs.append((tin, mm, out))
        t_roll = time.perf_counter() - t0
        t0 = time.perf_counter()
        opt.zero_grad()
        for tin, mm, out in seqs:
            full = dict(tin, input_ids=out, mm_token_type_ids=torch.nn.functional.pad(mm, (0, c)))
            with torch.no_grad():
                ref_lp = torch.log_softmax(ref_hf(**full).logits[:, -c - 1 : -1], -1)
            logits = hf(**full).logits[:, -c - 1 : -1]
            lp = torch.log_softmax(logits, -1).gather(-1, out[:, -c:, None])[..., 0]
            rl = ref_lp.gather(-1, out[:, -c:, None])[..., 0]
            d = rl - lp
            loss = -(torch.exp(lp - lp.detach()) * 0.5 - 0.1 * (torch.exp(d) - d - 1)).mean() / len(seqs)
            loss.backward()
        opt.step()
        return t_roll, time.perf_counter() - t0

    # ---- ours ----
    from configs.common import base_config
    from seedr1_jax.data.batch import GRPOBatch, Prompts
    from seedr1_jax.rl import update

    config = base_config()
    config.grpo.group_size, config.grpo.max_new_tokens = g, c
    config.model.dtype = config.grpo.ref_dtype = "float32"
    gd, st = nnx.split(model)
    params = st.to_pure_dict()
    tx, _ = update.make_optimizer(config, params, 100)
    mode = grpo.reference_mode(config)  # mu = 1: the reference's log-probs inside the update (`grpo.ref_in_update`)
    step_fn = jax.jit(update.make_update(gd, tx, grpo.loss, config, reference=mode), donate_argnums=0)
    progs = grpo.programs(config, gd, nnx.eval_shape(lambda: model), None, ())
    ref_params = jax.tree.map(jnp.copy, params)
    extra = (ref_params,) if mode == "argument" else ()
    state = {"train": update.TrainState(params=params, opt_state=tx.init(params))}

    def ours_step(key):
        t0 = time.perf_counter()
        m = nnx.merge(gd, state["train"].params)
        out = sampler.generate(m, batch, rng=key, group_size=g, max_new_tokens=c, stop_ids=())
        out["tokens"].block_until_ready()
        t_roll = time.perf_counter() - t0
        t0 = time.perf_counter()
        rewards = jnp.asarray(np.random.default_rng(0).integers(0, 2, b * g), jnp.float32)
        prompts = Prompts.of(batch)
        # what grpo.prepare adds once per rollout: at mu = 1 only whether the weights equal the reference's
        fields = grpo.logprob_fields(config, progs, state["train"].params, ref_params, prompts, out["tokens"])
        upd = GRPOBatch(
            prompts=prompts,
            tokens=out["tokens"],
            mask=out["mask"],
            advantages=grpo.group_advantages(rewards, g),
            inner_step=jnp.zeros((), jnp.int32),
            **fields,
        )
        state["train"], metrics = step_fn(state["train"], upd, *extra)
        jax.block_until_ready(metrics)
        return t_roll, time.perf_counter() - t0

    ours_step(jax.random.key(0))  # compile
    o_roll, o_upd = min((ours_step(jax.random.key(i)) for i in range(1, 3)), key=sum)
    t_roll, t_upd = torch_step()
    print(f"reference design (transformers): rollout {t_roll:.2f}s + update {t_upd:.2f}s = {t_roll + t_upd:.2f}s")
    print(f"seedr1-jax:                      rollout {o_roll:.2f}s + update {o_upd:.2f}s = {o_roll + o_upd:.2f}s")
    print(
        f"GRPO step speed-up: {(t_roll + t_upd) / (o_roll + o_upd):.1f}x  (rollout {t_roll / o_roll:.1f}x, "
        f"update {t_upd / o_upd:.1f}x)"
    )

    # ---- prefix sharing: one G-way call vs G calls of G=1 ----
    m = nnx.merge(gd, state["train"].params)
    run = lambda gg, key: sampler.generate(
        m,
        batch,
        rng=key,
        group_size=gg,
        max_new_tokens=c,  # noqa: E731
        stop_ids=(),
    )["tokens"].block_until_ready()
    run(g, jax.random.key(0))
    run(1, jax.random.key(0))
    t0 = time.perf_counter()
    run(g, jax.random.key(1))
    shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(g):
        run(1, jax.random.key(10 + i))
    separate = time.perf_counter() - t0
    toks = b * g * c
    print(
        f"sampler: G={g} shared prefill {shared:.2f}s ({toks / shared:.0f} tok/s) vs {g} x G=1 {separate:.2f}s "
        f"({toks / separate:.0f} tok/s): prefix sharing {separate / shared:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
