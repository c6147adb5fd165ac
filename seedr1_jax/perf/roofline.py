"""Step-time prediction: FLOPs, HBM bytes and collective bytes of a compiled program (read from its HLO text,
while-loop trip counts applied), the accelerator table with its sources, and the roofline arithmetic."""

from __future__ import annotations

import dataclasses
import re
import time

import numpy as np


# ---- the chips ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator. peak_flops: dense bf16 FLOP/s; hbm_bytes: memory; hbm_bw: HBM bytes/s; ici_bw: bytes/s
    one chip can send to its neighbours (the published bidirectional per-chip figure / 2, all links)."""

    name: str
    peak_flops: float
    hbm_bytes: float
    hbm_bw: float
    ici_bw: float


GB, GiB = 1e9, 2**30
# HBM capacity in GiB: the "16 GB" / "80 GB" of the datasheets are binary gigabytes (jax reports 15.75 GiB usable
# on v5e, 79.1 GiB on H100 80GB).
CHIPS = {
    # https://cloud.google.com/tpu/docs/v4: 275 TFLOP/s bf16, 32 GiB HBM2 at 1200 GBps. ICI: 6 links x 45 GB/s
    # each way (https://jax-ml.github.io/scaling-book/tpus, "TPU specs" table) = 540 GB/s bidirectional.
    "v4": Chip("TPU v4", 275e12, 32 * GiB, 1200 * GB, 540 * GB / 2),
    # https://cloud.google.com/tpu/docs/v5e: 197 TFLOP/s bf16, 16 GB at 819 GBps, 400 GBps bidirectional ICI.
    "v5e": Chip("TPU v5e", 197e12, 16 * GiB, 819 * GB, 400 * GB / 2),
    # https://cloud.google.com/tpu/docs/v5p: 459 TFLOP/s bf16, 95 GiB at 2765 GBps, 1200 GBps bidirectional ICI.
    "v5p": Chip("TPU v5p", 459e12, 95 * GiB, 2765 * GB, 1200 * GB / 2),
    # https://cloud.google.com/tpu/docs/v6e: 918 TFLOP/s bf16, 32 GB at 1640 GBps, 800 GBps bidirectional ICI.
    "v6e": Chip("TPU v6e", 918e12, 32 * GiB, 1640 * GB, 800 * GB / 2),
    # NVIDIA H100 SXM datasheet (nvidia.com/en-us/data-center/h100): 989 TFLOP/s dense bf16, 80 GB HBM3 at
    # 3.35 TB/s, NVLink 900 GB/s bidirectional.
    "h100": Chip("H100 SXM 80GB", 989e12, 80 * GiB, 3350 * GB, 900 * GB / 2),
    # NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200): the H100's 989 TFLOP/s dense bf16, 141 GB HBM3e
    # at 4.8 TB/s, NVLink 900 GB/s bidirectional; nvidia-smi reports 143771 MiB (140 GiB).
    "h200": Chip("H200 SXM 141GB", 989e12, 140 * GiB, 4800 * GB, 900 * GB / 2),
    # NVIDIA A100 datasheet (nvidia.com/en-us/data-center/a100): 312 TFLOP/s dense bf16, 40 GB HBM2 at
    # 1555 GB/s, NVLink 600 GB/s bidirectional.
    "a100": Chip("A100 SXM 40GB", 312e12, 40 * GiB, 1555 * GB, 600 * GB / 2),
}
# jax device_kind prefixes (longest match wins) -> CHIPS key
DEVICE_KINDS = {"TPU v4": "v4", "TPU v5 lite": "v5e", "TPU v5": "v5p", "TPU v5p": "v5p", "TPU v6 lite": "v6e"}
DEVICE_KINDS.update({"NVIDIA H100": "h100", "NVIDIA H200": "h200", "NVIDIA A100-SXM4-40GB": "a100"})


def chip_for(device_kind: str) -> Chip | None:
    key = next(
        (v for k, v in sorted(DEVICE_KINDS.items(), key=lambda kv: -len(kv[0])) if device_kind.startswith(k)), None
    )
    return CHIPS.get(key) if key else None


def measure_chip(device=None, repeats: int = 10) -> Chip:
    """One jax device as a "chip", measured: peak = the best GEMM rate of an n x n matrix product (float32, n = 2048
    on a CPU; bfloat16, n = 8192 on an accelerator), bandwidth = the best rate of scaling a large array (read +
    write counted: 256 MiB on a CPU, 2 GiB elsewhere), HBM = the device's memory limit, no interconnect."""
    import jax
    import jax.numpy as jnp

    device = device or jax.devices()[0]
    cpu = device.platform == "cpu"
    n, dtype, nbytes = (2048, jnp.float32, 256 * 2**20) if cpu else (8192, jnp.bfloat16, 2 * 2**30)
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.device_put(jax.random.normal(k1, (n, n), dtype), device)
    x = jax.device_put(jax.random.normal(k2, (nbytes // jnp.dtype(dtype).itemsize,), dtype), device)
    dot = jax.jit(lambda m: m @ m)
    scale = jax.jit(lambda v: v * jnp.asarray(1.0001, dtype))

    def best(f, arg):
        f(arg).block_until_ready()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f(arg).block_until_ready()
            times.append(time.perf_counter() - t0)
        return min(times)

    peak = 2 * n**3 / best(dot, a)
    bw = 2 * x.nbytes / best(scale, x)
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        stats = {}
    hbm = float(stats.get("bytes_limit", float("inf")))
    name = "this CPU" if cpu else device.device_kind
    return Chip(f"{name} (measured)", peak, hbm, bw, float("inf"))


# ---- costs of a compiled program ------------------------------------------------------------------------
COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")


@dataclasses.dataclass
class Cost:
    """flops and HBM bytes per chip, and bytes each chip sends by collective kind."""

    flops: float = 0.0
    bytes: float = 0.0
    collectives: dict = dataclasses.field(default_factory=dict)

    def __add__(self, o: Cost) -> Cost:
        coll = dict(self.collectives)
        for k, v in o.collectives.items():
            coll[k] = coll.get(k, 0.0) + v
        coll = {k: v for k, v in coll.items() if abs(v) > 1e-3}  # a loop subtracted back out leaves no kind behind
        return Cost(self.flops + o.flops, self.bytes + o.bytes, coll)

    def __sub__(self, o: Cost) -> Cost:
        return self + o * -1.0

    def __mul__(self, f: float) -> Cost:
        return Cost(self.flops * f, self.bytes * f, {k: v * f for k, v in self.collectives.items()})

    @property
    def collective_bytes(self) -> float:
        return float(sum(self.collectives.values()))


_ITEM = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4}
_ITEM.update({"s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8, "c64": 8, "c128": 16})
_ARRAY = re.compile(r"\b([a-z]+[0-9]*(?:e[0-9]m[0-9][a-z0-9]*)?)\[([0-9,]*)\]")
_COMP = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$")
_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = ")
_CALLS = re.compile(r"\b(calls|body|condition|to_apply|branch_computations)=\{?(%?[\w.\-]+(?:, %?[\w.\-]+)*)\}?")
_SKIP_BYTES = {
    "parameter", "constant", "get-tuple-element", "tuple", "bitcast", "while", "call", "conditional", "after-all",
    "partition-id", "replica-id", "opt-barrier", "copy-start", "copy-done", "slice-start", "slice-done",
    "async-start", "async-done", "async-update", "iota",
}  # fmt: skip
_ELEMENTWISE = {
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "exponential", "log", "tanh", "rsqrt", "sqrt",
    "power", "negate", "abs", "compare", "select", "logistic", "exponential-minus-one", "log-plus-one", "sine",
    "cosine", "erf", "atan2", "remainder", "clamp", "floor", "ceil", "round-nearest-even", "sign", "cbrt",
}  # fmt: skip


def _arrays(type_str: str):
    """[(dtype, dims)] of the array leaves of an HLO type string (a tuple gives several)."""
    return [(d, [int(x) for x in s.split(",") if x]) for d, s in _ARRAY.findall(type_str) if d in _ITEM]


def _nbytes(type_str: str) -> float:
    return float(sum(_ITEM[d] * np.prod(s, dtype=np.float64) for d, s in _arrays(type_str)))


def _elements(type_str: str) -> float:
    return float(sum(np.prod(s, dtype=np.float64) for _, s in _arrays(type_str)))


@dataclasses.dataclass
class _Instr:
    name: str
    type: str
    opcode: str
    operands: list
    attrs: str


def _split_type(rest: str) -> tuple[str, str]:
    """'TYPE opcode(...)...' -> (TYPE, remainder); TYPE may be a parenthesised tuple with nested layouts."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                return rest[: i + 1], rest[i + 1 :].lstrip()
    i = rest.find(" ")
    return rest[:i], rest[i + 1 :]


def _parse_instr(line: str) -> _Instr | None:
    m = _INSTR.match(line)
    if not m:
        return None
    typ, rest = _split_type(line[m.end() :])
    j = rest.find("(")
    opcode = rest[:j]
    depth, k = 0, j
    for k in range(j, len(rest)):
        depth += rest[k] == "("
        depth -= rest[k] == ")"
        if depth == 0:
            break
    ops = [o.strip().split(" ")[-1].lstrip("%") for o in rest[j + 1 : k].split(",") if o.strip()]
    return _Instr(m.group(1), typ, opcode, ops, rest[k + 1 :])


def parse_hlo(text: str) -> tuple[dict, str]:
    """HLO module text -> ({computation name: [instructions]}, entry computation name)."""
    comps, entry, cur = {}, None, None
    for line in text.splitlines():
        if cur is None:
            m = _COMP.match(line)
            if m:
                cur = comps.setdefault(m.group(1), [])
                entry = m.group(1) if line.startswith("ENTRY") else entry
            continue
        if line.startswith("}"):
            cur = None
            continue
        ins = _parse_instr(line)
        if ins is not None:
            cur.append(ins)
    return comps, entry


def _group_size(attrs: str) -> int:
    """Participants per replica group, from explicit groups {{0,1},{2,3}}, iota [G,N]<=[..] or mesh[...] {axes}."""
    m = re.search(r"replica_groups=\{\{([0-9,]*)\}", attrs)
    if m:
        return max(len(m.group(1).split(",")), 1)
    m = re.search(r"replica_groups=\[(\d+),(\d+)\]", attrs)
    if m:
        return int(m.group(2))
    m = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", attrs)
    if m:
        sizes = dict((k.strip("'"), int(v)) for k, v in re.findall(r"('[\w]+')=(\d+)", m.group(1)))
        return int(np.prod([sizes.get(a.strip().strip("'"), 1) for a in m.group(2).split(",") if a.strip()]))
    return 1


def _collective_bytes(ins: _Instr, kind: str, in_bytes: float) -> float:
    """Bytes one chip sends for one collective of `in_bytes` input per chip (ring algorithms)."""
    if kind == "collective-permute":
        pairs = re.findall(r"\{(\d+),(\d+)\}", ins.attrs.split("source_target_pairs=")[-1].split("}}")[0] + "}")
        moved = sum(a != b for a, b in pairs)
        return in_bytes * (moved / len(pairs) if pairs else 1.0)
    n = _group_size(ins.attrs)
    if n <= 1:
        return 0.0
    return in_bytes * {"all-gather": n - 1, "all-reduce": 2 * (n - 1) / n}.get(kind, (n - 1) / n)


def _window(attrs: str, key: str, nd: int, default: int) -> list[int]:
    m = re.search(rf"\b{key}=([0-9x_\-]+)", attrs)
    if not m:
        return [default] * nd
    return [int(v.split("_")[0]) for v in m.group(1).split("x")]


def _through_copies(local: dict, name: str):
    """The instruction behind `name`, looking through copies, bitcasts and converts (None if not local)."""
    ins = local.get(name)
    while ins is not None and ins.opcode in ("copy", "bitcast", "convert") and ins.operands:
        ins = local.get(ins.operands[0])
    return ins


def _conv_flops(ins: _Instr, shapes: dict) -> float:
    """2 x multiply-adds of a convolution (TPU dots lower to these), counting only window taps that land on real
    input elements (padding and base-dilation holes skipped), as XLA's HloCostAnalysis does."""
    lhs_l, out_l = re.search(r"dim_labels=(\w+)_\w+->(\w+)", ins.attrs).group(1, 2)
    lhs = _arrays(shapes[ins.operands[0]])[0][1]
    out = _arrays(ins.type)[0][1]
    spatial = [c for c in lhs_l if c.isdigit()]
    nd = len(spatial)
    wsize = _window(ins.attrs, "size", nd, 1)
    stride, lhs_dil, rhs_dil = (_window(ins.attrs, k, nd, 1) for k in ("stride", "lhs_dilate", "rhs_dilate"))
    pad_m = re.search(r"\bpad=([0-9x_\-]+)", ins.attrs)
    pads = [int(p.split("_")[0]) for p in pad_m.group(1).split("x")] if pad_m else [0] * nd
    valid = 1.0
    for i, c in enumerate(sorted(spatial)):
        n_in, n_out = lhs[lhs_l.index(c)], out[out_l.index(c)]
        pos = np.arange(n_out)[:, None] * stride[i] - pads[i] + np.arange(wsize[i])[None, :] * rhs_dil[i]
        ok = (pos >= 0) & (pos % lhs_dil[i] == 0) & (pos // lhs_dil[i] < n_in)
        valid *= float(ok.sum())
    fgc = int((re.search(r"feature_group_count=(\d+)", ins.attrs) or [0, 1])[1])
    fin = lhs[lhs_l.index("f")] / fgc
    return 2.0 * out[out_l.index("b")] * out[out_l.index("f")] * fin * valid


def _dot_flops(ins: _Instr, shapes: dict) -> float:
    lhs = _arrays(shapes[ins.operands[0]])[0][1]
    m = re.search(r"lhs_contracting_dims=\{([0-9,]*)\}", ins.attrs)
    k = np.prod([lhs[int(i)] for i in m.group(1).split(",") if i], dtype=np.float64) if m else 1.0
    return 2.0 * _elements(ins.type) * float(k)


_GEMM_CALL = re.compile(r'custom_call_target="__cublas\$(?:lt\$)?(?:gemm|matmul)')


def _gemm_call_flops(ins: _Instr, shapes: dict) -> float:
    """2 x multiply-adds of a cuBLAS GEMM custom-call (how GPU HLO carries most dots): the output is the first
    array of its (result, workspace) tuple, the contracting dims are in its backend config."""
    lhs = _arrays(shapes[ins.operands[0]])[0][1]
    m = re.search(r'"lhs_contracting_dimensions":\[([^\]]*)\]', ins.attrs)
    dims = [int(x.strip('" ')) for x in m.group(1).split(",") if x.strip('" ')] if m else []
    k = np.prod([lhs[i] for i in dims], dtype=np.float64)
    return 2.0 * float(np.prod(_arrays(ins.type)[0][1], dtype=np.float64)) * float(k)


class HloCost:
    """Costs of one compiled HLO module. Each computation's cost includes what it calls: a while body times its
    trip count (read from the loop condition), a fusion's FLOPs from its fused computation. HBM bytes are
    counted at the non-fused level (a fusion reads its operands and writes its result once; operands it only
    slices count as the slices; an in-place dynamic-update-slice writes only the update)."""

    def __init__(self, text: str):
        self.comps, self.entry = parse_hlo(text)
        self._memo: dict = {}

    def _trip_count(self, ins: _Instr, shapes: dict) -> int | None:
        m = re.search(r'"known_trip_count":\{"n":"(\d+)"', ins.attrs)
        if m:
            return int(m.group(1))
        cond = self.comps[re.search(r"condition=%?([\w.\-]+)", ins.attrs).group(1)]
        root = cond[-1]
        if root.opcode != "compare" or "direction=LT" not in root.attrs:
            return None
        local = {i.name: i for i in cond}
        lim = local.get(root.operands[1])
        gte = local.get(root.operands[0])
        if lim is None or lim.opcode != "constant" or gte is None or gte.opcode != "get-tuple-element":
            return None
        limit = int(lim.operands[0])
        idx = int(re.search(r"index=(\d+)", gte.attrs).group(1))
        init, step = 0, 1
        tup = shapes.get("__instr__", {}).get(ins.operands[0])
        if tup is not None and tup.opcode == "tuple" and idx < len(tup.operands):
            src = _through_copies(shapes["__instr__"], tup.operands[idx])
            if src is not None and src.opcode == "constant":
                init = int(src.operands[0])
        body = self.comps[re.search(r"body=%?([\w.\-]+)", ins.attrs).group(1)]
        local_b = {i.name: i for i in body}
        if body and body[-1].opcode == "tuple" and idx < len(body[-1].operands):
            inc = _through_copies(local_b, body[-1].operands[idx])
            if inc is not None and inc.opcode == "add":  # a loop XLA widened advances its counter by > 1
                consts = [_through_copies(local_b, o) for o in inc.operands]
                consts = [c for c in consts if c is not None and c.opcode == "constant"]
                step = max(int(consts[0].operands[0]), 1) if consts else 1
        return max(-(-(limit - init) // step), 0)

    def _fused(self, name: str) -> Cost:
        """FLOPs (and collectives) inside a fused computation; its bytes are counted by the fusion."""
        key = ("fused", name)
        if key not in self._memo:
            c = self._walk(name, count_bytes=False)
            self._memo[key] = c
        return self._memo[key]

    def _fusion_bytes(self, ins: _Instr, shapes: dict) -> float:
        name = re.search(r"calls=%?([\w.\-]+)", ins.attrs).group(1)
        comp = self.comps.get(name, [])
        params = {int(i.operands[0]): i.name for i in comp if i.opcode == "parameter"}
        users: dict = {}
        for i in comp:
            for o in i.operands:
                users.setdefault(o, []).append(i)
        root = comp[-1] if comp else None
        roots = (
            [root]
            if root is not None and root.opcode != "tuple"
            else [r for r in comp if root and r.name in root.operands]
        )
        local = {i.name: i for i in comp}
        in_place = set()  # parameters a root dynamic-update-slice writes in place (GPU HLO: through a bitcast)
        for r in roots:
            if r.opcode == "dynamic-update-slice":
                base = r.operands[0]
                while base in local and local[base].opcode == "bitcast":
                    base = local[base].operands[0]
                in_place.add(base)
        out = 0.0
        for r in roots:
            if r.opcode == "dynamic-update-slice":
                out += _nbytes(local[r.operands[1]].type) if r.operands[1] in local else _nbytes(r.type)
            else:
                out += _nbytes(r.type)
        total = out
        for k, op in enumerate(ins.operands):
            if params.get(k) not in in_place:
                total += self._param_read(name, k, _nbytes(shapes.get(op, "")))
        return total

    def _param_read(self, comp_name: str, index: int, full: float) -> float:
        """Bytes a fused computation reads of its parameter `index` (full size `full`): only the slices when every
        use is a (dynamic-)slice or gather, looking through bitcasts and nested fusions."""
        key = ("read", comp_name, index)
        if key in self._memo:
            return self._memo[key]
        comp = self.comps.get(comp_name, [])
        users: dict = {}
        for i in comp:
            for o in set(i.operands):
                users.setdefault(o, []).append(i)
        pname = next((i.name for i in comp if i.opcode == "parameter" and int(i.operands[0]) == index), None)

        def read(name: str) -> float:
            total = 0.0
            for u in users.get(name, []):
                if u.opcode in ("dynamic-slice", "slice", "gather") and u.operands[0] == name:
                    total += _nbytes(u.type)
                elif u.opcode == "dynamic-update-slice" and u.operands[0] == name and users.get(u.name):
                    total += read(u.name)  # a slice of the updated buffer (GPU fuses cache update + layer slice)
                elif u.opcode == "bitcast":
                    total += read(u.name)
                elif u.opcode == "fusion":
                    callee = re.search(r"calls=%?([\w.\-]+)", u.attrs).group(1)
                    total += sum(self._param_read(callee, j, full) for j, o in enumerate(u.operands) if o == name)
                else:
                    return full
            return min(total, full) if users.get(name) else full

        self._memo[key] = out = read(pname) if pname else full
        return out

    def _walk(self, name: str, count_bytes: bool = True) -> Cost:
        key = (name, count_bytes)
        if key in self._memo:
            return self._memo[key]
        comp = self.comps.get(name, [])
        shapes = {i.name: i.type for i in comp}
        shapes["__instr__"] = {i.name: i for i in comp}
        total = Cost()
        for ins in comp:
            op = ins.opcode
            flops, nbytes, coll = 0.0, 0.0, {}
            base = op[: -len("-start")] if op.endswith("-start") else op
            if op == "while":
                body = re.search(r"body=%?([\w.\-]+)", ins.attrs).group(1)
                trips = self._trip_count(ins, shapes)
                total = total + self._walk(body, count_bytes) * (1 if trips is None else trips)
                continue
            if op in ("call", "async-start", "conditional"):
                for _, names in _CALLS.findall(ins.attrs):
                    for callee in names.split(","):
                        total = total + self._walk(callee.strip().lstrip("%"), count_bytes)
                continue
            if op in ("fusion", "fusion-start"):  # GPU HLO runs some fusions async: start (counted), done
                total = total + self._fused(re.search(r"calls=%?([\w.\-]+)", ins.attrs).group(1))
                nbytes = self._fusion_bytes(ins, shapes) if count_bytes else 0.0
            elif op == "dot":
                flops = _dot_flops(ins, shapes)
            elif op == "convolution":
                flops = _conv_flops(ins, shapes)
            elif op == "custom-call" and _GEMM_CALL.search(ins.attrs):
                flops = _gemm_call_flops(ins, shapes)
            elif op in _ELEMENTWISE:
                flops = _elements(ins.type)
            elif op in ("reduce", "reduce-window"):
                flops = sum(_elements(shapes.get(o, "")) for o in ins.operands[: max(len(ins.operands) // 2, 1)])
            if base in COLLECTIVES:
                in_bytes = sum(_nbytes(shapes.get(o, "")) for o in ins.operands)
                coll = {base: _collective_bytes(ins, base, in_bytes)}
            own = op not in ("fusion", "fusion-start") and op not in _SKIP_BYTES and not op.endswith("-done")
            if count_bytes and own:
                if op == "dynamic-slice":
                    nbytes = 2 * _nbytes(ins.type)
                elif op == "dynamic-update-slice":
                    nbytes = 2 * _nbytes(shapes.get(ins.operands[1], ""))
                elif op == "custom-call":  # a GPU library call: its trailing s8/u8 output is scratch (workspace)
                    outs = _arrays(ins.type)
                    while len(outs) > 1 and outs[-1][0] in ("s8", "u8") and len(outs[-1][1]) == 1:
                        outs.pop()
                    nbytes = sum(_ITEM[d] * float(np.prod(sh, dtype=np.float64)) for d, sh in outs)
                    nbytes += sum(_nbytes(shapes.get(o, "")) for o in ins.operands)
                else:
                    nbytes = _nbytes(ins.type) + sum(_nbytes(shapes.get(o, "")) for o in ins.operands)
            total = total + Cost(flops, nbytes, coll)
        self._memo[key] = total
        return total

    def total(self) -> Cost:
        """The whole program, a loop of unknown trip count counted once."""
        return self._walk(self.entry)

    def loops(self) -> list[tuple[str, int | None, Cost]]:
        """The entry computation's while loops: (op_name metadata, trip count or None, cost of one iteration)."""
        comp = self.comps[self.entry]
        shapes = {i.name: i.type for i in comp}
        shapes["__instr__"] = {i.name: i for i in comp}
        out = []
        for ins in comp:
            if ins.opcode == "while":
                body = re.search(r"body=%?([\w.\-]+)", ins.attrs).group(1)
                meta = re.search(r'op_name="([^"]*)"', ins.attrs)
                out.append((meta.group(1) if meta else ins.name, self._trip_count(ins, shapes), self._walk(body)))
        return out

    def split_dynamic_loop(self) -> tuple[Cost, Cost]:
        """(everything but the loop whose trip count is only known at run time, one iteration of that loop):
        the sampler's prefill and its per-token decode step. Without such a loop, (total, zero)."""
        dyn = [c for _, trips, c in self.loops() if trips is None]
        step = dyn[0] if dyn else Cost()
        return self.total() - step, step


# ---- the roofline ---------------------------------------------------------------------------------------
def seconds(cost: Cost, chip: Chip) -> float:
    """max(FLOPs / peak, bytes / HBM bandwidth) + collective bytes / ICI bandwidth (no overlap assumed)."""
    comm = cost.collective_bytes / chip.ici_bw if cost.collective_bytes else 0.0
    return max(cost.flops / chip.peak_flops, cost.bytes / chip.hbm_bw) + comm


def bound(cost: Cost, chip: Chip) -> str:
    """Which term of `seconds` dominates: compute, memory or collectives."""
    terms = {
        "compute": cost.flops / chip.peak_flops,
        "HBM": cost.bytes / chip.hbm_bw,
        "ICI": cost.collective_bytes / chip.ici_bw if cost.collective_bytes else 0.0,
    }
    return max(terms, key=terms.get)


@dataclasses.dataclass
class StepPrediction:
    """Predicted seconds of one GRPO/SFT step on `chips` chips and what they imply."""

    rollout_s: float
    logprobs_s: float
    update_s: float
    step_s: float
    tokens_per_s: float
    mfu: float


def predict_step(
    chip: Chip,
    chips: int,
    *,
    update: Cost,
    prefill: Cost | None = None,
    decode: Cost | None = None,
    logprobs: Cost | None = None,
    new_tokens: int = 0,
    tokens: int,
    model_flops: float,
) -> StepPrediction:
    """rollout = prefill + new_tokens x decode step; step = rollout + log-probs + update (per-chip costs).

    tokens: tokens processed per step (whole slice); model_flops: the model's useful FLOPs per step (whole
    slice, remat recomputation excluded) for MFU = model_flops / (step_s x chips x peak).
    """
    rollout = (seconds(prefill, chip) if prefill else 0.0) + (new_tokens * seconds(decode, chip) if decode else 0.0)
    lp = seconds(logprobs, chip) if logprobs else 0.0
    upd = seconds(update, chip)
    step = rollout + lp + upd
    return StepPrediction(rollout, lp, upd, step, tokens / step, model_flops / (step * chips * chip.peak_flops))


# ---- analytic model FLOPs (what MFU counts) --------------------------------------------------------------
def vision_flops(cfg, segments: int, seg_len: int) -> float:
    """Forward matmul FLOPs of the vision tower over `segments` segments of `seg_len` patches (attention within a
    segment), patch embedding and 2x2 merger included."""
    v = cfg.vision
    e, f, m2 = v.embed_dim, int(v.embed_dim * v.mlp_ratio), v.spatial_merge_size**2
    per_patch = v.patch_dim * e + v.depth * (4 * e * e + 2 * e * f + 2 * seg_len * e)
    per_merged = (e * m2) ** 2 + e * m2 * v.out_dim
    return 2.0 * segments * (seg_len * per_patch + seg_len // m2 * per_merged)


def text_flops(cfg, tokens: int, keys: int) -> float:
    """Forward matmul FLOPs of the decoder layers for `tokens` query tokens attending to `keys` keys each."""
    t = cfg.text
    d, hd = t.hidden_size, t.head_dim
    per_layer = d * (t.num_heads + 2 * t.num_kv_heads) * hd + t.num_heads * hd * d + 3 * d * t.intermediate_size
    per_layer += 2 * keys * t.num_heads * hd
    return 2.0 * tokens * t.num_layers * per_layer


def logits_flops(cfg, rows: int) -> float:
    return 2.0 * rows * cfg.text.hidden_size * cfg.text.vocab_size
