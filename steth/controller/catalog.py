"""The probes' names, summaries and generated commands, read without importing pydantic or any probe.

`steth --help` lists every command; importing the 20-odd declarations (and pydantic) for that would double
its start-up time. The literals of each `SPEC = ProbeSpec(name=..., summary=..., command=...)` are read from
the declarations' source instead; one whose name or summary is not a literal is imported. The contract tests
check this reading against the registry.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROBES_DIR = Path(__file__).resolve().parent.parent / "schemas" / "probes"


@dataclass(frozen=True)
class Declared:
    name: str
    summary: str
    module: str  # steth.schemas.probes.<module>
    generated: bool  # declares a command (spec.command)


def _read(path: Path) -> Declared | None:
    module = path.stem
    for node in ast.parse(path.read_text()).body:
        if not (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["SPEC"]):
            continue
        keywords = {k.arg: k.value for k in getattr(node.value, "keywords", [])}
        try:
            name, summary = ast.literal_eval(keywords["name"]), ast.literal_eval(keywords["summary"])
        except (KeyError, ValueError):
            break
        command = keywords.get("command")
        generated = command is not None and not (isinstance(command, ast.Constant) and command.value is None)
        return Declared(name, summary, module, generated)
    return _imported(module)


def _imported(module: str) -> Declared | None:
    import importlib

    spec = getattr(importlib.import_module(f"steth.schemas.probes.{module}"), "SPEC", None)
    if spec is None:
        return None
    return Declared(spec.name, spec.summary, module, spec.command is not None)


@cache
def declared() -> dict[str, Declared]:
    found = (_read(p) for p in sorted(PROBES_DIR.glob("*.py")) if not p.name.startswith("_"))
    return {d.name: d for d in found if d is not None}
