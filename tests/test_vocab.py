"""A vocabulary-subset model (`text.vocab_ids`, models/vocab.py) computes what the full model computes on its ids:
the same hidden states, its logits are the full logits' columns, and sampling, greedy decoding (with the
repetition penalty), teacher-forced log-probs and the SFT loss read and write token ids, not rows. Bad subsets,
data outside the subset and HF export are refused with a message naming the fix."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx
from hf_utils import tiny_video_prompts

from seedr1_jax.models import vocab
from seedr1_jax.models.config import ConfigError
from seedr1_jax.models.families import build
from seedr1_jax.models.processor import IM_END_ID, PAD_ID
from seedr1_jax.rl import sampler, sft


def subset_of(model, ids):
    """`model` cut to the token ids `ids` (sorted): the embedding's rows and the head's columns of those ids."""
    cfg = model.cfg
    text = dataclasses.replace(cfg.text, vocab_size=len(ids), vocab_ids=tuple(int(i) for i in ids))
    sub = build(cfg.replace(text=text).validate(), nnx.Rngs(0))
    sub.model.embed_tokens.embedding.value = model.model.embed_tokens.embedding[...][np.asarray(ids)]
    if model.lm_head is not None:
        sub.lm_head.kernel.value = model.lm_head.kernel[...][:, np.asarray(ids)]
    nnx.update(sub.visual, nnx.state(model.visual))
    nnx.update(sub.model.layers, nnx.state(model.model.layers))
    nnx.update(sub.model.norm, nnx.state(model.model.norm))
    return sub


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("vocab")
    _, model, _, b = tiny_video_prompts(d, seed=5, prompt_seed=2)
    rng = np.random.default_rng(0)
    specials = [
        model.cfg.image_token_id,
        model.cfg.video_token_id,
        model.cfg.vision_start_token_id,
        model.cfg.vision_end_token_id,
    ]
    extra = rng.choice(model.cfg.text.vocab_size, 300, replace=False)
    ids = np.unique(np.concatenate([b["input_ids"].ravel(), specials, [IM_END_ID, PAD_ID], extra]))
    return model, subset_of(model, ids), ids, b


def full_logits(model, b, tokens, group):
    """The full model's logits over prompt + completion (teacher forced), at the completion's positions."""
    full = sampler.teacher_forced_inputs(b, tokens, group)
    t = b["input_ids"].shape[1]
    return np.asarray(model.logits(model.forward(**full)))[:, t - 1 : -1]


def test_subset_logits_are_the_full_models_columns(setup):
    model, sub, ids, b = setup
    h, hs = model.forward(**b), sub.forward(**b)
    np.testing.assert_array_equal(np.asarray(h), np.asarray(hs))
    np.testing.assert_allclose(np.asarray(sub.logits(hs)), np.asarray(model.logits(h))[..., ids], atol=1e-6)


def test_teacher_forced_logprobs_and_sft_loss_read_token_ids(setup):
    model, sub, ids, b = setup
    tokens = np.random.default_rng(1).choice(ids, (4, 5)).astype(np.int32)
    lp = np.asarray(sampler.completion_logprobs(sub, b, tokens, 2))
    restricted = np.asarray(jax.nn.log_softmax(full_logits(model, b, tokens, 2)[..., ids]))
    cols = np.searchsorted(ids, tokens)
    np.testing.assert_allclose(lp, restricted[np.arange(4)[:, None], np.arange(5), cols], atol=1e-5)

    mask = np.zeros_like(b["input_ids"], np.int32)
    mask[:, -4:] = 1
    got = float(sft.sft_loss(sub, dict(b, loss_mask=mask), max_response_len=6))
    t = b["input_ids"].shape[1]
    logits = np.asarray(model.logits(model.forward(**b)))[:, t - 5 : t - 1][..., ids]
    logz = np.asarray(jax.nn.logsumexp(logits, axis=-1))
    picked = np.take_along_axis(logits, np.searchsorted(ids, b["input_ids"][:, t - 4 :])[..., None], -1)[..., 0]
    assert abs(got - float(np.mean(logz - picked))) < 1e-5


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_decoding_is_the_restricted_argmax(setup, penalty):
    """Each greedy token is the argmax of the full model's logits over the subset's columns (after transformers'
    repetition penalty over the prompt and the tokens so far), and is a token id of the subset."""
    model, sub, ids, b = setup
    out = sampler.greedy(sub, b, max_new_tokens=6, repetition_penalty=penalty, stop_ids=())
    tokens = np.asarray(out["tokens"])
    assert np.isin(tokens, ids).all()
    logits = full_logits(model, b, tokens, 1)[..., ids]
    for row in range(tokens.shape[0]):
        seen = set(b["input_ids"][row][b["attention_mask"][row] == 1].tolist())
        for step in range(tokens.shape[1]):
            lg = logits[row, step].copy()
            hit = np.isin(ids, list(seen))
            lg[hit] = np.where(lg[hit] > 0, lg[hit] / penalty, lg[hit] * penalty)
            assert ids[int(np.argmax(lg))] == tokens[row, step], (row, step)
            seen.add(int(tokens[row, step]))


def test_sampled_tokens_are_subset_ids_and_their_logprobs_match(setup):
    _, sub, ids, b = setup
    out = sampler.generate(sub, b, rng=jax.random.key(3), group_size=3, max_new_tokens=6, top_k=0)
    tokens = np.asarray(out["tokens"])
    assert np.isin(tokens, ids).all() and len(np.unique(tokens)) > 3
    lp = np.asarray(sampler.completion_logprobs(sub, b, tokens, 3))
    valid = tokens != sampler.ENDOFTEXT
    assert np.abs(lp - np.asarray(out["logprobs"]))[valid].max() <= 1e-5


def test_bad_subsets_data_outside_it_and_export_are_refused(setup, tmp_path):
    model, sub, ids, _ = setup
    cfg = sub.cfg

    def with_ids(v, n=None):
        text = dataclasses.replace(cfg.text, vocab_ids=tuple(v), vocab_size=len(v) if n is None else n)
        return cfg.replace(text=text).validate()

    with pytest.raises(ConfigError, match="vocab_size"):
        with_ids(ids, n=len(ids) + 1)
    with pytest.raises(ConfigError, match="increasing order"):
        with_ids(ids[::-1])
    with pytest.raises(ConfigError, match=str(cfg.video_token_id)):
        with_ids([i for i in ids if i != cfg.video_token_id])
    outside = int(np.setdiff1d(np.arange(1000), ids)[0])
    with pytest.raises(ConfigError, match=rf"sample s7: token ids \[{outside}\]"):
        vocab.check_ids(cfg, [int(ids[0]), outside], "sample s7")
    vocab.check_ids(cfg, ids[:10], "fine")  # inside: no error
    vocab.check_ids(model.cfg, [outside], "full vocabulary")  # a full-vocabulary model reads every id
    with pytest.raises(ConfigError, match="no HF form"):
        sub.save_pretrained(str(tmp_path / "hf"))
    assert not (tmp_path / "hf").exists()


def test_the_toy_subset_is_rebuilt_as_shipped_and_covers_data_at_unseen_seeds(tmp_path):
    """models/toy_vocab.json is what `python -m data_prep.toy_vocab` builds, and every split, warm-up set and
    curriculum style generated at a seed it never saw tokenizes inside it (so `seedr1 study` data at any seed
    passes the pipeline's check)."""
    from data_prep import toy_vocab
    from seedr1_jax.models.config import preset
    from seedr1_jax.models.processor import load_tokenizer

    shipped = toy_vocab.load()
    assert list(shipped) == toy_vocab.token_ids()
    cfg = preset("toy_synth_vocab").validate()
    assert cfg.text.vocab_ids == shipped and cfg.text.vocab_size == len(shipped) < 151936 // 6
    tok = load_tokenizer()
    sets = toy_vocab._generated(str(tmp_path), seed=11)
    assert len(sets) > 10
    for root, split in sets:
        got = toy_vocab.data_token_ids(root, split, tok, seed=11)
        assert len(got) > 40, (root, split)  # every record read (a skipped one would add nothing)
        vocab.check_ids(cfg, sorted(got), f"{root} {split}")
