"""send: one crafted packet from a scapy child process; what came back within the window."""

from __future__ import annotations

import secrets

from steth.agent import packets
from steth.agent.errors import DeadlineReached, NoSuchDevice, NotAllowed
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.send import DEFAULT_PORTS, SendParams, SendResult


async def run(params: SendParams, ctx: ProbeContext) -> Outcome:
    own_mac = packets.interface_mac(params.interface)
    if own_mac is None:
        raise NoSuchDevice(f"no interface {params.interface} on this node")
    spoofed = params.src_mac is not None and params.src_mac != own_mac
    if spoofed and not ctx.allow_mutating:
        raise NotAllowed(
            f"refused: source MAC {params.src_mac} is not {params.interface}'s ({own_mac}); "
            "spoofing needs the mutating policy, which is off on this agent"
        )
    port = params.port or DEFAULT_PORTS.get(params.packet)
    job = {
        "job": "send",
        "interface": params.interface,
        "packet": params.packet,
        "vlan": params.vlan,
        "src_mac": params.src_mac,
        "dst": params.dst,
        "port": port,
        "listen_s": params.listen_s,
        "token": secrets.token_hex(6),
    }
    out = await packets.probe_job(job, ctx)
    if out is None:
        raise DeadlineReached(packets.KILLED_AT_DEADLINE)
    result = SendResult(
        interface=params.interface,
        packet=params.packet,
        vlan=params.vlan,
        src_mac=out["src_mac"],
        spoofed=spoofed,
        src_ip=out["src_ip"],
        dst=params.dst,
        dst_mac=out["dst_mac"],
        port=port,
        sent_summary=out["sent_summary"],
        sent_bytes=out["sent_bytes"],
        listen_s=params.listen_s,
        replies=out["replies"],
        notes=out["notes"],
    )
    if not result.replies:
        note = f" ({out['notes'][0]})" if out["notes"] else ""
        return Outcome(Status.FAILED, f"no reply to {params.packet} within {params.listen_s:g} s{note}", result)
    kinds = sorted({r.kind for r in result.replies})
    return Outcome(
        Status.OK,
        f"{len(result.replies)} repl{'y' if len(result.replies) == 1 else 'ies'}: {', '.join(kinds)}",
        result,
    )
