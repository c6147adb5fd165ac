"""SEED-Bench-R1 rewards (docs/recipe.md section 4): decoded completion text -> float, on the host, in pure Python.

Every reward takes `(completion, ground_truth)` and returns 0.0 or 1.0; none raises on any text, because a
single malformed sample must never kill a rollout. `ground_truth` may be a bare letter ("B") or the stored
form ("<answer>B.</answer>"); both give the letter "B".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

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


REWARD_FNS: dict[str, Callable[[str, str], float]] = {
    "accuracy": accuracy_reward,
    "exact": exact_reward,
    "format": format_reward,
}


def compute_rewards(
    completions: Sequence[str],
    ground_truths: Sequence[str],
    weights: Mapping[str, float] = DEFAULT_REWARD_WEIGHTS,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Weighted total reward per completion, plus each named reward for logging.

    Args:
      completions: N decoded completions (a prompt's G samples side by side).
      ground_truths: N ground truths, one per completion (repeat each prompt's G times).
      weights: reward name -> weight; names from `REWARD_FNS`. A weight of 0 still logs that reward.
    Returns:
      total f32[N] = sum_k weights[k] * values[k], and values: name -> f32[N].
    """
    unknown = sorted(set(weights) - set(REWARD_FNS))
    if unknown:
        raise ValueError(
            f"unknown reward function(s) {unknown} in the reward weights; choose from {sorted(REWARD_FNS)}"
        )
    if not weights:
        raise ValueError(f"the reward weights are empty; name at least one of {sorted(REWARD_FNS)}")
    if len(completions) != len(ground_truths):
        raise ValueError(
            f"{len(completions)} completions but {len(ground_truths)} ground truths; pass one per completion"
        )
    values = {
        name: np.asarray([REWARD_FNS[name](c, g) for c, g in zip(completions, ground_truths)], np.float32).reshape(-1)
        for name in weights
    }
    total = np.zeros(len(completions), np.float32)
    for name, w in weights.items():
        total += np.float32(w) * values[name]
    return total, values
