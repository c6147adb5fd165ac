"""`seedr1 aot` compiles a tiny config for a small TPU topology (libtpu) on this CPU machine."""

import dataclasses

import jax
import pytest

from configs.grpo_qwen2vl_7b import get_config
from seedr1_jax.perf import aot, roofline, validate


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
    from seedr1_jax.models.config import ConfigError

    with pytest.raises(ConfigError, match="cannot build TPU topology 'v99:9x9'"):
        aot.main(_tiny("sft"), "v99:9x9")


def test_unknown_chip_is_a_clear_error():
    from seedr1_jax.models.config import ConfigError

    with pytest.raises(ConfigError, match="--chip 'b200': choose one of"):
        aot.device_chip([], "b200")


def test_validate_times_every_program_and_the_decode_apart(tmp_path, capsys):
    """`seedr1 aot --validate-cpu` on the tiny config: every program timed, the sampler ran all C tokens on the
    random weights (masks filled with ones), decode per token = (C-token run - 1-token run) / (C - 1)."""
    out = tmp_path / "v.json"
    assert validate.validate(get_config("cpu"), "cpu", repeats=1, out_json=str(out)) == 0
    import json

    v = json.loads(out.read_text())
    c = get_config("cpu").grpo.max_new_tokens
    assert v["sampler_tokens_run"] == c
    m = v["measured_s"]
    config = get_config("cpu")  # mu = 1, beta > 0: the reference's log-probs run inside the update, no own program
    assert config.grpo.mu == 1 and config.grpo.beta > 0 and aot.calls_per_step(config)["logprobs"] == 0
    assert set(m) == {"update", "sampler (prefill + C x decode)", "prefill (+ 1 decode step)", "decode, one token"}
    assert m["decode, one token"] == pytest.approx(
        (m["sampler (prefill + C x decode)"] - m["prefill (+ 1 decode step)"]) / (c - 1)
    )
    [pred] = v["predicted_s"].values()  # a CPU has no datasheet entry: the measured chip only
    assert all(p > 0 for p in pred.values()) and 0 < v["update_mfu"] < 1
    assert v["step_measured_s"] == pytest.approx(m["update"] + m["sampler (prefill + C x decode)"])
    assert "decode:" in capsys.readouterr().out


def test_lora_state_holds_adapters_and_one_base():
    """LoRA's update program holds the adapters' fp32 weights and Adam moments plus one bf16 (QLoRA: nf4) base,
    not the full model's fp32 weights and moments: its argument bytes are the base's plus 12 bytes per adapter
    weight; nf4 stores the decoder's kernels at about 0.56 bytes per weight."""
    from flax import nnx

    from seedr1_jax.models import lora
    from seedr1_jax.models.checkpoint import model_config
    from seedr1_jax.parallel import sharding

    mesh = aot.topology_mesh(aot.topology_devices("v5e:2x2")[:1], (1, 1, 1))
    args = {}
    for name, rank, quant in (("full", 0, ""), ("lora", 4, ""), ("qlora", 4, "nf4")):
        c = _tiny("grpo")
        c.mesh.shape = (1, 1, 1)
        c.model.lora.rank, c.model.lora.base_quant = rank, quant
        c.model.lora.base_dtype = "bfloat16" if rank else ""
        (prog,) = aot.compile_programs(c, mesh, sharding.TRAIN_RULES, programs=("update",), log=lambda _: None)
        nbytes = lambda t: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(t))  # noqa: E731
        args[name] = prog.memory["args"] - nbytes(aot.abstract_batch(c, model_config(c), mesh, "grpo")[0])
        params = nnx.state(lora.abstract_policy(c, model_config(c))).to_pure_dict()
        if rank:
            adapters, base = lora.partition(params)
            want = 3 * nbytes(adapters) + nbytes(lora.cast_floats(base, "bfloat16"))
            assert want <= args[name] < 1.1 * want  # + counters and TPU tile padding (rank-4 minor dimensions)
        else:
            assert args[name] >= 3 * nbytes(params)  # fp32 weights + two Adam moments
    assert args["qlora"] < args["lora"] < args["full"] / 5
