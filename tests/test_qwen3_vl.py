"""Qwen3-VL: logits, vision tower (learned position table, DeepStack), interleaved M-RoPE with per-frame video blocks,
HF round trip and greedy decoding equal transformers' `Qwen3VLForConditionalGeneration` on tiny random models (fp32)."""

import json

import jax
import numpy as np
import pytest
import torch
from hf_utils import Prompt, batch, hf_config, hf_logits, per_sample_batch, save_hf_model, torch_inputs

import seedr1_jax
from seedr1_jax.models.config import ConfigError, TextConfig, from_hf_config, preset, to_hf_config
from seedr1_jax.models.hf_io import _open_checkpoint
from seedr1_jax.models.qwen2_vl.llm import mrope_axes
from seedr1_jax.models.qwen2_vl.model import Qwen2VL, get_rope_index, param_count, prepare_inputs
from seedr1_jax.models.qwen3_vl import Qwen3VL
from seedr1_jax.rl import sampler

TOL = 1e-4


@pytest.fixture(scope="module", params=["a3", "b3"])
def pair(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"hf_{request.param}")
    hf = save_hf_model(request.param, d, seed=1)
    model = seedr1_jax.from_pretrained(str(d), dtype="float32")
    assert type(model) is Qwen3VL and model.cfg.family == "qwen3_vl"
    return hf, model, d, request.param


def _cases(cfg, rng):
    P = lambda: Prompt(cfg, rng)  # noqa: E731
    p = 16 if cfg.vision_config.patch_size == 16 else 18  # a 252 / 256-pixel frame's patch grid
    return {
        "text": [P().text(12)],
        "image": [P().text(5).image(4, 6).text(7)],
        "two_images": [P().text(2).image(4, 4).text(3).image(10, 8).text(2)],
        "video": [P().text(3).video(4, 8, 8).text(4)],
        "seed_layout": [P().text(4).video(4, p, p).image(p, p).text(9)],
        # temporal grid 6 > merged spatial grid 2 x 2
        "padded_long_video": [P().text(3).image(4, 4).text(9), P().text(2).video(6, 4, 4).text(5).image(6, 4).text(3)],
    }


CASES = ["text", "image", "two_images", "video", "seed_layout", "padded_long_video"]


@pytest.mark.parametrize("case", CASES)
def test_logits_match_transformers(pair, case):
    """Each model computes its own positions (transformers agrees with the original algorithm for Qwen3-VL: every
    vision block has one temporal slice)."""
    hf, ours, _, _ = pair
    prompts = _cases(hf.config, np.random.default_rng(7))[case]
    for left_pad in (True, False) if case.startswith("padded") else (True,):
        inputs = batch(hf.config, prompts, left_pad=left_pad)
        ref = hf_logits(hf, inputs)
        got = np.asarray(ours(**inputs))
        keep = inputs["attention_mask"].astype(bool)
        err = np.abs(got[keep] - ref[keep]).max()
        assert got.shape == ref.shape and err <= TOL, f"{case} (left_pad={left_pad}): max abs diff {err}"


