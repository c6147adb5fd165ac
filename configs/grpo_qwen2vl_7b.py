"""GRPO on SEED-Bench-R1 with Qwen2-VL-7B-Instruct: the reference recipe (docs/recipe.md section 5).

    seedr1 import-hf --hf-dir Qwen2-VL-7B-Instruct --out ckpt/qwen2vl7b
    seedr1 prep --data-root DATA_ROOT --split train --out data/tfr
    seedr1 train --config configs/grpo_qwen2vl_7b.py --workdir gs://BUCKET/runs/grpo7b \
        --config.model.init=ckpt/qwen2vl7b --config.data.tfrecord_dir=data/tfr

The default mesh is (data 1, fsdp -1, tensor 4): parameters and Adam state are sharded over every device, and
the 4-way tensor axis (one per kv head) lets each chip stream only a quarter of the bf16 weights per decoded
token and splits the 8 prompts without replicating their pass (predicted on v5p-64: step 2.49 s with fsdp
only -> 0.62 s; docs/performance.md, "What the predictor showed"). Check the fit and the speed first:
`seedr1 aot --config configs/grpo_qwen2vl_7b.py --topology v5p:4x4x2` (`--search` ranks other meshes); change
`--config.mesh.shape` for other layouts. On 16-64 chips `--search` found a data axis of 2-4 faster where memory
allows (predicted: v5p-64 (4, 2, 4) 0.58 s vs 0.62 s; v5e-64 (2, 8, 4) 2.44 vs 3.01 s; v6e-64 (4, 4, 4) 0.94 vs
1.17 s; docs/performance.md, "--search per slice"), e.g. `--config.mesh.shape="(2,-1,4)"`.
Argument "cpu": a local smoke run with a tiny random model. "lora": one GPU (docs/gpu.md, "LoRA"): rank-64 adapters
on the language model's projections (alpha 128, lr 1e-5), the frozen base in bf16 and the reference = the base with
the adapters off; "qlora": the same on an nf4 base (`model.lora.base_quant`). Check the fit first:
`seedr1 aot --config configs/grpo_qwen2vl_7b.py:lora --topology v5p:2x2x1 --devices 1 --chip h100`.
"""

from configs.common import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.mesh.shape = (1, -1, 4)  # tensor 4 = the 7B's kv heads (docstring)
    if arg == "cpu":
        c.mesh.shape = (1, -1, 1)  # the tiny model has 2 kv heads
        c.model.init = "preset:tiny"
        c.model.dtype = "float32"
        c.grpo.max_new_tokens = 16
        c.grpo.group_size = 4
        c.data.batch_size = 2
        c.train.num_steps = 4
    elif arg in ("lora", "qlora"):
        c.mesh.shape = (1, 1, 1)  # one device
        c.model.lora.rank, c.model.lora.alpha = 64, 128.0
        c.model.lora.base_dtype = "bfloat16"
        c.model.lora.base_quant = "nf4" if arg == "qlora" else ""
        c.optim.lr = 1e-5  # adapters take a larger step than the full model's 1e-6 (not tuned at 7B)
    elif arg:
        raise ValueError(f"unknown variant {arg!r}: use no argument (any TPU slice or GPU host), cpu, lora or qlora")
    return c
