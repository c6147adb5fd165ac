"""LoRA (`model.lora`, models/lora.py): fresh adapters change no logit bit, only adapters get gradients and
optimizer state, the merged weights give the adapter forward's logits, and `seedr1 train` with LoRA checkpoints the
adapters alone, resumes bit-identically and exports a merged model."""

import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from hf_utils import batch, hf_logits, tiny_video_prompts

from configs.common import base_config
from data_prep import prep, synth
from seedr1_jax.models import lora
from seedr1_jax.models.config import ConfigError
from seedr1_jax.models.processor import load_tokenizer
from seedr1_jax.rl import grpo, update
from seedr1_jax.rl.train import lora_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLM = {f"model/layers/self_attn/{p}_proj" for p in "qkvo"} | {
    f"model/layers/mlp/{p}_proj" for p in ("gate", "up", "down")
}


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    path = tmp_path_factory.mktemp("lora")
    hf, model, prompts, host = tiny_video_prompts(path, seed=7, prompt_seed=3)
    host["answer"] = np.asarray(["A", "C"])
    return hf, model, prompts, host, path


@pytest.fixture(scope="module")
def tiny(tiny_hf):
    return tiny_hf[1:4]


def _logits(model, prompts):
    return np.asarray(model(**batch(prompts[0].cfg, prompts)))


def test_fresh_adapters_change_no_logit_bit(tiny):
    model, prompts, _ = tiny
    base = _logits(model, prompts)
    m = nnx.clone(model)
    assert set(lora.attach(m, rank=4, alpha=8.0)) == LLM  # the default targets: the LLM's seven projections
    adapters, rest = lora.partition(nnx.state(m, nnx.Param).to_pure_dict())
    layer = adapters["model"]["layers"]["self_attn"]["q_proj"]
    n_layers, hidden = m.cfg.text.num_layers, m.cfg.text.hidden_size
    assert layer["lora_a"].shape == (n_layers, hidden, 4) and layer["lora_b"].shape == (n_layers, 4, hidden)
    assert np.abs(np.asarray(layer["lora_a"])).max() > 0 and not np.asarray(layer["lora_b"]).any()
    assert jax.tree.structure(rest) == jax.tree.structure(nnx.state(model, nnx.Param).to_pure_dict())
    assert _logits(m, prompts).tobytes() == base.tobytes()
    with pytest.raises(ConfigError, match="matches none of the model's linear layers: .*visual/blocks/attn/qkv"):
        lora.attach(nnx.clone(model), rank=4, alpha=8.0, targets="nothing/.*")


def _random_adapters(model, rank, alpha, targets, seed=1):
    """`model` with rank-`rank` adapters on `targets` whose A and B are random (B != 0: they change the model)."""
    m = nnx.clone(model)
    lora.attach(m, rank=rank, alpha=alpha, targets=targets)
    gd, st = nnx.split(m)
    adapters, base = lora.partition(st.to_pure_dict())
    keys = iter(jax.random.split(jax.random.key(seed), 64))
    adapters = jax.tree.map(lambda x: jax.random.normal(next(keys), x.shape, x.dtype) * 0.05, adapters)
    return nnx.merge(gd, lora.combine(adapters, base)), adapters, base


def test_peft_folder_loads_onto_transformers(tiny_hf, tmp_path):
    """The PEFT folder (`lora_hf.save_peft`, what `export-hf --adapter-only` writes) loads with
    `peft.PeftModel.from_pretrained` onto transformers' Qwen2-VL and gives our adapter forward's logits (1e-4),
    decoder and vision-tower targets alike."""
    from peft import PeftModel

    from seedr1_jax.models.lora_hf import ADAPTER_CONFIG, save_peft

    hf, model, prompts, _, _ = tiny_hf
    m, adapters, _ = _random_adapters(model, 3, 6.0, r"model/layers/(self_attn/[qv]_proj|mlp/down_proj)|visual/.*qkv")
    ours = _logits(m, prompts)
    n = save_peft(str(tmp_path), type(m).hf_table(m.cfg), adapters, rank=3, alpha=6.0, base="tiny")
    assert n == 3 * m.cfg.text.num_layers + m.cfg.vision.depth
    assert json.load(open(tmp_path / ADAPTER_CONFIG))["r"] == 3
    inputs = batch(hf.config, prompts)
    keep = inputs["attention_mask"].astype(bool)  # real tokens (left padding's logits are not compared)
    plain = hf_logits(hf, inputs)[keep]
    peft_model = PeftModel.from_pretrained(hf, str(tmp_path)).eval()
    theirs = hf_logits(peft_model, inputs)[keep]
    assert np.abs(theirs - plain).max() > 1e-3  # the adapters are loaded and applied
    np.testing.assert_allclose(theirs, ours[keep], atol=1e-4, rtol=0)
    peft_model.unload()  # give the module fixture's transformers model back without its adapter layers


