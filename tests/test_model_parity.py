"""Qwen2-VL logits, vision tower and M-RoPE index equal transformers on tiny random models (fp32)."""

import numpy as np
import pytest
import torch
from hf_utils import Prompt, batch, hf_config, hf_logits, save_hf_model, tower_vs_transformers

from seedr1_jax.models.qwen2_vl.model import Qwen2VL, get_rope_index

TOL = 1e-4


@pytest.fixture(scope="module", params=["a", "b"])
def pair(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"hf_{request.param}")
    hf = save_hf_model(request.param, d, seed=1)
    return hf, Qwen2VL.from_pretrained(str(d), dtype="float32")


def _cases(cfg, rng):
    P = lambda: Prompt(cfg, rng)  # noqa: E731
    return {
        "text": [P().text(12)],
        "image": [P().text(5).image(4, 6).text(7)],
        "video_16x252": [P().text(3).video(8, 18, 18).text(4)],
        "seed_layout": [P().text(4).video(8, 18, 18).image(18, 18).text(20)],
        "two_images": [P().text(2).image(4, 4).text(3).image(6, 8).text(2)],
        "padded_batch": [P().text(3).image(4, 4).text(9), P().text(2).video(2, 4, 6).text(5).image(6, 4).text(3)],
    }


@pytest.mark.parametrize("case", ["text", "image", "video_16x252", "seed_layout", "two_images", "padded_batch"])
def test_logits_match_transformers(pair, case):
    hf, ours = pair
    prompts = _cases(hf.config, np.random.default_rng(7))[case]
    for left_pad in (True, False) if case == "padded_batch" else (True,):
        inputs = batch(hf.config, prompts, left_pad=left_pad)
        ref = hf_logits(hf, inputs)
        got = np.asarray(ours(**inputs))
        keep = inputs["attention_mask"].astype(bool)
        assert got.shape == ref.shape
        err = np.abs(got[keep] - ref[keep]).max()
        assert err <= TOL, f"{case} (left_pad={left_pad}): max abs diff {err}"


def test_vision_tower_matches_transformers(pair):
    hf, ours = pair
    p = Prompt(hf.config, np.random.default_rng(3)).video(4, 6, 8).image(4, 4).image(18, 18)
    err, _, _ = tower_vs_transformers(hf, ours, p)
    assert err <= TOL


def _hf_rope(hf, inputs):
    cfg = hf.config
    ids = torch.from_numpy(inputs["input_ids"])
    mm = torch.zeros_like(ids)
    mm[ids == cfg.image_token_id] = 1
    mm[ids == cfg.video_token_id] = 2
    pos, deltas = hf.model.get_rope_index(
        ids,
        mm,
        image_grid_thw=torch.tensor(inputs["image_grid_thw"]) if "image_grid_thw" in inputs else None,
        video_grid_thw=torch.tensor(inputs["video_grid_thw"]) if "video_grid_thw" in inputs else None,
        attention_mask=torch.from_numpy(inputs["attention_mask"]),
    )
    return pos.numpy(), deltas.numpy()[:, 0]


def test_rope_index_matches_transformers_where_they_agree(pair):
    hf, ours = pair
    rng = np.random.default_rng(5)
    # temporal grid <= merged spatial grid everywhere: transformers 5 follows the original algorithm here
    prompts = [Prompt(hf.config, rng).text(3).video(4, 8, 8).image(4, 6).text(5), Prompt(hf.config, rng).text(9)]
    inputs = batch(hf.config, prompts)
    ref, ref_d = _hf_rope(hf, inputs)
    got, got_d = get_rope_index(
        ours.cfg,
        inputs["input_ids"],
        inputs["attention_mask"],
        inputs.get("image_grid_thw"),
        inputs.get("video_grid_thw"),
    )
    keep = inputs["attention_mask"].astype(bool)
    np.testing.assert_array_equal(got[:, keep], ref[:, keep])
    # transformers measures the delta against the unpadded length, we against the padded length T
    # (the next decode position is T + delta = max position + 1 either way)
    pad = inputs["attention_mask"].shape[1] - inputs["attention_mask"].sum(1)
    np.testing.assert_array_equal(got_d, ref_d - pad)


def test_rope_index_original_algorithm_long_video():
    """A video with temporal grid 5 > merged spatial grid 2x2: text resumes at max position + 1 = 3 + 4 + 1 = 8."""
    cfg = hf_config("a")
    from seedr1_jax.models.config import from_hf_config

    ours = from_hf_config(cfg.to_dict())
    ids = [7, 8, cfg.vision_start_token_id] + [cfg.video_token_id] * 20 + [cfg.vision_end_token_id, 9]
    pos, delta = get_rope_index(ours, np.array([ids]), None, None, [[5, 4, 4]])
    # three text tokens (0, 1, 2), then the vision block offset by 3
    t = [0, 1, 2] + [3 + k for k in range(5) for _ in range(4)]
    h = [0, 1, 2] + [3 + r for _ in range(5) for r in (0, 0, 1, 1)]
    w = [0, 1, 2] + [3 + c for _ in range(5) for c in (0, 1, 0, 1)]
    nxt = 3 + 4 + 1  # max used (t index 4 + offset 3) + 1; transformers 5 would resume at 3 + 2 = 5
    np.testing.assert_array_equal(pos[:, 0], np.array([t + [nxt, nxt + 1], h + [nxt, nxt + 1], w + [nxt, nxt + 1]]))
    assert delta[0] == nxt + 2 - len(ids)
