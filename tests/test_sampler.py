"""Rollout sampler: log-probs equal teacher forcing, greedy equals transformers' generate, one shared prefill
equals G independent prefills, stop handling and early exit, sharded equals unsharded."""

import jax
import numpy as np
import pytest
from hf_utils import batch, per_sample_batch, tiny_video_prompts, torch_inputs

from seedr1_jax.models.qwen2_vl.model import Qwen2VL
from seedr1_jax.parallel import sharding
from seedr1_jax.rl import sampler


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("sampler")
    # different text lengths -> different left padding; video temporal grid 2 <= merged spatial grid 2
    hf, model, prompts, b = tiny_video_prompts(d, seed=21, prompt_seed=4)
    return hf, model, prompts, b, str(d)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_equal_teacher_forced(setup, temperature):
    _, model, _, b, _ = setup
    out = sampler.generate(
        model, b, rng=jax.random.key(1), group_size=3, max_new_tokens=7, temperature=temperature, top_k=0
    )
    lp = sampler.completion_logprobs(model, b, out["tokens"], 3, temperature)
    valid = np.asarray(out["tokens"]) != sampler.ENDOFTEXT
    assert np.abs(np.asarray(lp) - np.asarray(out["logprobs"]))[valid].max() <= 1e-5


def test_teacher_forced_logprobs_equal_full_forward(setup):
    """The prefix-shared pass equals a plain full-sequence forward over prompt + completion, whose inputs
    (`teacher_forced_inputs`) match a hand-built row: prompt copy, completion, continued M-RoPE positions."""
    _, model, _, b, _ = setup
    tokens = np.random.default_rng(0).integers(0, 1000, (4, 5)).astype(np.int32)
    lp = np.asarray(sampler.completion_logprobs(model, b, tokens, 2))
    full = sampler.teacher_forced_inputs(b, tokens, 2)
    t = b["input_ids"].shape[1]
    for row in range(4):
        p = row // 2
        nxt = b["positions"][:, p][:, b["attention_mask"][p] == 1].max() + 1
        pos = np.concatenate([b["positions"][:, p], np.broadcast_to(nxt + np.arange(5), (3, 5))], axis=1)
        assert np.array_equal(np.asarray(full["positions"])[:, row], pos)
        assert np.asarray(full["input_ids"])[row].tolist() == b["input_ids"][p].tolist() + tokens[row].tolist()
        assert np.asarray(full["attention_mask"])[row].tolist() == b["attention_mask"][p].tolist() + [1] * 5
    logits = np.asarray(model.logits(model.forward(**full)))[:, t - 1 : -1]
    ref = np.asarray(jax.nn.log_softmax(logits))[np.arange(4)[:, None], np.arange(5), tokens]
    assert np.abs(ref - lp).max() <= 1e-5


@pytest.mark.parametrize("penalty", [1.0, 1.05])
def test_greedy_equals_transformers_generate(setup, penalty):
    hf, model, prompts, _, _ = setup
    hf.generation_config.eos_token_id = None  # compare all steps, no early stop
    for p in prompts:
        b = per_sample_batch(model.cfg, [p])
        out = sampler.greedy(model, b, max_new_tokens=8, repetition_penalty=penalty, stop_ids=())
        inp = torch_inputs(hf.config, batch(hf.config, [p]))
        ref = hf.generate(**inp, do_sample=False, max_new_tokens=8, repetition_penalty=penalty)[
            0, inp["input_ids"].shape[1] :
        ]
        assert np.asarray(out["tokens"])[0].tolist() == ref.tolist()


def test_shared_prefill_equals_independent_prefills(setup):
    _, model, _, b, _ = setup
    shared = sampler.generate(model, b, rng=jax.random.key(5), group_size=4, max_new_tokens=6, greedy=True)
    alone = sampler.generate(model, b, rng=jax.random.key(5), group_size=1, max_new_tokens=6, greedy=True)
    tok = np.asarray(shared["tokens"]).reshape(2, 4, 6)
    lp = np.asarray(shared["logprobs"]).reshape(2, 4, 6)
    for p in range(2):
        for g in range(4):
            assert tok[p, g].tolist() == np.asarray(alone["tokens"])[p].tolist()
            assert np.abs(lp[p, g] - np.asarray(alone["logprobs"])[p]).max() <= 1e-6
    # sampling with a fixed rng is deterministic, and top_k=1 is greedy
    a = sampler.generate(model, b, rng=jax.random.key(9), group_size=3, max_new_tokens=6)
    c = sampler.generate(model, b, rng=jax.random.key(9), group_size=3, max_new_tokens=6)
    assert np.array_equal(np.asarray(a["tokens"]), np.asarray(c["tokens"]))
    k1 = sampler.generate(model, b, rng=jax.random.key(3), group_size=4, max_new_tokens=6, top_k=1)
    assert np.array_equal(np.asarray(k1["tokens"]), tok.reshape(8, 6))


