"""seedr1-jax: SEED-Bench-R1 GRPO/SFT post-training for Qwen2-VL in JAX/Flax."""

from .preflight import skip_tpu_probe_without_tpu

skip_tpu_probe_without_tpu()  # before any jax backend starts: no libtpu probing on machines without a TPU

from .config import ModelConfig, from_hf_config, preset  # noqa: E402
from .qwen2_vl import Qwen2VL  # noqa: E402

__all__ = ["ModelConfig", "Qwen2VL", "from_hf_config", "preset"]
