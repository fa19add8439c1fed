"""Probe implementations: `steth.agent.probes.<name>` defines `async def run(params, ctx) -> Outcome`.

A probe returns an Outcome for what it found (ok, or failed: a finding) with its result model, and raises
a steth.agent.errors.ProbeError for everything else (could not run, bad args, the deadline); the runtime
decides the node's status from either, in one place (steth.agent.runtime.settle).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from steth.schemas.envelope import Status
from steth.schemas.types import Result

FINDINGS = (Status.OK, Status.FAILED)


@dataclass
class Outcome:
    """What a probe found: `ok`, or `failed` (a finding), and its result model."""

    status: Status
    message: str = ""
    result: Result | None = None

    def __post_init__(self) -> None:
        if self.status not in FINDINGS:
            raise TypeError(f"a probe returns ok or failed, not {self.status.value}: raise a steth.agent.errors class")
        if self.result is not None and not isinstance(self.result, Result):
            raise TypeError(f"a probe returns its result model, not {type(self.result).__name__}")


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
