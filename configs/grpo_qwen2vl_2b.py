"""GRPO on SEED-Bench-R1 with Qwen2-VL-2B-Instruct: the reference recipe (docs/recipe.md section 5) on a model
that fits one 80 GB GPU (fp32 master weights and Adam: 16 bytes x 2.2 B parameters, plus the bf16 reference).

    seedr1 import-hf --hf-dir Qwen2-VL-2B-Instruct --out ckpt/qwen2vl2b
    seedr1 train --config configs/grpo_qwen2vl_2b.py --workdir runs/grpo2b \
        --config.model.init=ckpt/qwen2vl2b --config.data.tfrecord_dir=data/tfr

Check the fit and the predicted step time first:
`seedr1 aot --config configs/grpo_qwen2vl_2b.py --topology v5p:2x2x1 --devices 1 --chip h100` (one GPU) or
`--topology v5e:4x4` (v5e-16). Argument "cpu": a local smoke run with a tiny random model.
"""

from configs.grpo_qwen2vl_7b import get_config as _get_7b_config


def get_config(arg: str | None = None):
    c = _get_7b_config(arg)
    if arg is None:
        c.model.init = "preset:qwen2_vl_2b"
        # one GPU; on a slice `--config.mesh.shape="(2,-1,2)"` (2 kv heads; `seedr1 aot --search` on v5e-16: 1.20 s
        # per step predicted, against 3.99 s for fsdp only)
        c.mesh.shape = (1, -1, 1)
    return c
