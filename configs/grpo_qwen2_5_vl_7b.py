"""GRPO on SEED-Bench-R1 with Qwen2.5-VL-7B-Instruct (the model of the authors' follow-up, GRPO-CARE): the
reference recipe of configs/grpo_qwen2vl_7b.py on the newer family.

    seedr1 import-hf --hf-dir Qwen2.5-VL-7B-Instruct --out ckpt/qwen2_5vl7b
    seedr1 prep --data-root DATA_ROOT --split train --out data/tfr
    seedr1 train --config configs/grpo_qwen2_5_vl_7b.py --workdir gs://BUCKET/runs/grpo25_7b \
        --config.model.init=ckpt/qwen2_5vl7b --config.data.tfrecord_dir=data/tfr

What differs from Qwen2-VL is inside the model and read from its config.json: the vision tower attends 112-pixel
windows (blocks 7/15/23/31 the whole frame) with RMSNorm and SwiGLU, and M-RoPE places each video's temporal
patches at absolute time (the prep records carry each clip's frame rate; `second_per_grid_ts`). The decoder is
Qwen2-VL-7B's (28 layers, 4 kv heads), so the mesh is the same: (data 1, fsdp -1, tensor 4). Check the fit:
`seedr1 aot --config configs/grpo_qwen2_5_vl_7b.py --topology v5p:4x4x2` (docs/performance.md has the rows).
Argument "3b": Qwen2.5-VL-3B-Instruct on one GPU (mesh (1, -1, 1); 16 bytes x 3.75 B parameters of master weights and
Adam); "cpu": a local smoke run with a tiny random Qwen2.5-VL.
"""

from configs import grpo_qwen2vl_7b


def get_config(arg: str | None = None):
    c = grpo_qwen2vl_7b.get_config("cpu" if arg == "cpu" else None)
    c.model.init = {"cpu": "preset:tiny_qwen2_5_vl", "3b": "preset:qwen2_5_vl_3b"}.get(arg, "preset:qwen2_5_vl_7b")
    if arg == "3b":
        c.mesh.shape = (1, -1, 1)  # 2 kv heads; one GPU
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown variant {arg!r}: use no argument (any TPU slice or GPU host), 3b or cpu")
    return c
