"""Rewards: a table row per rule of docs/recipe.md section 4, and a property test that no text makes a reward raise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedr1_jax.rl import rewards

GT = "<answer>B.</answer>"  # the stored form of the ground truth

ACCURACY_CASES = [
    # (completion, ground truth, expected, rule)
    ("<think>x</think><answer>B</answer>", GT, 1.0, "letter"),
    ("<answer>B. Open the drawer</answer>", GT, 1.0, "first character only"),
    ("<answer>B</answer>", "B", 1.0, "bare-letter ground truth"),
    ("<answer>B</answer>", " B ", 1.0, "bare ground truth is stripped"),
    ("<answer>C</answer>", GT, 0.0, "wrong letter"),
    ("<answer>b</answer>", GT, 0.0, "case-sensitive"),
    ("<answer>  \n B \t</answer>", GT, 1.0, "whitespace stripped"),
    ("<answer>\nB\n</answer>", GT, 1.0, "DOTALL: newlines inside the tag"),
    ("<answer>A</answer> then <answer>B</answer>", GT, 0.0, "first match wins (wrong first)"),
    ("<answer>B</answer> then <answer>A</answer>", GT, 1.0, "first match wins (right first)"),
    ("<answer>B</answer></answer>", GT, 1.0, "non-greedy"),
    ("The answer is B.", GT, 0.0, "no tag"),
    ("<answer>B", GT, 0.0, "unclosed tag"),
    ("B</answer>", GT, 0.0, "unopened tag"),
    ("<answer></answer>", GT, 0.0, "empty answer"),
    ("<answer>   </answer>", GT, 0.0, "blank answer"),
    ("<ANSWER>B</ANSWER>", GT, 0.0, "tag names are case-sensitive"),
    ("", GT, 0.0, "empty completion"),
    ("<answer>B</answer>", "", 0.0, "empty ground truth"),
    ("<answer>B</answer>", "<answer></answer>", 0.0, "empty stored ground truth"),
    ("<answer>(B)</answer>", GT, 0.0, "first character must be the letter"),
]


@pytest.mark.parametrize("completion,gt,expected,rule", ACCURACY_CASES, ids=[c[3] for c in ACCURACY_CASES])
def test_accuracy_reward(completion, gt, expected, rule):
    assert rewards.accuracy_reward(completion, gt) == expected


EXACT_CASES = [
    ("<answer>B</answer>", GT, 1.0, "letter"),
    ("<answer> B \n</answer>", "B", 1.0, "stripped"),
    ("<answer>B.</answer>", GT, 0.0, "trailing text is not exact"),
    ("<answer>B. Open</answer>", GT, 0.0, "option text is not exact"),
    ("<answer>b</answer>", GT, 0.0, "case-sensitive"),
    ("<answer>A</answer><answer>B</answer>", GT, 0.0, "first match wins"),
    ("<answer></answer>", GT, 0.0, "empty answer"),
    ("<answer></answer>", "", 0.0, "empty answer vs empty ground truth"),
    ("B", GT, 0.0, "no tag"),
]


@pytest.mark.parametrize("completion,gt,expected,rule", EXACT_CASES, ids=[c[3] for c in EXACT_CASES])
def test_exact_reward(completion, gt, expected, rule):
    assert rewards.exact_reward(completion, gt) == expected


FORMAT_CASES = [
    ("<think>r</think><answer>B</answer>", 1.0, "minimal"),
    ("<think>a\nb</think>\n \t<answer>\nB\n</answer>", 1.0, "DOTALL and whitespace between tags"),
    ("<think></think><answer></answer>", 1.0, "empty tags still match"),
    ("<think>r</think><answer>B</answer> trailing text", 1.0, "prefix match: trailing text allowed"),
    (" <think>r</think><answer>B</answer>", 0.0, "must start at the first character"),
    ("ok <think>r</think><answer>B</answer>", 0.0, "text before think"),
    ("<think>r</think> x <answer>B</answer>", 0.0, "only whitespace between the tags"),
    ("<answer>B</answer><think>r</think>", 0.0, "wrong order"),
    ("<think>r</think>", 0.0, "no answer"),
    ("<answer>B</answer>", 0.0, "no think"),
    ("<think>r<answer>B</answer>", 0.0, "think not closed"),
    ("", 0.0, "empty"),
]


@pytest.mark.parametrize("completion,expected,rule", FORMAT_CASES, ids=[c[2] for c in FORMAT_CASES])
def test_format_reward(completion, expected, rule):
    assert rewards.format_reward(completion, GT) == expected
    assert rewards.format_reward(completion) == expected


def test_ground_truth_letter_forms():
    assert rewards.ground_truth_letter("<answer>B.</answer>") == "B"
    assert rewards.ground_truth_letter("<answer> D. text</answer>") == "D"
    assert rewards.ground_truth_letter("C") == "C"
    assert rewards.ground_truth_letter("") == ""


def test_compute_rewards_default_is_accuracy_only():
    comps = ["<think>x</think><answer>B</answer>", "<answer>A</answer>", "B"]
    total, values = rewards.compute_rewards(comps, [GT] * 3)
    assert list(values) == ["accuracy"]
    assert total.dtype == np.float32 and total.tolist() == [1.0, 0.0, 0.0]


def test_compute_rewards_care_weights_and_logging():
    comps = ["<think>x</think><answer>B</answer>", "<think>x</think><answer>B.</answer>", "<answer>B</answer>", "B"]
    total, values = rewards.compute_rewards(comps, ["B"] * 4, rewards.CARE_REWARD_WEIGHTS)
    assert values["exact"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert values["format"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert total.tolist() == [2.0, 1.0, 1.0, 0.0]
    total, values = rewards.compute_rewards(comps, ["B"] * 4, {"accuracy": 0.5, "format": 0.0})
    assert total.tolist() == [0.5, 0.5, 0.5, 0.0] and values["format"].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_compute_rewards_rejects_bad_config():
    with pytest.raises(ValueError, match="unknown reward.*'acc'.*choose from"):
        rewards.compute_rewards(["x"], ["B"], {"acc": 1.0})
    with pytest.raises(ValueError, match="empty"):
        rewards.compute_rewards(["x"], ["B"], {})
    with pytest.raises(ValueError, match="2 completions but 1 ground truths"):
        rewards.compute_rewards(["x", "y"], ["B"])


def length_bonus(completion, ground_truth):
    """A custom reward with the built-ins' signature (used through `grpo.rewards` as 'test_rewards:length_bonus')."""
    return min(len(completion), 10) / 10


