"""The shape of the package, read from the source with `ast`: which layer imports which, and no cycles.

Layers (docs/design.md): `steth.schemas` (models only) at the bottom; `steth.agent` and `steth.controller`
beside each other, never importing one another; `steth.lab` (the local fleet) may use the controller's
neighbours below it but never the controller. Modules shared by both sides (`steth.codec`, `steth.presence`,
`steth.natsconn`, ...) sit at the top level of the package, and the lab's shell helpers in `steth.lab.shell`.
Every `import` counts, also those inside functions (lazy imports still make an arrow).
"""

from __future__ import annotations

import ast
from pathlib import Path

import steth

PACKAGE = Path(steth.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The steth module an imported name lives in (a name imported from a module is that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..y import z
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from a import b`: an arrow to b where b is a module, else to a
            names = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name == "steth" or name.startswith("steth."):
                target = _resolve(name)
                if target and target != module:
                    found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _arrows(source: str, target: str) -> list[str]:
    return sorted(
        f"{m} -> {t}" for m, targets in GRAPH.items() if _layer(m) == source for t in targets if _layer(t) == target
    )


def test_the_graph_is_read():
    """The reader sees known arrows (so an empty result below means something)."""
    assert "steth.schemas.envelope" in GRAPH["steth.agent.runtime"]
    assert "steth.controller.gather" in GRAPH["steth.controller.session"]
    assert "steth.presence" in GRAPH["steth.controller.session"]
    assert "steth.lab.shell" in GRAPH["steth.lab.ovs"]
    assert len(GRAPH) > 100


def test_schemas_import_nothing_above_them():
    for layer in ("agent", "controller", "lab"):
        assert _arrows("schemas", layer) == []


def test_controller_never_imports_agent_code():
    assert _arrows("controller", "agent") == []


def test_agent_never_imports_controller_code():
    assert _arrows("agent", "controller") == []


def test_lab_never_imports_the_controller():
    assert _arrows("lab", "controller") == []


def test_shared_top_level_modules_import_no_side():
    """steth.codec, steth.presence, ...: what both sides import may import neither side."""
    top = [m for m in GRAPH if _layer(m) in ("", *(p.stem for p in PACKAGE.glob("*.py")))]
    assert "steth.presence" in top
    entry_points = {"steth.__main__"}  # `python -m steth` is the CLI: it imports the controller by design
    bad = sorted(
        f"{m} -> {t}"
        for m in top
        if m not in entry_points
        for t in GRAPH[m]
        if _layer(t) in ("agent", "controller", "lab")
    )
    assert bad == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles():
    assert _cycles() == []


def test_the_cycle_finder_finds_one():
    GRAPH["steth.lab.shell"].add("steth.lab.fleet")  # the arrow steth.lab.fleet -> steth.lab.shell exists
    try:
        assert any({"steth.lab.fleet", "steth.lab.shell"} <= set(c) for c in _cycles())
    finally:
        GRAPH["steth.lab.shell"].discard("steth.lab.fleet")
