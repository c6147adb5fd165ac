"""The paper leaves GRPO's group size, learning rate and KL weight unstated (issue 21): one factor at a time around
the study's tuned GRPO (analysis/study.py TUNED: lr 3e-4, beta 0.04, G 4; the `--tune` of a workdir replaces it),
each compared with it. `seedr1 study --arms configs/arms/sensitivity.py`. Overrides are absolute values: lr 1e-4 /
1e-3 are about x0.3 / x3 of the tuned 3e-4. Not yet measured at toy scale."""


def get_arms():
    arms = [dict(name="GRPO", method="grpo")]
    arms += [dict(name=f"G{g}", method="grpo", overrides={"grpo.group_size": g}) for g in (2, 8)]
    arms += [dict(name=f"lr{lr:g}", method="grpo", overrides={"optim.lr": lr}) for lr in (1e-4, 1e-3)]
    arms += [dict(name=f"beta{b:g}", method="grpo", overrides={"grpo.beta": b}) for b in (0.0, 0.1)]
    return dict(arms=arms, baseline="GRPO")
