"""GRPO math vs an independent PyTorch implementation of docs/recipe.md section 5, plus hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from seedr1_jax.rl import grpo

B, T, V, G = 8, 12, 37, 4
TOL = 1e-5


# ---------------------------------------------------------------------------------------------------------------
# Independent reference: written from docs/recipe.md section 5 in the style of the PyTorch (TRL / open-r1) trainer.
# ---------------------------------------------------------------------------------------------------------------


def torch_advantages(rewards, g, eps=1e-4):
    r = rewards.view(-1, g)
    mean = r.mean(dim=1).repeat_interleave(g)
    std = r.std(dim=1).repeat_interleave(g)  # torch.std is unbiased by default
    return (rewards - mean) / (std + eps)


def torch_token_logprobs(logits, tokens):
    return torch.gather(torch.log_softmax(logits, dim=-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


def torch_mask(tokens, eos=151645):
    is_eos = tokens == eos
    eos_idx = torch.full((tokens.size(0),), tokens.size(1), dtype=torch.long)
    has = is_eos.any(dim=1)
    eos_idx[has] = is_eos.int().argmax(dim=1)[has]
    seq_idx = torch.arange(tokens.size(1)).expand(tokens.size(0), -1)
    return (seq_idx <= eos_idx.unsqueeze(1)).int()


def torch_loss(logp, old_logp, ref_logp, adv, mask, beta, eps_low, eps_high, reduction, max_len):
    if old_logp is None:
        old_logp = logp.detach()
    coef_1 = torch.exp(logp - old_logp)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(coef_1 * adv.unsqueeze(1), coef_2 * adv.unsqueeze(1))
    if beta != 0.0:
        d = torch.clamp(ref_logp - logp, -11.0, 11.0)
        per_token = per_token + beta * (torch.exp(d) - d - 1)
    mask = mask.float()
    if reduction == "sequence":
        return ((per_token * mask).sum(dim=1) / mask.sum(dim=1)).mean()
    if reduction == "token":
        return (per_token * mask).sum() / mask.sum()
    return (per_token * mask).sum() / (per_token.size(0) * max_len)


# ---------------------------------------------------------------------------------------------------------------


def _inputs(seed, *, mu_gt_1):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, T, V)).astype(np.float32) * 2
    tokens = rng.integers(0, V, size=(B, T)).astype(np.int32)
    logp = np.asarray(torch_token_logprobs(torch.from_numpy(logits), torch.from_numpy(tokens).long()))
    # Offsets of +-0.5 in log space push many ratios outside [0.8, 1.2], so clipping is active.
    old_logp = (logp + rng.normal(scale=0.5, size=logp.shape)).astype(np.float32) if mu_gt_1 else None
    ref_logp = (logp + rng.normal(scale=1.0, size=logp.shape)).astype(np.float32)
    rewards = rng.integers(0, 2, size=B).astype(np.float32)
    adv = np.asarray(torch_advantages(torch.from_numpy(rewards), G))
    lengths = rng.integers(1, T + 1, size=B)
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int32)
    return logits, tokens, logp, old_logp, ref_logp, adv, mask


def _jax_loss_and_grads(logits, tokens, old_logp, ref_logp, adv, mask, **kw):
    def from_logp(lp):
        return grpo.policy_loss(lp, old_logp, ref_logp, adv, mask, **kw)[0]

    def from_logits(lg):
        return from_logp(grpo.token_logprobs(lg, tokens))

    logp = grpo.token_logprobs(logits, tokens)
    loss, metrics = grpo.policy_loss(logp, old_logp, ref_logp, adv, mask, **kw)
    return loss, jax.grad(from_logp)(logp), jax.grad(from_logits)(logits), metrics


def _torch_loss_and_grads(
    logits, tokens, old_logp, ref_logp, adv, mask, *, beta, reduction, max_len, eps_low=0.2, eps_high=0.2
):
    t = lambda x: None if x is None else torch.from_numpy(np.asarray(x))
    lg = t(logits).clone().requires_grad_(True)
    lp_leaf = torch_token_logprobs(t(logits), t(tokens).long()).requires_grad_(True)
    args = (t(old_logp), t(ref_logp), t(adv), t(mask), beta, eps_low, eps_high, reduction, max_len)
    loss = torch_loss(lp_leaf, *args)
    (g_logp,) = torch.autograd.grad(loss, lp_leaf)
    (g_logits,) = torch.autograd.grad(torch_loss(torch_token_logprobs(lg, t(tokens).long()), *args), lg)
    return loss.item(), g_logp.numpy(), g_logits.numpy()


@pytest.mark.parametrize("reduction", grpo.REDUCTIONS)
@pytest.mark.parametrize("mu_gt_1", [False, True], ids=["mu1", "mu2_clipped"])
@pytest.mark.parametrize("beta", [0.1, 0.0], ids=["beta0.1", "beta0"])
def test_loss_and_grads_match_torch(reduction, mu_gt_1, beta):
    logits, tokens, _, old_logp, ref_logp, adv, mask = _inputs(
        10 * grpo.REDUCTIONS.index(reduction) + 2 * mu_gt_1 + (beta > 0), mu_gt_1=mu_gt_1
    )
    max_len = T + 5  # a Dr.GRPO constant different from T, so a wrong denominator shows
    loss, g_logp, g_logits, metrics = _jax_loss_and_grads(
        logits, tokens, old_logp, ref_logp, adv, mask, beta=beta, reduction=reduction, max_completion_len=max_len
    )
    t_loss, t_g_logp, t_g_logits = _torch_loss_and_grads(
        logits, tokens, old_logp, ref_logp, adv, mask, beta=beta, reduction=reduction, max_len=max_len
    )
    np.testing.assert_allclose(float(loss), t_loss, atol=TOL, rtol=0)
    np.testing.assert_allclose(np.asarray(g_logp), t_g_logp, atol=TOL, rtol=0)
    np.testing.assert_allclose(np.asarray(g_logits), t_g_logits, atol=TOL, rtol=0)
    assert np.abs(t_g_logits).max() > 1e-3  # the comparison is not vacuous
    if mu_gt_1:
        assert 0.1 < float(metrics["clip_frac"]) < 0.9, "clipping must be active on part of the tokens"
    else:
        assert float(metrics["clip_frac"]) == 0.0 and float(metrics["ratio_mean"]) == 1.0


def test_asymmetric_clip_matches_torch():
    """DAPO's clip-higher (eps_high > eps_low) must use each bound on its own side."""
    logits, tokens, _, old_logp, ref_logp, adv, mask = _inputs(7, mu_gt_1=True)
    kw = dict(beta=0.1, reduction="token")
    loss, g_logp, _, _ = _jax_loss_and_grads(
        logits, tokens, old_logp, ref_logp, adv, mask, epsilon_low=0.1, epsilon_high=0.28, **kw
    )
    t_loss, t_g_logp, _ = _torch_loss_and_grads(
        logits, tokens, old_logp, ref_logp, adv, mask, eps_low=0.1, eps_high=0.28, max_len=T, **kw
    )
    np.testing.assert_allclose(float(loss), t_loss, atol=TOL, rtol=0)
    np.testing.assert_allclose(np.asarray(g_logp), t_g_logp, atol=TOL, rtol=0)


