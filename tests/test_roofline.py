"""The roofline cost model: HLO costs with loop trip counts (hand-made module), compiled FLOPs of scanned tiny
models against the analytic 6N/2N count, the step-time arithmetic, and `aot --search` ranking."""

import dataclasses

import jax
import pytest

from configs.grpo_qwen2vl_7b import get_config
from seedr1_jax.models.checkpoint import model_config
from seedr1_jax.parallel import sharding
from seedr1_jax.perf import aot, roofline

T3 = "(s32[], f32[16,8], f32[4,8,8])"
HLO = f"""HloModule hand

%add (x: f32[], y: f32[]) -> f32[] {{
  %x = f32[] parameter(0)
  %y = f32[] parameter(1)
  ROOT %s = f32[] add(%x, %y)
}}

%fused_slice (p0: f32[4,8,8], p1: s32[]) -> f32[8,8] {{
  %p0 = f32[4,8,8]{{2,1,0}} parameter(0)
  %p1 = s32[] parameter(1)
  %z = s32[] constant(0)
  %ds = f32[1,8,8]{{2,1,0}} dynamic-slice(%p0, %p1, %z, %z), dynamic_slice_sizes={{1,8,8}}
  ROOT %b = f32[8,8]{{1,0}} bitcast(%ds)
}}

%body (param: {T3}) -> {T3} {{
  %param = {T3} parameter(0)
  %i = s32[] get-tuple-element(%param), index=0
  %x = f32[16,8]{{1,0}} get-tuple-element(%param), index=1
  %w = f32[4,8,8]{{2,1,0}} get-tuple-element(%param), index=2
  %wl = f32[8,8]{{1,0}} fusion(%w, %i), kind=kLoop, calls=%fused_slice
  %y = f32[16,8]{{1,0}} dot(%x, %wl), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
  %g = f32[16,32]{{1,0}} all-gather(%y), replica_groups={{{{0,1,2,3}}}}, dimensions={{1}}
  %one = s32[] constant(1)
  %i1 = s32[] add(%i, %one)
  ROOT %t = {T3} tuple(%i1, %y, %w)
}}

%cond (param.1: {T3}) -> pred[] {{
  %param.1 = {T3} parameter(0)
  %i.1 = s32[] get-tuple-element(%param.1), index=0
  %n = s32[] LIMIT
  ROOT %lt = pred[] compare(%i.1, %n), direction=LT
}}

ENTRY %main (a: f32[16,8], w: f32[4,8,8]) -> f32[16,8] {{
  %a = f32[16,8]{{1,0}} parameter(0)
  %w.1 = f32[4,8,8]{{2,1,0}} parameter(1)
  %zero = s32[] constant(0)
  %init = {T3} tuple(%zero, %a, %w.1)
  %loop = {T3} while(%init), condition=%cond, body=%body
  %out = f32[16,8]{{1,0}} get-tuple-element(%loop), index=1
  ROOT %r = f32[16,8]{{1,0}} all-reduce(%out), replica_groups=[2,4]<=[8], to_apply=%add
}}
"""
# one iteration, by hand: the fusion writes its 8x8 f32 slice (256 B) and reads only the slice (256 B) and the
# index (4 B); the dot does 2*16*8*8 FLOPs and moves 512 + 512 + 256 B; the all-gather moves 512 + 2048 B and
# each of 4 chips sends its 512 B shard to 3 others; the s32 add is 1 FLOP and 12 B.
ITER = roofline.Cost(2 * 16 * 8 * 8 + 1, 516 + 1280 + 2560 + 12, {"all-gather": 512 * 3})
# outside the loop: an all-reduce over groups of 4 of 512 B (reads + writes 1024 B, sends 2 * 512 * 3/4 B)
OUTSIDE = roofline.Cost(0, 1024, {"all-reduce": 2 * 512 * 3 / 4})


