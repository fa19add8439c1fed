"""ovn-chassis: this node as an OVN chassis; findings for a missing chassis setup, ovn-controller down or
disconnected, nb_cfg behind the SB, tunnels missing, broken or with BFD down."""

from __future__ import annotations

import asyncio
import time

from steth.agent import ovn, ovsdb
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.ovn_chassis import OvnChassisParams, OvnChassisResult, OvnTunnel


async def run(params: OvnChassisParams, ctx: ProbeContext) -> Outcome:
    db = params.db or ovsdb.default_db()
    local = await ovn.read_local(db, timeout=ctx.remaining(0.5))
    settings = ovn.chassis_settings(local["ovs"])
    result = OvnChassisResult(db=db, **settings)
    if not settings["system_id"] or not settings["ovn_remote"]:
        result.findings = ["not an OVN chassis: no external_ids:system-id or ovn-remote in Open_vSwitch"]
        return Outcome(Status.FAILED, result.findings[0], result)
    findings: list[str] = []
    rundir = ovn.ovn_rundir()
    result.controller_pid = ovn.controller_pid(rundir)
    if result.controller_pid is None:
        findings.append(f"ovn-controller is not running (no live process in {rundir}/ovn-controller.pid)")
    else:
        result.controller_status = await ovn.connection_status(
            rundir, result.controller_pid, timeout=min(6.0, ctx.remaining(0.5))
        )
        if result.controller_status != "connected":
            findings.append(
                f"ovn-controller is not connected to the SB {settings['ovn_remote']}: "
                + (result.controller_status or "no answer on its control socket")
            )
    result.nb_cfg, result.nb_cfg_ts = ovn.bridge_nb_cfg(local, result.bridge)
    result.tunnels = [OvnTunnel(**t) for t in ovn.tunnels(local)]
    config = ctx.extra.get("ovn")
    remote = getattr(config, "sb_connection", None)
    if remote:
        sb, result.sb_error = await ovn.read_sb(remote, timeout=min(6.0, ctx.remaining(0.5)))
        if result.sb_error:
            findings.append(result.sb_error)
        if sb:
            result.sb_nb_cfg = sb["nb_cfg"]
            result.sb_chassis = [c["name"] for c in sb["chassis"]]
            findings += await _sb_findings(params, ctx, db, result, sb)
    findings += [f"tunnel {t.port} to {t.chassis or t.remote_ip}: {f}" for t in result.tunnels for f in t.findings]
    result.findings = findings
    if findings:
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return Outcome(Status.FAILED, findings[0] + more, result)
    return Outcome(Status.OK, "", result)


async def _sb_findings(params: OvnChassisParams, ctx: ProbeContext, db: str, result, sb: dict) -> list[str]:
    found = []
    if result.system_id not in result.sb_chassis:
        found.append(f"no Chassis {result.system_id} in the SB: ovn-controller has not registered this node")
    remote_ips = {t.remote_ip for t in result.tunnels}
    for other in sb["chassis"]:
        if other["name"] != result.system_id and other["encap_ips"] and not remote_ips & set(other["encap_ips"]):
            found.append(f"no tunnel to chassis {other['name']} ({', '.join(other['encap_ips'])})")
    if result.sb_nb_cfg is not None and (result.nb_cfg or 0) < result.sb_nb_cfg:
        # A live ovn-controller catches up within milliseconds of a bump: wait out the grace before saying so
        # (not when none is running: nothing can catch up).
        grace = params.nb_cfg_grace_s if result.controller_pid else 0.0
        until = time.time() + min(grace, max(0.0, ctx.remaining(2.0)))
        while (result.nb_cfg or 0) < result.sb_nb_cfg and time.time() < until:
            await asyncio.sleep(0.5)
            local = await ovn.read_local(db, timeout=min(6.0, ctx.remaining(0.5)))
            result.nb_cfg, result.nb_cfg_ts = ovn.bridge_nb_cfg(local, result.bridge)
        if (result.nb_cfg or 0) < result.sb_nb_cfg:
            found.append(
                f"nb_cfg behind: this chassis acknowledged {result.nb_cfg if result.nb_cfg is not None else 'none'}, "
                f"the SB is at {result.sb_nb_cfg}" + (f" (waited {grace:g} s)" if grace else "")
            )
    return found
