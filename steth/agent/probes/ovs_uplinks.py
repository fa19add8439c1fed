"""ovs-uplinks: from OVSDB through steth.agent.ovsdb; a bond's members each, a DPDK uplink said to be none."""

from __future__ import annotations

from steth.agent import ovsdb
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.uplinks import uplink_interfaces
from steth.schemas.envelope import Status
from steth.schemas.probes.ovs_uplinks import OvsUplinksParams, OvsUplinksResult, Uplink


async def run(params: OvsUplinksParams, ctx: ProbeContext) -> Outcome:
    bridges, ports, _ = await ovsdb.read(params.db or ovsdb.default_db(), timeout=ctx.remaining(0.1))
    names = {b["name"] for b in bridges}
    res = OvsUplinksResult(missing_bridges=[b for b in params.bridges if b not in names])
    res.uplinks = [Uplink(**row) for row in uplink_interfaces(ports, params.bridges)]
    bare = [b for b in params.bridges if b in names and not any(u.bridge == b for u in res.uplinks)]
    if res.missing_bridges or bare:
        parts = [f"no bridge {b}" for b in res.missing_bridges] + [f"{b} has no uplink" for b in bare]
        return Outcome(Status.FAILED, "; ".join(parts), res)
    return Outcome(Status.OK, "", res)
