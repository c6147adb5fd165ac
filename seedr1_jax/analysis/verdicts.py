"""Statistics of `seedr1 study`: Student-t intervals over seeds, paired per-seed arm differences and their verdicts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.special import stdtrit  # scipy is a dependency of jax, so always installed with it

SPLITS = ("L1", "L2", "L3")
PAIRS = (("GRPO", "SFT"), ("GRPO", "Vanilla"), ("SFT", "Vanilla"))


def t_quantile(q: float, df: int) -> float:
    """float: the q-quantile of Student's t with df degrees of freedom (t_quantile(0.975, 4) = 2.776...)."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    return float(stdtrit(df, q))


def mean_ci(values: Iterable[float], level: float = 0.95) -> dict:
    """values: floats (one per seed) -> {"mean", "lo", "hi", "n", "std", "level"}: the Student-t interval for the
    mean at `level`, std the sample std (ddof=1). One value: lo = hi = mean and std 0 (no spread to measure)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_ci of no values")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level}: use a number in (0, 1)")
    mean = float(v.mean())
    if v.size == 1:
        return dict(mean=mean, lo=mean, hi=mean, n=1, std=0.0, level=level)
    std = float(v.std(ddof=1))
    half = t_quantile(0.5 + level / 2, v.size - 1) * std / math.sqrt(v.size)
    return dict(mean=mean, lo=mean - half, hi=mean + half, n=int(v.size), std=std, level=level)


def _values(cells: Sequence[dict], method: str, column: str) -> dict[int, float]:
    """{seed: cell["accuracy"][column]} over the method's cells that carry the column."""
    out = {}
    for c in cells:
        if c["method"] == method and column in c["accuracy"]:
            # two cells giving one (seed, method, column) would make the pairing ambiguous: refuse, not pick one
            if c["seed"] in out:
                raise ValueError(f"two cells give {method} {column} for seed {c['seed']}")
            out[c["seed"]] = float(c["accuracy"][column])
    return out


def cell_table(cells: Sequence[dict], methods: Sequence[str], columns: Sequence[str], level: float = 0.95) -> dict:
    """{method: {column: mean_ci dict over seeds}}; a column no cell of the method carries is left out."""
    table = {}
    for m in methods:
        table[m] = {}
        for col in columns:
            vals = _values(cells, m, col)
            if vals:
                table[m][col] = mean_ci([vals[s] for s in sorted(vals)], level)
    return table


def paired(cells: Sequence[dict], a: str, b: str, column: str, level: float = 0.95) -> dict:
    """The paired difference a - b on `column` (same seed, so same data and start) ->
    {"diff": mean_ci dict of the per-seed differences (None when no seed has both arms), "wins": seeds with a > b,
    "losses": seeds with a < b, "ties": seeds with a == b, "n": seeds with both, "per_seed": {seed: a - b}}.
    Seeds where either arm lacks the column are left out. Ties are exact equality: accuracies of one split are
    k/n with the same n, so equal counts give equal floats."""
    va, vb = _values(cells, a, column), _values(cells, b, column)
    per_seed = {s: va[s] - vb[s] for s in sorted(set(va) & set(vb))}
    d = list(per_seed.values())
    return dict(
        diff=mean_ci(d, level) if d else None,
        wins=sum(x > 0 for x in d),
        losses=sum(x < 0 for x in d),
        ties=sum(x == 0 for x in d),
        n=len(d),
        per_seed=per_seed,
    )


def winner(p: dict, a: str, b: str) -> str | None:
    """a or b when the paired interval of `paired` (>= 2 seeds) lies strictly on one side of 0, else None."""
    d = p["diff"]
    if d is None or p["n"] < 2:
        return None
    return a if d["lo"] > 0 else b if d["hi"] < 0 else None


def _pts(x: float) -> str:
    return f"{round(x, 1) + 0.0:+.1f}"  # + 0.0: -0.04 prints "+0.0", not "-0.0"


