"""SEED-Bench-R1 rewards (docs/recipe.md section 4): decoded completion text -> float, on the host, in pure Python.

Every reward takes `(completion, ground_truth)` and returns 0.0 or 1.0; none raises on any text, because a
single malformed sample must never kill a rollout. `ground_truth` may be a bare letter ("B") or the stored
form ("<answer>B.</answer>"); both give the letter "B".

Rewards are pluggable: `grpo.rewards` maps a name to a weight, the name being a built-in (`REWARD_FNS`) or any
importable `module:function` returning a number, e.g. `{"accuracy": 1.0, "my_pkg.rewards:length_penalty": 0.1}`.
A function is called in one of two ways, read from its signature:
- `fn(completion: str, ground_truth: str)`: the outcome signature (every built-in);
- `fn(completion: str, sample: dict, **ctx)`: a process reward, whose second parameter is named `sample`. `sample`
  holds the record's fields (`answer`: the letter, `options`: list of option texts, `answer_text`, `sample_id`,
  `domain`, `prompt`, and in a GRPO rollout `completion_tokens`: this completion's length); `ctx` holds `step` (the
  training step), `max_new_tokens` and `overlong_buffer` (grpo's), and `attention` for a reward that names that
  keyword parameter (`wants_attention`): this completion's attention summary from the rollout (`rl/grounding.py`:
  `visual`, `video`, `evidence`, `tokens`), computed in a GRPO rollout only when some reward asks for it, None
  elsewhere.

`grpo.reward_noise` = p flips the accuracy rewards (`accuracy`, `exact`: v -> 1 - v) of a fraction p of the
completions, drawn from a generator seeded by (train seed, step): the noisy-reward experiment. The clean values
are logged beside (`reward_<name>_clean`).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from seedr1_jax.models.config import ConfigError

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)

# The reference GRPO run uses accuracy alone; GRPO-CARE uses exact match plus format.
DEFAULT_REWARD_WEIGHTS: dict[str, float] = {"accuracy": 1.0}
CARE_REWARD_WEIGHTS: dict[str, float] = {"exact": 1.0, "format": 1.0}


def extract_answer(text: str) -> str | None:
    """Stripped content of the FIRST `<answer>...</answer>` (non-greedy, DOTALL), or None without one."""
    m = _ANSWER.search(text) if isinstance(text, str) else None
    return None if m is None else m.group(1).strip()


def ground_truth_letter(ground_truth: str) -> str:
    """ "B", " B ", "<answer>B.</answer>" -> "B"; "" when there is nothing to compare against."""
    if not isinstance(ground_truth, str):
        return ""
    inner = extract_answer(ground_truth)
    text = ground_truth.strip() if inner is None else inner
    return text[:1]


def accuracy_reward(completion: str, ground_truth: str) -> float:
    """1.0 iff the first answer tag's stripped content starts with the ground-truth letter (case-sensitive)."""
    answer, letter = extract_answer(completion), ground_truth_letter(ground_truth)
    return 1.0 if answer and letter and answer[0] == letter else 0.0


def exact_reward(completion: str, ground_truth: str) -> float:
    """GRPO-CARE accuracy: 1.0 iff the first answer tag's stripped content IS the ground-truth letter."""
    answer, letter = extract_answer(completion), ground_truth_letter(ground_truth)
    return 1.0 if letter and answer == letter else 0.0


def format_reward(completion: str, ground_truth: str = "") -> float:
    """1.0 iff the completion starts with `<think>...</think>` then (after whitespace) `<answer>...</answer>`.

    A prefix match like the reference's `re.match`: text after the answer tag is allowed.
    """
    del ground_truth
    return 1.0 if isinstance(completion, str) and _FORMAT.match(completion) else 0.0


