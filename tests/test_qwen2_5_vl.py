"""Qwen2.5-VL: logits, vision tower (windows), M-RoPE with absolute time, HF round trip and greedy decoding
equal transformers' `Qwen2_5_VLForConditionalGeneration` on tiny random models (fp32)."""

import dataclasses
import json

import jax
import numpy as np
import pytest
import torch
from flax import nnx
from hf_utils import Prompt, batch, hf_config, per_sample_batch, save_hf_model, torch_inputs, tower_vs_transformers

import seedr1_jax
from seedr1_jax.models.config import ConfigError, from_hf_config
from seedr1_jax.models.hf_io import _open_checkpoint
from seedr1_jax.models.qwen2_5_vl import Qwen2_5_VL
from seedr1_jax.models.qwen2_vl.model import Qwen2VL, get_rope_index
from seedr1_jax.rl import sampler

TOL = 1e-4


@pytest.fixture(scope="module", params=["a25", "b25"])
def pair(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"hf_{request.param}")
    hf = save_hf_model(request.param, d, seed=1)
    model = seedr1_jax.from_pretrained(str(d), dtype="float32")
    assert type(model) is Qwen2_5_VL and model.cfg.family == "qwen2_5_vl"
    return hf, model, d


def _cases(cfg, rng):
    P = lambda: Prompt(cfg, rng)  # noqa: E731
    return {
        "text": [P().text(12)],
        "image": [P().text(5).image(4, 6).text(7)],
        "two_images": [P().text(2).image(4, 4).text(3).image(10, 8).text(2)],
        "video": [P().text(3).video(4, 8, 8).text(4)],
        "seed_layout": [P().text(4).video(4, 18, 18).image(18, 18).text(9)],
        # temporal grid 6 > merged spatial grid 2 x 2 (and absolute time stretches it further)
        "padded_long_video": [P().text(3).image(4, 4).text(9), P().text(2).video(6, 4, 4).text(5).image(6, 4).text(3)],
    }


CASES = ["text", "image", "two_images", "video", "seed_layout", "padded_long_video"]


@pytest.mark.parametrize("case", CASES)
def test_logits_match_transformers(pair, case):
    """transformers 5 places text after a video differently from the original algorithm (see the rope tests), so
    both models get the original positions; everything else is computed by each from the same inputs."""
    hf, ours, _ = pair
    prompts = _cases(hf.config, np.random.default_rng(7))[case]
    n_vid = sum(len(p.videos) for p in prompts)
    seconds = np.array([0.5, 1.25][:n_vid], np.float32) if n_vid else None
    for left_pad in (True, False) if case.startswith("padded") else (True,):
        inputs = batch(hf.config, prompts, left_pad=left_pad)
        pos, _ = get_rope_index(
            ours.cfg,
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs.get("image_grid_thw"),
            inputs.get("video_grid_thw"),
            seconds,
        )
        with torch.no_grad():
            ref = hf(**torch_inputs(hf.config, inputs), position_ids=torch.from_numpy(pos).long()).logits.numpy()
        got = np.asarray(ours(**inputs, second_per_grid_ts=seconds))
        keep = inputs["attention_mask"].astype(bool)
        err = np.abs(got[keep] - ref[keep]).max()
        assert got.shape == ref.shape and err <= TOL, f"{case} (left_pad={left_pad}): max abs diff {err}"


def test_vision_tower_matches_transformers_with_ragged_windows(pair):
    hf, ours, _ = pair
    p = Prompt(hf.config, np.random.default_rng(3)).video(2, 6, 10).image(4, 4).image(18, 14)
    err, inputs, feats = tower_vs_transformers(hf, ours, p)
    assert err <= TOL
    # the windows matter: the same weights with every block attending the whole frame give other features
    glob = Qwen2_5_VL(ours.cfg.replace(vision=dataclasses.replace(ours.cfg.vision, window_size=0)), rngs=nnx.Rngs(0))
    nnx.update(glob, nnx.state(ours))
    other = np.asarray(glob.visual(inputs["pixels"], inputs["hw_pos"], inputs["valid"]))
    assert np.abs(other - feats).max() > 1e-3


def _hf_rope(hf, inputs, seconds=None):
    t = torch_inputs(hf.config, inputs)
    pos, deltas = hf.model.get_rope_index(
        t["input_ids"],
        t["mm_token_type_ids"],
        image_grid_thw=t.get("image_grid_thw"),
        video_grid_thw=t.get("video_grid_thw"),
        second_per_grid_ts=None if seconds is None else torch.from_numpy(seconds),
        attention_mask=t["attention_mask"],
    )
    return pos.numpy(), deltas.numpy()[:, 0]


def test_rope_index_matches_transformers_where_they_agree(pair):
    """Videos whose scaled time stays within the merged spatial grid, and images: transformers 5 agrees here."""
    hf, ours, _ = pair
    tps = hf.config.vision_config.tokens_per_second
    rng = np.random.default_rng(5)
    prompts = [Prompt(hf.config, rng).text(3).video(3, 12, 12).image(4, 6).text(5), Prompt(hf.config, rng).text(9)]
    inputs = batch(hf.config, prompts)
    seconds = np.array([1.0 / tps], np.float32)  # one index per temporal patch
    ref, ref_d = _hf_rope(hf, inputs, seconds)
    got, got_d = get_rope_index(
        ours.cfg,
        inputs["input_ids"],
        inputs["attention_mask"],
        inputs["image_grid_thw"],
        inputs["video_grid_thw"],
        seconds,
    )
    keep = inputs["attention_mask"].astype(bool)
    np.testing.assert_array_equal(got[:, keep], ref[:, keep])
    pad = keep.shape[1] - keep.sum(1)
    np.testing.assert_array_equal(got_d, ref_d - pad)


