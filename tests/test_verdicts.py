"""`analysis.verdicts` on hand-computed cases: t intervals over seeds, paired differences, the verdict sentences,
the budget-curve table and Wilson intervals."""

import math

import pytest

from seedr1_jax.analysis import verdicts as V


def _cells(method, split, values, domains=None):
    """values: {seed: accuracy %} -> study cells of one (method, split); domains: {seed: {domain: %}}."""
    out = []
    for seed, acc in values.items():
        accuracy = {split: acc, **((domains or {}).get(seed, {}))}
        out.append(dict(seed=seed, method=method, split=split, n=96, accuracy=accuracy))
    return out


def test_t_quantile_known_values():
    assert [round(V.t_quantile(0.975, df), 3) for df in (2, 4, 9)] == [4.303, 2.776, 2.262]
    assert round(V.t_quantile(0.95, 2), 3) == 2.920
    assert abs(V.t_quantile(0.975, 10_000) - 1.960) < 1e-3  # the normal beyond small df
    with pytest.raises(ValueError):
        V.t_quantile(0.975, 0)


def test_mean_ci_three_seeds():
    c = V.mean_ci([40, 50, 60])
    half = 4.302653 * 10 / math.sqrt(3)  # t_{0.975, 2} = 4.303: 24.84
    assert c["mean"] == 50 and c["std"] == pytest.approx(10) and c["n"] == 3
    assert c["lo"] == pytest.approx(50 - half, abs=1e-4) and c["hi"] == pytest.approx(50 + half, abs=1e-4)
    assert round(c["hi"] - c["mean"], 2) == 24.84
    # a lower level is a narrower interval: t_{0.95, 2} = 2.920
    assert V.mean_ci([40, 50, 60], level=0.9)["hi"] == pytest.approx(50 + 2.919986 * 10 / math.sqrt(3), abs=1e-4)


def test_mean_ci_one_seed_and_errors():
    assert V.mean_ci([41.7]) == dict(mean=41.7, lo=41.7, hi=41.7, n=1, std=0.0, level=0.95)
    with pytest.raises(ValueError):
        V.mean_ci([])
    with pytest.raises(ValueError):
        V.mean_ci([1, 2], level=95)


def test_paired_a_wins_all_seeds():
    a = {0: 50, 1: 55, 2: 60, 3: 52, 4: 58}
    b = {0: 40, 1: 42, 2: 48, 3: 45, 4: 44}
    cells = _cells("GRPO", "L2", a) + _cells("SFT", "L2", b)
    p = V.paired(cells, "GRPO", "SFT", "L2")
    assert p["per_seed"] == {0: 10, 1: 13, 2: 12, 3: 7, 4: 14}
    assert (p["wins"], p["losses"], p["ties"], p["n"]) == (5, 0, 0, 5)
    # diffs 10, 13, 12, 7, 14: mean 11.2, sample variance 30.8 / 4 = 7.7, half = t_{0.975,4} sqrt(7.7 / 5)
    half = 2.776445 * math.sqrt(7.7 / 5)
    assert p["diff"]["mean"] == pytest.approx(11.2) and p["diff"]["std"] == pytest.approx(math.sqrt(7.7))
    assert p["diff"]["lo"] == pytest.approx(11.2 - half) and p["diff"]["hi"] == pytest.approx(11.2 + half)
    assert V.winner(p, "GRPO", "SFT") == "GRPO"
    assert V.verdict_line(p, "GRPO", "SFT", "L2") == "GRPO > SFT on L2 in 5/5 seeds: +11.2 points [95% CI +7.8, +14.6]"