def test_mu1_gradient_is_advantage_times_grad_logp():
    _, _, logp, _, _, adv, mask = _inputs(1, mu_gt_1=False)
    g = jax.grad(lambda lp: grpo.policy_loss(lp, None, None, adv, mask, beta=0.0)[0])(jnp.asarray(logp))
    expected = -adv[:, None] * mask / mask.sum(axis=1, keepdims=True) / B
    np.testing.assert_allclose(np.asarray(g), expected, atol=1e-7)


def test_beta_zero_skips_reference():
    _, _, logp, old_logp, ref_logp, adv, mask = _inputs(2, mu_gt_1=True)
    with_ref, m1 = grpo.policy_loss(logp, old_logp, ref_logp, adv, mask, beta=0.0)
    no_ref, m2 = grpo.policy_loss(logp, old_logp, None, adv, mask, beta=0.0)
    nan_ref, _ = grpo.policy_loss(logp, old_logp, np.full_like(logp, np.nan), adv, mask, beta=0.0)
    assert float(with_ref) == float(no_ref) == float(nan_ref)
    assert float(m1["kl"]) == float(m2["kl"]) == 0.0
    no_ref_beta, _ = grpo.policy_loss(logp, old_logp, None, adv, mask, beta=0.1)
    assert float(no_ref_beta) == float(no_ref)


def test_kl_metric_is_masked_token_mean():
    _, _, logp, _, ref_logp, adv, mask = _inputs(3, mu_gt_1=False)
    _, metrics = grpo.policy_loss(logp, None, ref_logp, adv, mask)
    d = np.clip(ref_logp - logp, -11, 11)
    expected = ((np.exp(d) - d - 1) * mask).sum() / mask.sum()
    np.testing.assert_allclose(float(metrics["kl"]), expected, rtol=1e-5)