def wrong_arity(completion):
    return 1.0


def raises(completion, ground_truth):
    raise KeyError("boom")


SEEN = []


def names_the_answer(completion, sample, **ctx):
    """A process reward (second parameter `sample`): records what it received; 1.0 iff the completion contains the
    right option's text."""
    SEEN.append((sample, ctx))
    return float(sample["answer_text"] in completion)


def answer_is_c(completion, sample, **ctx):
    return float(sample["answer"] == "C")


def test_process_reward_sees_the_sample_and_ctx_beside_a_two_argument_one():
    SEEN.clear()
    samples = [
        dict(answer="B", options=["wash the red cup", "wash the blue cup"], answer_text="wash the blue cup"),
        dict(answer="A", options=["wash the red cup", "wash the blue cup"], answer_text="wash the red cup"),
    ]
    comps = ["<think>the blue cup</think><answer>B. wash the blue cup</answer>", "<answer>B</answer>"]
    w = {"accuracy": 1.0, "test_rewards:names_the_answer": 0.5, "test_rewards:length_bonus": 0.0}
    total, values = rewards.compute_rewards(comps, ["B", "A"], w, samples=samples, ctx={"step": 7})
    np.testing.assert_allclose(values["test_rewards:names_the_answer"], [1.0, 0.0])
    np.testing.assert_allclose(values["accuracy"], [1.0, 0.0])
    np.testing.assert_allclose(total, [1.5, 0.0])
    assert [s for s, _ in SEEN] == samples and all(c == {"step": 7} for _, c in SEEN)
    # without samples, a process reward gets the ground truth as sample["answer"]
    _, v = rewards.compute_rewards(["x", "y"], ["C", "D"], {"test_rewards:answer_is_c": 1.0})
    np.testing.assert_allclose(v["test_rewards:answer_is_c"], [1.0, 0.0])
    assert rewards.takes_sample(names_the_answer) and not rewards.takes_sample(length_bonus)
    with pytest.raises(ValueError, match="2 completions but 2 ground truths and 1 samples"):
        rewards.compute_rewards(comps, ["B", "A"], w, samples=samples[:1])


