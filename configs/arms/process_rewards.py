"""The paper's open question on process rewards (issue 21): outcome-only GRPO against GRPO with a reward on the
reasoning. `seedr1 study --arms configs/arms/process_rewards.py`. Every GRPO arm keeps the accuracy reward and the
study's tuned hyper-parameters; the process rewards are added at weight 0.5 (GRPO-CARE's bonus coefficient):

  visual_consistency  the `<think>` names the colour the scene shows (synthetic data only; rl/rewards.py)
  grounding           the `<think>` tokens' video attention on the evidence frames (rl/grounding.py)
  care                GRPO-CARE: a moving-average reference (decay 0.992, its trainer's default) and the
                      consistency bonus (the reference's confidence in the answer given the reasoning)

Each arm logs every reward (weight 0 where it is not trained on), so the tables show what each optimised.
Measured at `--quick`, 5 seeds: docs/results.md, "Process rewards" (outcome-only beat +visual and +grounding on
L1; CARE level).
"""

_LOGGED = {"visual_consistency": 0.0, "grounding": 0.0}


def get_arms():
    return dict(
        arms=[
            dict(name="GRPO", method="grpo", overrides={"grpo.rewards": {"accuracy": 1.0, **_LOGGED}}),
            dict(name="GRPO+visual", method="grpo",
                 overrides={"grpo.rewards": {"accuracy": 1.0, **_LOGGED, "visual_consistency": 0.5}}),
            dict(name="GRPO+grounding", method="grpo",
                 overrides={"grpo.rewards": {"accuracy": 1.0, **_LOGGED, "grounding": 0.5}}),
            dict(name="GRPO+care", method="grpo",
                 overrides={"grpo.rewards": {"accuracy": 1.0, **_LOGGED, "care_consistency": 0.5},
                            "grpo.ema_ref_decay": 0.992}),
        ],
        baseline="GRPO",
    )  # fmt: skip