def test_rope_index_absolute_time_original_algorithm():
    """Temporal patch k of a video sits at int(k * second_per_grid_t * tokens_per_second); text after it resumes at
    the largest position used + 1 (the original Qwen2.5-VL; transformers 5 resumes at start + max(h, w) / 2)."""
    cfg = from_hf_config(hf_config("a25").to_dict())  # tokens_per_second 2
    ids = [7, 8, cfg.vision_start_token_id] + [cfg.video_token_id] * 12 + [cfg.vision_end_token_id, 9]
    pos, delta = get_rope_index(cfg, np.array([ids]), None, None, [[3, 4, 4]], [1.25])
    times = [int(k * 1.25 * 2) for k in range(3)]  # 0, 2, 5
    t = [0, 1, 2] + [3 + tk for tk in times for _ in range(4)]
    h = [0, 1, 2] + [3 + r for _ in range(3) for r in (0, 0, 1, 1)]
    w = [0, 1, 2] + [3 + c for _ in range(3) for c in (0, 1, 0, 1)]
    nxt = 3 + 5 + 1
    np.testing.assert_array_equal(pos[:, 0], np.array([t + [nxt, nxt + 1], h + [nxt, nxt + 1], w + [nxt, nxt + 1]]))
    assert delta[0] == nxt + 2 - len(ids)
    # without second_per_grid_ts the original assumes 1 s per temporal patch; Qwen2-VL ignores time entirely
    default, _ = get_rope_index(cfg, np.array([ids]), None, None, [[3, 4, 4]])
    assert default[0, 0, 3::4][:3].tolist() == [3, 5, 7]
    with pytest.raises(ConfigError, match="second_per_grid_ts"):
        get_rope_index(cfg, np.array([ids + ids]), None, None, [[3, 4, 4], [3, 4, 4]], [1.0])


def test_round_trip_bit_exact_and_transformers_reloads(pair, tmp_path):
    hf, ours, fp32_dir = pair
    bf16_dir = tmp_path / "bf16_src"
    save_hf_model(_name(hf), bf16_dir, seed=3, dtype=torch.bfloat16)
    for dtype, src_dir in (("float32", fp32_dir), ("bfloat16", bf16_dir)):
        out = tmp_path / dtype
        model = seedr1_jax.from_pretrained(str(src_dir))  # the checkpoint's dtype, written back as it came
        assert model.model.embed_tokens.embedding.value.dtype == jax.numpy.dtype(dtype)
        model.save_pretrained(str(out))
        src = {k: st.get(k) for k, st in _open_checkpoint(str(src_dir)).items()}
        dst = {k: st.get(k) for k, st in _open_checkpoint(str(out)).items()}
        assert sorted(src) == sorted(dst)
        for k in src:
            assert dst[k].dtype == src[k].dtype and dst[k].tobytes() == src[k].tobytes(), k
    config = json.loads((tmp_path / "float32" / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl" and config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    from transformers import AutoModelForImageTextToText, AutoProcessor

    back = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "float32")).eval()
    assert type(back).__name__ == "Qwen2_5_VLForConditionalGeneration"
    inputs = batch(hf.config, [Prompt(hf.config, np.random.default_rng(1)).text(4).image(4, 4).text(3)])
    with torch.no_grad():
        a = hf(**torch_inputs(hf.config, inputs)).logits
        b = back(**torch_inputs(hf.config, inputs)).logits
    assert torch.equal(a, b)
    assert AutoProcessor.from_pretrained(str(tmp_path / "float32")) is not None


def _name(hf) -> str:
    return "a25" if hf.config.image_token_id == 300 else "b25"


def test_greedy_generate_equals_transformers(pair):
    hf, ours, _ = pair
    hf.generation_config.eos_token_id = None
    rng = np.random.default_rng(11)
    for p in [Prompt(hf.config, rng).text(3).image(4, 4).text(4), Prompt(hf.config, rng).text(5).image(8, 4).text(2)]:
        out = sampler.greedy(ours, per_sample_batch(ours.cfg, [p]), max_new_tokens=8, stop_ids=())
        inp = torch_inputs(hf.config, batch(hf.config, [p]))
        ref = hf.generate(**inp, do_sample=False, max_new_tokens=8)[0, inp["input_ids"].shape[1] :]
        assert np.asarray(out["tokens"])[0].tolist() == ref.tolist()


def test_family_is_read_from_config_and_classes_refuse_the_other_family(pair):
    _, ours, d = pair
    with pytest.raises(ConfigError, match="qwen2_5_vl"):
        Qwen2VL.from_pretrained(str(d))
    assert seedr1_jax.models.model_class(ours.cfg) is Qwen2_5_VL


def test_import_hf_refuses_a_checkpoint_whose_shapes_do_not_match_its_config(pair, tmp_path, capsys):
    """A Qwen2.5-VL folder whose config.json disagrees with its tensors (the tower's SwiGLU width) stops
    `seedr1 import-hf` with one line naming the tensor, the file and both shapes; exit 2, nothing written."""
    import shutil

    from seedr1_jax import cli

    _, _, src = pair
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    config = json.loads((bad / "config.json").read_text())
    config["vision_config"]["intermediate_size"] += 8
    (bad / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    assert cli.main(["import-hf", "--hf-dir", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "visual.blocks.0.mlp.gate_proj.weight" in err and "config.json implies" in err and not out.exists()
