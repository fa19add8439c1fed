"""dhcp-watch: DHCP for one MAC on several interfaces, in a child process (`python -m steth.agent.dhcp_sniff`).

The child is bounded by the request's deadline like every tool (procs.run kills its process group). It uses the
standard library only, so it listens within tens of milliseconds, and it ends as soon as one exchange (one xid)
has been seen at every listener; the window bounds a broken path. Frames are matched in Python (no BPF): on a
veth the kernel moves the 802.1Q tag into metadata, where BPF `udp port 67` misses tagged frames sent out and
`vlan` misses them all.
"""

from __future__ import annotations

import random

from steth.agent import ovsdb, packets
from steth.agent.errors import CouldNotRun
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.uplinks import uplink_interfaces
from steth.schemas.envelope import Status
from steth.schemas.probes.dhcp_watch import DhcpWatchParams, DhcpWatchResult


async def run(params: DhcpWatchParams, ctx: ProbeContext) -> Outcome:
    listen = [(i, "") for i in params.interfaces]
    unusable: list[tuple[str, str, str]] = []  # (interface, role, why): said in the result, not listened on
    in_port = None
    ports: list[dict] = []
    if params.uplink_bridges or params.inject == "ovs":
        _, ports, _ = await ovsdb.read(ovsdb.default_db(), timeout=min(5.0, ctx.remaining(params.listen_s)))
        for up in uplink_interfaces(ports, params.uplink_bridges):  # a bond's members; DPDK: no kernel device
            if up["interface"] in params.interfaces:
                continue
            if up["not_applicable"]:
                unusable.append((up["interface"], "uplink", up["not_applicable"]))
            else:
                listen.append((up["interface"], "uplink"))
    note = ""
    inject = params.inject
    if inject != "none" and not ctx.allow_mutating:
        inject, note = "none", "listen only: injecting a DISCOVER with another MAC needs the mutating policy"
    if inject == "ovs":
        row = next((p for p in ports if p["name"] == params.inject_port and p["bridge"] == params.bridge), None)
        if row is None or not isinstance(row.get("ofport"), int) or row["ofport"] < 1:
            inject, note = "none", f"cannot inject: {params.inject_port} is not a working port of {params.bridge}"
        else:
            in_port = row["ofport"]
    xid = params.xid or random.randint(1, 0xFFFFFFFF)
    # Follow only our own exchange when someone injects it (this node, or a peer given the same xid); a node
    # that was asked to inject but may not follows whatever exchange the VM makes itself.
    match_xid = xid if inject != "none" else (params.xid if params.inject == "none" else 0)
    job = {
        "mac": params.mac,
        "listen": listen,
        "not_applicable": unusable,
        "netns": params.netns or "",
        "listen_s": params.listen_s,
        "finish_early": params.finish_early,
        "offer_only": params.offer_only if inject != "none" else [],
        "inject": inject,
        "inject_port": params.inject_port,
        "bridge": params.bridge,
        "in_port": in_port,
        "inject_delay_s": params.inject_delay_s,
        "inject_count": params.inject_count,
        "xid": xid,
        "match_xid": match_xid,
    }
    out = await packets.probe_job(job, ctx, module="steth.agent.dhcp_sniff")
    if out is None:
        raise CouldNotRun("the listening child did not finish before the deadline")
    res = DhcpWatchResult(
        mac=params.mac,
        listen_s=params.listen_s,
        injected=out.get("injected", 0),
        xid=xid if out.get("injected") else (match_xid or None),
        inject_note=out.get("inject_note") or note,
        hops=out.get("hops", []),
        offers=out.get("offers", []),
        listening_since=out.get("listening_since"),
        last_injected_at=out.get("last_injected_at"),
        complete=bool(out.get("complete")),
        finished_at=out.get("finished_at"),
    )
    seen_o = sum(h.offer for h in res.hops)
    message = f"DISCOVER seen on {sum(1 for h in res.hops if h.discover)}, OFFER on {sum(1 for h in res.hops if h.offer)} of {len(res.hops)} interfaces"
    if res.complete:
        message += "; the exchange was seen at every listener"
    if res.inject_note:
        message += f"; {res.inject_note}"
    if res.injected and not seen_o:
        return Outcome(Status.FAILED, f"no OFFER for {params.mac}: " + message, res)
    return Outcome(Status.OK, message, res)
