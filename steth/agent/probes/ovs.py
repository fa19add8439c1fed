"""ovs: bridges and ports from OVSDB, with findings (dead port, ofport -1, broken patch, absent port)."""

from __future__ import annotations

from steth.agent import ovsdb
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.ovs import OvsParams, OvsResult


async def run(params: OvsParams, ctx: ProbeContext) -> Outcome:
    bridges, ports, version = await ovsdb.read(params.db or ovsdb.default_db(), timeout=ctx.remaining(0.1))
    if params.bridge:
        bridges_shown = [b for b in bridges if b["name"] == params.bridge]
        ports_shown = [p for p in ports if p["bridge"] == params.bridge]
    else:
        bridges_shown, ports_shown = bridges, ports
    findings: list[str] = []
    if params.view == "port":
        ports_shown = [p for p in ports_shown if p["name"] == params.ports[0]]
        if not ports_shown:  # a port lives on one node: its absence elsewhere is no finding
            result = OvsResult(db=params.db or ovsdb.default_db(), view=params.view, ovs_version=version)
            return Outcome(Status.OK, f"no port {params.ports[0]} here", result)
    elif params.view == "check" and params.ports:
        ports_shown = [p for p in ports_shown if p["name"] in params.ports]
    if params.view != "bridges":
        findings += [f"{p['name']}: {f}" for p in ports_shown for f in p["findings"]]
    if params.view == "check" or params.bridge:
        findings = (
            ovsdb.requested_findings(bridges, ports, params.bridge, params.ports if params.view == "check" else [])
            + findings
        )
    result = OvsResult(
        db=params.db or ovsdb.default_db(),
        view=params.view,
        ovs_version=version,
        bridges=bridges_shown,
        ports=ports_shown if params.view != "bridges" else [],
        findings=findings,
    )
    if findings:
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return Outcome(Status.FAILED, findings[0] + more, result)
    return Outcome(Status.OK, "", result)
