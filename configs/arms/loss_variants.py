"""The loss variants the RL frameworks ship, on the same budget (issue 21): GRPO as the reference recipe writes it
(per-sequence mean), DAPO (per-token mean, clip-higher 0.28, dynamic sampling, the overlong penalty), Dr. GRPO (no
std scaling, a constant length normaliser) and GSPO (one importance ratio per sequence). DAPO's dynamic sampling
rolls out more prompts than the others: `rollout_prompts` in the metrics says how many.
`seedr1 study --arms configs/arms/loss_variants.py`. Not yet measured at toy scale."""


def get_arms():
    return dict(
        arms=[
            dict(name="GRPO", method="grpo", overrides={"grpo.reduction": "sequence"}),
            dict(name="DAPO", method="grpo",
                 overrides={"grpo.reduction": "token", "grpo.epsilon_high": 0.28, "grpo.dynamic_sampling": True,
                            "grpo.rewards": {"accuracy": 1.0, "overlong": 1.0}, "grpo.overlong_buffer": 16}),
            dict(name="DrGRPO", method="grpo", overrides={"grpo.reduction": "dr_grpo"}),
            dict(name="GSPO", method="grpo", overrides={"grpo.importance": "sequence"}),
        ],
        baseline="GRPO",
    )  # fmt: skip
