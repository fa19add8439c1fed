"""Probe implementations: `steth.agent.probes.<name>` defines `async def run(params, ctx) -> Outcome`."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from steth.schemas.envelope import Status


class ProbeAborted(Exception):
    """The probe could not run here: a tool, an interface or a permission is missing."""


@dataclass
class Outcome:
    status: Status
    message: str = ""
    result: dict[str, Any] | None = None


@dataclass
class ProbeContext:
    node: str
    roles: list[str]
    version: str
    data_plane: str
    allow_mutating: bool
    deadline: float  # absolute; probes bound their tools by it
    extra: dict[str, Any] = field(default_factory=dict)

    def remaining(self, margin: float = 0.0) -> float:
        import time

        return max(0.05, self.deadline - time.time() - margin)


Runner = Callable[[Any, ProbeContext], Awaitable[Outcome]]


def load(name: str) -> Runner:
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return module.run
