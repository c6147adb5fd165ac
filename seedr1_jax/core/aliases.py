"""The module paths of the flat layout (before the package was laid out in folders), kept as aliases: importing
`seedr1_jax.sampler` returns `seedr1_jax.rl.sampler` itself (the same module object) with one
DeprecationWarning naming the new path."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {  # old module under seedr1_jax -> its new path under seedr1_jax
    "fs": "core.fs",
    "sharding": "parallel.sharding",
    "config": "models.config",
    "layers": "models.layers",
    "processor": "models.processor",
    "hf_io": "models.hf_io",
    "hf_extras": "models.hf_extras",
    "checkpoint": "models.checkpoint",
    "vision": "models.qwen2_vl.vision",
    "llm": "models.qwen2_vl.llm",
    "qwen2_vl": "models.qwen2_vl.model",
    "batch": "data.batch",
    "grpo": "rl.grpo",
    "sft": "rl.sft",
    "rewards": "rl.rewards",
    "sampler": "rl.sampler",
    "update": "rl.update",
    "train": "rl.train",
    "metrics": "rl.metrics",
    "preflight": "rl.preflight",
    "aot": "perf.aot",
    "roofline": "perf.roofline",
    "validate": "perf.validate",
    "evaluate": "analysis.evaluate",
    "study": "analysis.study",
    "demo": "analysis.demo",
    "attention": "analysis.attention",
    "attention_figures": "analysis.attention_figures",
}
PACKAGE = "seedr1_jax"


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        pkg, _, name = fullname.rpartition(".")
        if pkg != PACKAGE or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = f"{PACKAGE}.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # the target module is already executed


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
