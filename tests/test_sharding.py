"""Sharded execution on 8 fake CPU devices equals one device, for each model family; parameters really are
partitioned."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hf_utils import Prompt, batch, per_sample_batch, save_hf_model
from jax.sharding import NamedSharding

from seedr1_jax.models.families import from_pretrained
from seedr1_jax.parallel import sharding
from seedr1_jax.rl.sft import sft_loss

MESHES = [(8, 1, 1), (1, 8, 1), (2, 2, 2), (1, 2, 4)]


@pytest.fixture(scope="module", params=["a", "a25", "a3"], ids=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def setup(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("shard")
    hf = save_hf_model(request.param, d, seed=11)
    rng = np.random.default_rng(0)
    # 8 x 8 patches: four 2 x 2-token windows per frame for the Qwen2.5-VL tower
    prompts = [Prompt(hf.config, rng).text(2 + i % 3).video(2, 8, 8).image(8, 8).text(4 + i) for i in range(8)]
    model = from_pretrained(str(d), dtype="float32")
    b = per_sample_batch(model.cfg, prompts)
    b["loss_mask"] = b["attention_mask"].copy()
    return d, hf, prompts, b


def _loss_and_grads(model, b):
    gd, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p):
        return sft_loss(nnx.merge(gd, p, rest), b)

    return jax.jit(jax.value_and_grad(loss))(params)


def _logits(model, b):
    gd, st = nnx.split(model)
    keys = ("input_ids", "positions", "attention_mask", "pixels", "hw_pos", "vision_index")
    return jax.jit(lambda st, x: (lambda m: m.logits(m.forward(**x)))(nnx.merge(gd, st)))(st, {k: b[k] for k in keys})


def test_per_sample_layout_equals_flat_layout(setup):
    d, hf, prompts, b = setup
    model = from_pretrained(str(d), dtype="float32")
    flat = np.asarray(model(**batch(hf.config, prompts)))
    keep = b["attention_mask"].astype(bool)
    assert np.abs(np.asarray(_logits(model, b))[keep] - flat[keep]).max() <= 1e-5


@pytest.mark.parametrize("shape", MESHES, ids=[f"{a}x{b}x{c}" for a, b, c in MESHES])
def test_sharded_equals_single_device(setup, shape):
    d, _, _, b = setup
    single = from_pretrained(str(d), dtype="float32")
    ref_logits = np.asarray(_logits(single, b))
    ref_loss, ref_grads = _loss_and_grads(single, b)

    mesh = sharding.make_mesh(shape)
    model = from_pretrained(str(d), dtype="float32", mesh=mesh)
    # every 2-D (per layer) weight is partitioned when fsdp or tensor > 1
    for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        axes = v.get_metadata()["axes"]
        per_layer_ndim = len([a for a in axes if a != "layers"])
        spec = v.value.sharding.spec
        if per_layer_ndim >= 2 and shape[1] * shape[2] > 1:
            assert any(s is not None for s in spec), f"{path} replicated on mesh {shape}"
    sb = sharding.shard_batch(b, mesh)
    with jax.set_mesh(mesh):
        got_logits = np.asarray(_logits(model, sb))
        loss, grads = _loss_and_grads(model, sb)
    keep = b["attention_mask"].astype(bool)
    np.testing.assert_allclose(got_logits[keep], ref_logits[keep], atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-6)
    for (p, g), (_, r) in zip(jax.tree.leaves_with_path(grads), jax.tree.leaves_with_path(ref_grads)):
        g, r = np.asarray(g), np.asarray(r)
        assert np.abs(g - r).max() <= 1e-6 + 1e-4 * np.abs(r).max(), p


def test_load_onto_mesh_is_sharded_and_equal(setup):
    d = setup[0]
    mesh = sharding.make_mesh((2, 2, 2))
    plain = from_pretrained(str(d))
    sharded = from_pretrained(str(d), mesh=mesh)
    q = sharded.model.layers.self_attn["q_proj"].kernel.value
    assert isinstance(q.sharding, NamedSharding)
    assert q.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")
    # each device holds only its quarter of the [L, D, N * H] kernel (fsdp 2 x tensor 2)
    n_layers, width, heads = q.shape
    assert {s.data.shape for s in q.addressable_shards} == {(n_layers, width // 2, heads // 2)}
    for a, b in zip(jax.tree.leaves(nnx.state(plain)), jax.tree.leaves(nnx.state(sharded))):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_rollout_rules_drop_fsdp():
    mesh = sharding.make_mesh((1, 4, 2))
    spec = sharding.logical_to_spec(("layers", "embed", "mlp"), (2, 64, 128), mesh, sharding.ROLLOUT_RULES)
    assert spec == jax.sharding.PartitionSpec(None, None, "tensor")
    assert sharding.logical_to_spec(("embed", "mlp"), (64, 128), mesh) == jax.sharding.PartitionSpec("fsdp", "tensor")
    # a dimension the axis does not divide stays replicated
    assert sharding.logical_to_spec(("embed",), (66,), mesh) == jax.sharding.PartitionSpec(None)


def test_make_mesh_errors():
    assert sharding.make_mesh((2, -1, 2)).shape["fsdp"] == 2
    with pytest.raises(ValueError, match="needs 16 devices"):
        sharding.make_mesh((4, 4, 1))
    with pytest.raises(ValueError, match="at most one axis"):
        sharding.make_mesh((-1, -1, 1))
    assert jnp.zeros(1).shape == (1,)
