"""seedr1-jax: SEED-Bench-R1 GRPO/SFT post-training for Qwen2-VL in JAX/Flax.

The package is laid out by concern, each folder importing only from its own layer or the layers below
(docs/architecture.md; `tests/test_layout.py` holds the order and enforces it):

    cli.py                       the `seedr1` command
    analysis/, perf/             applications: demo, study, evaluate, attention; aot compile, roofline, validate
    rl/                          algorithms: train loop, update, grpo, sft, rewards, rollout sampler, preflight
    data/                        input pipeline and the typed batches
    models/                      model families (qwen2_vl/), shared layers, configs, processor, HF and orbax I/O
    parallel/, core/             primitives: meshes and sharding rules; file access, platform choice
"""

from seedr1_jax.core.platform import skip_tpu_probe_without_tpu

skip_tpu_probe_without_tpu()  # before any jax backend starts: no libtpu probing on machines without a TPU

from seedr1_jax.core.aliases import install as _install_aliases  # noqa: E402
from seedr1_jax.models import from_pretrained  # noqa: E402
from seedr1_jax.models.config import ModelConfig, from_hf_config, preset  # noqa: E402
from seedr1_jax.models.qwen2_vl import Qwen2VL  # noqa: E402

_install_aliases()  # `from seedr1_jax import sampler` and the other pre-folder module paths keep working

__all__ = ["ModelConfig", "Qwen2VL", "from_hf_config", "from_pretrained", "preset"]