def test_vision_tower_and_deepstack_match_transformers(pair):
    """Merged features and every DeepStack feature, on grids of other sizes than the position table (resized)."""
    hf, ours, _, _ = pair
    p = Prompt(hf.config, np.random.default_rng(3)).image(4, 4).image(18, 14).video(2, 6, 10)
    grids = np.array(p.image_grids + p.video_grids)
    with torch.no_grad():
        ref = hf.model.visual(torch.from_numpy(np.concatenate(p.images + p.videos)), grid_thw=torch.from_numpy(grids))
    inputs = prepare_inputs(
        ours.cfg,
        p.ids,
        pixel_values=np.concatenate(p.images),
        image_grid_thw=p.image_grids,
        pixel_values_videos=np.concatenate(p.videos),
        video_grid_thw=p.video_grids,
    )
    main, deep = ours.visual.features(inputs["pixels"], inputs["hw_pos"], inputs["valid"])
    rows = inputs["vision_index"][0][inputs["vision_index"][0] >= 0]  # images then videos, as transformers' call
    flat = lambda f: np.asarray(f).reshape(-1, f.shape[-1])[rows]  # noqa: E731
    assert np.abs(flat(main) - ref.pooler_output.numpy()).max() <= TOL
    assert deep.shape[0] == len(ref.deepstack_features) == len(set(ours.cfg.vision.deepstack_visual_indexes))
    for k, r in enumerate(ref.deepstack_features):
        assert np.abs(flat(deep[k]) - r.numpy()).max() <= TOL
    # the position table matters: zeroing it changes the features
    saved = ours.visual.pos_embed.embedding.value
    ours.visual.pos_embed.embedding.value = jax.numpy.zeros_like(saved)
    try:
        other, _ = ours.visual.features(inputs["pixels"], inputs["hw_pos"], inputs["valid"])
    finally:
        ours.visual.pos_embed.embedding.value = saved
    assert np.abs(np.asarray(other) - np.asarray(main)).max() > 1e-3


def test_deepstack_feeds_the_first_decoder_layers(pair):
    """Without the DeepStack features the logits change (so the parity above exercises them), and only at and after
    the first vision token."""
    hf, ours, _, _ = pair
    inputs = batch(hf.config, [Prompt(hf.config, np.random.default_rng(2)).text(4).image(4, 4).text(5)])
    fwd = prepare_inputs(ours.cfg, **inputs)
    x, deep = ours.embed(fwd["input_ids"], fwd["pixels"], fwd["hw_pos"], fwd.get("valid"), fwd["vision_index"])
    t = fwd["input_ids"].shape[1]
    mask = np.tril(np.ones((t, t), bool))[None]
    with_ds, _ = ours.model(x, fwd["positions"], mask, deepstack=deep)
    without, _ = ours.model(x, fwd["positions"], mask)
    diff = np.abs(np.asarray(with_ds) - np.asarray(without)).max(-1)[0]
    first = int(np.argmax(fwd["vision_index"][0] >= 0))
    assert diff[:first].max() == 0 and diff[first:].max() > 1e-4


def test_rope_index_matches_transformers(pair):
    hf, ours, _, _ = pair
    rng = np.random.default_rng(5)
    prompts = [
        Prompt(hf.config, rng).text(3).video(3, 12, 12).image(4, 6).text(5),
        Prompt(hf.config, rng).text(2).video(6, 4, 4).text(3),
        Prompt(hf.config, rng).text(9),
    ]
    inputs = batch(hf.config, prompts)
    t = torch_inputs(hf.config, inputs)
    ref, ref_d = hf.model.get_rope_index(
        t["input_ids"],
        t["mm_token_type_ids"],
        image_grid_thw=t["image_grid_thw"],
        video_grid_thw=t["video_grid_thw"],
        attention_mask=t["attention_mask"],
    )
    got, got_d = get_rope_index(
        ours.cfg, inputs["input_ids"], inputs["attention_mask"], inputs["image_grid_thw"], inputs["video_grid_thw"]
    )
    keep = inputs["attention_mask"].astype(bool)
    np.testing.assert_array_equal(got[:, keep], ref.numpy()[:, keep])
    pad = keep.shape[1] - keep.sum(1)
    np.testing.assert_array_equal(got_d, ref_d.numpy()[:, 0] - pad)