def test_tied_mean_is_no_verdict():
    b = {s: 50.0 for s in range(5)}
    a = {0: 55.0, 1: 45.0, 2: 53.0, 3: 47.0, 4: 50.0}  # diffs +5 -5 +3 -3 0: mean 0, variance 68 / 4 = 17
    p = V.paired(_cells("GRPO", "L1", a) + _cells("SFT", "L1", b), "GRPO", "SFT", "L1")
    assert (p["wins"], p["losses"], p["ties"]) == (2, 2, 1)
    assert p["diff"]["hi"] == pytest.approx(2.776445 * math.sqrt(17 / 5))  # 5.12
    assert V.winner(p, "GRPO", "SFT") is None
    assert V.verdict_line(p, "GRPO", "SFT", "L1") == (
        "GRPO vs SFT on L1: +0.0 points [95% CI -5.1, +5.1], GRPO ahead in 2/5 seeds (interval includes 0: no verdict)"
    )


def test_reverse_direction_line():
    b = {s: 60.0 for s in range(5)}
    a = {0: 50.0, 1: 52.0, 2: 52.0, 3: 54.0, 4: 60.0}  # a - b: -10 -8 -8 -6 0, mean -6.4, variance 59.2 / 4
    p = V.paired(_cells("GRPO", "L1", a) + _cells("SFT", "L1", b), "GRPO", "SFT", "L1")
    half = 2.776445 * math.sqrt(14.8 / 5)  # 4.78: the interval [-11.2, -1.6] excludes 0
    assert p["diff"]["hi"] == pytest.approx(-6.4 + half) and p["diff"]["hi"] < 0
    assert (p["wins"], p["losses"], p["ties"]) == (0, 4, 1)
    assert V.winner(p, "GRPO", "SFT") == "SFT"
    # the sentence reads SFT > GRPO, so its points are SFT - GRPO (signs and interval ends flipped)
    assert V.verdict_line(p, "GRPO", "SFT", "L1") == "SFT > GRPO on L1 in 4/5 seeds: +6.4 points [95% CI +1.6, +11.2]"


def test_missing_seeds_are_not_paired():
    a = {0: 50.0, 1: 60.0, 2: 70.0, 3: 55.0, 4: 65.0}
    b = {0: 40.0, 1: 45.0, 3: 50.0, 7: 10.0}  # seeds 2, 4 lack b; seed 7 lacks a
    cells = _cells("GRPO", "L3", a) + _cells("SFT", "L3", b) + _cells("SFT", "L1", {2: 0.0, 4: 0.0})
    p = V.paired(cells, "GRPO", "SFT", "L3")
    assert p["per_seed"] == {0: 10.0, 1: 15.0, 3: 5.0} and p["n"] == 3 and p["wins"] == 3
    assert p["diff"]["mean"] == pytest.approx(10.0)
    # seeds 2 and 4 have an SFT L1 cell but no SFT L3 value: still left out


def test_one_seed_and_no_seed_lines():
    cells = _cells("GRPO", "L2", {0: 40.0}) + _cells("SFT", "L2", {0: 36.9})
    p = V.paired(cells, "GRPO", "SFT", "L2")
    assert V.winner(p, "GRPO", "SFT") is None  # one seed: lo = hi = mean, but no interval to trust
    assert V.verdict_line(p, "GRPO", "SFT", "L2") == (
        "GRPO vs SFT on L2: +3.1 points, GRPO ahead in 1/1 seeds (1 seed: no interval, no verdict)"
    )
    none = V.paired(cells, "GRPO", "Vanilla", "L2")
    assert none["diff"] is None and none["n"] == 0 and none["per_seed"] == {}
    assert V.verdict_line(none, "GRPO", "Vanilla", "L2") == "GRPO vs Vanilla on L2: no seed has both (no verdict)"


def test_duplicate_cell_is_an_error():
    cells = _cells("GRPO", "L1", {0: 40.0}) * 2 + _cells("SFT", "L1", {0: 30.0})
    with pytest.raises(ValueError, match="seed 0"):
        V.paired(cells, "GRPO", "SFT", "L1")