@pytest.mark.parametrize(
    "completion,answer_text,expected,rule",
    [
        ("<think>a red square slides</think><answer>A</answer>", "open the red box", 1.0, "names the colour shown"),
        ("<think>a red square</think><answer>B. the blue box</answer>", "open the red box", 1.0, "answer not judged"),
        ("<think>a blue square</think><answer>A</answer>", "open the red box", 0.0, "names another colour"),
        ("<think>red or blue</think><answer>A</answer>", "open the red box", 0.0, "two colours: no claim"),
        ("<think>something moves</think><answer>A</answer>", "open the red box", 0.0, "no colour"),
        ("red <answer>A</answer>", "open the red box", 0.0, "no <think>"),
        ("<think>reddish</think>", "open the red box", 0.0, "a word, not a substring"),
        ("<think>the red cup</think>", "pick up the cup", 0.0, "real data: no scene colour"),
        (None, "open the red box", 0.0, "not text"),
    ],
)
def test_visual_consistency_reward(completion, answer_text, expected, rule):
    sample = dict(answer="A", answer_text=answer_text, options=[answer_text])
    assert rewards.visual_consistency_reward(completion, sample, step=3) == expected, rule
    _, v = rewards.compute_rewards([completion or ""], ["A"], {"visual_consistency": 1.0}, samples=[sample])
    assert v["visual_consistency"][0] == (expected if completion is not None else 0.0)


