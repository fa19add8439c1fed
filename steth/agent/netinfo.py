"""The node's interfaces and addresses, from `ip -j` (iproute2's JSON), cached briefly."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time

from steth.agent import procs
from steth.schemas.agent_info import InterfaceAddresses

_CACHE_S = 10.0
_cache: tuple[float, list[InterfaceAddresses], str | None] | None = None
_lock = asyncio.Lock()


def parse_ip_addr(text: str) -> list[InterfaceAddresses]:
    """`ip -j addr show` output to interfaces with their addresses."""
    out = []
    for link in json.loads(text or "[]"):
        addrs = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if "local" in a]
        out.append(
            InterfaceAddresses(
                name=link.get("ifname", "?"), addresses=addrs, up=link.get("operstate") in ("UP", "UNKNOWN")
            )
        )
    return out


def parse_default_route_dev(text: str) -> str | None:
    routes = json.loads(text or "[]")
    return routes[0].get("dev") if routes else None


async def interfaces() -> tuple[list[InterfaceAddresses], str | None]:
    """(interfaces, the default route's device), refreshed at most every few seconds."""
    global _cache
    async with _lock:
        if _cache and time.monotonic() - _cache[0] < _CACHE_S:
            return _cache[1], _cache[2]
        addr = await procs.run(["ip", "-j", "addr", "show"], timeout=5)
        route = await procs.run(["ip", "-j", "route", "show", "default"], timeout=5)
        ifaces = parse_ip_addr(addr.stdout) if addr.returncode == 0 else []
        dev = parse_default_route_dev(route.stdout) if route.returncode == 0 else None
        _cache = (time.monotonic(), ifaces, dev)
        return ifaces, dev


def data_plane_address(ifaces: list[InterfaceAddresses], plane: str | None, default_dev: str | None) -> str:
    """The address on the configured plane (CIDR or interface), else on the default route's interface."""
    from steth.schemas.agent_info import AgentInfo

    info = AgentInfo(node="self", interfaces=ifaces)
    for candidate in (plane, default_dev):
        if candidate:
            found = info.address_on(candidate)
            if found:
                return found
    for iface in ifaces:
        for cidr in iface.addresses:
            ip = ipaddress.ip_interface(cidr).ip
            if ip.version == 4 and not ip.is_loopback:
                return str(ip)
    return ""
