"""netns: `ip -j netns list`, then `ip -n NS -j addr show` for each (a few at once)."""

from __future__ import annotations

import ipaddress
from typing import Any

from steth.agent.probes import Outcome, ProbeContext
from steth.agent.tools.iproute import SAFE_NETNS, IpError, bounded_gather, ip_json, list_netns
from steth.schemas.envelope import Status
from steth.schemas.probes.netns import NetnsEntry, NetnsInterface, NetnsParams, NetnsResult, classify


def _is_noise(cidr: str) -> bool:
    """Loopback and IPv6 link-local addresses are everywhere: left out of the summary list. (IPv4
    link-local stays: 169.254.169.254 in a qrouter- or ovnmeta- namespace is the metadata service.)"""
    ip = ipaddress.ip_interface(cidr).ip
    return ip.is_loopback or (ip.version == 6 and ip.is_link_local)


def parse_netns_addrs(data: list[dict[str, Any]]) -> list[NetnsInterface]:
    """`ip -j addr show` inside one namespace to its interfaces and addresses."""
    out = []
    for link in data:
        addrs = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info") or [] if "local" in a]
        state = str(link.get("operstate", "unknown")).lower()
        out.append(NetnsInterface(name=link.get("ifname", "?"), oper_state=state, addresses=addrs))
    return out


def entry(name: str, nsid: int | None, interfaces: list[NetnsInterface] | None, error: str = "") -> NetnsEntry:
    kind, neutron_id = classify(name)
    row = NetnsEntry(name=name, kind=kind, neutron_id=neutron_id, nsid=nsid, interfaces=interfaces or [], error=error)
    for iface in row.interfaces:
        if iface.name != "lo":
            row.interface_names.append(iface.name)
        row.addresses += [f"{iface.name}:{a}" for a in iface.addresses if not _is_noise(a)]
    return row


async def inspect(name: str, nsid: int | None, ctx: ProbeContext) -> NetnsEntry:
    if not SAFE_NETNS.match(name):  # a name steth will not pass to a tool (it could read as an option)
        return entry(name, nsid, None, "name not inspected: it does not look like a namespace name")
    try:
        data = await ip_json(["addr", "show"], netns=name, timeout=min(5.0, ctx.remaining(0.1)))
    except IpError as exc:  # deleted since the list, or not readable
        return entry(name, nsid, None, str(exc))
    return entry(name, nsid, parse_netns_addrs(data))


def select(names: list[tuple[str, int | None]], params: NetnsParams) -> list[tuple[str, int | None]]:
    chosen = [(n, i) for n, i in sorted(names) if not params.prefix or n.startswith(params.prefix)]
    return [(n, i) for n, i in chosen if not params.kind or classify(n)[0] == params.kind]


async def run(params: NetnsParams, ctx: ProbeContext) -> Outcome:
    names = select(await list_netns(timeout=ctx.remaining(0.1)), params)
    rows = await bounded_gather([inspect(n, i, ctx) for n, i in names[: params.max_namespaces]])
    result = NetnsResult(namespaces=rows, total=len(names))
    notes = []
    if len(names) > params.max_namespaces:
        notes.append(f"showing {params.max_namespaces} of {len(names)} namespaces")
    broken = [r.name for r in rows if r.error]
    if broken:
        notes.append(f"{len(broken)} namespace(s) not readable: {', '.join(broken[:3])}")
    return Outcome(Status.OK, "; ".join(notes), result)
