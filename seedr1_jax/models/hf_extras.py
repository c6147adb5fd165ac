"""The non-weight files of a Hugging Face Qwen2-VL folder: tokenizer, chat template, processor and generation configs.

`import-hf` keeps the source folder's copies (`copy_extras`); export writes them back, or, for a model that never
had any (random init, a folder without them), writes them from the bundled tokenizer and chat template with the
SEED-Bench-R1 settings (`write_extras`), so `AutoProcessor.from_pretrained` and `generate` work on the export.
"""

from __future__ import annotations

import json
import os

from seedr1_jax.core import fs
from seedr1_jax.models import processor as P

# Weights and the model config are written by hf_io; everything else small and textual travels with the model.
_WEIGHT_FILES = ("config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_EXTRA_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".tiktoken")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # either one means the folder has its own tokenizer

# SEED-Bench-R1 resizes every frame and image to 252x252 (256 requested, docs/recipe.md section 2): at most 256*256
# pixels keeps a 252x252 input at an 18x18 patch grid (81 merged tokens) and bounds any other input near it; at least
# 2 x 2 merged tokens (56 x 56 pixels at patch 14).
MAX_PIXELS = 256 * 256


def extra_files(folder: str) -> list[str]:
    """Names of the non-weight files in an HF model folder (tokenizer, templates, processor/generation configs)."""
    if not folder or not fs.isdir(folder):
        return []
    return [
        f
        for f in fs.listdir(folder)
        if f.endswith(_EXTRA_SUFFIXES) and f not in _WEIGHT_FILES and not f.startswith(".")
    ]


def copy_extras(src: str, dst: str) -> list[str]:
    """Copies `src`'s non-weight files into `dst` (created); returns their names."""
    names = extra_files(src)
    if names:
        fs.makedirs(dst)
    for f in names:
        fs.copy(os.path.join(src, f), os.path.join(dst, f))
    return names


# per family: (processor class, video processor class), as the released checkpoints' folders name them
_PROCESSORS = {
    "qwen2_vl": ("Qwen2VLProcessor", "Qwen2VLVideoProcessor"),
    "qwen2_5_vl": ("Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"),
    "qwen3_vl": ("Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
}


def image_processor_config(cfg=None) -> dict:
    """preprocessor_config.json: transformers' Qwen2-VL image processor (which every family uses) with the
    SEED-Bench-R1 pixel budget, for the family and patch size of `cfg` (a ModelConfig; default Qwen2-VL's)."""
    family, patch, temporal, merge = "qwen2_vl", P.PATCH, P.TEMPORAL_PATCH, P.MERGE
    if cfg is not None:
        v = cfg.vision
        family, patch, temporal, merge = cfg.family, v.patch_size, v.temporal_patch_size, v.spatial_merge_size
    processor = _PROCESSORS[family][0]
    mean, std = (x.tolist() for x in P.pixel_norm(family))
    side = patch * merge  # the budget of 256 x 256 pixels, at the family's patch grid
    return {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": processor,
        "do_resize": True,
        "resample": 3,  # bicubic
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": mean,
        "image_std": std,
        "do_convert_rgb": True,
        "min_pixels": 2 * side * 2 * side,
        "max_pixels": MAX_PIXELS,
        "size": {"shortest_edge": 2 * side * 2 * side, "longest_edge": MAX_PIXELS},
        "patch_size": patch,
        "temporal_patch_size": temporal,
        "merge_size": merge,
    }


def video_processor_config(cfg=None) -> dict:
    """video_preprocessor_config.json: the family's video processor (transformers >= 4.54 loads it separately).

    Frame sampling (2 fps, 4..16 frames) is configured but off: callers pass already-sampled frames, as the
    reference does with qwen-vl-utils.
    """
    out = image_processor_config(cfg)
    out.pop("image_processor_type")
    out.update(
        video_processor_type=_PROCESSORS["qwen2_vl" if cfg is None else cfg.family][1],
        do_sample_frames=False,
        fps=2.0,
        min_frames=4,
        max_frames=16,
    )
    return out


def generation_config() -> dict:
    """generation_config.json: the evaluation decoding (greedy, repetition penalty 1.05, docs/recipe.md
    section 7) with Qwen2-VL's special ids (stop at <|im_end|> or <|endoftext|>, pad with <|endoftext|>)."""
    return {
        "bos_token_id": P.PAD_ID,
        "pad_token_id": P.PAD_ID,
        "eos_token_id": [P.IM_END_ID, P.PAD_ID],
        "do_sample": False,
        "repetition_penalty": 1.05,
        "max_new_tokens": 256,
    }


def _template_in_tokenizer(folder: str) -> bool:
    """Whether tokenizer_config.json carries the chat template itself (the transformers 4.x layout)."""
    path = os.path.join(folder, "tokenizer_config.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return bool(json.load(f).get("chat_template"))


def write_extras(out_dir: str, source: str | None = None, model_cfg=None) -> list[str]:
    """Writes the non-weight files into `out_dir`: `source`'s copies where it has them, the bundled defaults for
    whatever is missing (processor configs for `model_cfg`'s family, a ModelConfig; Qwen2-VL's without). Returns the
    names written."""
    os.makedirs(out_dir, exist_ok=True)
    written = copy_extras(source, out_dir) if source else []
    have = set(written)
    if not have & set(TOKENIZER_FILES):
        tok = P.load_tokenizer()
        tok.model_max_length = 32768
        written += [os.path.basename(f) for f in tok.save_pretrained(out_dir)]
        have = set(written)
        path = os.path.join(out_dir, "tokenizer_config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["tokenizer_class"] = "Qwen2Tokenizer"  # as Qwen2-VL's own (loads in transformers 4.x and vLLM)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
    if "chat_template.jinja" not in have and "chat_template.json" not in have and not _template_in_tokenizer(out_dir):
        with open(os.path.join(out_dir, "chat_template.jinja"), "w") as f:
            f.write(P.chat_template())
        written.append("chat_template.jinja")
    defaults = {
        "preprocessor_config.json": lambda: image_processor_config(model_cfg),
        "video_preprocessor_config.json": lambda: video_processor_config(model_cfg),
        "generation_config.json": generation_config,
    }
    for name, make in defaults.items():
        if name not in have:
            with open(os.path.join(out_dir, name), "w") as f:
                json.dump(make(), f, indent=2)
            written.append(name)
    return sorted(set(written))
