"""vlan-check --mode subinterface: temporary 802.1Q subinterfaces with addresses, pings across them.

Mutating, so refused unless the agent's policy allows it. Needs 802.1Q in the kernel: where that is
missing (no /proc/net/vlan and `ip link add ... type vlan` fails) the answer is `aborted` with that reason.
Only interfaces steth names (`stv<vlan>x<token>`) and marks (alias) are created and removed; every one is
removed before the reply, also when the request is cancelled at its deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import time

from steth.agent import packets, procs
from steth.agent.errors import CouldNotRun, NoSuchDevice, NotAllowed, Unsupported
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.probes.ping import parse_ping
from steth.schemas.envelope import Status
from steth.schemas.probes.vlan_check import VlanCheckParams, VlanCheckResult, VlanPeerRow


def _exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _alias(name: str) -> str:
    try:
        with open(f"/sys/class/net/{name}/ifalias") as f:
            return f.read().strip()
    except OSError:
        return ""


async def kernel_vlan_support(interface: str, timeout: float) -> str | None:
    """None when 802.1Q works here, else why not. Tries one steth-named VLAN link only when the
    8021q module is not visibly loaded (creating it may load the module), and removes it at once."""
    if os.path.isdir("/proc/net/vlan"):
        return None
    name = f"stq{os.getpid() % 100000}"
    if _exists(name):
        return f"cannot test 802.1Q support: {name} exists"
    done = await procs.run(
        ["ip", "link", "add", "link", interface, "name", name, "type", "vlan", "id", "4094"], timeout=timeout
    )
    if done.returncode == 0:
        await procs.run(["ip", "link", "del", name], timeout=timeout)
        return None
    error = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return f"this kernel has no 802.1Q support (no /proc/net/vlan; ip link add type vlan: {error}); the default frames mode needs none"


def _remove(names: list[str], marker: str) -> None:
    """Synchronous on purpose: it must finish even while the request's task is being cancelled."""
    ours = [n for n in names if _exists(n) and _alias(n) == marker]
    if ours:
        subprocess.run(
            ["ip", "-batch", "-"],
            input="".join(f"link del {n}\n" for n in ours),
            text=True,
            capture_output=True,
            timeout=10,
        )


async def _ping(name: str, address: str, count: int, timeout: float):
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", "-I", name, address]
    done = await procs.run(argv, timeout=timeout)
    return parse_ping(address, done.stdout, done.stderr, done.returncode)


async def run(params: VlanCheckParams, ctx: ProbeContext) -> Outcome:
    if not ctx.allow_mutating:
        raise NotAllowed(
            "refused: --mode subinterface creates VLAN interfaces; mutating probes are off in this agent's policy"
        )
    if packets.interface_mac(params.interface) is None:
        raise NoSuchDevice(f"no interface {params.interface} on this node")
    reason = await kernel_vlan_support(params.interface, timeout=min(5.0, ctx.remaining(0.1)))
    if reason:
        raise Unsupported(reason)
    if ctx.node not in params.nodes or not params.token:
        raise CouldNotRun("subinterface mode is run by the controller (steth vlan-check), which names the nodes")
    net = ipaddress.ip_network(params.cidr)
    address = {n: str(net[i + 1]) for i, n in enumerate(params.nodes)}
    marker = f"steth vlan-check {params.token}"
    names = {v: f"stv{v}x{params.token[:4]}" for v in params.vlans}
    send_at = time.time() + params.send_delay_s
    try:
        for vlan, name in names.items():
            if _exists(name):
                raise NotAllowed(f"{name} exists already and is not steth's to change")
            for argv in (
                ["ip", "link", "add", "link", params.interface, "name", name, "type", "vlan", "id", str(vlan)],
                ["ip", "link", "set", "dev", name, "alias", marker],
                ["ip", "addr", "add", f"{address[ctx.node]}/{net.prefixlen}", "dev", name],
                ["ip", "link", "set", "dev", name, "up"],
            ):
                done = await procs.run(argv, timeout=ctx.remaining(0.5))
                if done.returncode != 0:
                    raise CouldNotRun(f"{' '.join(argv[:4])} {name}: {done.stderr.strip() or done.returncode}")
        await asyncio.sleep(max(0.0, send_at - time.time()))
        peers = [p for p in params.nodes if p != ctx.node]
        pings = await asyncio.gather(
            *(_ping(names[v], address[p], params.frames, ctx.remaining(0.5)) for v in params.vlans for p in peers)
        )
    finally:
        _remove(list(names.values()), marker)
    rows = [
        VlanPeerRow(
            vlan=v, peer=p, frames=r.received, expected=r.sent or params.frames, passed=r.received > 0, detail=r.error
        )
        for (v, p), r in zip(((v, p) for v in params.vlans for p in peers), pings)
    ]
    result = VlanCheckResult(
        interface=params.interface, mode=params.mode, vlans=params.vlans, sent_at=send_at, rows=rows
    )
    return Outcome(Status.FAILED if any(not r.passed for r in rows) else Status.OK, result.missing(), result)
