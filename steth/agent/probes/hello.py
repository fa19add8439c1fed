from __future__ import annotations

from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.hello import HelloParams, HelloResult


async def run(params: HelloParams, ctx: ProbeContext) -> Outcome:
    result = HelloResult(node=ctx.node, version=ctx.version, roles=ctx.roles, data_plane=ctx.data_plane)
    return Outcome(Status.OK, "", result)