def test_kl_k3_hand_values():
    logp = jnp.array([0.0, -1.0, -30.0, 0.0])
    ref = jnp.array([0.0, 0.0, 0.0, -30.0])
    # d = 0 -> 0; d = 1 -> e - 2; d = 30 clipped to 11; d = -30 clipped to -11.
    expected = [0.0, np.e - 2, np.exp(11.0) - 12, np.exp(-11.0) + 10]
    np.testing.assert_allclose(np.asarray(grpo.kl_k3(logp, ref)), expected, rtol=1e-6)


def test_reduction_rejects_unknown_name():
    with pytest.raises(ValueError, match="reduction"):
        grpo.policy_loss(jnp.zeros((1, 2)), None, None, jnp.zeros(1), jnp.ones((1, 2)), reduction="mean")


def test_sequence_reduction_ignores_fully_masked_rows():
    loss, _ = grpo.policy_loss(
        jnp.zeros((2, 3)), None, None, jnp.array([2.0, 5.0]), jnp.array([[1, 1, 0], [0, 0, 0]]), beta=0.0
    )
    assert float(loss) == -1.0  # row 0: mean(-2, -2) = -2; row 1 contributes 0; mean over 2 rows


def test_gspo_sequence_ratio_hand_computed():
    """GSPO: one ratio per sequence, exp(masked mean of logp - old_logp), clipped; its surrogate on every token."""
    logp = jnp.array([[-1.0, -2.0, -9.0], [-0.5, -0.5, -0.5]])
    old = jnp.array([[-1.5, -1.9, -3.0], [-0.2, -0.4, -0.9]])
    mask = jnp.array([[1, 1, 0], [1, 1, 1]])
    adv = jnp.array([1.0, -2.0])
    # row 0: mean(0.5, -0.1) = 0.2 -> s = e^0.2 = 1.2214 > 1 + 0.2: clipped to 1.2 with A > 0 -> -1.2
    # row 1: mean(-0.3, -0.1, 0.4) = 0 -> s = 1 -> -(1 * -2) = 2
    for reduction, want in (("sequence", (-1.2 + 2.0) / 2), ("token", (2 * -1.2 + 3 * 2.0) / 5)):
        loss, m = grpo.policy_loss(logp, old, None, adv, mask, beta=0.0, reduction=reduction, importance="sequence")
        np.testing.assert_allclose(float(loss), want, rtol=1e-6)
    np.testing.assert_allclose(float(m["clip_frac_high"]), 2 / 5, rtol=1e-6)  # row 0's two tokens
    np.testing.assert_allclose(float(m["ratio_mean"]), (2 * np.exp(0.2) + 3) / 5, rtol=1e-6)
    # the gradient of an unclipped sequence: -A * s * (1/|y|) on each of its tokens, 0 off the mask
    g = jax.grad(lambda lp: grpo.policy_loss(lp, old, None, adv, mask, beta=0.0, importance="sequence")[0])(logp)
    np.testing.assert_allclose(np.asarray(g[1]), [2.0 / 3 / 2] * 3, rtol=1e-6)  # -(-2) * 1 * 1/3, mean of 2 rows
    np.testing.assert_allclose(np.asarray(g[0]), [0.0, 0.0, 0.0], atol=1e-7)  # clipped: no gradient
    with pytest.raises(ValueError, match="importance"):
        grpo.policy_loss(logp, old, None, adv, mask, importance="group")


def test_gspo_equals_grpo_at_mu1():
    """With mu = 1 (old = the current policy) every ratio is 1: GSPO's loss and gradient are GRPO's."""
    _, _, logp, _, ref_logp, adv, mask = _inputs(5, mu_gt_1=False)
    for reduction in grpo.REDUCTIONS:

        def f(lp, imp, reduction=reduction):
            return grpo.policy_loss(lp, None, ref_logp, adv, mask, reduction=reduction, importance=imp)[0]

        a, ga = jax.value_and_grad(f)(jnp.asarray(logp), "token")
        b, gb = jax.value_and_grad(f)(jnp.asarray(logp), "sequence")
        np.testing.assert_allclose(float(a), float(b), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), atol=1e-7)


# --- token log-probs ----------------------------------------------------------------------------------------------


def test_token_logprobs_match_torch_and_accept_bf16():
    logits, tokens, logp, *_ = _inputs(4, mu_gt_1=False)
    np.testing.assert_allclose(np.asarray(grpo.token_logprobs(logits, tokens)), logp, atol=TOL)
    out = grpo.token_logprobs(jnp.asarray(logits, jnp.bfloat16), tokens)
    assert out.dtype == jnp.float32 and out.shape == (B, T)
    np.testing.assert_allclose(np.asarray(out), logp, atol=0.1)


