"""Attention diagnostics: probabilities equal transformers' eager attentions; vision tokens map back to their
frame pair and merged patch; `seedr1 attention` end to end on a tiny model, with clear errors on bad input."""

import numpy as np
import pytest
import torch
from hf_utils import Prompt, batch, hf_config, save_hf_model, torch_inputs

from seedr1_jax.analysis import attention as A
from seedr1_jax.models.config import ConfigError
from seedr1_jax.models.qwen2_vl.model import Qwen2VL, prepare_inputs

TOL = 1e-5


@pytest.fixture(scope="module", params=["a", "b"])
def pair(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"hf_{request.param}")
    hf = save_hf_model(request.param, d, seed=1)
    hf.set_attn_implementation("eager")
    return hf, Qwen2VL.from_pretrained(str(d), dtype="float32")


def _hf_attentions(hf, inputs):
    with torch.no_grad():
        out = hf(**torch_inputs(hf.config, inputs), output_attentions=True)
    return np.stack([a.float().numpy() for a in out.attentions])  # [L, B, N, T, T]


@pytest.mark.parametrize("case", ["video_image_text", "padded_batch"])
def test_probs_match_transformers_eager(pair, case):
    hf, ours = pair
    rng = np.random.default_rng(5)
    P = lambda: Prompt(hf.config, rng)  # noqa: E731
    # video temporal grid <= merged spatial grid: where transformers 5.x's M-RoPE index agrees with Qwen2-VL's
    prompts = {
        "video_image_text": [P().text(4).video(4, 8, 8).image(4, 6).text(9)],
        "padded_batch": [P().text(3).image(4, 4).text(9), P().text(2).video(2, 4, 6).text(5).image(6, 4).text(3)],
    }[case]
    nl = ours.cfg.text.num_layers
    layers = tuple(range(nl))
    for left_pad in (True, False) if case == "padded_batch" else (True,):
        inputs = batch(hf.config, prompts, left_pad=left_pad)
        ref = _hf_attentions(hf, inputs)
        got = np.asarray(A.attention_maps(ours, prepare_inputs(ours.cfg, **inputs), layers))
        assert got.shape == ref.shape
        keep = inputs["attention_mask"].astype(bool)  # padded query rows are undefined in both
        err = max(np.abs(got[:, b, :, keep[b]] - ref[:, b, :, keep[b]]).max() for b in range(len(prompts)))
        assert err <= TOL, f"{case} (left_pad={left_pad}): max abs diff {err}"
    # a subset of layers and query rows is the same slice of the full result
    q0 = inputs["input_ids"].shape[1] - 5
    sub = A.attention_maps(ours, prepare_inputs(ours.cfg, **inputs), (nl - 1,), query_start=q0)
    np.testing.assert_allclose(np.asarray(sub)[0], got[nl - 1, :, :, q0:], atol=1e-6)


def test_unknown_layer_is_a_clear_error():
    assert A.check_layers([-1, 0, 0], 3) == (0, 2)
    with pytest.raises(A.ConfigError, match="layer 5 does not exist"):
        A.check_layers([5], 3)


def test_vision_sources_follow_the_mrope_grid():
    from seedr1_jax.models.config import tiny
    from seedr1_jax.models.qwen2_vl.model import get_rope_index

    cfg = tiny()
    rng = np.random.default_rng(0)
    p = Prompt(hf_config("b"), rng)  # the real special-token ids, like `tiny`
    p.text(3).video(3, 4, 6).text(2).image(6, 4).text(2).video(1, 2, 2).text(1)
    ids = np.array(p.ids)
    src = A.vision_sources(cfg, ids, p.image_grids, p.video_grids)
    pos, _ = get_rope_index(cfg, ids[None], None, p.image_grids, p.video_grids)
    assert src["grids"] == {(A.VIDEO, 0): (3, 2, 3), (A.IMAGE, 0): (1, 3, 2), (A.VIDEO, 1): (1, 1, 1)}
    for key in src["grids"]:
        sel = (src["kind"] == key[0]) & (src["block"] == key[1])
        rel = pos[:, 0, sel] - pos[:, 0, sel].min(axis=1, keepdims=True)
        np.testing.assert_array_equal(rel, np.stack([src["t"][sel], src["row"][sel], src["col"][sel]]))
    assert (src["kind"] == A.TEXT).sum() == len(ids) - 18 - 6 - 1


