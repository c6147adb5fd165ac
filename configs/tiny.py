"""Toy scale for CPU: the 20M-parameter `tiny` preset on synthetic data (tests, `seedr1 demo`).

    seedr1 synth --out /tmp/data && seedr1 prep --data-root /tmp/data --split train --out /tmp/tfr
    seedr1 train --config configs/tiny.py:grpo --workdir /tmp/run --config.data.tfrecord_dir=/tmp/tfr

Argument: "grpo" (default), "sft" (supervised fine-tuning on train_cot, the study's SFT arm), "pretrain" (the toy
study's base model, built by `seedr1 pretrain-toy`) or "warmup" (the
"Vanilla" start of `seedr1 demo` and `seedr1 study`: SFT on `synth.generate_warmup`'s task-shaped prompts that
teaches the answer format and to describe the scene, which a random 20M model would never do, so that GRPO has
a reward signal to climb). Videos are cut to 4 frames (2 temporal segments) to keep CPU steps around a second;
everything else is the reference recipe's shape. The demo's measured run (docs/results.md) uses these settings
as they are.
"""

from configs.common import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.algo = "sft" if arg in ("warmup", "pretrain") else arg or "grpo"
    c.model.init = "preset:tiny"
    c.model.dtype = "float32"
    c.model.param_dtype = "float32"
    c.model.remat_policy = "none"
    c.mesh.shape = (1, -1, 1)
    c.data.max_frames = 4
    c.data.max_prompt_len = 512
    c.data.shuffle_buffer = 64
    c.data.eval_batch_size = 16  # greedy decoding of 16 prompts at once: fewer, fuller decode steps on CPU
    # The synthetic options differ only in a colour; listed alphabetically (as `seedr1 synth` writes the eval
    # splits), the letter follows from the colour seen. With the reference's shuffled options the tiny model
    # must also learn a lookup over the option text, which it does not in the demo's budget (docs/results.md).
    c.data.option_order = "sorted"
    c.train.num_steps = 30
    c.train.checkpoint_every = 10
    c.train.sample_every = 5
    # 8 prompts x G=4: the same 32 completions per step as the recipe's 4 x 8 on a CPU, but more colours per step
    c.data.batch_size = 8
    c.grpo.group_size = 4
    # DAPO's per-token reduction: the one answer-letter token is not diluted by each completion's length. With
    # the recipe's per-sequence mean (docs/recipe.md) and lr 3e-4 the demo gained nothing in 30 steps (docs/results.md).
    c.grpo.reduction = "token"
    c.grpo.max_new_tokens = 48  # the synthetic answers are ~40 tokens
    c.grpo.completion_bucket = 16  # the update sees 16, 32 or 48 columns: the 152k-vocab logits dominate a step
    c.grpo.beta = 0.04
    c.optim.lr = 1e-3
    c.optim.schedule = "constant"
    c.eval.max_new_tokens = 48
    c.train.eval_every = 10  # held-out L1 accuracy every N GRPO steps (`seedr1 demo`, via train.main callbacks)
    if c.algo == "sft":
        c.data.split = "train_cot"
        c.data.batch_size = 8
        c.sft.max_response_len = 64
        c.train.num_steps = 100
        c.train.checkpoint_every = 100
        c.optim.lr = 3e-3
        c.optim.schedule = "cosine"
        c.optim.warmup_ratio = 0.1
    if arg == "warmup":
        # a constant lr: a cosine over 100 steps decays before the model learns to name the colour it sees
        # (held-out colour named right in 58 of 96 samples after these 120 steps; 36 after 100 cosine steps)
        c.optim.schedule = "constant"
        c.train.num_steps = c.train.checkpoint_every = 120
    if arg == "pretrain":
        # the toy study's base (`seedr1 pretrain-toy`, seedr1_jax/analysis/toy_base.py): the deeper `toy` preset on
        # `data_prep.curriculum` (perception questions in a wide family of rendering styles + the answer format)
        c.model.init = "preset:toy_synth_vocab"  # session 18; the bases before it: "preset:toy" (152k-token head)
        # v1 (600 steps, cosine from 3e-3) learned the format and the answers' marginals, not the pixels: on held-out
        # curriculum prompts it gave one description whatever the clip. Neither a constant lr with 1200 steps (v2) nor
        # grey-to-saturated backgrounds changed that; the same model names the colour on kitchen's pixels after ~100
        # steps, so the base is pre-trained in stages, plain (kitchen's pixels) then the whole family: the steps of
        # each are toy_base.STAGES (docs/results.md, "The toy base").
        c.train.num_steps = c.train.checkpoint_every = 1200
        c.optim.lr = 3e-3
        c.optim.schedule = "constant"
        c.optim.warmup_ratio = 0.02
    return c
