"""hello: the agent answers with who it is. Costs nothing; used to check reachability and in benchmarks."""

from __future__ import annotations

from steth.schemas.probe import Column, Command, ProbeSpec
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
    summary="Every selected agent answers with its name, version, roles and data-plane address: "
    "who is reachable over NATS right now.",
    params=HelloParams,
    result=HelloResult,
    max_timeout_s=10,
    inline=True,
    columns=(Column("VERSION", "version"), Column("ROLES", "roles"), Column("DATA PLANE", "data_plane")),
    command=Command(
        help="Unlike `steth agents` (which reads heartbeats), this sends a request and waits for each reply.",
        examples=("steth hello", "steth hello --role compute --timeout 2"),
    ),
)