def overlong_reward(
    completion: str, sample: dict, *, max_new_tokens: int = 0, overlong_buffer: int = 0, **ctx
) -> float:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), a process reward: with L = max_new_tokens and
    c = overlong_buffer, a completion of n tokens (`sample["completion_tokens"]`) gets 0 for n <= L - c, then
    (L - c - n) / c, falling linearly to -1 at n = L (a truncated completion). c = 0: -1 at n >= L, else 0.
    Without a length (not a GRPO rollout) it gives 0. Use it beside an outcome reward:
    `grpo.rewards={"accuracy": 1.0, "overlong": 1.0}`, the buffer in `grpo.overlong_buffer`."""
    del completion, ctx
    n, limit, buf = sample.get("completion_tokens"), int(max_new_tokens), int(overlong_buffer)
    if n is None or limit <= 0:
        return 0.0
    if buf <= 0:
        return -1.0 if n >= limit else 0.0
    return float(min(0.0, max(-1.0, (limit - buf - n) / buf)))


_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def scene_colour(text: str | None) -> str | None:
    """The one colour of the synthetic scenes (`data_prep.synth.COLORS`) that `text` names as a word, or None when
    it names none or several."""
    from data_prep.synth import COLORS

    found = [c for c in COLORS if re.search(rf"\b{c}\b", text or "")]
    return found[0] if len(found) == 1 else None


_READING = re.compile(r"(?:^|\s)[A-E] is ")  # where a `<think>` starts reading the options (`A is ...`)


def description(think: str) -> str:
    """The part of a `<think>` that says what the model saw: all of it, or what comes before it reads the options
    (the toy base's reading stages: `The square is red. A is wash the blue cup. B is ...`, whose reading names
    every option's colour)."""
    return _READING.split(think, maxsplit=1)[0]


_OPTION_READ = re.compile(r"(?:^|\s)([A-E]) is ([^.<]*)")  # one reading: its letter, then what it says up to . or <


def readings(think: str) -> list[tuple[str, str]]:
    """What a `<think>` writes for each option it reads, in order: (letter, its text up to the next `.` or tag).
    `The square is red. A is rinse the blue cup. B is rinse` -> [("A", "rinse the blue cup"), ("B", "rinse")]."""
    return [(m.group(1), m.group(2).strip()) for m in _OPTION_READ.finditer(think)]


def copies(think: str, options: dict[str, str]) -> list[bool]:
    """Per reading of an option that exists (`options`: letter -> text), whether it is that option's text word
    for word: a reading that only recites the curriculum's template (`A is feud the blue still crown` for `A. open
    the blue box`) copies nothing."""
    return [text.split() == options[k].split() for k, text in readings(think) if k in options]


def visual_consistency_reward(completion: str, sample: dict, **ctx) -> float:
    """A process reward for the synthetic data (issue 21): 1.0 iff the completion's `<think>` names exactly one of
    the scenes' colours and it is the colour the scene shows, whatever the answer; else 0. The scene's colour is
    the one the correct option names (`sample["answer_text"]`: in `seedr1 synth` data that option is the only one
    naming the object's colour). Real data carries no scene facts: there every completion gets 0, which the logged
    `reward_visual_consistency` shows. `study.reasoning`'s `think_sees` is this reward's mean over an evaluation of
    completions that do not read the options (it scores a reading `<think>` by its `description`; this reward, a
    training signal, keeps the stricter rule: naming every colour in a reading earns nothing)."""
    del ctx
    shown = scene_colour(sample.get("answer_text"))
    think = _THINK.search(completion) if isinstance(completion, str) else None
    return 1.0 if shown is not None and think is not None and scene_colour(think.group(1)) == shown else 0.0


def grounding_reward(completion: str, sample: dict, *, attention: dict | None = None, **ctx) -> float:
    """A process reward from the rollout's attention (issue 21; the paper's missed-visual-cue failure): the share of
    the `<think>` tokens' video attention that falls on the frames showing the answer's evidence
    (`attention["evidence"]`, in [0, 1]; `rl/grounding.py`). 0 where the record names no evidence frames (only
    `seedr1 synth` data does: real SEED-Bench-R1 records carry none, so on them every completion gets 0, which the
    logged `reward_grounding` shows), where the completion has no `<think>`, or outside a rollout (no summary)."""
    del completion, sample, ctx
    share = (attention or {}).get("evidence")
    return 0.0 if share is None or not (attention or {}).get("tokens") else float(share)


REWARD_FNS: dict[str, Callable[[str, str], float]] = {
    "accuracy": accuracy_reward,
    "exact": exact_reward,
    "format": format_reward,
    "overlong": overlong_reward,
    "visual_consistency": visual_consistency_reward,
    "grounding": grounding_reward,
}


def resolve_reward(name: str) -> Callable[[str, str], float]:
    """A built-in reward name or `module:function` -> the function; ConfigError names what is wrong."""
    if name in REWARD_FNS:
        return REWARD_FNS[name]
    where = f"grpo.rewards: {name!r}"
    if ":" not in name:
        raise ConfigError(
            f"grpo.rewards: unknown reward {name!r}: choose from {', '.join(sorted({*REWARD_FNS, *GROUP_REWARDS}))}, "
            "or give an "
            "importable 'module:function'"
        )
    mod_name, _, attr = name.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's path or module
        raise ConfigError(f"{where}: cannot import module {mod_name!r} ({type(e).__name__}: {e})") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ConfigError(f"{where}: module {mod_name!r} has no function {attr!r}")
    try:
        if takes_sample(fn):
            return fn
        inspect.signature(fn).bind("completion", "ground_truth")
    except TypeError:
        raise ConfigError(
            f"{where}: {attr}{inspect.signature(fn)} cannot be called as f(completion, ground_truth); a reward "
            "takes the decoded completion and the ground truth (two positional str) and returns a float"
        ) from None
    except ValueError:  # no introspectable signature (some builtins): accept, calls will tell
        pass
    return fn


def takes_sample(fn) -> bool:
    """Whether `fn` is a process reward, `fn(completion, sample, **ctx)` (its second parameter is named `sample`)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(params) >= 2 and params[1].name == "sample"


def care_consistency(accuracy, confidence, group_size: int, *, cap: float = 1.0, margin: float = 0.0) -> np.ndarray:
    """GRPO-CARE's consistency bonus (Chen et al. 2025, the SEED-Bench-R1 authors' follow-up), before its weight
    (the weight is GRPO-CARE's bonus coefficient): within each group of `group_size` completions, those whose
    accuracy reward is > 0.1 and >= the group's mean accuracy ("relatively accurate"), and whose reference answer
    confidence (`grpo.answer_confidence`, capped at `cap`) is >= the mean capped confidence of the group's accurate
    ones minus `margin`, get their accuracy reward; every other completion 0. Without confidences (no reference),
    0 everywhere.

    accuracy, confidence: f32[N] in group order (rows g * group_size + k)."""
    acc = np.asarray(accuracy, np.float32).reshape(-1, group_size)
    if confidence is None:
        return np.zeros(acc.size, np.float32)
    conf = np.minimum(np.asarray(confidence, np.float32).reshape(-1, group_size), cap)
    accurate = (acc > 0.1) & (acc >= acc.mean(1, keepdims=True))
    n = np.maximum(accurate.sum(1, keepdims=True), 1)
    mean_conf = np.where(accurate, conf, 0.0).sum(1, keepdims=True) / n
    bonus = accurate & (conf >= mean_conf - margin)
    return np.where(bonus, acc, 0.0).astype(np.float32).reshape(-1)


# rewards of a whole group at once, from the per-completion ones (`compute_rewards`); name -> function
GROUP_REWARDS = {"care_consistency": care_consistency}


def wants_attention(fn) -> bool:
    """Whether a process reward asks for the rollout's attention summary: it names a parameter `attention`."""
    if not takes_sample(fn):
        return False
    params = inspect.signature(fn).parameters
    return "attention" in params and params["attention"].kind in (
        params["attention"].KEYWORD_ONLY,
        params["attention"].POSITIONAL_OR_KEYWORD,
    )


NOISY = ("accuracy", "exact")  # the rewards `reward_noise` flips


def resolve_rewards(weights: Mapping[str, float]) -> dict[str, Callable[[str, str], float]]:
    """`grpo.rewards` -> {name: function}, checked: at least one entry, numeric weights, resolvable names."""
    if not weights:
        raise ConfigError(f"the reward weights (grpo.rewards) are empty; name at least one of {sorted(REWARD_FNS)}")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise ConfigError(f"grpo.rewards: the weight of {name!r} is {w!r}; use a number")
    return {name: GROUP_REWARDS.get(name) or resolve_reward(name) for name in weights}


def _call(name, fn, completion, ground_truth, sample=None, ctx=None) -> float:
    try:
        if takes_sample(fn):
            return float(fn(completion, dict(sample or {"answer": ground_truth}), **(ctx or {})))
        return float(fn(completion, ground_truth))
    except Exception as e:  # noqa: BLE001 - only custom rewards can get here (the built-ins never raise)
        raise ConfigError(
            f"reward {name!r} failed on completion {completion[:80]!r}: {type(e).__name__}: {e}; a reward must "
            "return a number for any text"
        ) from None


def compute_rewards(
    completions: Sequence[str],
    ground_truths: Sequence[str],
    weights: Mapping[str, float] = DEFAULT_REWARD_WEIGHTS,
    samples: Sequence[Mapping] | None = None,
    ctx: Mapping | None = None,
    noise: float = 0.0,
    noise_seed: Sequence[int] = (0,),
    attention: Sequence[Mapping | None] | None = None,
    group_size: int = 1,
    answer_confidence: Sequence[float] | None = None,
    care: Mapping | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Weighted total reward per completion, plus each named reward for logging.

    Args:
      completions: N decoded completions (a prompt's G samples side by side).
      ground_truths: N ground truths, one per completion (repeat each prompt's G times).
      weights: reward name -> weight; a name is a built-in (`REWARD_FNS`) or `module:function`. A weight of 0
        still logs that reward.
      samples: N record dicts for process rewards (module docstring); default {"answer": ground truth}.
      ctx: keyword arguments for process rewards (e.g. {"step": 7}).
      noise: the probability of flipping each accuracy reward (`NOISY`); noise_seed seeds the draw.
      attention: N attention summaries (`rl/grounding.py`), given as `attention=` to the rewards that ask for it
        (`wants_attention`) and to no other; None gives them None.
      group_size, answer_confidence, care: for the group rewards (`GROUP_REWARDS`): completions per prompt, the
        reference's confidence in each answer, and `care_consistency`'s `cap` / `margin`. Its accuracy is the
        (noisy, if `noise`) `exact` reward when weighted, else `accuracy`.
    Returns:
      total f32[N] = sum_k weights[k] * values[k], and values: name -> f32[N] (with noise, the flipped values;
      the clean ones as `<name>_clean`, not in the total).
    """
    fns = resolve_rewards(weights)
    if len(completions) != len(ground_truths) or (samples is not None and len(samples) != len(completions)):
        raise ValueError(
            f"{len(completions)} completions but {len(ground_truths)} ground truths"
            + ("" if samples is None else f" and {len(samples)} samples")
            + "; pass one per completion"
        )
    if not 0.0 <= noise <= 1.0:
        raise ConfigError(f"grpo.reward_noise is {noise}; use a probability in [0, 1]")
    samples = samples if samples is not None else [None] * len(completions)
    attention = attention if attention is not None else [None] * len(completions)

    def one(name, fn):
        asks = wants_attention(fn)
        return np.asarray(
            [
                _call(name, fn, c, g, s, dict(ctx or {}, attention=a) if asks else ctx)
                for c, g, s, a in zip(completions, ground_truths, samples, attention)
            ],
            np.float32,
        ).reshape(-1)

    values = {name: one(name, fn) for name, fn in fns.items() if name not in GROUP_REWARDS}
    if noise > 0:
        flip = np.random.default_rng([int(x) for x in noise_seed]).random(len(completions)) < noise
        for name in [n for n in values if n in NOISY]:
            values[name + "_clean"] = values[name]
            values[name] = np.where(flip, 1.0 - values[name], values[name]).astype(np.float32)
    for name in [n for n in fns if n in GROUP_REWARDS]:
        if len(completions) % group_size:
            raise ValueError(f"{len(completions)} completions do not split into groups of {group_size}")
        acc = next((values[k] for k in ("exact", "accuracy") if k in values), None)
        if acc is None:
            acc = np.asarray([accuracy_reward(c, g) for c, g in zip(completions, ground_truths)], np.float32)
        values[name] = GROUP_REWARDS[name](acc, answer_confidence, group_size, **dict(care or {}))
    total = np.zeros(len(completions), np.float32)
    for name, w in weights.items():
        total += np.float32(w) * values[name]
    return total, values
