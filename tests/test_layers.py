"""The layers of ../shared/ARCHITECTURE.md: each imports only from layers below it (or its own),
and no module imports itself back through a cycle -- at module level or inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "chainrule"

# top-level part of chainrule -> layer (ARCHITECTURE.md "Layers of the house")
LAYERS = {
    "errors": 1, "fileio": 1, "threads": 1,
    "data": 2,
    "tokenizers": 3, "_bpe": 3, "_bpe_core": 3,
    "models": 4, "_ngram_query": 4, "_ngram_query_core": 4,
    "_ngram_count": 4, "_ngram_count_core": 4, "_arpa": 4, "_arpa_core": 4,
    "training": 5,
    "decoding": 6, "evaluation": 6, "testing": 6, "prompting": 6,
    "embeddings": 6, "_w2v": 6, "_w2v_core": 6,
    "preferences": 6,  # rollouts come from decoding
    "scaling": 6,  # sweeps train with the training loop; plots reuse evaluation's
    "api": 7,
    "cli": 7, "web": 7, "__init__": 7, "__main__": 7,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every chainrule module ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text("utf-8"))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("chainrule"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("chainrule"):
                continue
            for a in node.names:  # "from chainrule.models import base" imports a module
                sub = f"{mod}.{a.name}"
                # the compiled _bpe_core is a module even before it is built
                out.add(sub if _exists(sub) or a.name.startswith("_bpe") else mod)
    out.discard(me)
    return out


def _exists(module: str) -> bool:
    p = SRC.parent.joinpath(*module.split("."))
    compiled = any(p.parent.glob(p.name + ".*.so")) or any(p.parent.glob(p.name + ".*.pyd"))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists() or compiled


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS[top.removesuffix(".py")]


GRAPH = {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}


def test_every_part_has_a_layer():
    tops = {m.split(".")[1] for m in GRAPH if "." in m}
    assert tops <= set(LAYERS), f"add these to LAYERS: {tops - set(LAYERS)}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_runs_up_a_layer(module):
    up = sorted(m for m in GRAPH[module] if _layer(m) > _layer(module))
    assert not up, f"{module} (layer {_layer(module)}) imports higher layers: {up}"


def _cycles() -> list[list[str]]:
    # a package's __init__ re-exporting its own modules is not a cycle of logic: leave out
    # edges from a package to modules inside it
    edges = {m: {d for d in deps if d in GRAPH and not d.startswith(m + ".")}
             for m, deps in GRAPH.items()}
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return found


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_the_check_can_fail():
    assert _layer("chainrule.cli.train") > _layer("chainrule.models.base")
    GRAPH["chainrule.fake_a"], GRAPH["chainrule.fake_b"] = {"chainrule.fake_b"}, {"chainrule.fake_a"}
    LAYERS["fake_a"] = LAYERS["fake_b"] = 1
    try:
        assert _cycles()
    finally:
        del GRAPH["chainrule.fake_a"], GRAPH["chainrule.fake_b"]
        del LAYERS["fake_a"], LAYERS["fake_b"]