def test_video_blocks_are_one_per_temporal_patch():
    """A 3-slice video is three blocks with timestamp text between; each block restarts time at its own offset
    (the frame's order is carried by the text positions), and a single 3-slice block is refused as too few grids."""
    cfg = from_hf_config(hf_config("a3").to_dict())
    vs, ve, pad = cfg.vision_start_token_id, cfg.vision_end_token_id, cfg.video_token_id
    block = [vs] + [pad] * 4 + [ve]
    ids = [7] + [5, 6] + block + [5, 6] + block + [5, 6] + block + [9]
    pos, _ = get_rope_index(cfg, np.array([ids]), None, None, [[3, 4, 4]])
    starts = [i + 1 for i, tok in enumerate(ids) if tok == vs]
    for s in starts:
        base = pos[0, 0, s]
        np.testing.assert_array_equal(pos[0, 0, s : s + 4], [base] * 4)  # one temporal index per block
        np.testing.assert_array_equal(pos[1, 0, s : s + 4] - base, [0, 0, 1, 1])
        np.testing.assert_array_equal(pos[2, 0, s : s + 4] - base, [0, 1, 0, 1])
        assert pos[0, 0, s + 4] == base + 2  # vision_end: max + 1
    with pytest.raises(ConfigError, match="more vision blocks"):
        get_rope_index(cfg, np.array([ids]), None, None, [[2, 4, 4]])


def test_interleaved_mrope_axes():
    """Frequency j rotates by h when j % 3 == 1 and j < 3 * section_h, by w when j % 3 == 2 and j < 3 * section_w,
    else by t (transformers' Qwen3-VL `recomposition_frequencies`); the Qwen2 families keep contiguous sections."""
    t = TextConfig(hidden_size=4096, num_heads=32, head_size=128, mrope_section=(24, 20, 20), mrope_interleaved=True)
    axes = mrope_axes(t)
    assert len(axes) == 64 and axes[:9].tolist() == [0, 1, 2] * 3 and axes[60:].tolist() == [0, 0, 0, 0]
    assert (axes == 1).sum() == 20 and (axes == 2).sum() == 20
    assert mrope_axes(TextConfig(mrope_section=(16, 24, 24))).tolist() == [0] * 16 + [1] * 24 + [2] * 24


def test_round_trip_bit_exact_and_transformers_reloads(pair, tmp_path):
    hf, ours, fp32_dir, name = pair
    bf16_dir = tmp_path / "bf16_src"
    save_hf_model(name, bf16_dir, seed=3, dtype=torch.bfloat16)
    for dtype, src_dir in (("float32", fp32_dir), ("bfloat16", bf16_dir)):
        out = tmp_path / dtype
        model = seedr1_jax.from_pretrained(str(src_dir))
        assert model.model.embed_tokens.embedding.value.dtype == jax.numpy.dtype(dtype)
        model.save_pretrained(str(out))
        src, dst = _tensors(src_dir), _tensors(out)
        assert sorted(src) == sorted(dst)
        for k in src:
            assert dst[k].dtype == src[k].dtype and dst[k].tobytes() == src[k].tobytes(), k
    from seedr1_jax.models.hf_io import SafetensorsFile

    names = SafetensorsFile(str(tmp_path / "float32" / "model.safetensors")).header
    assert all(n.startswith(("model.visual.", "model.language_model.", "lm_head.")) for n in names)  # hub names
    config = json.loads((tmp_path / "float32" / "config.json").read_text())
    assert config["model_type"] == "qwen3_vl" and config["architectures"] == ["Qwen3VLForConditionalGeneration"]
    assert config["text_config"]["head_dim"] == ours.cfg.text.head_dim
    from transformers import AutoModelForImageTextToText, AutoProcessor

    back = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "float32")).eval()
    assert type(back).__name__ == "Qwen3VLForConditionalGeneration"
    inputs = batch(hf.config, [Prompt(hf.config, np.random.default_rng(1)).text(4).image(4, 4).text(3)])
    with torch.no_grad():
        a = hf(**torch_inputs(hf.config, inputs)).logits
        b = back(**torch_inputs(hf.config, inputs)).logits
    assert torch.equal(a, b)
    proc = AutoProcessor.from_pretrained(str(tmp_path / "float32"))
    assert type(proc).__name__ == "Qwen3VLProcessor"
    assert proc.image_processor.patch_size == hf.config.vision_config.patch_size


def _tensors(folder) -> dict:
    """Every tensor of a folder's safetensors files, under the names stored."""
    files = {st for st in _open_checkpoint(str(folder)).values()}
    return {k: st.get(k) for st in files for k in st.keys()}


