"""LoRA adapters out as a PEFT folder (`seedr1 export-hf --adapter-only`): `adapter_config.json` and
`adapter_model.safetensors` with PEFT's key names, which `peft.PeftModel.from_pretrained` loads onto the
transformers model of the base.

PEFT names an adapter by its module's in-memory transformers name: `base_model.model.<module>.lora_A.weight`
[rank, in] and `lora_B.weight` [out, rank], where transformers 5 keeps the decoder under `model.language_model.`
and the vision tower under `model.visual.` (the hub names we read and write drop those: `hf_io.hub_name`). Its
scaling is lora_alpha / r, ours (`lora.scale`)."""

from __future__ import annotations

import json
import os

import numpy as np

from seedr1_jax.core import fs
from seedr1_jax.models.config import ConfigError
from seedr1_jax.models.hf_io import write_safetensors

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


def memory_name(hub: str) -> str:
    """A hub module name -> the transformers-5 in-memory one PEFT keys by (the inverse of `hf_io.hub_name`)."""
    if hub.startswith(("model.language_model.", "model.visual.")):
        return hub
    if hub.startswith("visual."):
        return "model." + hub
    if hub.startswith("model."):
        return "model.language_model." + hub[len("model.") :]
    return hub


def peft_tensors(table, adapters: dict) -> tuple[dict[str, np.ndarray], list[str]]:
    """(PEFT tensors, the adapted module names) for the adapters (the pure-dict `lora.partition` half) of a model
    whose hub name table is `table` (rows of hub name, our path, transform)."""
    flat = {}

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[prefix + k] = np.asarray(v)

    walk(adapters, "")
    tensors, modules, used = {}, [], set()
    for hub, ours, kind in table:
        stem = ours[: -len("kernel")]
        if kind != "linear" or not ours.endswith(".kernel") or stem + "lora_a" not in flat:
            continue
        a, b = flat[stem + "lora_a"], flat[stem + "lora_b"]
        used |= {stem + "lora_a", stem + "lora_b"}
        module = memory_name(hub[: -len(".weight")])
        layers = [(module.format(i=i), a[i], b[i]) for i in range(a.shape[0])] if "{i}" in hub else [(module, a, b)]
        for name, ai, bi in layers:
            tensors[f"base_model.model.{name}.lora_A.weight"] = np.ascontiguousarray(ai.T)  # [in, r] -> [r, in]
            tensors[f"base_model.model.{name}.lora_B.weight"] = np.ascontiguousarray(bi.T)  # [r, out] -> [out, r]
            modules.append(name)
    missing = sorted(set(flat) - used)
    if missing:  # an adapter on a linear the name table does not export: refuse rather than drop it silently
        raise ConfigError(f"adapters on {', '.join(missing)} have no Hugging Face name; export the merged model")
    return tensors, modules


def save_peft(out_dir: str, table, adapters: dict, *, rank: int, alpha: float, base: str, dtype=None) -> int:
    """Writes the PEFT folder; returns how many modules carry an adapter."""
    tensors, modules = peft_tensors(table, adapters)
    if dtype is not None:
        tensors = {k: v.astype(np.dtype(dtype)) for k, v in tensors.items()}
    config = {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": base,
        "r": int(rank),
        "lora_alpha": float(alpha),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "modules_to_save": None,
        "target_modules": modules,  # exact module names: PEFT matches a listed name equal to the module's
        "inference_mode": True,
    }
    with fs.staged_dir(out_dir) as local:  # gs://: written locally, uploaded when complete
        os.makedirs(local, exist_ok=True)
        write_safetensors(os.path.join(local, ADAPTER_WEIGHTS), tensors)
        with open(os.path.join(local, ADAPTER_CONFIG), "w") as f:
            json.dump(config, f, indent=2)
    return len(modules)
