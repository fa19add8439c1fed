"""TCP connect checks: imported by the tcp-check probe, and run as a program inside a network namespace.

`nsenter --net=/run/netns/NS python -m steth.agent.tools.tcpconnect --timeout S [--allow CIDR,...] -- HOST:PORT...` prints
one JSON list. With --allow (the agent's allowed_target_cidrs) an address a host name resolved to outside
them is not connected to: the row's error starts with REFUSED, and the probe answers `aborted`.
A process, not setns() in the agent: the namespace switch then cannot leak into the agent's other threads.
Standard library only, so the helper starts fast. Targets were validated by the probe's params model.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import socket
import sys
import time


def split(target: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' (already validated) to (host, port)."""
    if target.startswith("["):
        host, _, port = target[1:].partition("]:")
    else:
        host, _, port = target.rpartition(":")
    return host, int(port)


def describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timeout after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower() if exc.errno != errno.ECONNREFUSED else "refused"
    return f"{exc.__class__.__name__}: {exc}"


REFUSED = "refused by policy"


async def check(target: str, timeout: float, allowed: list | None = None) -> dict:
    """Resolve, then connect to the first address; the handshake time, or why not. Sends no data.
    `allowed`: networks the address must lie in (checked after resolving, so a name cannot steer it)."""
    host, port = split(target)
    row: dict = {"target": target, "address": "", "connected": False, "connect_ms": None, "error": ""}
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        family, _, _, _, sockaddr = infos[0]
        row["address"] = sockaddr[0]
        if allowed is not None:
            ip = ipaddress.ip_address(sockaddr[0])
            if not any(ip.version == n.version and ip in n for n in allowed):
                row["error"] = f"{REFUSED}: {ip} is not in this agent's allowed_target_cidrs"
                return row
        left = max(0.01, timeout - (time.monotonic() - started))
        began = time.monotonic()
        _, writer = await asyncio.wait_for(asyncio.open_connection(sockaddr[0], port, family=family), left)
        row["connect_ms"] = round((time.monotonic() - began) * 1000, 3)
        row["connected"] = True
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (TimeoutError, OSError):
            pass
    except (TimeoutError, OSError) as exc:
        row["error"] = describe(exc, timeout)
    return row


async def check_all(targets: list[str], timeout: float, allowed: list | None = None) -> list[dict]:
    return list(await asyncio.gather(*(check(t, timeout, allowed) for t in targets)))


def main(argv: list[str]) -> int:
    allowed = None
    if len(argv) > 3 and argv[2] == "--allow":
        allowed = [ipaddress.ip_network(c, strict=False) for c in argv[3].split(",") if c]
        argv = argv[:2] + argv[4:]
    if len(argv) < 4 or argv[0] != "--timeout" or argv[2] != "--":
        print(
            "usage: python -m steth.agent.tools.tcpconnect --timeout S [--allow CIDR,...] -- HOST:PORT...",
            file=sys.stderr,
        )
        return 2
    timeout = min(30.0, max(0.1, float(argv[1])))
    print(json.dumps(asyncio.run(check_all(argv[3 : 65 + 3], timeout, allowed))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
