"""GRPO on SEED-Bench-R1 with Qwen2-VL-7B-Instruct: the reference recipe (SPEC.md section 5).

    seedr1 import-hf --hf-dir Qwen2-VL-7B-Instruct --out ckpt/qwen2vl7b
    seedr1 prep --data-root DATA_ROOT --split train --out data/train
    seedr1 train --config configs/grpo_qwen2vl_7b.py:tpu --workdir gs://BUCKET/runs/grpo7b \
        --config.model.init=ckpt/qwen2vl7b --config.data.tfrecord_dir=data/train

Argument: "v5p-64" (= "tpu"; 32 chips, `seedr1 aot ... --topology v5p:4x4x2`), "v4-64" (32 chips of 32 GiB,
`--topology v4:4x4x2`), "gpu" (one host of 8 GPUs), "cpu" (a local smoke variant with a tiny random model), or
empty (same as tpu). All shard parameters and Adam state over every chip (fsdp); see README for the AOT table.
"""

from configs.common import base_config


def get_config(arg: str | None = None):
    c = base_config()
    variant = arg or "tpu"
    if variant in ("tpu", "v5p-64", "v4-64"):
        c.mesh.shape = (1, -1, 1)  # 7B fp32 master + Adam over 32 chips: ~4 GB/chip of state
    elif variant == "gpu":
        c.mesh.shape = (1, -1, 1)  # 8 GPUs, fully sharded
    elif variant == "cpu":
        c.model.init = "preset:tiny"
        c.model.dtype = "float32"
        c.grpo.max_new_tokens = 16
        c.grpo.group_size = 4
        c.data.batch_size = 2
        c.train.num_steps = 4
    else:
        raise ValueError(f"unknown variant {variant!r}: use tpu, v5p-64, v4-64, gpu or cpu")
    return c
