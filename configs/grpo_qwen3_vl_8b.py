"""GRPO on SEED-Bench-R1 with Qwen3-VL-8B-Instruct: the reference recipe of configs/grpo_qwen2vl_7b.py on the
current Qwen family.

    seedr1 import-hf --hf-dir Qwen3-VL-8B-Instruct --out ckpt/qwen3vl8b
    seedr1 prep --data-root DATA_ROOT --split train --out data/tfr --frame-size 256
    seedr1 train --config configs/grpo_qwen3_vl_8b.py --workdir gs://BUCKET/runs/grpo3_8b \
        --config.model.init=ckpt/qwen3vl8b --config.data.tfrecord_dir=data/tfr

What differs is inside the model and read from its config.json: the Qwen3 decoder (q/k RMSNorm, head_dim 128,
interleaved M-RoPE), DeepStack (vision blocks 8/16/24 feed decoder layers 0-2) and one vision block per temporal
patch with its timestamp as text (`<1.3 seconds>`, from the clip's sampled frames and rate that prep records).
Its tower takes 16-pixel patches, so frames are prepared at 256 pixels (16 x 16 patches, 64 tokens per frame pair;
`data.frame_size` 0 reads the model's size, and a split prepared at 252 is refused with that fix). 8 kv heads: the
mesh is (data 1, fsdp -1, tensor 4) as for Qwen2-VL-7B.
Check the fit: `seedr1 aot --config configs/grpo_qwen3_vl_8b.py --topology v5p:4x4x2` (docs/performance.md).
Argument "2b": Qwen3-VL-2B-Instruct on one GPU (mesh (1, -1, 1)); "cpu": a local smoke run with a tiny random
Qwen3-VL (the same 16-pixel patches: prep at 256 as above).
"""

from configs import grpo_qwen2vl_7b


def get_config(arg: str | None = None):
    c = grpo_qwen2vl_7b.get_config("cpu" if arg == "cpu" else None)
    c.model.init = {"cpu": "preset:tiny_qwen3_vl", "2b": "preset:qwen3_vl_2b"}.get(arg, "preset:qwen3_vl_8b")
    if arg == "2b":
        c.mesh.shape = (1, -1, 1)  # one GPU
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown variant {arg!r}: use no argument (any TPU slice or GPU host), 2b or cpu")
    return c
