"""Toy scale for CPU: the 20M-parameter `tiny` preset on synthetic data (tests, `seedr1 demo`).

    seedr1 synth --out /tmp/data && seedr1 prep --data-root /tmp/data --split train --out /tmp/tfr
    seedr1 train --config configs/tiny.py:grpo --workdir /tmp/run --config.data.tfrecord_dir=/tmp/tfr

Argument: "grpo" (default) or "sft" (the warm-up the demo runs first: it teaches the answer format, which a
random 20M model would never emit, so that GRPO has a reward signal to climb). Videos are cut to 4 frames
(2 temporal segments) to keep CPU steps around a second; everything else is the reference recipe's shape.
"""

from configs.common import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.algo = arg or "grpo"
    c.model.init = "preset:tiny"
    c.model.dtype = "float32"
    c.model.param_dtype = "float32"
    c.model.remat_policy = "none"
    c.mesh.shape = (1, -1, 1)
    c.data.batch_size = 4
    c.data.max_frames = 4
    c.data.max_prompt_len = 512
    c.data.shuffle_buffer = 64
    c.data.eval_batch_size = 16  # greedy decoding of 16 prompts at once: fewer, fuller decode steps on CPU
    # The synthetic options differ only in a colour; listed alphabetically (as `seedr1 synth` writes the eval
    # splits), the letter follows from the colour seen. With the reference's shuffled options the tiny model
    # must also learn a lookup over the option text, which it does not in the demo's budget (README).
    c.data.option_order = "sorted"
    c.train.num_steps = 30
    c.train.checkpoint_every = 10
    c.train.sample_every = 5
    c.grpo.group_size = 8
    c.grpo.max_new_tokens = 48  # the synthetic answers are ~40 tokens
    c.grpo.completion_bucket = 16  # the update sees 16, 32 or 48 columns: the 152k-vocab logits dominate a step
    c.grpo.beta = 0.04
    c.optim.lr = 3e-4
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
    return c