def test_cell_table_picks_up_l3_domains():
    doms = {0: {"Work": 20.0, "Hobbies": 40.0}, 1: {"Work": 30.0, "Hobbies": 50.0}, 2: {"Work": 40.0}}
    cells = _cells("GRPO", "L3", {0: 30.0, 1: 40.0, 2: 50.0}, doms) + _cells("GRPO", "L1", {0: 90.0, 1: 80.0})
    cells += _cells("SFT", "L3", {0: 25.0})
    t = V.cell_table(cells, ["GRPO", "SFT", "Vanilla"], ["L1", "L3", "Work", "Hobbies", "Daily life"])
    assert set(t["GRPO"]) == {"L1", "L3", "Work", "Hobbies"}  # no cell carries "Daily life": left out
    assert t["GRPO"]["Work"]["mean"] == pytest.approx(30.0) and t["GRPO"]["Work"]["n"] == 3
    assert t["GRPO"]["Hobbies"]["n"] == 2 and t["GRPO"]["Hobbies"]["mean"] == pytest.approx(45.0)
    assert t["GRPO"]["L3"] == V.mean_ci([30.0, 40.0, 50.0]) and t["GRPO"]["L1"]["mean"] == pytest.approx(85.0)
    assert t["SFT"] == {"L3": V.mean_ci([25.0])} and t["Vanilla"] == {}


def test_verdicts_shape_and_keys():
    cells = []
    for m, base in (("Vanilla", 30.0), ("SFT", 40.0), ("GRPO", 50.0)):
        for split in V.SPLITS:
            cells += _cells(m, split, {s: base + s for s in range(3)})
    out = V.verdicts(cells)
    assert [(v["a"], v["b"], v["column"]) for v in out] == [(a, b, c) for a, b in V.PAIRS for c in V.SPLITS]
    # every seed differs by the same 10 or 20 points: std 0, the interval is that point, a wins
    assert all(v["winner"] == v["a"] and v["wins"] == 3 and v["line"].startswith(f"{v['a']} > {v['b']}") for v in out)
    assert out[1]["line"] == "GRPO > SFT on L2 in 3/3 seeds: +10.0 points [95% CI +10.0, +10.0]"
    assert set(out[0]) == {"diff", "wins", "losses", "ties", "n", "per_seed", "a", "b", "column", "winner", "line"}


def test_budget_curve_table_shape():
    rows = []
    for m in ("SFT", "GRPO"):
        for f in (1.0, 0.25, 0.5):
            for split in ("L3", "L1", "L2"):
                for seed, acc in enumerate((40.0, 50.0, 60.0)):
                    rows.append(dict(seed=seed, method=m, fraction=f, split=split, accuracy=acc))
    rows.append(dict(seed=0, method="Vanilla", fraction=1.0, split="L1", accuracy=30.0))
    lines = V.budget_curve_table(rows, ["SFT", "GRPO", "Vanilla"])
    assert lines[0] == "| model | fraction | L1 | L2 | L3 |" and lines[1] == "|---|---|---|---|---|"
    assert len(lines) == 2 + 2 * 3 + 1
    assert all(line.count("|") == 6 for line in lines)
    assert [line.split(" | ")[:2] for line in lines[2:5]] == [["| SFT", "0.25"], ["| SFT", "0.5"], ["| SFT", "1"]]
    assert lines[2] == "| SFT | 0.25 | 50.0 [25.2, 74.8] | 50.0 [25.2, 74.8] | 50.0 [25.2, 74.8] |"
    assert lines[-1] == "| Vanilla | 1 | 30.0 (1 seed) | - | - |"
    with pytest.raises(ValueError):
        V.budget_curve_table(rows + rows[:1], ["SFT"])


def test_wilson():
    lo, hi = V.wilson(50, 100)
    assert round(lo, 1) == 40.4 and round(hi, 1) == 59.6
    assert V.wilson(0, 10)[0] == 0.0 and V.wilson(10, 10)[1] == 100.0 and V.wilson(0, 0) == (0.0, 100.0)
    assert V.wilson(0, 10)[1] == pytest.approx(100 * 1.96**2 / (10 + 1.96**2))  # k = 0: hi = z^2 / (n + z^2)
    with pytest.raises(ValueError):
        V.wilson(11, 10)
