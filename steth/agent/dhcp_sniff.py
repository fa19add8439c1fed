"""dhcp-watch's child: `python -m steth.agent.dhcp_sniff JOB-JSON`, standard library only.

It opens a raw packet socket on every interface to watch (inside a network namespace when the interface lives
there, e.g. Neutron's DHCP port), optionally injects a DISCOVER, and reads frames until the exchange has been
seen end to end at every listener or the window closes. One JSON line out.

Why a child without scapy: it starts in about 50 ms, so the listeners of every node are up well before the
compute node's first DISCOVER, and the probe ends as soon as the exchange is complete instead of after a fixed
window. Sockets are opened first and read afterwards: frames that arrive meanwhile wait in the socket buffer.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import subprocess
import time
from typing import Any

from steth.agent import dhcp_frames, rawsock
from steth.agent.childproc import child_main

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"  # where `ip netns add` pins named namespaces (iproute2)
INJECT_SPACING_S = 0.4


class _Netns:
    """Enter a named network namespace for the calling thread, and come back (setns(2))."""

    def __init__(self, name: str):
        self.name = name
        self._libc = ctypes.CDLL(None, use_errno=True)

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    def __enter__(self) -> _Netns:
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"{NETNS_DIR}/{self.name}", os.O_RDONLY)
        try:
            self._setns(target)
        except OSError:
            os.close(self._home)
            raise
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._setns(self._home)
        finally:
            os.close(self._home)


def open_listener(iface: str, netns: str) -> tuple[socket.socket | None, str, str]:
    """(socket, namespace it is in ("" here), error): here first, then inside `netns`."""
    try:
        return rawsock.open_packet_socket(iface), "", ""
    except OSError as exc:
        if exc.errno != errno.ENODEV:
            return None, "", "interface is down" if exc.errno == errno.ENETDOWN else f"cannot listen: {exc}"
    if not netns:
        return None, "", "no such interface"
    try:
        with _Netns(netns):
            return rawsock.open_packet_socket(iface), netns, ""
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return None, "", f"no such interface (here or in {netns})"
        if exc.errno == errno.ENETDOWN:
            return None, netns, "interface is down"
        if exc.errno == errno.ENOENT:
            return None, "", f"no such interface here, and no namespace {netns}"
        return None, "", f"cannot listen in {netns}: {exc}"


class Watch:
    """What every listener saw of one client MAC, and whether the exchange is complete."""

    def __init__(self, job: dict[str, Any]):
        self.mac = job["mac"]
        self.xid = job.get("match_xid") or 0  # 0: any exchange of the MAC
        self.offer_only = set(job.get("offer_only") or [])
        self.hops: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, dict[int, set[int]]] = {}  # iface -> xid -> message types
        self.offers: list[dict[str, Any]] = []

    def add_hop(self, iface: str, role: str, netns: str, error: str, exists: bool) -> None:
        self.hops[iface] = {
            "interface": iface,
            "role": role,
            "netns": netns,
            "exists": exists,
            "discover": 0,
            "offer": 0,
            "vlans": [],
            "error": error,
        }
        self.seen[iface] = {}

    def frame(self, iface: str, data: bytes, vlan: int) -> None:
        msg = dhcp_frames.parse(data, vlan)
        if msg is None or msg.client_mac != self.mac or (self.xid and msg.xid != self.xid):
            return
        if msg.kind not in (dhcp_frames.DISCOVER, dhcp_frames.OFFER):
            return
        hop = self.hops[iface]
        if msg.kind == dhcp_frames.DISCOVER:
            hop["discover"] += 1
        else:
            hop["offer"] += 1
            self.offers.append(
                {"interface": iface, "server_ip": msg.source_ip, "offered_ip": msg.offered_ip, "vlan": msg.vlan}
            )
        if msg.vlan not in hop["vlans"]:
            hop["vlans"].append(msg.vlan)
        self.seen[iface].setdefault(msg.xid, set()).add(msg.kind)

    def complete(self, listening: list[str]) -> bool:
        """One exchange (one xid) seen at every listener: its OFFER everywhere, its DISCOVER everywhere but
        where only the answer passes (the devices behind the injection point)."""
        if not listening:
            return False
        xids = set.intersection(*(set(self.seen[i]) for i in listening))
        for xid in xids:
            if all(
                dhcp_frames.OFFER in self.seen[i][xid]
                and (i in self.offer_only or dhcp_frames.DISCOVER in self.seen[i][xid])
                for i in listening
            ):
                return True
        return False


def _inject(job: dict[str, Any], frame: bytes) -> None:
    if job["inject"] == "send":
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
            out.bind((job["inject_port"], 0))
            out.send(frame)
        return
    done = subprocess.run(
        [
            "ovs-ofctl",
            "packet-out",
            job["bridge"],
            f"in_port={job['in_port']} packet={frame.hex()} actions=NORMAL",
        ],
        capture_output=True,
        text=True,
        timeout=5,
    )
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["ovs-ofctl failed"])[-1])


def _drain(watch: Watch, sockets: dict[socket.socket, str], timeout: float) -> None:
    """Read every frame waiting (up to `timeout` for the first)."""
    ready, _, _ = select.select(list(sockets), [], [], max(0.0, timeout))
    for sock in ready:
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(65535, rawsock.ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the interface went away while listening
                break
            watch.frame(sockets[sock], data, rawsock.vlan_from(ancillary))


def child(job: dict[str, Any]) -> dict[str, Any]:
    watch = Watch(job)
    sockets: dict[socket.socket, str] = {}
    for iface, role in job["listen"]:
        sock, netns, error = open_listener(iface, job.get("netns") or "")
        watch.add_hop(iface, role, netns, error, exists=not error.startswith("no such interface"))
        if sock is not None:
            sockets[sock] = iface
    for iface, role, why in job.get("not_applicable") or []:
        watch.add_hop(iface, role, "", why, exists=True)
    started = time.time()
    listening = list(sockets.values())
    deadline = started + job["listen_s"]
    injecting = job["inject"] != "none"
    frame = dhcp_frames.discover(job["mac"], job["xid"]) if injecting else b""
    next_inject = started + job["inject_delay_s"] if injecting else None
    injected, note, sent_at, finished_at = 0, "", [], None
    while True:
        now = time.time()
        if next_inject is not None and now >= next_inject:
            try:
                _inject(job, frame)
                injected += 1
                sent_at.append(time.time())
                more = injected < job["inject_count"]
                next_inject = started + job["inject_delay_s"] + injected * INJECT_SPACING_S if more else None
            except Exception as exc:
                note, next_inject = f"injection failed: {exc}", None
        done = watch.complete(listening) and (not injecting or injected > 0)
        if done and job.get("finish_early", True):
            finished_at = time.time()
            break
        if now >= deadline:
            break
        wake = min(deadline, next_inject or deadline)
        _drain(watch, sockets, wake - time.time())
    for sock in sockets:
        sock.close()
    return {
        "hops": list(watch.hops.values()),
        "offers": watch.offers[:16],
        "injected": injected,
        "inject_note": note,
        "listening_since": started,
        "last_injected_at": sent_at[-1] if sent_at else None,
        "complete": watch.complete(listening),
        "finished_at": finished_at,
    }


if __name__ == "__main__":
    child_main(child)
