"""The generic update and GRPO's prepare/loss split: reference log-probs from the policy's own code path
(KL and gradient exactly 0 at identical weights), computed once per rollout outside the mu loop, and a first
inner step whose ratio is exactly 1; sharding rules that fail loudly instead of replicating silently."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hf_utils import tiny_video_prompts

from configs.common import base_config
from seedr1_jax.models.processor import load_tokenizer
from seedr1_jax.parallel import sharding
from seedr1_jax.rl import grpo, sampler, update


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    _, model, _, host = tiny_video_prompts(tmp_path_factory.mktemp("update"), seed=5, prompt_seed=2)
    host["answer"] = np.asarray(["A", "C"])
    return model, host, load_tokenizer()


def _config(mu=1, beta=0.1, dtype="float32", in_update=True):
    c = base_config()
    c.model.dtype = dtype
    c.grpo.group_size, c.grpo.max_new_tokens, c.grpo.mu, c.grpo.beta = 3, 6, mu, beta
    c.grpo.ref_dtype = dtype
    c.grpo.ref_in_update = in_update
    c.optim.lr = 1e-3
    return c


def _wire(config, model):
    gd, st = nnx.split(model)
    params = jax.tree.map(lambda x: x.astype(jnp.float32), st.to_pure_dict())
    progs = grpo.programs(config, gd, nnx.eval_shape(lambda: model), None, ())
    tx, _ = update.make_optimizer(config, params, 10)
    state = update.TrainState(params=params, opt_state=tx.init(params))
    ref = grpo.reference_params(config, params, progs)
    mode = grpo.reference_mode(config)
    fn = jax.jit(update.make_update(gd, tx, grpo.loss, config, reference=mode))
    step = (lambda s, b: fn(s, b, ref)) if mode == "argument" else fn
    return progs, state, step, ref


@pytest.mark.parametrize("in_update", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_reference_equals_policy_bit_for_bit_at_identical_weights(setup, dtype, in_update):
    model, host, tok = setup
    config = _config(dtype=dtype, in_update=in_update)
    progs, state, step, ref = _wire(config, model)
    prep = grpo.prepare(config, progs, state.params, ref, host, tok, jax.random.key(0))
    batch = prep.batch.replace(advantages=jnp.zeros_like(prep.batch.advantages))  # all-zero advantages
    if in_update:  # the update computes the reference's log-probs: prepare only says the weights are equal
        assert batch.ref_logp is None and batch.anchor_logp is None and bool(batch.pin_anchor)
    else:
        assert np.asarray(batch.anchor_logp).tobytes() == np.asarray(batch.ref_logp).tobytes()
    new, m = step(state, batch)
    assert float(m["kl"]) == 0.0 and float(m["grad_norm"]) == 0.0 and float(m["loss"]) == 0.0
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_mu2_reference_once_per_rollout_and_first_ratio_exactly_one(setup, monkeypatch):
    model, host, tok = setup
    config = _config(mu=2)
    progs, state, step, ref = _wire(config, model)
    calls = []

    def counting(params, prompts, tokens):
        calls.append(params)
        return progs.logprobs(params, prompts, tokens)

    prep = grpo.prepare(
        config, dataclasses.replace(progs, logprobs=counting), state.params, ref, host, tok, jax.random.key(1)
    )
    assert len(calls) == 2  # the anchor (current policy) and the reference, each once for the whole rollout

    traced = []
    real = sampler.completion_logprobs
    monkeypatch.setattr(sampler, "completion_logprobs", lambda *a, **k: traced.append(1) or real(*a, **k))
    rng = np.random.default_rng(0)
    batch = prep.batch.replace(advantages=jnp.asarray(rng.standard_normal(prep.batch.advantages.shape), jnp.float32))
    state1, m0 = step(state, batch)
    assert len(traced) == 1  # the update runs the policy's forward only: no reference pass inside the mu loop
    assert float(m0["ratio_mean"]) == 1.0 and float(m0["clip_frac"]) == 0.0
    _, m1 = step(state1, batch.replace(inner_step=jnp.asarray(1, jnp.int32)))
    assert len(traced) == 1 and float(m1["ratio_mean"]) != 1.0  # later inner steps see the moved policy


@pytest.mark.parametrize("in_update", [True, False])
def test_mu1_runs_one_forward_per_rollout_and_pins_only_at_identical_weights(setup, in_update):
    """mu = 1, beta > 0: the reference's forward is the only one besides the policy's (inside the update with
    `grpo.ref_in_update`, else its own pass); at identical weights it doubles as the anchor (KL exactly 0), once
    the weights moved the loss uses its own live log-probs."""
    model, host, tok = setup
    config = _config(mu=1, in_update=in_update)
    progs, state, step, ref = _wire(config, model)
    calls = []

    def counting(params, prompts, tokens):
        calls.append(1)
        return progs.logprobs(params, prompts, tokens)

    counted = dataclasses.replace(progs, logprobs=counting)
    prep = grpo.prepare(config, counted, state.params, ref, host, tok, jax.random.key(3))
    assert len(calls) == int(not in_update) and bool(prep.batch.pin_anchor)
    if not in_update:  # the skipped anchor forward would have given exactly the reference's bits
        policy = progs.logprobs(progs.to_compute(state.params), prep.batch.prompts, prep.batch.tokens)
        assert np.asarray(policy).tobytes() == np.asarray(prep.batch.ref_logp).tobytes()
    rng = np.random.default_rng(1)
    batch = prep.batch.replace(advantages=jnp.asarray(rng.standard_normal(prep.batch.advantages.shape), jnp.float32))
    state1, m0 = step(state, batch)
    assert float(m0["kl"]) == 0.0 and float(m0["ratio_mean"]) == 1.0

    prep1 = grpo.prepare(config, counted, state1.params, ref, host, tok, jax.random.key(3))
    assert len(calls) == 2 * int(not in_update) and not bool(prep1.batch.pin_anchor)
    _, m1 = step(state1, prep1.batch.replace(advantages=batch.advantages))
    assert float(m1["kl"]) > 0.0 and float(m1["ratio_mean"]) == 1.0  # the moved policy's own live log-probs


def test_reference_inside_the_update_equals_its_own_pass(setup):
    """mu = 1: the reference's log-probs computed inside the update give the step the separate pass gives (the
    same KL, loss, gradient and new weights to float tolerance), from weights that differ from the reference's."""
    model, host, tok = setup
    out = {}
    for in_update in (True, False):
        config = _config(mu=1, in_update=in_update)
        progs, state, step, ref = _wire(config, model)
        state = state.replace(params=jax.tree.map(lambda x: x * 1.01, state.params))  # not the reference
        prep = grpo.prepare(config, progs, state.params, ref, host, tok, jax.random.key(4))
        assert not bool(prep.batch.pin_anchor)
        rng = np.random.default_rng(2)
        adv = jnp.asarray(rng.standard_normal(prep.batch.advantages.shape), jnp.float32)
        new, m = step(state, prep.batch.replace(advantages=adv))
        out[in_update] = (jax.device_get(m), jax.device_get(new.params), np.asarray(prep.batch.tokens))
    (m_in, p_in, t_in), (m_out, p_out, t_out) = out[True], out[False]
    assert np.array_equal(t_in, t_out)  # the same rollout
    assert float(m_in["kl"]) > 0.0
    for k in ("kl", "loss", "grad_norm"):
        np.testing.assert_allclose(float(m_in[k]), float(m_out[k]), rtol=1e-5, err_msg=k)
    for a, b in zip(jax.tree.leaves(p_in), jax.tree.leaves(p_out)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_beta0_mu1_skips_reference_and_anchor(setup):
    model, host, tok = setup
    config = _config(beta=0.0)
    progs, state, step, ref = _wire(config, model)
    assert ref is None
    prep = grpo.prepare(config, progs, state.params, ref, host, tok, jax.random.key(2))
    assert prep.batch.ref_logp is None and prep.batch.anchor_logp is None
    _, m = step(state, prep.batch)
    assert float(m["kl"]) == 0.0 and np.isfinite(float(m["loss"]))


def test_sharding_rules_fail_loudly():
    mesh = sharding.make_mesh((1, 2, 4))
    with pytest.raises(sharding.ShardingError, match="embedd"):
        sharding.logical_to_spec(("embedd",), (64,), mesh, sharding.TRAIN_RULES, name="w")
    with pytest.raises(sharding.ShardingError, match=r"model/q_proj.*'mlp'.*size 6.*'tensor'.*allow_uneven"):
        sharding.logical_to_spec(
            ("embed", "mlp"), (64, 6), mesh, sharding.TRAIN_RULES, strict=True, name="model/q_proj"
        )
    # opt-in: the dimension stays replicated
    spec = sharding.logical_to_spec(("embed", "mlp"), (64, 6), mesh, sharding.TRAIN_RULES)
    assert spec == jax.sharding.PartitionSpec("fsdp", None)


@pytest.mark.parametrize("shape", [(1, 32, 1), (1, 8, 4)])
def test_7b_preset_is_almost_fully_sharded(shape):
    from seedr1_jax.models.config import preset
    from seedr1_jax.models.families import abstract_model

    mesh = jax.sharding.AbstractMesh(shape, sharding.MESH_AXES)
    frac = sharding.replicated_fraction(nnx.state(abstract_model(preset("qwen2_vl_7b"))), mesh)
    assert frac < 0.01, frac


def test_trimmed_completions_give_the_same_update(setup):
    """grpo.completion_bucket drops columns that every row has finished: same loss, KL and gradient."""
    model, host, tok = setup
    config = _config()  # 6 new tokens
    progs, state, step, ref = _wire(config, model)
    b = grpo.prepare(config, progs, state.params, ref, host, tok, jax.random.key(3)).batch
    tokens, mask = np.asarray(b.tokens), np.asarray(b.mask).copy()
    mask[:, 4:] = 0  # every row stopped by column 3 (one row earlier)
    mask[0, 2:] = 0
    adv = jnp.asarray(np.random.default_rng(1).standard_normal(b.advantages.shape), jnp.float32)

    def metrics(t, m):
        t, m = jnp.asarray(t), jnp.asarray(m)
        logp = lambda p: progs.logprobs(progs.to_compute(p), b.prompts, t)  # noqa: E731
        batch = b.replace(tokens=t, mask=m, advantages=adv, anchor_logp=logp(state.params), ref_logp=logp(ref))
        return step(state, batch)[1]

    t2, m2 = grpo.trim_completions(tokens, mask, bucket=2)
    assert t2.shape[1] == m2.shape[1] == 4 and (m2 == mask[:, :4]).all()
    full, trimmed = metrics(tokens, mask), metrics(t2, m2)
    for k in ("loss", "kl", "grad_norm"):
        np.testing.assert_allclose(float(trimmed[k]), float(full[k]), rtol=1e-5, atol=1e-9)
    assert float(full["grad_norm"]) > 0
    # nothing to drop: a row without a closing <|im_end|> uses every column; bucket 0 keeps everything
    assert grpo.trim_completions(tokens, np.ones_like(mask), bucket=2)[0].shape[1] == 6
    assert grpo.trim_completions(tokens, mask, bucket=0)[0].shape[1] == 6
    assert grpo.trim_completions(tokens, mask, bucket=5)[0].shape[1] == 5


def test_the_attention_summary_runs_only_when_a_reward_asks(setup, monkeypatch):
    """`grpo.prepare` runs the rollout's attention pass (`rl/grounding.py`) only when a reward names `attention`
    (here the built-in `grounding`, logged at weight 0); otherwise nothing beyond the rollout runs."""
    from seedr1_jax.rl import grounding

    model, host, tok = setup
    calls = []
    real = grounding.summary
    monkeypatch.setattr(grounding, "summary", lambda *a, **k: calls.append(1) or real(*a, **k))
    config = _config(beta=0.0)
    progs, state, _, ref = _wire(config, model)
    prep = grpo.prepare(config, progs, state.params, ref, host, tok, jax.random.key(5))
    assert not calls and "attention" not in prep.timings and "reward_grounding" not in prep.scalars
    config.grpo.rewards = {"accuracy": 1.0, "grounding": 0.0}
    prep = grpo.prepare(config, progs, state.params, ref, host, tok, jax.random.key(5))
    assert len(calls) == 1 and prep.timings["attention"] > 0 and prep.scalars["reward_grounding"] == 0.0  # no evidence


def test_ema_reference_moves_by_its_decay_and_is_the_kl_reference(setup):
    """`grpo.ema_ref_decay` = d: after each step the state's reference is d ref + (1 - d) params (GRPO-CARE), the
    update reads it as its reference (mu = 1: inside the program), and it starts equal to the policy (KL 0)."""
    model, host, tok = setup
    config = _config(mu=1)
    config.grpo.ema_ref_decay = 0.5
    gd, st = nnx.split(model)
    params = jax.tree.map(lambda x: x.astype(jnp.float32), st.to_pure_dict())
    progs = grpo.programs(config, gd, nnx.eval_shape(lambda: model), None, ())
    tx, _ = update.make_optimizer(config, params, 10)
    state = update.TrainState(params=params, opt_state=tx.init(params), ref=jax.tree.map(jnp.copy, params))
    assert grpo.reference_mode(config) == "ema" and grpo.reference_params(config, params, progs) is None
    step = jax.jit(update.make_update(gd, tx, grpo.loss, config, reference="ema"))
    for i in range(2):
        prep = grpo.prepare(config, progs, state.params, state.ema_reference(), host, tok, jax.random.key(6 + i))
        assert bool(prep.batch.pin_anchor) == (i == 0)
        rng = np.random.default_rng(i)
        adv = jnp.asarray(rng.standard_normal(prep.batch.advantages.shape), jnp.float32)
        new, m = step(state, prep.batch.replace(advantages=adv))
        assert (float(m["kl"]) == 0.0) == (i == 0)
        for r0, r1, p1 in zip(*(jax.tree.leaves(t) for t in (state.ref, new.ref, new.params))):
            np.testing.assert_allclose(
                np.asarray(r1), 0.5 * np.asarray(r0) + 0.5 * np.asarray(p1), rtol=1e-6, atol=1e-7
            )
        state = new