def verdict_line(p: dict, a: str, b: str, column: str) -> str:
    """One sentence for a `paired(cells, a, b, column)` dict p; points are accuracy percentage points, 1 decimal,
    with a sign. The formats (level as in p["diff"]["level"], here 95%):

    a wins:     "GRPO > SFT on L2 in 5/5 seeds: +12.3 points [95% CI +4.1, +20.5]"        (points: a - b)
    b wins:     "SFT > GRPO on L1 in 4/5 seeds: +8.0 points [95% CI +2.0, +14.0]"         (points: b - a)
    no verdict: "GRPO vs SFT on L2: +3.1 points [95% CI -4.0, +10.2], GRPO ahead in 3/5 seeds
                (interval includes 0: no verdict)"                                          (points: a - b)
    one seed:   "GRPO vs SFT on L2: +3.1 points, GRPO ahead in 1/1 seeds (1 seed: no interval, no verdict)"
    no seed:    "GRPO vs SFT on L2: no seed has both (no verdict)"
    The no-verdict line is one line (wrapped here). "X > Y" needs the whole interval above 0 (lo > 0, strictly)."""
    d = p["diff"]
    if d is None:
        return f"{a} vs {b} on {column}: no seed has both (no verdict)"
    n, mean = p["n"], _pts(d["mean"])
    if n < 2:
        ahead = f"{a} ahead in {p['wins']}/{n} seeds"
        return f"{a} vs {b} on {column}: {mean} points, {ahead} (1 seed: no interval, no verdict)"
    ci = f"{100 * d['level']:g}% CI"
    w = winner(p, a, b)
    if w == a:
        return f"{a} > {b} on {column} in {p['wins']}/{n} seeds: {mean} points [{ci} {_pts(d['lo'])}, {_pts(d['hi'])}]"
    if w == b:  # the sentence reads "b > a", so its points are b - a: the interval flipped
        flip = f"{_pts(-d['mean'])} points [{ci} {_pts(-d['hi'])}, {_pts(-d['lo'])}]"
        return f"{b} > {a} on {column} in {p['losses']}/{n} seeds: {flip}"
    return (
        f"{a} vs {b} on {column}: {mean} points [{ci} {_pts(d['lo'])}, {_pts(d['hi'])}], "
        f"{a} ahead in {p['wins']}/{n} seeds (interval includes 0: no verdict)"
    )


def verdicts(
    cells: Sequence[dict],
    pairs: Sequence[tuple[str, str]] = PAIRS,
    columns: Sequence[str] = SPLITS,
    level: float = 0.95,
) -> list[dict]:
    """One dict per (pair, column), pairs outer: `paired(...)` plus "a", "b", "column", "winner" (a, b or None, as
    `winner`) and "line" (`verdict_line`)."""
    out = []
    for a, b in pairs:
        for col in columns:
            p = paired(cells, a, b, col, level)
            out.append(dict(p, a=a, b=b, column=col, winner=winner(p, a, b), line=verdict_line(p, a, b, col)))
    return out


def budget_curve_table(curve_rows: Sequence[dict], methods: Sequence[str], level: float = 0.95) -> list[str]:
    """curve_rows: [{"seed", "method", "fraction", "split", "accuracy" (%)}] -> markdown lines: a header, a rule and
    one row per (method, fraction present for it, ascending), one column per split present (L1, L2, L3 order
    first). Each entry is "mean [lo, hi]" (Student-t at `level` over seeds, 1 decimal); one seed gives
    "mean (1 seed)" (no interval to show), no seed "-"."""
    rows = [r for r in curve_rows if r["method"] in methods]
    present = {r["split"] for r in rows}
    splits = [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))
    seen = set()
    for r in rows:
        key = (r["seed"], r["method"], r["fraction"], r["split"])
        if key in seen:  # a repeated point would count one seed twice
            raise ValueError(f"two curve rows for seed {key[0]} {key[1]} fraction {key[2]} {key[3]}")
        seen.add(key)

    def entry(m, f, s):
        vals = [r["accuracy"] for r in rows if r["method"] == m and r["fraction"] == f and r["split"] == s]
        if not vals:
            return "-"
        c = mean_ci(vals, level)
        return f"{c['mean']:.1f} (1 seed)" if c["n"] == 1 else f"{c['mean']:.1f} [{c['lo']:.1f}, {c['hi']:.1f}]"

    lines = ["| model | fraction | " + " | ".join(splits) + " |", "|---" * (len(splits) + 2) + "|"]
    for m in methods:
        for f in sorted({r["fraction"] for r in rows if r["method"] == m}):
            lines.append(f"| {m} | {f:g} | " + " | ".join(entry(m, f, s) for s in splits) + " |")
    return lines


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """(lo, hi) in %: the Wilson score interval for k successes in n samples (one cell's sampling noise);
    n = 0 gives (0, 100)."""
    if not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 100.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (100.0 * max(0.0, mid - half), 100.0 * min(1.0, mid + half))