def test_reward_noise_flips_accuracy_at_the_set_rate_seeded():
    n = 4000
    comps = ["<think>x</think><answer>B</answer>"] * (n // 2) + ["<answer>C</answer>"] * (n // 2)
    w = {"accuracy": 1.0, "format": 1.0}
    total, v = rewards.compute_rewards(comps, ["B"] * n, w, noise=0.2, noise_seed=(0, 5))
    flipped = v["accuracy"] != v["accuracy_clean"]
    assert abs(flipped.mean() - 0.2) < 0.03 and flipped[: n // 2].any() and flipped[n // 2 :].any()
    np.testing.assert_array_equal(v["accuracy"], np.where(flipped, 1 - v["accuracy_clean"], v["accuracy_clean"]))
    np.testing.assert_allclose(total, v["accuracy"] + v["format"])  # the noisy value is what trains
    assert "format_clean" not in v  # only the accuracy rewards are flipped
    again = rewards.compute_rewards(comps, ["B"] * n, w, noise=0.2, noise_seed=(0, 5))[1]
    other = rewards.compute_rewards(comps, ["B"] * n, w, noise=0.2, noise_seed=(0, 6))[1]
    np.testing.assert_array_equal(again["accuracy"], v["accuracy"])
    assert (other["accuracy"] != v["accuracy"]).any()
    assert "accuracy_clean" not in rewards.compute_rewards(comps, ["B"] * n, w)[1]  # no noise: nothing extra
    from seedr1_jax.models.config import ConfigError

    with pytest.raises(ConfigError, match="reward_noise is 1.5"):
        rewards.compute_rewards(comps, ["B"] * n, w, noise=1.5)


def test_reward_samples_from_a_host_batch():
    from seedr1_jax.rl.grpo import reward_samples

    batch = dict(
        answer=np.asarray(["B", "A"]),
        options=["wash the red cup\nwash the blue cup", "x\ny\nz"],
        answer_text=["wash the blue cup", "x"],
        sample_id=[b"s0", b"s1"],
        domain=["", "Work"],
        prompt=["p0", "p1"],
        input_ids=np.zeros((2, 3)),
    )
    got = reward_samples(batch)
    assert got[0] == dict(
        answer="B",
        answer_text="wash the blue cup",
        sample_id="s0",
        domain="",
        prompt="p0",
        options=["wash the red cup", "wash the blue cup"],
    )
    assert got[1]["options"] == ["x", "y", "z"] and got[1]["domain"] == "Work"


def test_custom_reward_from_the_config_is_weighted_and_logged():
    from configs.tiny import get_config

    c = get_config("grpo")
    c.grpo.rewards = {"accuracy": 1.0, "test_rewards:length_bonus": 0.5}
    comps = ["<answer>B</answer>", "<answer>A</answer>", "B"]
    total, values = rewards.compute_rewards(comps, ["B"] * 3, dict(c.grpo.rewards))
    np.testing.assert_allclose(values["test_rewards:length_bonus"], [1.0, 1.0, 0.1], rtol=1e-6)
    np.testing.assert_allclose(total, [1.5, 0.5, 0.05], rtol=1e-6)


@pytest.mark.parametrize(
    "name,message",
    [
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("test_rewards:missing", "has no function 'missing'"),
        ("test_rewards:GT", "has no function 'GT'"),  # exists, but not callable
        ("test_rewards:wrong_arity", r"wrong_arity\(completion\) cannot be called as f\(completion, ground_truth\)"),
        ("accuracyy", "unknown reward 'accuracyy'"),
    ],
)
def test_bad_custom_reward_is_a_clear_config_error(name, message):
    from seedr1_jax.models.config import ConfigError

    with pytest.raises(ConfigError, match="grpo.rewards.*" + message):
        rewards.compute_rewards(["x"], ["B"], {name: 1.0})


def test_custom_reward_errors_name_the_reward():
    from seedr1_jax.models.config import ConfigError

    with pytest.raises(ConfigError, match="reward 'test_rewards:raises' failed on completion 'x'"):
        rewards.compute_rewards(["x"], ["B"], {"test_rewards:raises": 1.0})
    with pytest.raises(ConfigError, match="weight of 'accuracy' is 'high'"):
        rewards.compute_rewards(["x"], ["B"], {"accuracy": "high"})


def test_compute_rewards_empty_batch():
    total, values = rewards.compute_rewards([], [], rewards.CARE_REWARD_WEIGHTS)
    assert total.shape == (0,) and values["exact"].shape == (0,)


# Fragments that make random strings hit the regexes' interesting paths far more often than plain text.
_FRAGMENTS = ["<answer>", "</answer>", "<think>", "</think>", "A", "B", "b", " ", "\n", "\t", ".", "<", ">", "/"]
_texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=3)), max_size=12).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(completion=_texts, gt=st.one_of(_texts, st.sampled_from(["B", GT, "<answer>A.</answer>"])))
def test_rewards_never_raise_and_are_binary(completion, gt):
    outcome = {n: f for n, f in rewards.REWARD_FNS.items() if not rewards.takes_sample(f)}
    for name, fn in outcome.items():  # the process rewards (overlong) are tested by hand above
        assert fn(completion, gt) in (0.0, 1.0), name
    total, values = rewards.compute_rewards([completion], [gt], {"accuracy": 1.0, "exact": 1.0, "format": 1.0})
    assert set(values) == set(outcome) == {"accuracy", "exact", "format"} and total.shape == (1,)
    # exact match implies accuracy: the stripped answer equal to the letter starts with it.
    assert values["exact"][0] <= values["accuracy"][0]


