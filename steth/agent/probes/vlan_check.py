"""vlan-check on one node: tagged frames out, frames from the peers in, per (VLAN, peer) what arrived.

The scapy work runs in a child process (steth.agent.packets) bounded by the request's deadline.
`subinterface` mode is in steth.agent.vlan_subif (mutating, needs 802.1Q in the kernel), which imports
nothing from here: what both modes share lives in the result model (VlanCheckResult.missing).
"""

from __future__ import annotations

import time

from steth.agent import packets, vlan_subif
from steth.agent.errors import CouldNotRun, DeadlineReached, NoSuchDevice
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.vlan_check import VlanCheckParams, VlanCheckResult, VlanPeerRow


def peer_rows(params: VlanCheckParams, node: str, seen: list[dict]) -> list[VlanPeerRow]:
    """One row per (VLAN, expected peer): frames that arrived with the VLAN's own tag; else what did."""
    intact: dict[tuple[int, str], int] = {}
    altered: dict[tuple[int, str], list[str]] = {}
    for s in seen:
        key = (s["meant_vlan"], s["sender"])
        if s["vlan"] == s["meant_vlan"]:
            intact[key] = intact.get(key, 0) + s["frames"]
        else:
            altered.setdefault(key, []).append("untagged" if s["vlan"] == 0 else f"tagged {s['vlan']}")
    rows = []
    for vlan in params.vlans:
        for peer in params.nodes:
            if peer == node:
                continue
            got = intact.get((vlan, peer), 0)
            detail = f"arrived {', '.join(altered[(vlan, peer)])}" if (vlan, peer) in altered else ""
            rows.append(
                VlanPeerRow(vlan=vlan, peer=peer, frames=got, expected=params.frames, passed=got > 0, detail=detail)
            )
    return rows


async def run(params: VlanCheckParams, ctx: ProbeContext) -> Outcome:
    if params.mode == "subinterface":
        return await vlan_subif.run(params, ctx)
    mac = packets.interface_mac(params.interface)
    if mac is None:
        raise NoSuchDevice(f"no interface {params.interface} on this node")
    if not params.token:
        raise CouldNotRun("no token: vlan-check is run by the controller (steth vlan-check)")
    send_at = time.time() + params.send_delay_s
    job = {
        "interface": params.interface,
        "vlans": params.vlans,
        "token": params.token,
        "node": ctx.node,
        "frames": params.frames,
        "send_at": send_at,
        "listen_until": send_at + params.listen_s,
        # frames that arrived in the window but still wait in the socket are read until then
        "drain_until": min(send_at + params.listen_s + 1.0, time.time() + ctx.remaining(0.4)),
    }
    out = await packets.probe_job(job, ctx, module="steth.agent.vlan_sniff")  # no scapy: listening in ms
    if out is None:
        raise DeadlineReached(packets.KILLED_AT_DEADLINE)
    rows = peer_rows(params, ctx.node, out["seen"])
    result = VlanCheckResult(
        interface=params.interface,
        mode=params.mode,
        mac=out["mac"],
        vlans=params.vlans,
        listening_since=out["listening_since"],
        sent_at=out["sent_at"],
        socket_drops=out.get("socket_drops"),
        rows=rows,
        seen=out["seen"],
    )
    message = result.missing()
    if out.get("socket_drops"):
        message = (message + "; " if message else "") + f"the capture socket dropped {out['socket_drops']} frame(s)"
    if out["listening_since"] > send_at:
        message = (
            message + "; " if message else ""
        ) + f"listener started {out['listening_since'] - send_at:.2f} s after the send time"
    return Outcome(Status.FAILED if any(not r.passed for r in rows) else Status.OK, message, result)
