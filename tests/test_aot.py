"""`seedr1 aot` compiles a tiny config for a small TPU topology (libtpu) on this CPU machine."""

import dataclasses

import pytest

from configs.grpo_qwen2vl_7b import get_config
from seedr1_jax import aot, roofline


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
    assert "train step" in out and "per chip, one call" in out
    assert ("sampler (prefill once per prompt" in out) == (algo == "grpo")
    assert ("sampler decode (one token)" in out) == (algo == "grpo")
    assert "predicted on 4 x TPU v5e" in out and "MFU" in out


def test_reports_when_it_does_not_fit(monkeypatch, capsys):
    small = dataclasses.replace(roofline.CHIPS["v5e"], hbm_bytes=2**20)  # pretend each chip has 1 MiB
    monkeypatch.setitem(roofline.CHIPS, "v5e", small)
    assert aot.main(_tiny("sft"), "v5e:2x2") == 1
    captured = capsys.readouterr()
    assert "DOES NOT FIT" in captured.out and "does not fit" in captured.err


def test_bad_topology_is_a_clear_error():
    from seedr1_jax.config import ConfigError

    with pytest.raises(ConfigError, match="cannot build TPU topology 'v99:9x9'"):
        aot.main(_tiny("sft"), "v99:9x9")


def test_unknown_chip_is_a_clear_error():
    from seedr1_jax.config import ConfigError

    with pytest.raises(ConfigError, match="--chip 'b200': choose one of"):
        aot.device_chip([], "b200")
