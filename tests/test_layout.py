"""The package layout: no import cycles, arrows point down through the layers, old module paths still import.

LAYERS is the one place the order is written (docs/architecture.md draws it). A module may import from its own
folder, from another folder of its own layer, or from any layer below; never from a layer above."""

import ast
import importlib
import os
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = [  # top to bottom
    ("cli", "seedr1_jax"),  # the `seedr1` command; the package's own __init__ (its public surface)
    ("analysis", "perf"),  # applications: demo, study, evaluate, attention; aot, roofline, validate
    ("rl", "configs"),  # algorithms and their loop; experiment configs
    ("data", "data_prep"),  # input pipeline and batches; preprocessing and synthetic data
    ("models",),  # model families, shared layers, processor, HF and orbax I/O
    ("parallel", "core"),  # sharding; file access, platform
]
LAYER = {folder: i for i, row in enumerate(LAYERS) for folder in row}


def _modules() -> dict[str, str]:
    out = {}
    for top in ("seedr1_jax", "data_prep", "configs"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].replace(os.sep, ".")
                    out[rel.removesuffix(".__init__")] = os.path.join(d, f)
    return out


def _folder(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "seedr1_jax":
        return parts[0]
    return parts[1] if len(parts) > 1 else "seedr1_jax"


def _imports(module: str, path: str, known: dict) -> set[str]:
    """Modules of the project that `module` imports anywhere in its file (also inside functions)."""
    is_pkg = path.endswith("__init__.py")
    here = module.split(".") if is_pkg else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1]) if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            # `from pkg import sub` imports pkg.sub (not pkg's own __init__ beyond what running it implies)
            cands = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for c in cands:
            if c.split(".")[0] not in ("seedr1_jax", "data_prep", "configs"):
                continue
            while c and c not in known:
                c = c.rpartition(".")[0]
            if c and c != module:
                out.add(c)
    return out


def _graph():
    known = _modules()
    graph = {}
    for m, p in known.items():
        deps = _imports(m, p, known)
        if p.endswith("__init__.py"):  # a package re-exporting its own children is not a cycle of design
            deps = {d for d in deps if not d.startswith(m + ".")}
        graph[m] = deps
    return graph


def _cycles(graph) -> list[list[str]]:
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return comps


def test_every_folder_has_a_layer():
    folders = {_folder(m) for m in _modules()}
    assert folders <= set(LAYER), f"folders without a layer in LAYERS: {sorted(folders - set(LAYER))}"


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_finds_a_planted_cycle_and_an_upward_import():
    """The checks themselves: a ring is a cycle, and models -> rl is an upward arrow."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert LAYER[_folder("seedr1_jax.models.config")] > LAYER[_folder("seedr1_jax.rl.grpo")]


def test_arrows_point_down():
    upward = [
        f"{m} ({_folder(m)}) imports {d} ({_folder(d)})"
        for m, deps in _graph().items()
        for d in deps
        if LAYER[_folder(d)] < LAYER[_folder(m)]
    ]
    assert upward == []


def test_package_code_uses_the_new_paths():
    """Inside the project, old flat paths (seedr1_jax.grpo) are not used: only users get the aliases."""
    from seedr1_jax.core.aliases import MOVED

    old = {f"seedr1_jax.{name}" for name in MOVED}
    known = _modules()
    stale = []
    for m, p in known.items():
        tree = ast.parse(open(p, encoding="utf-8").read(), p)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                stale += [f"{m}: {n}" for n in names & old]
    assert stale == []


@pytest.mark.parametrize("old", ["sampler", "grpo", "qwen2_vl", "fs", "evaluate", "aot"])
def test_old_module_paths_are_aliases(old):
    from seedr1_jax.core.aliases import MOVED

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(f"seedr1_jax.{old}")
    assert mod is importlib.import_module(f"seedr1_jax.{MOVED[old]}")
    assert any(issubclass(w.category, DeprecationWarning) and MOVED[old] in str(w.message) for w in caught)


def test_public_names_import():
    """What README's Python API shows."""
    import seedr1_jax
    from seedr1_jax import Qwen2VL, data, from_pretrained, sampler
    from seedr1_jax.rl.sampler import greedy

    assert sampler.greedy is greedy and callable(from_pretrained) and callable(data.make_batch)
    assert seedr1_jax.Qwen2VL is Qwen2VL and Qwen2VL.from_pretrained.__self__ is Qwen2VL
