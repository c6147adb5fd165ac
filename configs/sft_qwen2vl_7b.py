"""SFT baseline on SEED-Bench-R1's chain-of-thought set with Qwen2-VL-7B-Instruct (docs/recipe.md section 6).

    seedr1 prep --data-root DATA_ROOT --split train_cot --out data/tfr
    seedr1 train --config configs/sft_qwen2vl_7b.py --workdir gs://BUCKET/runs/sft7b \
        --config.model.init=ckpt/qwen2vl7b --config.data.tfrecord_dir=data/tfr

The default shards over every device (fsdp): a TPU slice or an 8-GPU host. Argument "cpu": tiny random model,
smoke run.
"""

from configs.common import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.algo = "sft"
    c.data.split = "train_cot"
    c.data.batch_size = 128  # effective batch of the reference (gradient accumulation there, one step here)
    c.data.max_prompt_len = 1536  # prompt (~900) + chain-of-thought response
    c.sft.max_response_len = 640
    c.optim.lr = 2e-5
    c.optim.schedule = "cosine"
    c.optim.warmup_ratio = 0.1
    c.optim.weight_decay = 0.0
    c.train.num_steps = 47  # 1 epoch of ~6k CoT samples at 128
    c.train.checkpoint_every = 10
    if arg == "cpu":
        c.model.init = "preset:tiny"
        c.model.dtype = "float32"
        c.data.batch_size = 2
        c.data.max_prompt_len = 1024
        c.sft.max_response_len = 64
        c.train.num_steps = 4
    elif arg:
        raise ValueError(f"unknown variant {arg!r}: use no argument (any TPU slice or GPU host) or cpu")
    return c
