"""Crafted frames with scapy, in a child process: `python -m steth.agent.packets JOB-JSON`.

Why a child process: scapy costs about 0.4 s to import and blocks in its sniffer threads. As a child run
through procs.run it is bounded by the request's deadline and killed with its process group, so no scapy
outlives its request and the agent itself never imports scapy. The job is JSON the agent built from
validated params (never from raw input); the child prints one JSON document on stdout.

Sniffing uses no BPF filter: on a veth the kernel moves the 802.1Q tag into metadata, so the BPF filter
`vlan` matches nothing, while scapy rebuilds the Dot1Q layer from that metadata. Frames are matched in Python.
"""

from __future__ import annotations

import json
import random
import socket
import sys
import time
from typing import Any

from steth.agent import procs
from steth.agent.childproc import child_main
from steth.agent.errors import HelperFailed

MAGIC = b"STETH1"
BROADCAST = "ff:ff:ff:ff:ff:ff"
# The message of a probe whose scapy child was killed at the deadline (probe_job returned None).
KILLED_AT_DEADLINE = "the scapy child was killed at the deadline: give a longer --timeout"


# --- the agent side ------------------------------------------------------------------------------


async def run_job(job: dict[str, Any], timeout: float, module: str = "steth.agent.packets") -> dict[str, Any] | None:
    """Run one job in a scapy child (`python -m module JOB`); None when it was killed at the deadline."""
    argv = [sys.executable, "-m", module, json.dumps(job, separators=(",", ":"))]
    done = await procs.run(argv, timeout=timeout)
    if done.timed_out:
        return None
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        lines = done.stderr.strip().splitlines()
        raise HelperFailed(
            f"scapy: {lines[-1]}" if lines else f"scapy: helper exited {done.returncode} with no output"
        ) from None
    if out.get("error"):
        raise HelperFailed(f"scapy: {out['error']}")
    return out


async def probe_job(job: dict[str, Any], ctx, module: str = "steth.agent.packets") -> dict[str, Any] | None:
    """run_job bounded by the probe's deadline (HelperFailed, ToolMissing: `aborted`); None at the deadline."""
    return await run_job(job, timeout=ctx.remaining(0.1), module=module)


def interface_mac(interface: str) -> str | None:
    """The interface's MAC, or None when this namespace has no such interface."""
    try:
        with open(f"/sys/class/net/{interface}/address") as f:
            return f.read().strip().lower()
    except OSError:
        return None


# --- the child side: everything below imports scapy lazily ----------------------------------------


def _scapy():
    # Only the layers used here: about half the cost of `scapy.all`.
    from scapy.config import conf
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.packet import Raw
    from scapy.sendrecv import AsyncSniffer, sendp

    conf.verb = 0
    # scapy's default socket buffer (64 KiB) holds about 80 small frames, too few for a burst of tagged
    # frames from several peers; 4 MiB is the usual rmem_max (the sniffers force more, see below).
    conf.bufsize = 1 << 22
    return dict(
        conf=conf,
        BOOTP=BOOTP,
        DHCP=DHCP,
        ICMP=ICMP,
        IP=IP,
        TCP=TCP,
        UDP=UDP,
        ARP=ARP,
        Dot1Q=Dot1Q,
        Ether=Ether,
        Raw=Raw,
        AsyncSniffer=AsyncSniffer,
        sendp=sendp,
    )


SO_RCVBUFFORCE = 33
RCVBUF_BYTES = 32 << 20  # a few thousand small frames queued while Python dissects them


def _start_sniffer(s: dict, interface: str, prn, stop_filter=None):
    """An AsyncSniffer on our own socket (a larger buffer than scapy's 64 KiB, readable drop counters)."""
    import threading

    from scapy.arch.linux import L2ListenSocket

    sock = L2ListenSocket(iface=interface)
    try:  # root may exceed net.core.rmem_max; fall back to scapy's setting otherwise
        sock.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
    except OSError:
        pass
    ready = threading.Event()
    sniffer = s["AsyncSniffer"](
        opened_socket=sock, store=False, prn=prn, stop_filter=stop_filter, started_callback=ready.set
    )
    sniffer.start()
    if not ready.wait(5):
        raise RuntimeError(f"could not start sniffing on {interface}")
    sniffer.steth_socket = sock
    return sniffer


def _stop_sniffer(sniffer) -> None:
    try:
        sniffer.stop(join=True)
    except Exception:  # already stopped by its stop_filter
        pass


def _vlan_of(s: dict, pkt) -> int:
    return int(pkt[s["Dot1Q"]].vlan) if pkt.haslayer(s["Dot1Q"]) else 0