def test_stop_tokens_pad_mask_and_early_exit(setup):
    _, model, _, b, _ = setup
    greedy = sampler.generate(model, b, rng=jax.random.key(0), group_size=1, max_new_tokens=6, greedy=True)
    first = np.asarray(greedy["tokens"])[:, 1]  # make each row's 2nd greedy token a stop token
    out = sampler.greedy(model, b, max_new_tokens=6, stop_ids=tuple(int(x) for x in first))
    tok, g = np.asarray(out["tokens"]), np.asarray(greedy["tokens"])
    stops = set(int(x) for x in first)
    ends = [next(j for j in range(6) if g[r, j] in stops) for r in range(2)]
    assert int(out["steps"]) == max(ends) + 1 < 6  # the loop exits once every row has stopped
    for r, e in enumerate(ends):
        assert tok[r, : e + 1].tolist() == g[r, : e + 1].tolist()  # up to and including the stop token
        assert (tok[r, e + 1 :] == sampler.ENDOFTEXT).all()  # pad afterwards
    im = np.array([[5, 7, sampler.IM_END, 151643, 151643]], np.int32)
    from seedr1_jax.rl.grpo import completion_mask

    assert np.asarray(completion_mask(im)).tolist() == [[1, 1, 1, 0, 0]]


@pytest.mark.parametrize("unroll", [False, True])
def test_sharded_greedy_equals_unsharded(setup, unroll):
    _, model, _, b, hf_dir = setup
    ref = sampler.generate(model, b, rng=jax.random.key(0), group_size=4, max_new_tokens=5, greedy=True)
    mesh = sharding.make_mesh((2, 2, 2))
    sharded = sharding.shard_model(Qwen2VL.from_pretrained(hf_dir, dtype="float32"), mesh, sharding.ROLLOUT_RULES)
    sharded.cfg = sharded.model.cfg = sharded.cfg.replace(decode_unroll=unroll)  # per-layer split keeps shardings
    with jax.set_mesh(mesh):
        out = sampler.generate(
            sharded, sharding.shard_batch(b, mesh), rng=jax.random.key(0), group_size=4, max_new_tokens=5, greedy=True
        )
    assert np.array_equal(np.asarray(out["tokens"]), np.asarray(ref["tokens"]))
    assert np.abs(np.asarray(out["logprobs"]) - np.asarray(ref["logprobs"])).max() <= 1e-5


def test_unrolled_decode_equals_the_layer_loop(setup):
    """model.decode_unroll decodes on per-layer weights and cache, the layers unrolled: the same tokens and
    log-probs as the layer scan over the stacked cache."""
    from flax import nnx

    _, model, _, b, _ = setup
    unrolled = nnx.clone(model)
    unrolled.cfg = unrolled.model.cfg = model.cfg.replace(decode_unroll=True)
    kw = dict(rng=jax.random.key(2), group_size=3, max_new_tokens=6)
    a, u = sampler.generate(model, b, **kw), sampler.generate(unrolled, b, **kw)
    assert np.array_equal(np.asarray(a["tokens"]), np.asarray(u["tokens"]))
    assert np.abs(np.asarray(a["logprobs"]) - np.asarray(u["logprobs"])).max() <= 1e-5


def test_decode_unroll_auto_is_on_for_gpus_only():
    from configs.grpo_qwen2vl_7b import get_config
    from seedr1_jax.models import checkpoint
    from seedr1_jax.models.config import ConfigError
    from seedr1_jax.rl import preflight

    assert jax.default_backend() == "cpu"  # this suite: "auto" resolves off
    assert [checkpoint.decode_unroll(v) for v in ("auto", "on", "off", "ON")] == [False, True, False, True]
    c = get_config("cpu")
    c.model.decode_unroll = "on"
    assert checkpoint.model_config(c).decode_unroll is True
    c.model.decode_unroll = "sometimes"
    with pytest.raises(ConfigError, match="model.decode_unroll='sometimes'"):
        preflight.check_values(c)


def test_greedy_pick_is_argmax_with_ties_to_the_lowest_index():
    """The CPU greedy pick (top_k) picks argmax's token, ties included (a tied row pins the lowest index)."""
    import jax.numpy as jnp

    logits = jax.random.normal(jax.random.key(3), (6, 1000))
    logits = logits.at[0, [7, 500, 900]].set(9.0)  # a three-way tie for the max
    logits = logits.at[1].set(0.0)  # all tied
    got = np.asarray(jax.jit(sampler.greedy_pick)(logits))
    np.testing.assert_array_equal(got, np.asarray(jnp.argmax(logits, axis=-1)))
    assert got[0] == 7 and got[1] == 0