def _reference_codes(w, kind):
    """An independent numpy quantizer (per element, loops over blocks) for `models.quant`'s layouts."""
    from seedr1_jax.models.quant import NF4

    w = np.asarray(w, np.float64)
    if kind == "int8":
        scale = np.abs(w).max(axis=-2, keepdims=True) / 127
        return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale
    *stack, din, dout = w.shape
    block = 64 if din % 64 == 0 else din
    codes = np.zeros(w.shape, np.uint8)
    absmax = np.zeros((*stack, din // block, dout))
    for j in range(din // block):
        part = w[..., j * block : (j + 1) * block, :]
        absmax[..., j, :] = np.abs(part).max(axis=-2)
        x = part / absmax[..., j : j + 1, :]
        codes[..., j * block : (j + 1) * block, :] = np.abs(x[..., None] - NF4).argmin(-1)
    return codes[..., 0::2, :] | (codes[..., 1::2, :] << 4), absmax


@pytest.mark.parametrize("kind", ["int8", "nf4"])
def test_quantized_base_matches_a_reference_and_stays_close_to_bf16(tiny_hf, kind):
    """QLoRA's base (`model.lora.base_quant`): the codes and scales equal an independent quantizer's; the model on
    codes gives the logits of its dequantized round trip bit for bit (what eval/export fold the adapters into); its
    logits stay within a stated distance of the full-precision model's, measured against bf16's own rounding."""
    from seedr1_jax.models import quant
    from seedr1_jax.models.qwen2_vl.model import Qwen2VL

    w = jax.random.normal(jax.random.key(0), (2, 128, 8)) * 0.02
    codes, scale = quant.quantize(w, kind)
    want_codes, want_scale = _reference_codes(w, kind)
    assert codes.dtype == want_codes.dtype and np.array_equal(np.asarray(codes), want_codes)
    np.testing.assert_allclose(np.asarray(scale), want_scale, rtol=1e-6)
    assert codes.nbytes == w.size // (1 if kind == "int8" else 2)  # nf4: two codes per byte

    _, model, prompts, _, hf_dir = tiny_hf
    inputs = batch(prompts[0].cfg, prompts)
    keep = inputs["attention_mask"].astype(bool)
    full = _logits(model, prompts)[keep]
    m = nnx.clone(model)
    lora.attach(m, 4, 8.0)
    assert set(lora.quantize_base(m, kind)) == LLM
    got = _logits(m, prompts)[keep]
    rt = nnx.clone(model)
    lora.quantize_base(rt, kind, round_trip=True)
    assert _logits(rt, prompts)[keep].tobytes() == got.tobytes()
    # the rollout's merged weights (`model.lora.merge_rollout`): a plain model, adapters (made non-zero here)
    # folded into the base dequantized once, gives the in-path forward's logits
    gd, st = nnx.split(m)
    adapters, base = lora.partition(st.to_pure_dict())
    keys = iter(jax.random.split(jax.random.key(2), 64))
    adapters = jax.tree.map(lambda x: jax.random.normal(next(keys), x.shape, x.dtype) * 0.05, adapters)
    want = np.asarray(nnx.merge(gd, lora.combine(adapters, base))(**inputs))[keep]
    plain_gd, plain_st = nnx.split(nnx.clone(model))
    nnx.replace_by_pure_dict(plain_st, lora.merged(lora.combine(adapters, base), 2.0, kind))
    np.testing.assert_allclose(np.asarray(nnx.merge(plain_gd, plain_st)(**inputs))[keep], want, atol=1e-5, rtol=0)
    rel = lambda x: float(np.sqrt(np.mean((x - full) ** 2) / np.mean(full**2)))  # noqa: E731
    bf16 = np.asarray(Qwen2VL.from_pretrained(str(hf_dir), dtype="bfloat16")(**inputs), np.float32)[keep]
    # measured on this model: bf16 0.84%, int8 0.67%, nf4 10.0% relative RMS logit error
    assert rel(got) <= (1.5 * rel(bf16) if kind == "int8" else 0.15)


def test_merged_weights_give_the_adapter_forward(tiny):
    """W + A B * alpha / r folded into the kernels: the same logits as the adapters in the path (fp32, 1e-5),
    vision-tower targets included."""
    model, prompts, _ = tiny
    m = nnx.clone(model)
    lora.attach(m, rank=3, alpha=6.0, targets=r"model/layers/.*|visual/blocks/mlp/fc1")
    gd, st = nnx.split(m)
    params = st.to_pure_dict()
    adapters, base = lora.partition(params)
    keys = iter(jax.random.split(jax.random.key(1), 64))
    adapters = jax.tree.map(lambda x: jax.random.normal(next(keys), x.shape, x.dtype) * 0.05, adapters)
    with_adapters = nnx.merge(gd, lora.combine(adapters, base))
    want = _logits(with_adapters, prompts)
    assert np.abs(want - _logits(model, prompts)).max() > 1e-3  # the adapters do change the model
    plain_gd, plain_st = nnx.split(nnx.clone(model))
    nnx.replace_by_pure_dict(plain_st, lora.merged(lora.combine(adapters, base), 2.0))
    got = _logits(nnx.merge(plain_gd, plain_st), prompts)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_update_trains_adapters_only_and_the_reference_is_the_base(tiny):
    """Gradients and Adam moments exist for the adapters alone; the frozen base comes back bit-identical; the
    reference (base, every B zeroed) equals the policy before the first update, so that step's KL is exactly 0."""
    model, _, host = tiny
    c = base_config()
    c.model.dtype = c.grpo.ref_dtype = "float32"
    c.grpo.group_size, c.grpo.max_new_tokens, c.grpo.beta, c.optim.lr = 3, 6, 0.1, 1e-2
    c.model.lora.rank, c.model.lora.alpha = 4, 8.0
    m = nnx.clone(model)
    lora.attach(m, c.model.lora.rank, c.model.lora.alpha)
    gd, st = nnx.split(m)
    adapters, base = update.trained_and_frozen(st.to_pure_dict(), use_lora=True)
    tx, _ = update.make_optimizer(c, adapters, 10)
    state = update.TrainState(params=adapters, opt_state=tx.init(adapters), frozen=base)
    mu = optax.tree_utils.tree_get(state.opt_state, "mu")  # Adam's first moments: the adapters' tree alone
    assert jax.tree.structure(mu) == jax.tree.structure(adapters)
    progs = grpo.programs(c, gd, nnx.eval_shape(lambda: m), None, ())
    step = jax.jit(update.make_update(gd, tx, grpo.loss, c, reference=grpo.reference_mode(c)))  # adapters off
    before = jax.tree.map(np.asarray, state)
    prep = grpo.prepare(
        c, progs, state.model_params(), lora_reference(c, state), host, load_tokenizer(), jax.random.key(0)
    )
    assert bool(prep.batch.pin_anchor)  # the reference's weights ARE the policy's before any update
    adv = prep.batch.advantages  # the random model's rewards tie; give the rollouts distinct advantages
    new, metrics = step(state, prep.batch.replace(advantages=jnp.linspace(-1.0, 1.0, adv.size).reshape(adv.shape)))
    assert float(metrics["kl"]) == 0.0 and float(metrics["grad_norm"]) > 0
    for a, b in zip(jax.tree.leaves(new.frozen), jax.tree.leaves(before.frozen)):
        assert np.asarray(a).tobytes() == b.tobytes()
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != b)), new.params, before.params)
    # B moves; A's gradient is x^T (dy B^T) = 0 while B = 0, so A first moves on the second step
    assert changed["model"]["layers"]["self_attn"]["q_proj"] == {"lora_a": False, "lora_b": True}
    ref = lora_reference(c, new)  # after the update: B != 0 in the policy, 0 in the reference
    assert not bool(progs.same_as(new.model_params(), ref))