def test_preflight_refuses_a_reward_noise_outside_0_1():
    from configs.tiny import get_config
    from seedr1_jax.models.config import ConfigError
    from seedr1_jax.rl import preflight

    c = get_config("grpo")
    c.grpo.reward_noise = 0.3
    preflight.check_values(c)
    c.grpo.reward_noise = -0.1
    with pytest.raises(ConfigError, match="grpo.reward_noise"):
        preflight.check_values(c)


@pytest.mark.parametrize(
    "n, limit, buf, want",
    [
        (10, 48, 16, 0.0),  # well inside
        (32, 48, 16, 0.0),  # at L - c: the last length without a penalty
        (36, 48, 16, -0.25),  # (48 - 16 - 36) / 16
        (44, 48, 16, -0.75),
        (48, 48, 16, -1.0),  # truncated
        (47, 48, 0, 0.0),  # no buffer: only a truncated completion is punished
        (48, 48, 0, -1.0),
    ],
)
def test_overlong_reward_by_hand(n, limit, buf, want):
    """DAPO's soft overlong punishment against hand-computed values."""
    got = rewards.overlong_reward("x", {"completion_tokens": n}, max_new_tokens=limit, overlong_buffer=buf, step=3)
    assert got == pytest.approx(want)


def test_overlong_reward_through_compute_rewards_and_without_a_length():
    samples = [{"answer": "B", "completion_tokens": n} for n in (8, 60, 64)]
    comps = ["<answer>B</answer>", "<answer>B</answer>", "<answer>A</answer>"]
    ctx = dict(step=1, max_new_tokens=64, overlong_buffer=16)
    total, v = rewards.compute_rewards(comps, ["B"] * 3, {"accuracy": 1.0, "overlong": 1.0}, samples=samples, ctx=ctx)
    np.testing.assert_allclose(v["overlong"], [0.0, -0.75, -1.0])
    np.testing.assert_allclose(total, [1.0, 0.25, -1.0])
    assert rewards.compute_rewards(["x"], ["B"], {"overlong": 1.0})[0][0] == 0.0  # eval-time: no length, no penalty


def test_preflight_checks_the_overlong_buffer_only_when_the_reward_is_on():
    from configs.tiny import get_config
    from seedr1_jax.models.config import ConfigError
    from seedr1_jax.rl import preflight

    c = get_config("grpo")
    c.grpo.overlong_buffer = 1000  # > max_new_tokens, but the reward is off
    preflight.check_values(c)
    c.grpo.rewards = {"accuracy": 1.0, "overlong": 1.0}
    with pytest.raises(ConfigError, match="grpo.overlong_buffer=1000"):
        preflight.check_values(c)
    c.grpo.overlong_buffer = 16
    preflight.check_values(c)


def test_attention_reaches_only_the_rewards_that_ask_for_it(monkeypatch):
    """A process reward that names `attention` receives each completion's summary; the others' ctx is unchanged;
    without a summary (outside a rollout) the asking reward gets None."""
    seen = {"asks": [], "plain": []}

    def asks(completion, sample, *, attention=None, **ctx):
        seen["asks"].append((attention, ctx))
        return 0.0 if attention is None else attention["visual"]

    def plain(completion, sample, **ctx):
        seen["plain"].append(ctx)
        return 1.0

    assert rewards.wants_attention(asks) and rewards.wants_attention(rewards.grounding_reward)
    assert not rewards.wants_attention(plain) and not rewards.wants_attention(rewards.accuracy_reward)
    assert not rewards.wants_attention(lambda completion, ground_truth, attention=None: 0.0)  # not a process reward
    fns = {"asks": asks, "plain": plain}
    summaries = [
        dict(visual=0.25, video=0.2, evidence=0.5, tokens=3),
        dict(visual=0.75, video=0, evidence=None, tokens=0),
    ]
    monkeypatch.setattr(rewards, "resolve_reward", lambda name: fns[name])  # as if named in grpo.rewards
    total, values = rewards.compute_rewards(["a", "b"], ["A", "B"], {"asks": 1.0, "plain": 0.0},
                                            ctx={"step": 3}, attention=summaries)  # fmt: skip
    assert values["asks"].tolist() == [0.25, 0.75] and total.tolist() == [0.25, 0.75]
    assert [a for a, _ in seen["asks"]] == summaries and all(c == {"step": 3} for _, c in seen["asks"])
    assert seen["plain"] == [{"step": 3}, {"step": 3}]  # no `attention` key for a reward that did not ask
    seen["asks"].clear()
    _, values = rewards.compute_rewards(["a"], ["A"], {"asks": 1.0}, ctx={"step": 0})
    assert values["asks"].tolist() == [0.0] and seen["asks"][0][0] is None