def test_planted_attention_lights_up_exactly_that_patch_in_that_frame():
    """Real layout: 8 frames (4 temporal pairs x 9 x 9 merged tokens) + the observation image."""
    from seedr1_jax.models import processor as P
    from seedr1_jax.models.config import tiny

    cfg = tiny()
    ids, _ = P.prompt_ids(P.load_tokenizer(), "q?", ["a", "b"], (4, P.GRID, P.GRID), (1, P.GRID, P.GRID))
    src = A.vision_sources(cfg, ids, [(1, P.GRID, P.GRID)], [(4, P.GRID, P.GRID)])
    g = P.GRID // P.MERGE
    assert src["grids"][(A.VIDEO, 0)] == (4, g, g) and src["grids"][(A.IMAGE, 0)] == (1, g, g)
    pair, row, col = 2, 3, 5
    (key,) = np.nonzero((src["kind"] == A.VIDEO) & (src["t"] == pair) & (src["row"] == row) & (src["col"] == col))[0]
    weights = np.zeros(len(ids))
    weights[key] = 1.0
    heat = A.vision_heat(weights, src)
    assert heat[(A.IMAGE, 0)].sum() == 0
    px = A.heat_to_pixels(heat[(A.VIDEO, 0)], P.MERGE * P.PATCH)
    cell = P.MERGE * P.PATCH
    want = np.zeros((8, P.SIZE, P.SIZE))
    want[2 * pair : 2 * pair + 2, row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = 1
    np.testing.assert_array_equal(px, want)

    # the same cell painted into the pixels lands in exactly the patches that token reads (data layout:
    # the j-th video pad token reads merged row j = patch rows 4j..4j+3), and unpatchify inverts the processor
    frames = np.full((8, P.SIZE, P.SIZE, 3), 128, np.uint8)
    painted = frames.copy()
    painted[want.astype(bool)] = (250, 10, 10)
    base, _ = P.video_patches(frames)
    hot, grid = P.video_patches(painted)
    changed = np.nonzero(np.abs(hot - base).max(-1) > 0)[0]
    j = int((ids[:key] == cfg.video_token_id).sum())
    np.testing.assert_array_equal(changed, np.arange(4 * j, 4 * j + 4))
    back = A.unpatchify(hot.reshape(grid[0], -1, hot.shape[-1]), (P.GRID, P.GRID), cfg)
    assert np.abs(back.astype(int) - painted.astype(int)).max() <= 1


# ---- `seedr1 attention` end to end on the tiny model ---------------------------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from flax import nnx

    from data_prep import prep, synth
    from seedr1_jax.models.checkpoint import save_params
    from seedr1_jax.models.config import tiny

    root = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(root, num_train=2, num_val=4, seed=3)
    tfr = str(tmp_path_factory.mktemp("tfr"))
    assert prep.prepare(root, "L1", tfr, workers=1, max_frames=4, progress=False)["skipped"] == 0
    ckpts = []
    for seed in (0, 1):
        d = str(tmp_path_factory.mktemp(f"ck{seed}"))
        save_params(d, Qwen2VL(tiny(), rngs=nnx.Rngs(seed)))
        ckpts.append(d)
    return tfr, ckpts


def _cli(*args):
    from seedr1_jax.cli import main

    common = ["--max-frames", "4", "--max-prompt-len", "512", "--max-new-tokens", "5"]
    return main(["attention", *args, *common])


def test_cli_end_to_end_with_compare(prepared, tmp_path, capsys):
    import json

    tfr, (a, b) = prepared
    out = tmp_path / "out"
    args = ["--ckpt", a, "--compare", b, "--tfrecord-dir", tfr, "--split", "L1", "--num", "2", "--layers", "-1"]
    assert _cli(*args, "--out", str(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    labels = list(summary["checkpoints"])
    assert len(labels) == 2 and summary["num"] == 2 and summary["layers"] == [1]
    assert set(summary["summary"][labels[0]]) == {"reasoning", "answer", "response"}
    assert 0 < summary["summary"][labels[1]]["response"]["visual"] < 1
    printed = capsys.readouterr().out
    assert all(label in printed for label in labels) and "frame H" in printed
    for sid in summary["samples"]:
        for suffix in ("_reasoning.png", "_answer.png", "_tokens.png"):
            assert (out / f"{sid}{suffix}").read_bytes()[:4] == b"\x89PNG"
        s = json.loads((out / f"{sid}.json").read_text())
        assert set(s["models"]) == set(labels)
        for r in s["models"].values():
            n = len(r["labels"])
            assert 1 <= n <= 5 and np.asarray(r["shares"]).shape == (n, 3)
            np.testing.assert_allclose(np.asarray(r["shares"]).sum(-1), 1, atol=1e-4)
            heat = r["heat"]["response"]
            assert np.asarray(heat["video"]).shape == (2, 9, 9) and np.asarray(heat["image"]).shape == (1, 9, 9)
            assert abs(np.sum(heat["video"]) - r["metrics"]["response"]["video"]) < 1e-4


def test_fixed_response_spans_and_metrics(prepared):
    from seedr1_jax.models.checkpoint import load_params
    from seedr1_jax.models.processor import encode, load_tokenizer

    tfr, (a, _) = prepared
    model, tok = load_params(a), load_tokenizer()
    (batch, _), *_ = list(A.samples(tfr, "L1", model.cfg, tok, num=1, max_frames=4, max_prompt_len=512))
    text = "<think>the red square moves</think><answer>B</answer><|im_end|>"
    r = A.analyse(model, batch, tok, (0, 1), tokens=encode(tok, text), evidence=[2, 3])
    spans = r["spans"]
    assert "".join(r["labels"][i] for i in spans["reasoning"]).strip() == "the red square moves"
    # a token straddling a tag and its content (">B") belongs to the span
    assert "".join(r["labels"][i] for i in spans["answer"]) == ">B"
    shares = np.asarray(r["shares"])
    for span in ("reasoning", "answer"):
        m = r["metrics"][span]
        assert m["tokens"] == len(spans[span])
        assert abs(m["visual"] - shares[spans[span], 1:].sum(-1).mean()) < 1e-4
        assert 0 <= m["frame_entropy"] <= 1 and 0 < m["evidence"] < 1
        pairs = np.asarray(r["heat"][span]["video"]).sum((1, 2))
        assert abs(m["evidence"] - pairs[1] / pairs.sum()) < 1e-4  # frames 2, 3 = temporal pair 1
    assert r["correct"] in (0.0, 1.0)


def test_cli_bad_inputs_are_clear_errors(prepared, tmp_path, capsys):
    tfr, (a, _) = prepared
    base = ["--tfrecord-dir", tfr, "--out", str(tmp_path / "o")]
    assert _cli("--ckpt", a, "--split", "L1", "--layers", "7", *base) == 2
    assert "layer 7 does not exist" in capsys.readouterr().err
    assert _cli("--ckpt", str(tmp_path / "nope"), "--split", "L1", *base) == 2
    assert "not found" in capsys.readouterr().err
    assert _cli("--ckpt", a, "--split", "L3", *base) == 2
    assert "holds split(s) L1, not L3" in capsys.readouterr().err
    empty = ["--tfrecord-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    assert _cli("--ckpt", a, "--split", "L2", *empty) == 2
    assert "seedr1 prep" in capsys.readouterr().err


def test_eval_attention_stats_join_the_accuracy_summary(prepared, tmp_path, capsys):
    import json

    from configs.tiny import get_config
    from seedr1_jax.analysis import evaluate

    tfr, (a, _) = prepared
    cfg = get_config()
    cfg.data.tfrecord_dir, cfg.data.batch_size, cfg.eval.max_new_tokens = tfr, 8, 4  # 8 fake devices
    assert evaluate.main(cfg, str(tmp_path), "L1", ckpt=a, attention_samples=2) == 0
    printed = capsys.readouterr().out
    assert "accuracy (%) on L1" in printed and "attention of generated tokens, 2 samples" in printed
    summary = json.loads((tmp_path / "eval_L1_summary.json").read_text())
    (att,) = summary["attention"].values()
    assert att["response"]["tokens"] == 4 and 0 < att["response"]["visual"] < 1


def test_rollout_attention_summary_equals_the_analysis(prepared):
    """`rl/grounding.summary` (what a GRPO rollout gives the rewards that ask for attention) = `seedr1 attention`'s
    reasoning-span metrics of the same completion (visual, video, evidence share), from the pipeline's `evidence`
    host field; a completion without `<think>` gets zeros and no evidence share."""
    import jax.numpy as jnp

    from seedr1_jax.data.batch import Prompts
    from seedr1_jax.models.checkpoint import load_params
    from seedr1_jax.models.processor import PAD_ID, encode, load_tokenizer
    from seedr1_jax.rl import grounding

    tfr, (a, _) = prepared
    model, tok = load_params(a), load_tokenizer()
    batch, ev = next(
        (b, e) for b, e in A.samples(tfr, "L1", model.cfg, tok, num=8, max_frames=4, max_prompt_len=512) if e
    )
    assert str(batch["evidence"][0]) == ",".join(map(str, ev))
    think = encode(tok, "<think>the red square moves</think><answer>B</answer><|im_end|>")
    plain = encode(tok, "B<|im_end|>")
    tokens = np.full((2, len(think)), PAD_ID, np.int32)
    tokens[0], tokens[1, : len(plain)] = think, plain
    mask = (np.arange(len(think))[None] < np.array([[len(think)], [len(plain)]])).astype(np.int32)
    prompts = Prompts.of({k: jnp.asarray(batch[k]) for k in Prompts.FIELDS if k in batch})
    got = grounding.summary(model, prompts, tokens, mask, tok, list(batch["evidence"]), group_size=2, layers=(0, 1))
    want = A.analyse(model, batch, tok, (0, 1), tokens=think, evidence=ev)["metrics"]["reasoning"]
    assert got[0]["tokens"] == want["tokens"] > 0
    for k in ("visual", "video", "evidence"):
        assert 0 < want[k] < 1 and abs(got[0][k] - want[k]) < 1e-5, k
    assert got[1] == dict(visual=0.0, video=0.0, evidence=None, tokens=0)


def test_evidence_field_forms():
    clip = dict(frame_indices=np.array([0, 5, 10, 15]))
    assert A.evidence_frames({}) is None and A.evidence_frames(dict(clip, evidence_frames=None)) is None
    assert A.evidence_frames(dict(clip, evidence_frames=np.array([3, 1]))) == [1, 3]
    assert A.evidence_frames(dict(clip, evidence_frames={"start_frame": 4, "stop_frame": 10})) == [1, 2]
    assert A.evidence_frames(dict(clip, evidence_start_frame=11, evidence_stop_frame=99)) == [3]
    assert A.evidence_frames(dict(clip, evidence_start_frame=-1, evidence_stop_frame=-1)) is None
    assert A.evidence_frames(dict(clip, evidence_frames={"start_frame": 1, "stop_frame": 4})) is None  # between samples


def test_samples_cut_clips_as_training_reads_them(prepared):
    """A frames arm reads fewer frames than prepared, spread over the clip (`data.frame_sampling="uniform"`,
    `seedr1 attention --frame-sampling uniform`): 2 of 4 keep the clip's first and last frame, and the evidence
    indices follow the frames kept."""
    from seedr1_jax.models.checkpoint import load_params
    from seedr1_jax.models.processor import load_tokenizer

    tfr, (a, _) = prepared
    model, tok = load_params(a), load_tokenizer()

    def read(n, mode="first"):
        return list(A.samples(tfr, "L1", model.cfg, tok, num=4, max_frames=n, max_prompt_len=512, frame_sampling=mode))

    full, uniform = read(4), read(2, "uniform")
    assert len(full) == len(uniform) == 4
    wants = [[j for j, f in enumerate((0, 3)) if f in (e4 or [])] or None for _, e4 in full]
    for (b2, e2), want in zip(uniform, wants):
        assert e2 == want and str(b2["evidence"][0]) == ",".join(map(str, e2 or []))
    assert any(want != e4 for want, (_, e4) in zip(wants, full))  # the cut moved some evidence
    with pytest.raises(ConfigError, match="frame sampling 'middle'"):
        read(2, "middle")