@pytest.fixture(scope="module")
def tfr(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn") / "data")
    synth.generate(root, num_train=8, num_val=4, seed=3)
    out = str(tmp_path_factory.mktemp("tfr"))
    assert prep.prepare(root, "train", out, workers=1, progress=False)["skipped"] == 0
    return out


def _train(workdir, tfr, steps, *extra):
    cmd = [sys.executable, "-m", "seedr1_jax.cli", "train", "--config", "configs/tiny.py:grpo", "--workdir", workdir]
    cmd += [
        f"--config.data.tfrecord_dir={tfr}",
        f"--config.train.num_steps={steps}",
        "--config.train.checkpoint_every=1",
    ]
    cmd += ["--config.data.batch_size=2", "--config.grpo.group_size=2", "--config.grpo.max_new_tokens=8"]
    cmd += ["--config.data.max_prompt_len=960", "--config.model.lora.rank=4", "--config.optim.lr=1e-2", *extra]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_qlora_run_checkpoints_adapters_resumes_and_exports(tfr, tmp_path, capsys):
    """`seedr1 train` with LoRA on an nf4 base (QLoRA), killed and resumed, then exported merged and as PEFT."""
    full = str(tmp_path / "full")
    assert "nf4 base" in _train(full, tfr, 3, "--config.model.lora.base_quant=nf4")
    saved = ocp.StandardCheckpointer().restore(os.path.join(full, "checkpoints", "3", "params"))
    names = {getattr(p[-1], "key", None) for p, _ in jax.tree_util.tree_leaves_with_path(saved)}
    assert names == {"lora_a", "lora_b"}  # the checkpoint holds the adapters alone; model.json names the base
    info = json.load(open(os.path.join(full, "model.json")))["lora"]
    assert info["base"] == "preset:tiny" and info["rank"] == 4 and info["base_quant"] == "nf4"

    # resume: the run cut back to its step-2 checkpoint and rerun ends bit-identical
    cut = str(tmp_path / "cut")
    shutil.copytree(full, cut)
    shutil.rmtree(os.path.join(cut, "checkpoints", "3"))
    assert "resumed from step 2" in _train(cut, tfr, 3, "--config.model.lora.base_quant=nf4")
    again = ocp.StandardCheckpointer().restore(os.path.join(cut, "checkpoints", "3", "params"))
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(again)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()

    # eval/export read the run as a plain model: the (nf4 round-tripped) base with the adapters folded in
    from seedr1_jax.models.checkpoint import load_params

    merged = load_params(full)
    assert not [p for p, _ in jax.tree_util.tree_leaves_with_path(nnx.state(merged)) if "lora" in str(p)]
    hf = str(tmp_path / "hf")
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "seedr1_jax.cli", "export-hf", "--ckpt", full, "--out", hf]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    from seedr1_jax.models.families import from_pretrained

    back = nnx.state(from_pretrained(hf, dtype="float32"), nnx.Param).to_pure_dict()
    want = nnx.state(merged, nnx.Param).to_pure_dict()
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(want)):
        assert np.asarray(a).tobytes() == np.asarray(jnp.asarray(b, jnp.float32)).tobytes()

    # --adapter-only: the adapters alone, under PEFT's names and layout ([r, in] / [out, r] per layer)
    from safetensors.numpy import load_file

    peft_dir = tmp_path / "peft"
    subprocess.run(cmd[:-1] + [str(peft_dir), "--adapter-only"], cwd=ROOT, env=env, check=True, timeout=600)
    got = load_file(str(peft_dir / "adapter_model.safetensors"))
    n_layers = merged.cfg.text.num_layers
    assert len(got) == 2 * 7 * n_layers  # A and B of the seven default targets in every decoder layer
    q = saved["model"]["layers"]["self_attn"]["q_proj"]
    last = f"base_model.model.model.language_model.layers.{n_layers - 1}.self_attn.q_proj"
    assert np.array_equal(got[last + ".lora_A.weight"], np.asarray(q["lora_a"])[-1].T)
    assert np.array_equal(got[last + ".lora_B.weight"], np.asarray(q["lora_b"])[-1].T)
    config = json.load(open(peft_dir / "adapter_config.json"))
    assert (config["r"], config["lora_alpha"], config["base_model_name_or_path"]) == (4, info["alpha"], "preset:tiny")

    # a base that is not the one the adapters were trained on (here: the preset drawn from another seed) is refused
    from seedr1_jax.cli import main

    other = tmp_path / "other"
    shutil.copytree(full, other)
    meta = json.load(open(other / "model.json"))
    meta["lora"]["seed"] += 1
    json.dump(meta, open(other / "model.json", "w"))
    capsys.readouterr()
    assert main(["export-hf", "--ckpt", str(other), "--out", str(tmp_path / "no")]) == 2
    assert "is not the one this run trained on" in capsys.readouterr().err and not (tmp_path / "no").exists()
