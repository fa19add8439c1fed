"""ovn-binding: the OVS interfaces carrying given iface-ids on this node, and whether ovn-controller
installed them."""

from __future__ import annotations

from steth.agent import ovn, ovsdb
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.ovn_binding import OvnBindingParams, OvnBindingResult


async def run(params: OvnBindingParams, ctx: ProbeContext) -> Outcome:
    db = params.db or ovsdb.default_db()
    local = await ovn.read_local(db, timeout=ctx.remaining(0.1))
    rows = ovn.bindings(local, list(params.iface_ids))
    findings = [f"{r['iface_id']}: {f}" for r in rows for f in r["findings"]]
    result = OvnBindingResult(db=db, bindings=rows, findings=findings)
    if findings:
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return Outcome(Status.FAILED, findings[0] + more, result)
    return Outcome(Status.OK, "", result)