# --- advantages ---------------------------------------------------------------------------------------------------


def test_group_advantages_hand_computed():
    r = jnp.array([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], jnp.float32)
    # group 1: mean 0.25, unbiased std sqrt(0.75 / 3) = 0.5; group 2: mean 0.5, std sqrt(1 / 3).
    s2 = np.sqrt(1 / 3)
    expected = (
        [0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001]
        + [0.5 / (s2 + 1e-4)] * 2
        + [-0.5 / (s2 + 1e-4)] * 2
    )
    np.testing.assert_allclose(np.asarray(grpo.group_advantages(r, 4)), expected, rtol=1e-6)


def test_group_advantages_all_equal_groups_are_exactly_zero():
    r = jnp.array([0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 0.7, 0.7, 0.7, 0.0, 1.0, 0.0], jnp.float32)
    adv = np.asarray(grpo.group_advantages(r, 3))
    assert (adv[:9] == 0.0).all()
    assert adv[9:].tolist() != [0.0, 0.0, 0.0]


def test_group_advantages_match_torch_and_jit():
    rewards = np.random.default_rng(5).random(64).astype(np.float32)
    expected = torch_advantages(torch.from_numpy(rewards), 8).numpy()
    got = jax.jit(grpo.group_advantages, static_argnums=1)(rewards, 8)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)


def test_group_advantages_unscaled_and_bad_group():
    r = jnp.array([1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(np.asarray(grpo.group_advantages(r, 4, scale_by_std=False)), [0.75, -0.25, -0.25, -0.25])
    with pytest.raises(ValueError, match="group_size"):
        grpo.group_advantages(r, 3)
    with pytest.raises(ValueError, match="group_size"):
        grpo.group_advantages(r, 1)


# --- completion mask ----------------------------------------------------------------------------------------------


def test_completion_mask_hand_computed():
    E, P = grpo.IM_END, grpo.ENDOFTEXT
    tokens = jnp.array(
        [
            [5, 6, E, P, P],  # stops at im_end: mask includes it, not the padding
            [E, 7, E, P, P],  # the FIRST im_end closes the mask
            [5, 6, 7, 8, 9],  # no eos: everything counts
            [5, P, P, P, P],  # stopped on endoftext: no im_end, so everything counts (docs/recipe.md 5)
            [5, 6, 7, 8, E],
        ],
        jnp.int32,
    )
    expected = [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    got = grpo.completion_mask(tokens)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), expected)
    np.testing.assert_array_equal(np.asarray(torch_mask(torch.from_numpy(np.array(tokens)))), expected)
    both = grpo.completion_mask(tokens, eos_ids=(E, P))
    np.testing.assert_array_equal(np.asarray(both)[3], [1, 1, 0, 0, 0])


def test_completion_mask_matches_torch_on_random_tokens():
    rng = np.random.default_rng(6)
    tokens = rng.choice([1, 2, grpo.IM_END, grpo.ENDOFTEXT], size=(32, 10), p=[0.4, 0.4, 0.1, 0.1]).astype(np.int32)
    np.testing.assert_array_equal(
        np.asarray(jax.jit(grpo.completion_mask)(tokens)), torch_mask(torch.from_numpy(tokens)).numpy()
    )


def test_informative_groups_and_dapo_refill_order_by_hand():
    """Dynamic sampling keeps the groups whose rewards differ, in the order they were sampled, the first B; when
    the rounds run out it tops up with uninformative groups of the latest round first, and counts them."""
    total = np.array([1, 1, 0, 1, 0, 0, 0.5, 0.5], np.float32)  # G = 2: groups (1,1) (0,1) (0,0) (.5,.5)
    np.testing.assert_array_equal(grpo.informative_groups(total, 2), [False, True, False, False])
    r0, r1 = np.array([False, True, False, True]), np.array([True, True, False, False])
    assert grpo.select_groups([r0, r1], 4) == ([(0, 1), (0, 3), (1, 0), (1, 1)], 0)
    assert grpo.select_groups([r0, r1], 3) == ([(0, 1), (0, 3), (1, 0)], 0)
    # one round with one informative group, B = 4: three uninformative groups top it up, in prompt order
    assert grpo.select_groups([np.array([False, False, True, False])], 4) == ([(0, 2), (0, 0), (0, 1), (0, 3)], 3)
    # two rounds, 3 informative of 4: the top-up comes from the latest round
    assert grpo.select_groups([r0, np.array([False, True, False, False])], 4) == (
        [(0, 1), (0, 3), (1, 1), (1, 0)],
        1,
    )
