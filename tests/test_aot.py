"""`seedr1 aot` compiles a tiny config for a small TPU topology (libtpu) on this CPU machine."""

import pytest

from configs.grpo_qwen2vl_7b import get_config
from seedr1_jax import aot


def _tiny(algo):
    c = get_config("cpu")
    c.algo = algo
    c.data.max_prompt_len = 256
    return c


@pytest.mark.parametrize("algo", ["sft", "grpo"])
def test_tiny_config_compiles_for_v5e_2x2(algo, capsys):
    assert aot.main(_tiny(algo), "v5e:2x2") == 0
    out = capsys.readouterr().out
    assert "4 x TPU v5 lite" in out and "fits, headroom" in out
    assert "train step" in out and "compiled FLOPs per chip" in out
    assert ("sampler (prefill once per prompt" in out) == (algo == "grpo")


def test_reports_when_it_does_not_fit(monkeypatch, capsys):
    monkeypatch.setitem(aot.HBM, "TPU v5 lite", 2**20)  # pretend each chip has 1 MiB
    assert aot.main(_tiny("sft"), "v5e:2x2") == 1
    captured = capsys.readouterr()
    assert "DOES NOT FIT" in captured.out and "does not fit" in captured.err


def test_bad_topology_is_a_clear_error():
    from seedr1_jax.config import ConfigError

    with pytest.raises(ConfigError, match="cannot build TPU topology 'v99:9x9'"):
        aot.main(_tiny("sft"), "v99:9x9")
