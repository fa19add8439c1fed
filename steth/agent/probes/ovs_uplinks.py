"""ovs-uplinks: from OVSDB through steth.agent.ovsdb."""

from __future__ import annotations

from steth.agent import ovsdb
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.ovs_uplinks import OvsUplinksParams, OvsUplinksResult, Uplink


async def run(params: OvsUplinksParams, ctx: ProbeContext) -> Outcome:
    bridges, ports, _ = await ovsdb.read(params.db or ovsdb.default_db(), timeout=ctx.remaining(0.1))
    names = {b["name"] for b in bridges}
    res = OvsUplinksResult(missing_bridges=[b for b in params.bridges if b not in names])
    res.uplinks = [
        Uplink(
            bridge=p["bridge"],
            interface=p["name"],
            type=p.get("type") or "",
            ofport=p.get("ofport"),
            link_state=p.get("link_state"),
            tag=p.get("tag"),
            trunks=p.get("trunks") or [],
        )
        for p in ports
        if p["bridge"] in params.bridges and p.get("type") not in ("patch", "internal")
    ]
    bare = [b for b in params.bridges if b in names and not any(u.bridge == b for u in res.uplinks)]
    if res.missing_bridges or bare:
        parts = [f"no bridge {b}" for b in res.missing_bridges] + [f"{b} has no uplink" for b in bare]
        return Outcome(Status.FAILED, "; ".join(parts), res)
    return Outcome(Status.OK, "", res)
