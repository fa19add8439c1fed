"""ovn-port: logical ports in the NB and SB this node reaches (the agent's [ovn] table; never the request's)."""

from __future__ import annotations

from steth.agent import ovn
from steth.agent.errors import CouldNotRun
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.ovn_port import OvnPortParams, OvnPortResult


async def run(params: OvnPortParams, ctx: ProbeContext) -> Outcome:
    config = ctx.extra.get("ovn")
    nb_remote, sb_remote = getattr(config, "nb_connection", None), getattr(config, "sb_connection", None)
    if not nb_remote and not sb_remote:
        raise CouldNotRun("this agent has no [ovn] nb_connection or sb_connection in its config")
    names = list(dict.fromkeys(params.ports))
    nb: dict = {}
    sb: dict = {}
    if nb_remote:
        out = await ovn.ovn_tool(ovn.nb_ports_argv(nb_remote, names), nb_remote, timeout=min(6.0, ctx.remaining(0.5)))
        nb = ovn.parse_nb_ports(out, names)
    if sb_remote:
        out = await ovn.ovn_tool(ovn.sb_ports_argv(sb_remote, names), sb_remote, timeout=min(6.0, ctx.remaining(0.5)))
        sb = ovn.parse_sb_ports(out, names)
    rows = []
    for name in names:
        findings = ovn.port_findings(name, nb.get(name), sb.get(name), bool(nb_remote), bool(sb_remote))
        row = {"name": name, "nb_found": name in nb, "sb_found": name in sb, **nb.get(name, {}), **sb.get(name, {})}
        row.pop("sb_requested_chassis", None)
        rows.append({**row, "findings": findings})
    findings = [f"{r['name']}: {f}" for r in rows for f in r["findings"]]
    result = OvnPortResult(nb_connection=nb_remote, sb_connection=sb_remote, ports=rows, findings=findings)
    if findings:
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return Outcome(Status.FAILED, findings[0] + more, result)
    return Outcome(Status.OK, "", result)
