"""neutron-ns: checks inside a qdhcp-/qrouter- namespace, and the dnsmasq that serves a qdhcp- one.

dnsmasq is found the way Neutron's own process manager decides it is running
(neutron/agent/linux/external_process.py: ProcessManager.active, "the uuid in cmdline"): a dnsmasq whose
command line names the network, whose id is the namespace name after `qdhcp-` (neutron/agent/linux/dhcp.py:
NS_PREFIX; its files live in `<dhcp_confs>/<network id>/`, Dnsmasq._build_cmdline_callback). Reading the
command line needs no CAP_SYS_PTRACE (`ip netns pids` does: it reads /proc/PID/ns/net of a dnsmasq that runs
as nobody), so the unit can drop it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
from pathlib import Path

from steth.agent import procs
from steth.agent.errors import IpError
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.probes import arping as arping_probe
from steth.agent.tools.iproute import ip_argv
from steth.schemas.checks import CheckRow
from steth.schemas.envelope import Status
from steth.schemas.probes.arping import ArpingParams
from steth.schemas.probes.neutron_ns import NeutronNsParams, NeutronNsResult, NsInterface

NETNS_DIR = Path(procs.NETNS_DIR)
QDHCP_PREFIX = "qdhcp-"  # neutron/agent/linux/dhcp.py: NS_PREFIX
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def parse_addr(text: str) -> list[NsInterface]:
    out = []
    for link in json.loads(text or "[]"):
        if link.get("ifname") == "lo":
            continue
        addrs = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if "local" in a]
        out.append(
            NsInterface(name=link["ifname"], up="UP" in link.get("flags", []), mtu=link.get("mtu"), addresses=addrs)
        )
    return out


def parse_hosts(text: str) -> set[tuple[str, str]]:
    """dnsmasq --dhcp-hostsfile lines (`mac,name,ip`, `mac,ip`, `mac,set:tag,ip`...) to (mac, ip) pairs."""
    pairs = set()
    for line in text.splitlines():
        fields = [f.strip().lower() for f in line.split("#", 1)[0].split(",")]
        macs = [f for f in fields if _MAC.match(f)]
        ips = []
        for f in fields:
            try:
                ips.append(str(ipaddress.ip_address(f.strip("[]"))))
            except ValueError:
                pass
        pairs.update((m, ip) for m in macs for ip in ips)
    return pairs


def read_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def same_netns(pid: int, netns: str) -> bool | None:
    """Whether process pid is in the named namespace; None when the kernel will not say (reading
    /proc/PID/ns/net of another user's process needs CAP_SYS_PTRACE, which the shipped unit does not keep)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == (NETNS_DIR / netns).stat().st_ino
    except PermissionError:
        return None
    except OSError:
        return False


def find_dnsmasq(netns: str) -> tuple[int | None, str | None]:
    """The live dnsmasq serving the namespace's network, and its --dhcp-hostsfile.

    One host runs one dnsmasq per network. Where the kernel tells (the agent may ptrace), a dnsmasq of the
    same network in another namespace is not taken: lab nodes share one process table.
    """
    network = netns.removeprefix(QDHCP_PREFIX)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = read_cmdline(pid)
        if not argv or Path(argv[0]).name != "dnsmasq" or not any(network in a for a in argv[1:]):
            continue
        if proc_state(pid) in ("Z", "X", "?") or same_netns(pid, netns) is False:
            continue
        hosts = next((a.split("=", 1)[1] for a in argv if a.startswith("--dhcp-hostsfile=")), None)
        return pid, hosts
    return None, None


def iface_for(target: str, interfaces: list[NsInterface]) -> str | None:
    addr = ipaddress.ip_address(target)
    for iface in interfaces:
        for cidr in iface.addresses:
            if addr in ipaddress.ip_interface(cidr).network:
                return iface.name
    return interfaces[0].name if interfaces else None


async def _arping(ctx: ProbeContext, p: NeutronNsParams, target: str, iface: str) -> CheckRow:
    # 0.2 s apart: two requests take 0.55 s instead of 2.1 s (measured), and a healthy port answers the first.
    params = ArpingParams(target=target, interface=iface, count=p.count, netns=p.netns, interval_s=0.2)
    kind = await arping_probe.variant(ctx)
    done = await procs.run(arping_probe.arping_argv(kind, params), timeout=ctx.remaining(0.2), netns=p.netns)
    row = arping_probe.parse_arping(kind, params, done.stdout, done.stderr, done.returncode)
    if row.error and row.sent == 0:
        return CheckRow(check="arping", target=target, ok=False, detail=f"arping failed: {row.error}")
    if row.received == 0:
        return CheckRow(check="arping", target=target, ok=False, detail=f"no ARP reply on {iface} ({row.sent} sent)")
    return CheckRow(
        check="arping", target=target, detail=f"{row.received}/{row.sent} replies from {','.join(row.macs)}"
    )


async def _ping(ctx: ProbeContext, p: NeutronNsParams, target: str, payload: int) -> tuple[int, int, str]:
    argv = ["ping", "-n", "-q", "-c", str(p.count), "-i", "0.2", "-W", "1", "-M", "do", "-s", str(payload), target]
    done = await procs.run(argv, timeout=ctx.remaining(0.2), netns=p.netns)
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", done.stdout)
    err = (done.stderr.strip().splitlines() or [""])[-1]
    return (int(m.group(1)), int(m.group(2)), err) if m else (0, 0, err or f"ping exited {done.returncode}")


async def _ping_df(ctx: ProbeContext, p: NeutronNsParams, target: str) -> CheckRow:
    """A don't-fragment ping of the full size, and a small one beside it: only big ones lost is an MTU problem."""
    size = p.ping_size_bytes or 0
    (sent, got, err), (_, small, _) = await asyncio.gather(_ping(ctx, p, target, size - 28), _ping(ctx, p, target, 56))
    if got > 0:
        return CheckRow(check="mtu", target=target, detail=f"{size}-byte don't-fragment packets pass ({got}/{sent})")
    if small > 0:
        return CheckRow(
            check="mtu",
            target=target,
            ok=False,
            detail=f"{size}-byte don't-fragment packets are lost while small ones pass" + (f" ({err})" if err else ""),
        )
    return CheckRow(check="mtu", target=target, ok=False, detail="no echo reply at all" + (f" ({err})" if err else ""))


async def run(params: NeutronNsParams, ctx: ProbeContext) -> Outcome:
    res = NeutronNsResult(netns=params.netns)
    checks = res.checks
    res.exists = (NETNS_DIR / params.netns).exists()
    if not res.exists:
        checks.append(
            CheckRow(check="netns", target=params.netns, ok=False, detail="namespace does not exist on this node")
        )
        return Outcome(Status.FAILED, f"{params.netns} does not exist", res)
    addr = await procs.run(ip_argv(["addr", "show"], params.netns), timeout=ctx.remaining(0.1))
    if addr.returncode != 0:
        raise IpError(f"ip addr in {params.netns}: {addr.stderr.strip() or addr.returncode}")
    res.interfaces = parse_addr(addr.stdout)
    checks.append(CheckRow(check="netns", target=params.netns, detail=f"{len(res.interfaces)} interface(s)"))
    held = {ipaddress.ip_interface(a).ip: i for i in res.interfaces for a in i.addresses}
    for want in params.expect_addresses:
        iface = held.get(ipaddress.ip_address(want))
        if iface is None:
            checks.append(
                CheckRow(check="address", target=want, ok=False, detail="not on any interface of the namespace")
            )
        elif not iface.up:
            checks.append(CheckRow(check="address", target=want, ok=False, detail=f"on {iface.name}, which is down"))
        else:
            checks.append(CheckRow(check="address", target=want, detail=f"on {iface.name}"))
    if params.dnsmasq or params.host_entries:
        pid, hostsfile = find_dnsmasq(params.netns)
        res.dnsmasq_pid, res.hostsfile = pid, hostsfile
        checks.append(
            CheckRow(
                check="dnsmasq",
                target=params.netns,
                ok=pid is not None,
                detail=f"pid {pid}" if pid else "no dnsmasq runs in the namespace",
            )
        )
        if params.host_entries:
            pairs: set[tuple[str, str]] | None = None
            if hostsfile:
                try:
                    pairs = parse_hosts(Path(hostsfile).read_text())
                except OSError as exc:
                    checks.append(
                        CheckRow(check="host-entry", target=hostsfile, ok=False, detail=f"cannot read: {exc.strerror}")
                    )
            for entry in params.host_entries:
                if pairs is None:
                    if pid is not None and not hostsfile:
                        checks.append(
                            CheckRow(
                                check="host-entry",
                                target=f"{entry.mac} {entry.ip}",
                                ok=False,
                                detail="dnsmasq has no --dhcp-hostsfile",
                            )
                        )
                    continue
                ok = (entry.mac, entry.ip) in pairs
                checks.append(
                    CheckRow(
                        check="host-entry",
                        target=f"{entry.mac} {entry.ip}",
                        ok=ok,
                        detail="in " + hostsfile if ok else f"missing from {hostsfile}",
                    )
                )
    jobs = []
    for target in params.arping:
        iface = iface_for(target, res.interfaces)
        if iface is None:
            checks.append(CheckRow(check="arping", target=target, ok=False, detail="the namespace has no interface"))
            continue
        jobs.append(_arping(ctx, params, target, iface))
    if params.ping_size_bytes:
        jobs += [_ping_df(ctx, params, t) for t in params.arping]
    checks.extend(await asyncio.gather(*jobs))
    bad = [c for c in checks if not c.ok]
    if bad:
        return Outcome(
            Status.FAILED,
            f"{bad[0].check} {bad[0].target}: {bad[0].detail}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""),
            res,
        )
    return Outcome(Status.OK, "", res)