@pytest.mark.parametrize(
    "attention, expected",
    [
        (dict(visual=0.4, video=0.3, evidence=0.625, tokens=5), 0.625),
        (dict(visual=0.4, video=0.3, evidence=None, tokens=5), 0.0),  # the record names no evidence frames
        (dict(visual=0.0, video=0.0, evidence=None, tokens=0), 0.0),  # no <think>
        (None, 0.0),  # outside a rollout
    ],
)
def test_grounding_reward_is_the_evidence_share(attention, expected):
    assert (
        rewards.grounding_reward("<think>x</think><answer>A</answer>", {"answer": "A"}, attention=attention) == expected
    )


@pytest.mark.parametrize(
    "acc, conf, kw, want",
    [
        # accurate = right and >= the group's mean accuracy (0.75); their mean confidence 0.7; confident >= 0.7
        ([1, 1, 0, 1], [0.9, 0.5, 0.99, 0.7], {}, [1, 0, 0, 1]),
        ([1, 1, 0, 1], [0.9, 0.5, 0.99, 0.7], dict(cap=0.8), [1, 0, 0, 1]),  # capped: mean 0.667, same cut
        ([1, 1, 0, 1], [0.9, 0.5, 0.99, 0.7], dict(margin=0.25), [1, 1, 0, 1]),  # the cut at 0.45
        ([1, 1, 1, 1], [0.6, 0.6, 0.6, 0.6], {}, [1, 1, 1, 1]),  # all alike: all at the mean
        ([0, 0, 0, 0], [0.9, 0.8, 0.7, 0.6], {}, [0, 0, 0, 0]),  # nobody right: no bonus
    ],
)
def test_care_consistency_by_hand(acc, conf, kw, want):
    """GRPO-CARE's bonus: within a group, the relatively accurate completions whose reference answer confidence is at
    least their mean (minus the margin; confidences capped) get their accuracy reward."""
    got = rewards.care_consistency(np.asarray(acc, np.float32), np.asarray(conf, np.float32), 4, **kw)
    assert got.tolist() == want


def test_care_consistency_through_compute_rewards_per_group():
    """Groups are scored apart (2 groups of 2), from the exact reward when weighted; its weight is the bonus
    coefficient; without the reference's confidences (outside a rollout) the bonus is 0."""
    done = ["<answer>A</answer>"] * 4
    truth = ["A", "A", "B", "A"]  # group 0 both right; group 1: only the second
    conf = [0.9, 0.4, 0.99, 0.2]
    total, values = rewards.compute_rewards(
        done, truth, {"exact": 1.0, "care_consistency": 0.5}, group_size=2, answer_confidence=conf
    )
    assert values["exact"].tolist() == [1, 1, 0, 1] and values["care_consistency"].tolist() == [1, 0, 0, 1]
    assert total.tolist() == [1.5, 1.0, 0.0, 1.5]
    _, values = rewards.compute_rewards(done, truth, {"exact": 1.0, "care_consistency": 0.5}, group_size=2)
    assert values["care_consistency"].tolist() == [0, 0, 0, 0]
