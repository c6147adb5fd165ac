"""SEED-Bench-R1 table 1 at toy scale, the default arms of `seedr1 study`: the base as it is, SFT on the
chain-of-thought split, GRPO on the training split.

An arm file defines `get_arms()` returning a dict:
  arms:     a list of {"name", "method" (vanilla / sft / grpo), "overrides" (dotted config fields, optional)}.
            sft and grpo arms start from configs/tiny.py:sft / :grpo, the toy base and the study's budget, plus
            their method's hyper-parameters chosen on L1-val (`--tune`, or study.TUNED), then their overrides.
            A vanilla arm evaluates the base (its overrides may change evaluation fields only).
  baseline: the arm every other arm is compared with (paired over seeds, per split);
  pairs:    optional, the (a, b) pairs to compare instead (a - b).
"""


def get_arms():
    return dict(
        arms=[
            dict(name="Vanilla", method="vanilla"),
            dict(name="SFT", method="sft"),
            dict(name="GRPO", method="grpo"),
        ],
        baseline="SFT",
        pairs=[("GRPO", "SFT"), ("GRPO", "Vanilla"), ("SFT", "Vanilla")],
    )
