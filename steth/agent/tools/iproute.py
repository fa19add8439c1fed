"""iproute2's JSON output (`ip -j`), run through procs: the one way probes read links and namespaces."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from steth.agent import procs
from steth.agent.errors import IpError

# What a namespace name must look like before steth passes it to a tool (as the params' NetnsName).
SAFE_NETNS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def ip_argv(args: list[str], netns: str | None = None) -> list[str]:
    # Not `ip -n NS`: like `ip netns exec` it unshares a mount namespace to remount /sys (procs.in_netns).
    return procs.in_netns(netns, ["ip", "-j", *args])


async def ip_json(args: list[str], *, netns: str | None = None, timeout: float = 5.0) -> Any:
    """Run `ip -j ARGS` (in NS) and decode its JSON; IpError with ip's own message when it fails."""
    done = await procs.run(ip_argv(args, netns), timeout=timeout)
    if done.timed_out:
        raise IpError(done.stderr.strip())
    if done.returncode != 0:
        raise IpError((done.stderr.strip().splitlines() or [f"ip exited {done.returncode}"])[-1])
    try:
        return json.loads(done.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise IpError(f"ip printed no JSON: {exc}") from None


def parse_netns_list(data: list[dict]) -> list[tuple[str, int | None]]:
    """`ip -j netns list` to (name, nsid); nsid is absent for namespaces without an id assigned here."""
    return [(e["name"], e.get("id")) for e in data if isinstance(e, dict) and e.get("name")]


async def list_netns(timeout: float = 5.0) -> list[tuple[str, int | None]]:
    try:
        return parse_netns_list(await ip_json(["netns", "list"], timeout=timeout))
    except IpError as exc:
        raise IpError(f"cannot list namespaces: {exc}") from None


async def bounded_gather(coros: list, limit: int = 8) -> list:
    """Run coroutines with at most `limit` at once (one ip process each), results in order."""
    slots = asyncio.Semaphore(limit)

    async def one(coro):
        async with slots:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))
