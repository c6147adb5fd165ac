"""Parity of seedr1_jax.processor with transformers' Qwen2-VL processors and the docs/recipe.md frame sampling."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, Qwen2VLImageProcessorPil, Qwen2VLProcessor, Qwen2VLVideoProcessor

from seedr1_jax.models import processor as P


def _video_processor():
    """transformers' Qwen2-VL video processor with the settings `export-hf` writes (252x252 frames stay 252x252)."""
    from seedr1_jax.models.hf_extras import video_processor_config

    return Qwen2VLVideoProcessor(**video_processor_config())


@pytest.fixture(scope="module")
def ref_tokenizer(tmp_path_factory):
    """An independent transformers Qwen2 tokenizer built from vocab.json + merges.txt with Qwen2-VL's added tokens."""
    d = tmp_path_factory.mktemp("qwen2vl_tok")
    src = P._tokenizer_files()
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(src, f), d)
    with open(os.path.join(src, "tokenizer_config.json")) as f:
        cfg = json.load(f)
    cfg["added_tokens_decoder"] = {k: v for k, v in cfg["added_tokens_decoder"].items() if int(k) <= 151656}
    cfg.pop("chat_template")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    tok = AutoTokenizer.from_pretrained(str(d))
    assert len(tok) == 151657
    return tok


def _frames(rng, n, h=252, w=252):
    return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_image_patches_match_transformers():
    rng = np.random.default_rng(0)
    ip = Qwen2VLImageProcessorPil()
    for img in (_frames(rng, 1)[0], _frames(rng, 1, 56, 84)[0]):
        ours, grid = P.image_patches(img)
        ref = ip(images=[img], return_tensors="np")
        assert np.array_equal(grid[None], ref["image_grid_thw"])
        assert ours.dtype == np.float32 and ours.shape == ref["pixel_values"].shape
        assert np.abs(ours - ref["pixel_values"]).max() <= 1e-5
    assert grid.tolist() == [1, 4, 6] and ours.shape == (24, P.PATCH_DIM)


def test_image_252_grid_and_token_count():
    img = _frames(np.random.default_rng(1), 1)[0]
    ours, grid = P.image_patches(img)
    assert grid.tolist() == [1, 18, 18] and ours.shape == (324, 1176)
    ref = Qwen2VLImageProcessorPil()(images=[img], return_tensors="np")
    assert np.abs(ours - ref["pixel_values"]).max() <= 1e-5


@pytest.mark.parametrize("n", [2, 4, 16])
def test_video_patches_match_transformers_video_layout(n):
    """Normalisation from the image processor (per frame), layout from transformers' video `patchify` itself, and
    the same pixels from transformers' whole `Qwen2VLVideoProcessor`."""
    ip = Qwen2VLImageProcessorPil()
    frames = _frames(np.random.default_rng(n), n)
    ours, grid = P.video_patches(frames)
    chw = np.stack(
        [
            ip.normalize(ip.rescale(f.transpose(2, 0, 1).astype(np.float32), 1 / 255), ip.image_mean, ip.image_std)
            for f in frames
        ]
    )
    ref, gt, gh, gw = Qwen2VLVideoProcessor.patchify(
        None, torch.from_numpy(chw[None]), patch_size=14, merge_size=2, temporal_patch_size=2
    )
    assert grid.tolist() == [gt, gh, gw] == [n // 2, 18, 18]
    assert np.abs(ours - ref[0].numpy()).max() <= 1e-5
    # and transformers' whole video processor, set up by the config export-hf writes
    full = _video_processor()(videos=[frames], return_tensors="np")
    assert full["video_grid_thw"].tolist() == [grid.tolist()]
    assert np.abs(ours - np.asarray(full["pixel_values_videos"])).max() <= 1e-5


def test_patch_16_video_patches_match_transformers_qwen3_vl_video_processor():
    """The released Qwen3-VL geometry (256-pixel frames in 16-pixel patches, mean/std 0.5): our patches equal
    transformers' Qwen3-VL video processor's on frames already at 256 pixels (it keeps them: a multiple of 32)."""
    from transformers import Qwen3VLVideoProcessor

    frames = np.random.default_rng(7).integers(0, 256, size=(4, 256, 256, 3), dtype=np.uint8)
    from seedr1_jax.models.config import preset

    geom = P.geometry(preset("qwen3_vl_8b").vision)
    ours, grid = P.video_patches(frames, "qwen3_vl", geom)
    vp = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2)
    full = vp(videos=[frames], return_tensors="np", do_sample_frames=False)
    assert grid.tolist() == full["video_grid_thw"].tolist()[0] == [2, 16, 16]
    assert ours.shape == (2 * 256, 1536)
    assert np.abs(ours - np.asarray(full["pixel_values_videos"])).max() <= 1e-5


def test_resize_is_pil_bicubic_to_252():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(120, 200, 3), dtype=np.uint8)
    out = P.resize(img)
    assert out.shape == (252, 252, 3) and out.dtype == np.uint8
    from PIL import Image

    assert np.array_equal(out, np.asarray(Image.fromarray(img).resize((252, 252), Image.Resampling.BICUBIC)))


