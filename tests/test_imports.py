"""The import graph of hfus_xai_bench: no cycle (TYPE_CHECKING and function-level imports included), no
private name imported from another module, the scoring core a leaf, the library free of argparse and
printing."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "hfus_xai_bench"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> list[tuple[str, str | None, ast.AST]]:
    """(target module, imported name or None, node) for every import of our package in ``module``."""
    path = MODULES[module]
    base = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [
                (_owner(a.name), None, node) for a in node.names if a.name.split(".")[0] == "hfus_xai_bench"
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                b = base
                for _ in range(node.level - 1):
                    b = b.rpartition(".")[0]
                target = f"{b}.{node.module}" if node.module else b
            elif (node.module or "").split(".")[0] == "hfus_xai_bench":
                target = node.module
            else:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub, None, node) if sub in MODULES else (_owner(target), a.name, node))
    return out


GRAPH = {m: {t for t, _, _ in _imports(m)} - {m} for m in MODULES}


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_private_names_across_modules() -> None:
    bad = []
    for module in MODULES:
        aliases = {}
        for target, name, node in _imports(module):
            if name and name.startswith("_") and not name.startswith("__") and target != module:
                bad.append(f"{module}: from {target} import {name}")
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    if f"{target}.{a.name}" in MODULES or (name is None and target in MODULES):
                        aliases[a.asname or a.name] = target
        for node in ast.walk(ast.parse(MODULES[module].read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{module}: {node.value.id}.{node.attr}")
    assert bad == []


def test_scoring_core_is_a_leaf() -> None:
    """scoring and metrics/ import only metrics/, constants, errors, the seeding rule, the JSON helpers and
    the out-of-memory chunking (leaves)."""
    allowed = {
        "hfus_xai_bench.errors",
        "hfus_xai_bench.constants",
        "hfus_xai_bench.seeding",
        "hfus_xai_bench.jsonio",
        "hfus_xai_bench.chunking",
    }
    for leaf in allowed:
        assert GRAPH.get(leaf, set()) <= allowed, leaf
    for target in GRAPH["hfus_xai_bench.scoring"]:
        assert target in allowed or target.startswith("hfus_xai_bench.metrics"), target
    for module in MODULES:
        if module.startswith("hfus_xai_bench.metrics"):
            assert all(t.startswith("hfus_xai_bench.metrics") or t in allowed for t in GRAPH[module]), module


def test_only_the_cli_parses_arguments() -> None:
    for module, path in MODULES.items():
        if module.startswith("hfus_xai_bench.cli"):
            continue
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "argparse" not in names, module
        prints = [
            n.lineno
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
        ]
        assert prints == [], f"{module} prints at lines {prints}"