def _same(a, b):
    assert a.flops == pytest.approx(b.flops) and a.bytes == pytest.approx(b.bytes)
    assert a.collectives.keys() == b.collectives.keys()
    assert all(a.collectives[k] == pytest.approx(v) for k, v in b.collectives.items())


def test_hand_made_hlo_counts_the_loop_trip_count():
    h = roofline.HloCost(HLO.replace("LIMIT", "constant(3)"))
    _same(h.total(), OUTSIDE + ITER * 3)
    [(_, trips, one)] = h.loops()
    assert trips == 3
    _same(one, ITER)
    # a loop XLA widened: its counter advances by 2 up to 6 (still 3 iterations of the body)
    wide = roofline.HloCost(
        HLO.replace("LIMIT", "constant(6)").replace("%one = s32[] constant(1)", "%one = s32[] constant(2)")
    )
    assert wide.loops()[0][1] == 3
    _same(wide.total(), OUTSIDE + ITER * 3)


def test_a_run_time_trip_count_is_split_off_as_one_step():
    dynamic = HLO.replace("LIMIT", "get-tuple-element(%param.1), index=0")  # not a constant: known only at run time
    h = roofline.HloCost(dynamic)
    assert h.loops()[0][1] is None
    rest, step = h.split_dynamic_loop()
    _same(step, ITER)
    _same(rest, OUTSIDE)


GEMM_HLO = """HloModule gpu

ENTRY %main (x: bf16[4,64,32], w: bf16[32,48]) -> bf16[4,64,48] {
  %x = bf16[4,64,32]{2,1,0} parameter(0)
  %w = bf16[32,48]{1,0} parameter(1)
  %g = (bf16[4,64,48]{2,1,0}, s8[1024]{0}) custom-call(%x, %w), custom_call_target="__cublas$lt$matmul", \
backend_config={"gemm_backend_config":{"dot_dimension_numbers":{"lhs_contracting_dimensions":["2"],\
"rhs_contracting_dimensions":["0"],"lhs_batch_dimensions":[],"rhs_batch_dimensions":[]}}}
  ROOT %r = bf16[4,64,48]{2,1,0} get-tuple-element(%g), index=0
}
"""


def test_a_cublas_gemm_custom_call_counts_its_flops():
    """GPU HLO carries dots as cuBLAS custom-calls: 2 x 4*64*48 outputs x 32 contracted, workspace not counted."""
    assert roofline.HloCost(GEMM_HLO).total().flops == 2 * 4 * 64 * 48 * 32
    other = GEMM_HLO.replace("__cublas$lt$matmul", "__cudnn$norm")
    assert roofline.HloCost(other).total().flops == 0


def test_a_device_measured_as_a_chip():
    c = roofline.measure_chip(jax.devices("cpu")[0], repeats=2)
    assert c.peak_flops > 1e8 and c.hbm_bw > 1e8  # any CPU this suite runs on does 0.1 GFLOP/s and 0.1 GB/s
    assert roofline.chip_for("NVIDIA H200") is roofline.CHIPS["h200"]
    assert roofline.chip_for("NVIDIA H100 80GB HBM3") is roofline.CHIPS["h100"]


