"""interface: one `ip -j -s -d addr show` gives links, addresses, link details and 64-bit counters."""

from __future__ import annotations

from typing import Any

from steth.agent.errors import NoSuchDevice
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.tools.iproute import ip_json
from steth.schemas.envelope import Status
from steth.schemas.probes.interface import InterfaceInfo, InterfaceParams, InterfaceResult


def _counters(stats: dict[str, Any]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for direction in ("rx", "tx"):
        side = stats.get(direction) or {}
        for name in ("packets", "bytes", "errors", "dropped"):
            out[f"{direction}_{name}"] = side.get(name)
    return out


def parse_link(link: dict[str, Any]) -> InterfaceInfo:
    """One entry of `ip -j -s -d addr show` (iproute2 >= 4.x JSON) as an InterfaceInfo."""
    flags = link.get("flags") or []
    info = link.get("linkinfo") or {}
    data = info.get("info_data") or {}
    addrs = [a for a in link.get("addr_info") or [] if "local" in a]
    row = InterfaceInfo(
        name=link.get("ifname", "?"),
        index=link.get("ifindex"),
        kind=info.get("info_kind", ""),
        link_type=link.get("link_type", ""),
        admin_state="up" if "UP" in flags else "down",
        oper_state=str(link.get("operstate", "unknown")).lower(),
        carrier="LOWER_UP" in flags,
        mtu_bytes=link.get("mtu"),
        mac=link.get("address", "") if link.get("link_type") != "none" else "",
        ipv4=[f"{a['local']}/{a['prefixlen']}" for a in addrs if a.get("family") == "inet"],
        ipv6=[f"{a['local']}/{a['prefixlen']}" for a in addrs if a.get("family") == "inet6"],
        master=link.get("master", ""),
        parent=link.get("link", "") or "",
        **_counters(link.get("stats64") or link.get("stats") or {}),
    )
    if row.kind == "vlan":
        row.vlan_id = data.get("id")
        row.vlan_protocol = data.get("protocol", "")
    return row


def parse_links(data: list[dict[str, Any]]) -> list[InterfaceInfo]:
    return [parse_link(link) for link in data if isinstance(link, dict)]


async def run(params: InterfaceParams, ctx: ProbeContext) -> Outcome:
    args = ["-s", "-d", "addr", "show"] + (["dev", params.interface] if params.interface else [])
    data = await ip_json(args, netns=params.netns, timeout=ctx.remaining(0.1))  # IpError: no such device, netns
    links = parse_links(data)
    result = InterfaceResult(netns=params.netns or "", interfaces=links)
    if params.interface:
        if not links:
            raise NoSuchDevice(f"no interface {params.interface}")
        link = links[0]
        if link.admin_state == "up" and not link.carrier:
            return Outcome(Status.FAILED, f"{link.name} is admin up but has no carrier ({link.oper_state})", result)
    return Outcome(Status.OK, "", result)
