"""The paper's open question on noisy rewards at scale (issue 21): GRPO with each accuracy reward flipped with
probability 0 / 0.2 / 0.4 (`grpo.reward_noise`, seeded by train seed and step; the clean reward is logged beside).
`seedr1 study --arms configs/arms/reward_noise.py`. Measured at `--quick`, 5 seeds: docs/results.md, "Noisy rewards"."""


def get_arms():
    return dict(
        arms=[dict(name=f"GRPO-noise{p}", method="grpo", overrides={"grpo.reward_noise": p}) for p in (0.0, 0.2, 0.4)],
        baseline="GRPO-noise0.0",
    )