# GPU HLO patterns (read off an H200 compile of the 2B sampler): a layer's weight slice as an async fusion
# (fusion-start/-done), and the KV cache written in place through a bitcast, then the layer's slice read back.
CACHE_HLO = """HloModule gpu_cache

%fused_ds (p0: bf16[28,64,64], p1: s32[]) -> bf16[1,64,64] {
  %p0 = bf16[28,64,64]{2,1,0} parameter(0)
  %p1 = s32[] parameter(1)
  %z = s32[] constant(0)
  ROOT %ds = bf16[1,64,64]{2,1,0} dynamic-slice(%p0, %p1, %z, %z), dynamic_slice_sizes={1,64,64}
}

%fused_dus_ds (q0: bf16[28,8,64], q1: bf16[1,1,64], q2: s32[]) -> bf16[1,8,64] {
  %q0 = bf16[28,8,64]{2,1,0} parameter(0)
  %b = bf16[28,8,64]{2,1,0} bitcast(%q0)
  %q1 = bf16[1,1,64]{2,1,0} parameter(1)
  %q2 = s32[] parameter(2)
  %z = s32[] constant(0)
  %u = bf16[28,8,64]{2,1,0} dynamic-update-slice(%b, %q1, %q2, %z, %z)
  ROOT %s = bf16[1,8,64]{2,1,0} dynamic-slice(%u, %q2, %z, %z), dynamic_slice_sizes={1,8,64}
}

%fused_dus (r0: bf16[28,8,64], r1: bf16[1,1,64], r2: s32[]) -> bf16[28,8,64] {
  %r0 = bf16[28,8,64]{2,1,0} parameter(0)
  %b = bf16[28,8,64]{2,1,0} bitcast(%r0)
  %r1 = bf16[1,1,64]{2,1,0} parameter(1)
  %r2 = s32[] parameter(2)
  %z = s32[] constant(0)
  ROOT %u = bf16[28,8,64]{2,1,0} dynamic-update-slice(%b, %r1, %r2, %z, %z)
}

ENTRY %main (w: bf16[28,64,64], c: bf16[28,8,64], n: bf16[1,1,64], i: s32[]) -> bf16[1,8,64] {
  %w = bf16[28,64,64]{2,1,0} parameter(0)
  %c = bf16[28,8,64]{2,1,0} parameter(1)
  %n = bf16[1,1,64]{2,1,0} parameter(2)
  %i = s32[] parameter(3)
  %fs = ((bf16[28,64,64]{2,1,0}, s32[]), bf16[1,64,64]{2,1,0}, u32[]) fusion-start(%w, %i), kind=kLoop, calls=%fused_ds
  %fd = bf16[1,64,64]{2,1,0} fusion-done(%fs)
  %kv = bf16[1,8,64]{2,1,0} fusion(%c, %n, %i), kind=kLoop, calls=%fused_dus_ds
  %c2 = bf16[28,8,64]{2,1,0} fusion(%c, %n, %i), kind=kLoop, calls=%fused_dus
  ROOT %o = bf16[1,8,64]{2,1,0} add(%kv, %kv)
}
"""


def test_gpu_slices_and_in_place_cache_updates_count_only_what_they_touch():
    """Every term by hand (bytes): the async weight slice reads and writes one 64x64 bf16 layer (8192 + 8192, +4
    for the index) and never the 28-layer stack; the fused update-then-slice reads the layer slice it returns (1024)
    plus the new row (128) and index (4) and writes 1024; the in-place update writes only its row (128) and reads
    the row and index (132); the add reads 2 x 1024 and writes 1024."""
    c = roofline.HloCost(CACHE_HLO).total()
    assert c.bytes == (8192 + 4 + 8192) + (1024 + 128 + 4 + 1024) + (128 + 128 + 4) + 3 * 1024
    assert c.flops == 8 * 64


def test_roofline_arithmetic_on_a_hand_made_cost_table():
    chip = roofline.Chip("toy", peak_flops=1e3, hbm_bytes=1e9, hbm_bw=1e4, ici_bw=1e3)
    c = OUTSIDE + ITER * 3  # 6147 FLOPs, 14128 B, 4608 + 768 B of collectives
    assert roofline.seconds(c, chip) == pytest.approx(6147 / 1e3 + (4608 + 768) / 1e3)
    assert roofline.bound(c, chip) == "compute"
    mem = roofline.Cost(10, 5e4)
    assert roofline.seconds(mem, chip) == pytest.approx(5.0) and roofline.bound(mem, chip) == "HBM"
    upd, pre, dec, lp = roofline.Cost(4e3, 1e3), roofline.Cost(1e3, 0), roofline.Cost(0, 1e3), roofline.Cost(2e3, 0)
    p = roofline.predict_step(
        chip, 2, update=upd, prefill=pre, decode=dec, logprobs=lp, new_tokens=10, tokens=50, model_flops=8e3
    )
    assert (p.rollout_s, p.logprobs_s, p.update_s) == pytest.approx((1 + 10 * 0.1, 2.0, 4.0))
    assert p.step_s == pytest.approx(8.0) and p.tokens_per_s == pytest.approx(50 / 8)
    assert p.mfu == pytest.approx(8e3 / (8.0 * 2 * 1e3))


