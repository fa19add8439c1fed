"""hello: the agent answers with who it is. Costs nothing; used to check reachability and in benchmarks."""

from __future__ import annotations

from steth.schemas.probe import Column, ProbeSpec
from steth.schemas.types import Params, Result


class HelloParams(Params):
    pass


class HelloResult(Result):
    node: str
    version: str
    roles: list[str]
    data_plane: str = ""


SPEC = ProbeSpec(
    name="hello",
    summary="Answer with the agent's name, version, roles and data-plane address (no-op).",
    params=HelloParams,
    result=HelloResult,
    max_timeout_s=10,
    inline=True,
    columns=(Column("VERSION", "version"), Column("ROLES", "roles"), Column("DATA PLANE", "data_plane")),
)