def _if_ipv4(interface: str) -> str | None:
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", interface.encode()[:15]))  # SIOCGIFADDR
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def _l2(s: dict, src_mac: str, dst_mac: str, vlan: int | None):
    frame = s["Ether"](src=src_mac, dst=dst_mac)
    return frame / s["Dot1Q"](vlan=vlan) if vlan is not None else frame


def _next_hop(s: dict, interface: str, dst: str) -> str:
    """The address to ARP for: the gateway when the route to dst leaves this interface through one."""
    try:
        iface, _src, gateway = s["conf"].route.route(dst)
    except Exception:
        return dst
    return gateway if iface == interface and gateway not in ("0.0.0.0", "", None) else dst


def _arp_resolve(
    s: dict, interface: str, src_mac: str, src_ip: str, target: str, vlan: int | None, wait_s: float
) -> str | None:
    answer: list[str] = []

    def match(pkt) -> bool:
        arp = pkt.getlayer(s["ARP"])
        if arp is not None and arp.op == 2 and arp.psrc == target:
            answer.append(arp.hwsrc)
            return True
        return False

    sniffer = _start_sniffer(s, interface, None, stop_filter=match)
    request = _l2(s, src_mac, BROADCAST, vlan) / s["ARP"](op=1, hwsrc=src_mac, psrc=src_ip, pdst=target)
    s["sendp"](request, iface=interface, verbose=False)
    deadline = time.time() + wait_s
    while not answer and time.time() < deadline:
        time.sleep(0.01)
    _stop_sniffer(sniffer)
    return answer[0] if answer else None


def _dhcp_options(s: dict, pkt) -> dict[str, Any]:
    names = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform"}
    out: dict[str, Any] = {}
    for opt in pkt[s["DHCP"]].options:
        if not isinstance(opt, tuple) or len(opt) < 2:
            continue
        key, value = opt[0], opt[1]
        if key == "message-type":
            out["message_type"] = names.get(value, str(value))
        elif key == "server_id":
            out["server_id"] = str(value)
        elif key == "lease_time":
            out["lease_time_s"] = int(value)
        elif key == "subnet_mask":
            out["subnet_mask"] = str(value)
        elif key == "router":
            out["router"] = str(value)
        elif key == "name_server":
            out["dns"] = [str(v) for v in opt[1:]]
    return out


