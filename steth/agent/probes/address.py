"""address: look the given addresses up in `ip -j addr show` (the node's own namespace, one, or all)."""

from __future__ import annotations

import ipaddress
from typing import Any

from steth.agent.probes import Outcome, ProbeContext
from steth.agent.tools.iproute import SAFE_NETNS, IpError, bounded_gather, ip_json, list_netns
from steth.schemas.envelope import Status
from steth.schemas.probes.address import AddressParams, AddressResult, Holding


def find_holdings(data: list[dict[str, Any]], wanted: set[str], netns: str = "") -> list[Holding]:
    """The (address, interface) pairs of `ip -j addr show` output whose address is wanted."""
    found = []
    for link in data:
        for a in link.get("addr_info") or []:
            local = a.get("local")
            if not local:
                continue
            address = str(ipaddress.ip_address(local))  # the same spelling the params normalised to
            if address in wanted:
                found.append(
                    Holding(
                        address=address, interface=link.get("ifname", "?"), prefixlen=a.get("prefixlen"), netns=netns
                    )
                )
    return found


async def _search(netns: str | None, wanted: set[str], ctx: ProbeContext) -> list[Holding]:
    data = await ip_json(["addr", "show"], netns=netns, timeout=min(5.0, ctx.remaining(0.1)))
    return find_holdings(data, wanted, netns or "")


async def _search_quietly(netns: str, wanted: set[str], ctx: ProbeContext) -> list[Holding]:
    try:
        return await _search(netns, wanted, ctx)
    except IpError:  # deleted between the list and the look
        return []


async def run(params: AddressParams, ctx: ProbeContext) -> Outcome:
    wanted = set(params.addresses)
    searched = 0
    holdings = await _search(params.netns, wanted, ctx)
    if params.all_netns:
        names = [n for n, _ in sorted(await list_netns(timeout=ctx.remaining(0.1))) if SAFE_NETNS.match(n)]
        names = names[: params.max_namespaces]
        searched = len(names)
        for found in await bounded_gather([_search_quietly(n, wanted, ctx) for n in names]):
            holdings += found
    held = sorted({h.address for h in holdings})
    message = f"holds {', '.join(held)}" if held else ""
    return Outcome(Status.OK, message, AddressResult(holdings=holdings, searched_netns=searched))
