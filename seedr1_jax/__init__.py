"""seedr1-jax: SEED-Bench-R1 GRPO/SFT post-training for Qwen2-VL in JAX/Flax."""

from .config import ModelConfig, from_hf_config, preset
from .qwen2_vl import Qwen2VL

__all__ = ["ModelConfig", "Qwen2VL", "from_hf_config", "preset"]