def send_job(job: dict[str, Any]) -> dict[str, Any]:
    """Send one crafted packet and report what came back within `listen_s`."""
    s = _scapy()
    interface, kind, vlan = job["interface"], job["packet"], job.get("vlan")
    own_mac = interface_mac(interface)
    src_mac = job.get("src_mac") or own_mac
    src_ip = _if_ipv4(interface) or "0.0.0.0"
    dst = job.get("dst")
    notes: list[str] = []
    rng = random.SystemRandom()
    replies: list[dict[str, Any]] = []
    sent_time = [0.0]
    dst_mac = BROADCAST

    if kind in ("icmp-echo", "tcp-syn", "udp"):
        if src_ip == "0.0.0.0":
            notes.append(f"{interface} has no IPv4 address: replies cannot come back to 0.0.0.0")
        hop = _next_hop(s, interface, dst)
        # resolved with the interface's own MAC: a spoofed one would rewrite the peer's ARP entry for us
        found = _arp_resolve(s, interface, own_mac, src_ip, hop, vlan, min(1.0, job["listen_s"]))
        if found:
            dst_mac = found
        else:
            notes.append(f"no ARP reply from {hop}: sent to the broadcast MAC")

    sport = rng.randint(33000, 60999)
    ident = rng.randint(1, 0xFFFF)
    xid = rng.randint(1, 0xFFFFFFFF)
    payload = MAGIC + b" " + job["token"].encode()
    if kind == "dhcp-discover":
        chaddr = bytes.fromhex(src_mac.replace(":", ""))
        packet = (
            _l2(s, src_mac, BROADCAST, vlan)
            / s["IP"](src="0.0.0.0", dst="255.255.255.255")
            / s["UDP"](sport=68, dport=67)
            / s["BOOTP"](chaddr=chaddr, xid=xid, flags=0x8000)
            / s["DHCP"](options=[("message-type", "discover"), ("param_req_list", [1, 3, 6, 15, 51, 54]), "end"])
        )
    elif kind == "arp-request":
        packet = _l2(s, src_mac, BROADCAST, vlan) / s["ARP"](op=1, hwsrc=src_mac, psrc=src_ip, pdst=dst)
    elif kind == "icmp-echo":
        packet = (
            _l2(s, src_mac, dst_mac, vlan)
            / s["IP"](src=src_ip, dst=dst)
            / s["ICMP"](id=ident, seq=1)
            / s["Raw"](payload)
        )
    elif kind == "tcp-syn":
        packet = (
            _l2(s, src_mac, dst_mac, vlan)
            / s["IP"](src=src_ip, dst=dst)
            / s["TCP"](sport=sport, dport=job["port"], flags="S", seq=rng.randint(0, 2**32 - 1))
        )
    else:
        packet = (
            _l2(s, src_mac, dst_mac, vlan)
            / s["IP"](src=src_ip, dst=dst)
            / s["UDP"](sport=sport, dport=job["port"])
            / s["Raw"](payload)
        )

    def classify(pkt) -> dict[str, Any] | None:
        """The reply this packet is to our probe, or None."""
        if kind == "dhcp-discover":
            if pkt.haslayer(s["BOOTP"]) and pkt[s["BOOTP"]].op == 2 and pkt[s["BOOTP"]].xid == xid:
                opts = _dhcp_options(s, pkt) if pkt.haslayer(s["DHCP"]) else {}
                return {
                    "kind": opts.pop("message_type", "bootp-reply"),
                    "from_ip": pkt[s["IP"]].src,
                    "offered_ip": pkt[s["BOOTP"]].yiaddr,
                    **opts,
                }
            return None
        if kind == "arp-request":
            arp = pkt.getlayer(s["ARP"])
            if arp is not None and arp.op == 2 and arp.psrc == dst:
                return {"kind": "arp-reply", "from_ip": arp.psrc, "answered_mac": arp.hwsrc}
            return None
        ip = pkt.getlayer(s["IP"])
        if ip is None:
            return None
        icmp = pkt.getlayer(s["ICMP"])
        if icmp is not None and icmp.type == 3 and ip.dst == src_ip:  # unreachable, quoting our packet
            inner = icmp.payload
            if getattr(inner, "dst", None) == dst:
                codes = {0: "net", 1: "host", 3: "port", 9: "net prohibited", 10: "host prohibited", 13: "prohibited"}
                return {"kind": f"icmp-unreachable ({codes.get(icmp.code, icmp.code)})", "from_ip": ip.src}
            return None
        if ip.src != dst:
            return None
        if kind == "icmp-echo" and icmp is not None and icmp.type == 0 and icmp.id == ident:
            return {"kind": "echo-reply", "from_ip": ip.src}
        tcp = pkt.getlayer(s["TCP"])
        if kind == "tcp-syn" and tcp is not None and tcp.dport == sport and tcp.sport == job["port"]:
            flags = str(tcp.flags)
            return {
                "kind": "syn-ack (open)"
                if "S" in flags and "A" in flags
                else ("rst (closed)" if "R" in flags else f"tcp {flags}"),
                "from_ip": ip.src,
            }
        udp = pkt.getlayer(s["UDP"])
        if kind == "udp" and udp is not None and udp.dport == sport:
            return {"kind": "udp", "from_ip": ip.src}
        return None

    def on_packet(pkt) -> None:
        if not sent_time[0] or pkt.src == src_mac and pkt.dst != src_mac:
            return  # before our send, or our own frame leaving
        found = classify(pkt)
        if found is None:
            return
        found.update(
            from_mac=pkt.src,
            vlan=_vlan_of(s, pkt) if pkt.haslayer(s["Dot1Q"]) else None,
            delay_ms=round((float(pkt.time) - sent_time[0]) * 1000, 3),
            summary=pkt.summary(),
        )
        replies.append(found)

    first_only = kind != "dhcp-discover"  # several DHCP servers may answer: listen for all of them
    sniffer = _start_sniffer(s, interface, on_packet, stop_filter=(lambda p: bool(replies)) if first_only else None)
    sent_time[0] = time.time()
    s["sendp"](packet, iface=interface, verbose=False)
    deadline = sent_time[0] + job["listen_s"]
    while time.time() < deadline and not (first_only and replies):
        time.sleep(0.01)
    _stop_sniffer(sniffer)
    return {
        "src_mac": src_mac,
        "interface_mac": own_mac,
        "src_ip": src_ip,
        "dst_mac": dst_mac if kind != "dhcp-discover" else BROADCAST,
        "sent_summary": packet.summary(),
        "sent_bytes": len(bytes(packet)),
        "replies": replies,
        "notes": notes,
        "xid": xid if kind == "dhcp-discover" else None,
    }


JOBS = {"send": send_job}


if __name__ == "__main__":
    child_main(lambda job: JOBS[job["job"]](job))