def _tiny(layers, **text):
    c = get_config("cpu")
    c.model.remat_policy = "none"
    c.data.max_prompt_len, c.data.max_frames, c.data.batch_size = 64, 2, 1
    c.grpo.group_size, c.grpo.max_new_tokens = 2, 8
    cfg = model_config(c)
    # a small vocabulary so that the scanned layers, not the LM head, carry the FLOPs
    t = dict(num_layers=layers, hidden_size=256, intermediate_size=1024, vocab_size=512, mrope_section=(8, 12, 12))
    cfg = dataclasses.replace(
        cfg,
        text=dataclasses.replace(cfg.text, **{**t, **text}),
        vision=dataclasses.replace(cfg.vision, depth=layers, out_dim=256),
    )
    return c, cfg


@pytest.mark.parametrize("layers", [1, 2, 4])
def test_compiled_flops_match_6n_update_and_2n_forward_with_scans_counted(layers):
    c, cfg = _tiny(layers)
    mesh = aot.topology_mesh(jax.devices("cpu")[:1], (1, 1, 1))
    step, _, prompt = aot.compile_update(c, cfg, mesh, sharding.TRAIN_RULES)
    logprobs, _ = aot.compile_logprobs(c, cfg, mesh, sharding.TRAIN_RULES, prompt)
    analytic = aot.model_flops(c, cfg)
    upd = roofline.HloCost(step.as_text()).total().flops
    fwd = roofline.HloCost(logprobs.as_text()).total().flops
    assert upd == pytest.approx(analytic["update"], rel=0.10)  # 3 x forward = 6 N tokens (+ attention)
    assert fwd == pytest.approx(analytic["logprobs"], rel=0.10)  # 2 N tokens (+ attention)
    if layers > 1:  # XLA's own count visits each scanned body once: the undercount this module corrects
        assert float(step.cost_analysis()["flops"]) < 0.9 * upd


def test_search_returns_only_fitting_configurations_ranked():
    c = get_config("cpu")
    c.algo = "sft"
    c.data.max_prompt_len, c.data.max_frames, c.sft.max_response_len = 64, 2, 16
    devices = jax.devices("cpu")[:2]
    rows = aot.evaluate(c, devices, meshes=[(1, 2, 1), (2, 1, 1)], remats=["full", "none"], log=lambda *_: None)
    assert len(rows) == 4 and all("progs" in r for r in rows)
    totals = sorted(max(p.memory["total"] for p in r["progs"]) for r in rows)
    assert totals[0] < totals[-1]
    limit = (totals[0] + totals[-1]) / 2  # some configurations fit, some do not
    chip = dataclasses.replace(roofline.CHIPS["v5p"], hbm_bytes=limit)
    ok, rejected = aot.rank(rows, chip, len(devices))
    assert ok and rejected and len(ok) + len(rejected) == 4
    assert all(r["gib"] * 2**30 <= limit for r in ok)
    assert all(r["gib"] * 2**30 > limit and "needs" in r["reason"] for r in rejected)
    steps = [r["pred"].step_s for r in ok]
    assert steps == sorted(steps) and all(s > 0 for s in steps)


def test_candidate_meshes_divide_the_devices_and_the_heads():
    cfg = model_config(get_config())  # 7B: 4 kv heads, 28 heads, 16 vision heads
    meshes = aot.candidate_meshes(32, cfg)
    assert (1, 32, 1) in meshes and (2, 4, 4) in meshes and (1, 4, 8) not in meshes
    assert all(d * f * t == 32 and 4 % t == 0 for d, f, t in meshes)