# (total_frames, fps) -> expected indices by the docs/recipe.md formula, computed by hand
FRAME_CASES = [
    (3, 30.0, [0, 2]),  # shorter than 4 frames: clamped to total, rounded down to even
    (2, 30.0, [0, 1]),
    (10, 30.0, [0, 3, 6, 9]),  # 0.33 s: 4 frames minimum
    (45, 30.0, [0, 15, 29, 44]),  # 1.5 s -> 3 -> 4
    (60, 30.0, [0, 20, 39, 59]),  # 2 s -> 4
    (75, 25.0, [0, 15, 30, 44, 59, 74]),  # 3 s -> 6 (linspace 14.8 -> 15, 44.4 -> 44)
    (120, 24.0, [0, 13, 26, 40, 53, 66, 79, 93, 106, 119]),  # 5 s -> 10
    (150, 30.0, [0, 17, 33, 50, 66, 83, 99, 116, 132, 149]),  # 5 s -> 10
    (270, 30.0, [0, 18, 36, 54, 72, 90, 108, 126, 143, 161, 179, 197, 215, 233, 251, 269]),  # 9 s -> 18 -> 16
    (6, 30.0, [0, 2, 3, 5]),
    (900, 30.0, None),  # 30 s -> 60 -> 16 (checked against the formula below)
    (9, 2.0, [0, 1, 2, 3, 5, 6, 7, 8]),  # 4.5 s at 2 fps -> 9 -> 8
    (7, 1.0, [0, 1, 2, 4, 5, 6]),  # fewer frames than 2 fps would want: 14 -> 7 -> 6
]


@pytest.mark.parametrize("total,fps,expected", FRAME_CASES)
def test_frame_indices_table(total, fps, expected):
    got = P.frame_indices(total, fps)
    n = min(max(total / fps * 2, 4), 16, total)
    n = int(n // 2 * 2)
    formula = np.round(np.linspace(0, total - 1, n)).astype(int)
    assert got.tolist() == formula.tolist()
    assert len(got) % 2 == 0 and 2 <= len(got) <= 16 and got[0] == 0 and got[-1] == total - 1
    if expected:
        assert got.tolist() == expected


def test_frame_indices_long_clip_gives_16():
    got = P.frame_indices(900, 30.0)
    assert len(got) == 16 and got[0] == 0 and got[-1] == 899
    assert got[1] == 60  # 899 / 15 = 59.93 -> 60


@pytest.mark.parametrize("total,fps", [(0, 30.0), (1, 30.0), (10, 0.0), (10, float("nan"))])
def test_frame_indices_rejects_degenerate_clips(total, fps):
    with pytest.raises(ValueError):
        P.frame_indices(total, fps)


def _reference_ids(ref_tok, text, image=None, frames=None):
    """transformers: apply_chat_template text -> Qwen2VLProcessor (image processor + pad expansion + tokenizer)."""
    proc = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(),
        tokenizer=ref_tok,
        video_processor=_video_processor(),
        chat_template=P.chat_template(),
    )
    msgs = P.messages(text, frames is not None, image is not None)
    rendered = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    out = proc(
        text=[rendered],
        images=None if image is None else [image],
        videos=None if frames is None else [frames],
        return_tensors="np",
    )
    return out["input_ids"][0], rendered


@pytest.mark.parametrize("with_video", [True, False])
def test_prompt_token_parity(ref_tokenizer, with_video):
    rng = np.random.default_rng(7)
    image = _frames(rng, 1)[0]
    frames = _frames(rng, 16) if with_video else None
    question = (
        "Considering the progress shown in the video and my current observation in the last frame, what action "
        "should I take next in order to wash the dishes?"
        if with_video
        else "Considering my current observation shown in the image, what action should I take next in order to "
        "cook rice?"
    )
    options = ["put <think> plate in sink", "open fridge", "take knife ", "wash  hands\u00e9"]
    text = P.question_text(question, options)
    ref_ids, ref_text = _reference_ids(ref_tokenizer, text, image=image, frames=frames)
    tok = P.load_tokenizer()
    vgrid = None if frames is None else P.video_patches(frames)[1]
    ids, rendered = P.prompt_ids(tok, question, options, video_grid=vgrid, image_grid=P.image_patches(image)[1])
    assert rendered == ref_text
    assert rendered.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert rendered.endswith(P.INSTRUCTION + "<|im_end|>\n<|im_start|>assistant\n")
    assert ids.dtype == np.int32
    assert ids.tolist() == ref_ids.tolist()
    assert (ids == P.VIDEO_PAD_ID).sum() == (648 if with_video else 0)
    assert (ids == P.IMAGE_PAD_ID).sum() == 81
    assert 151667 not in ids.tolist()  # "<think>" is BPE text for Qwen2-VL, not a Qwen3 added token
    assert 850 <= len(ids) <= 900 if with_video else 150 <= len(ids) <= 260


def test_tokenizer_decodes_for_rewards():
    tok = P.load_tokenizer()
    ids = P.encode(tok, "<think> x </think><answer>B</answer><|im_end|>")
    assert ids[-1] == P.IM_END_ID
    assert tok.batch_decode([ids], skip_special_tokens=True)[0] == "<think> x </think><answer>B</answer>"
    assert tok.pad_token_id == P.PAD_ID and tok.eos_token_id == P.IM_END_ID