def test_greedy_generate_equals_transformers(pair):
    hf, ours, _, _ = pair
    hf.generation_config.eos_token_id = None
    rng = np.random.default_rng(11)
    for p in [
        Prompt(hf.config, rng).text(3).image(4, 4).text(4),
        Prompt(hf.config, rng).text(5).video(2, 4, 4).text(2),
    ]:
        out = sampler.greedy(ours, per_sample_batch(ours.cfg, [p]), max_new_tokens=8, stop_ids=())
        inp = torch_inputs(hf.config, batch(hf.config, [p]))
        ref = hf.generate(**inp, do_sample=False, max_new_tokens=8)[0, inp["input_ids"].shape[1] :]
        assert np.asarray(out["tokens"])[0].tolist() == ref.tolist()


def test_family_is_read_from_config_and_classes_refuse_the_other_family(pair):
    _, ours, d, _ = pair
    with pytest.raises(ConfigError, match="qwen3_vl"):
        Qwen2VL.from_pretrained(str(d))
    assert seedr1_jax.models.model_class(ours.cfg) is Qwen3VL


def test_import_hf_refuses_a_checkpoint_whose_shapes_do_not_match_its_config(pair, tmp_path, capsys):
    import shutil

    from seedr1_jax import cli

    _, _, src, _ = pair
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    config = json.loads((bad / "config.json").read_text())
    config["vision_config"]["num_position_embeddings"] = 49
    (bad / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    assert cli.main(["import-hf", "--hf-dir", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pos_embed.weight" in err and "config.json implies" in err and not out.exists()


def test_presets_and_config_round_trip():
    """Each preset's config.json goes out and back in unchanged, and its parameter count is transformers' for the same
    config.json (2B / 4B / 8B as released)."""
    from flax import nnx
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    counts = {}
    for name in ("qwen3_vl_2b", "qwen3_vl_4b", "qwen3_vl_8b", "tiny_qwen3_vl"):
        cfg = preset(name)
        hf = to_hf_config(cfg)
        assert from_hf_config(hf) == cfg
        with torch.device("meta"):
            ref = Qwen3VLForConditionalGeneration(Qwen3VLConfig(**hf))
        n_ref = sum(p.numel() for p in ref.parameters())  # tied weights are one parameter
        counts[name] = param_count(seedr1_jax.models.abstract_model(cfg))
        assert counts[name] == n_ref, name
    assert [round(counts[n] / 1e9, 2) for n in ("qwen3_vl_2b", "qwen3_vl_4b", "qwen3_vl_8b")] == [2.13, 4.44, 8.77]
    assert nnx is not None


def test_patch_16_models_read_256_pixel_frames():
    """A released Qwen3-VL config (16-pixel patches) reads 256-pixel frames (the side its processor snaps a
    252-pixel frame to) in 16 x 16 patches, in `seedr1 aot`'s batch as in the pipeline (tests/test_data.py)."""
    from seedr1_jax import data
    from seedr1_jax.models.processor import frame_grid, geometry

    cfg = preset("qwen3_vl_8b")
    assert geometry(cfg.vision) == (256, 16, 2, 2) and geometry(preset("qwen2_vl_7b").vision).size == 252
    assert frame_grid(16, 2) == 16 and frame_grid(14, 2) == 18
    b = data.make_batch("q?", ["a", "b"], image=np.zeros((300, 200, 3), np.uint8), model_cfg=cfg)
    assert b["pixels"].shape[2:] == (256, 1536)


def test_recipe_config_variants():
    from configs import grpo_qwen3_vl_8b

    assert grpo_qwen3_vl_8b.get_config().model.init == "preset:qwen3_vl_8b"
    two = grpo_qwen3_vl_8b.get_config("2b")
    assert two.model.init == "preset:qwen3_vl_2b" and tuple(two.mesh.shape) == (1, -1, 1)
    assert grpo_qwen3_vl_8b.get_config("cpu").model.init == "preset:tiny_qwen3_vl"
    with pytest.raises(ValueError, match="unknown variant"):
        grpo_qwen3_vl_8b.get_config("4x")
