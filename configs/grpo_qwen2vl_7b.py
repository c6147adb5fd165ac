"""GRPO on SEED-Bench-R1 with Qwen2-VL-7B-Instruct: the reference recipe (docs/recipe.md section 5).

    seedr1 import-hf --hf-dir Qwen2-VL-7B-Instruct --out ckpt/qwen2vl7b
    seedr1 prep --data-root DATA_ROOT --split train --out data/tfr
    seedr1 train --config configs/grpo_qwen2vl_7b.py --workdir gs://BUCKET/runs/grpo7b \
        --config.model.init=ckpt/qwen2vl7b --config.data.tfrecord_dir=data/tfr

The default shards parameters and Adam state over every device (fsdp), which is what a TPU slice (check the
fit first: `seedr1 aot --config configs/grpo_qwen2vl_7b.py --topology v5p:4x4x2`) and an 8-GPU host both
want; change `--config.mesh.shape` for data or tensor parallelism. Argument "cpu": a local smoke run with a
tiny random model.
"""

from configs.common import base_config


def get_config(arg: str | None = None):
    c = base_config()
    if arg == "cpu":
        c.model.init = "preset:tiny"
        c.model.dtype = "float32"
        c.grpo.max_new_tokens = 16
        c.grpo.group_size = 4
        c.data.batch_size = 2
        c.train.num_steps = 4
    elif arg:
        raise ValueError(f"unknown variant {arg!r}: use no argument (any TPU slice or GPU host) or cpu")
    return c
