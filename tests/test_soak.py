"""bench/soak.py's leak rule: a flat memory trace passes, a slow RSS climb or growing device arrays fail, and the
warm-up is left out of the fit."""

import importlib.util
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("soak", os.path.join(ROOT, "bench", "soak.py"))
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)


def _trace(slope=0.0, live_step=0.0, n=500, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1)
    rss = 2000 + np.where(steps <= 100, steps * 5.0, 500.0) + slope * steps + rng.normal(0, 3, n)  # warm-up climb
    live = 80 + np.where(steps > 100, live_step * (steps - 100), 0.0)
    live[::50] += 40  # an async checkpoint's copy in flight
    return steps, rss, live


def test_flat_trace_passes_despite_warmup_and_checkpoint_copies():
    r = soak.leak_report(*_trace(), warmup=100, horizon=10_000, bound_mb=1024)
    assert not r["leak"] and abs(r["rss_slope_mb_per_step"]) < 0.02 and r["live_device_growth_mb"] == 0


@pytest.mark.parametrize("slope, live_step", [(0.2, 0.0), (0.0, 0.01)])
def test_a_slow_leak_fails(slope, live_step):
    r = soak.leak_report(*_trace(slope, live_step), warmup=100, horizon=10_000, bound_mb=1024)
    assert r["leak"]
    assert r["projected_growth_mb"] > 1024 if slope else r["live_device_growth_mb"] > 0


def test_too_few_steps_after_warmup_is_an_error():
    with pytest.raises(ValueError, match="run more --steps"):
        soak.leak_report(*_trace(n=105), warmup=100, horizon=10_000, bound_mb=1024)


def test_rss_reads_this_process():
    assert 10 < soak.rss_mb() < 1e6
