"""A DHCP server for lab tests: dnsmasq bound to one interface of one namespace, leases in the lab dir.

Recorded in the lab's state file as soon as it runs, so `steth lab down` stops it after a crash too (its
namespace's processes are stopped anyway when the namespace goes).
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from pathlib import Path
from typing import Any

from steth.lab.shell import LabError, stop_pid
from steth.lab.state import lab_dir, load_state, save_state


def start(
    name: str, netns: str, interface: str, server_cidr: str, pool: tuple[int, int] = (50, 99), lease_s: int = 600
) -> dict[str, Any]:
    """dnsmasq serving DHCP (no DNS) on `interface`, which must hold `server_cidr` (e.g. 10.92.0.1/24)."""
    iface = ipaddress.ip_interface(server_cidr)
    net = iface.network
    first, last = net[pool[0]], net[pool[1]]
    directory = lab_dir() / f"dnsmasq-{name}"
    directory.mkdir(parents=True, exist_ok=True)
    leases = directory / "leases"
    argv = [
        "ip",
        "netns",
        "exec",
        netns,
        "dnsmasq",
        "--keep-in-foreground",
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        f"--interface={interface}",
        "--bind-interfaces",
        "--except-interface=lo",
        "--user=root",
        f"--dhcp-range={first},{last},{net.netmask},{lease_s}",
        f"--dhcp-leasefile={leases}",
        f"--pid-file={directory / 'dnsmasq.pid'}",
        "--dhcp-authoritative",
        "--log-dhcp",
        "--no-ping",  # offer at once: the default ICMP check of the address delays the OFFER by about 3 s
    ]
    log = open(directory / "dnsmasq.log", "ab")
    try:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    finally:
        log.close()
    handle = {
        "name": name,
        "pid": proc.pid,
        "netns": netns,
        "interface": interface,
        "leases": str(leases),
        "log": str(directory / "dnsmasq.log"),
        "range": [str(first), str(last)],
        "server": str(iface.ip),
    }
    state = load_state()
    if state is not None:
        state.setdefault("pids", {})[f"dnsmasq-{name}"] = proc.pid
        save_state(state)
    deadline = time.monotonic() + 5
    while b"DHCP, IP range" not in _read(directory / "dnsmasq.log"):
        if proc.poll() is not None:
            raise LabError(
                f"dnsmasq exited: {_read(directory / 'dnsmasq.log').decode(errors='replace').strip()[-300:]}"
            )
        if time.monotonic() > deadline:
            stop(handle)
            raise LabError("dnsmasq did not start within 5 s")
        time.sleep(0.05)
    handle["_proc"] = proc
    return handle


def stop(handle: dict[str, Any]) -> None:
    stop_pid(handle["pid"], grace=3)
    proc = handle.get("_proc")
    if proc is not None:
        proc.poll()
    state = load_state()
    if state is not None and state.get("pids", {}).pop(f"dnsmasq-{handle['name']}", None) is not None:
        save_state(state)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
