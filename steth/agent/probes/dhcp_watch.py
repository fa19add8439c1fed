"""dhcp-watch: DHCP for one MAC on several interfaces, in a scapy child (`python -m steth.agent.probes.dhcp_watch`).

The child is bounded by the request's deadline like every tool (procs.run kills its process group), so
neither scapy nor its sniffer threads outlive the request and the agent never imports scapy. Frames are
matched in Python (no BPF): on a veth the kernel moves the 802.1Q tag into metadata, where BPF `udp port 67`
misses tagged frames sent out and `vlan` misses them all.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from steth.agent import ovsdb, packets
from steth.agent.errors import CouldNotRun
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.dhcp_watch import DhcpWatchParams, DhcpWatchResult


def uplinks(ports: list[dict], bridges: list[str]) -> list[str]:
    """Ports of the bridges that lead out: not patch ports, not the bridge's internal port."""
    return [p["name"] for p in ports if p["bridge"] in bridges and p.get("type") not in ("patch", "internal")]


async def run(params: DhcpWatchParams, ctx: ProbeContext) -> Outcome:

    listen = [(i, "") for i in params.interfaces]
    in_port = None
    ports: list[dict] = []
    if params.uplink_bridges or params.inject == "ovs":
        _, ports, _ = await ovsdb.read(ovsdb.default_db(), timeout=min(5.0, ctx.remaining(params.listen_s)))
        listen += [(u, "uplink") for u in uplinks(ports, params.uplink_bridges) if u not in params.interfaces]
    note = ""
    inject = params.inject
    if inject != "none" and not ctx.allow_mutating:
        inject, note = "none", "listen only: injecting a DISCOVER with another MAC needs the mutating policy"
    if inject == "ovs":
        row = next((p for p in ports if p["name"] == params.inject_port and p["bridge"] == params.bridge), None)
        if row is None or not isinstance(row.get("ofport"), int) or row["ofport"] < 1:
            inject, note = "none", f"cannot inject: {params.inject_port} is not a working port of {params.bridge}"
        else:
            in_port = row["ofport"]
    xid = params.xid or random.randint(1, 0xFFFFFFFF)
    job = {
        "mac": params.mac,
        "listen": listen,
        "listen_s": params.listen_s,
        "inject": inject,
        "inject_port": params.inject_port,
        "bridge": params.bridge,
        "in_port": in_port,
        "inject_delay_s": params.inject_delay_s,
        "inject_count": params.inject_count,
        "xid": xid,
    }
    out = await packets.probe_job(job, ctx, module="steth.agent.probes.dhcp_watch")
    if out is None:
        raise CouldNotRun("the scapy child did not finish before the deadline")
    res = DhcpWatchResult(
        mac=params.mac,
        listen_s=params.listen_s,
        injected=out.get("injected", 0),
        xid=xid if out.get("injected") else None,
        inject_note=out.get("inject_note") or note,
        hops=out.get("hops", []),
        offers=out.get("offers", []),
        listening_since=out.get("listening_since"),
        last_injected_at=out.get("last_injected_at"),
    )
    seen_o = sum(h.offer for h in res.hops)
    message = f"DISCOVER seen on {sum(1 for h in res.hops if h.discover)}, OFFER on {sum(1 for h in res.hops if h.offer)} of {len(res.hops)} interfaces"
    if res.inject_note:
        message += f"; {res.inject_note}"
    if res.injected and not seen_o:
        return Outcome(Status.FAILED, f"no OFFER for {params.mac}: " + message, res)
    return Outcome(Status.OK, message, res)


# --- the child: everything below imports scapy ----------------------------------------------------


def _discover(mac: str, xid: int):
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    chaddr = bytes.fromhex(mac.replace(":", "")) + b"\0" * 10
    return (
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=chaddr, xid=xid, flags=0x8000)
        / DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6, 26]), "end"])
    )


def _message_type(pkt) -> int | None:
    from scapy.layers.dhcp import DHCP

    if not pkt.haslayer(DHCP):
        return None
    for opt in pkt[DHCP].options:
        if isinstance(opt, tuple) and opt[0] == "message-type":
            return int(opt[1])
    return None


def _is_up(iface: str) -> bool:
    try:
        return bool(int(Path(f"/sys/class/net/{iface}/flags").read_text(), 16) & 0x1)  # IFF_UP
    except (OSError, ValueError):
        return False


def child(job: dict[str, Any]) -> dict[str, Any]:
    import threading

    from scapy.config import conf
    from scapy.layers.dhcp import BOOTP
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Dot1Q
    from scapy.sendrecv import AsyncSniffer, sendp

    conf.verb = 0
    mac, xid, injecting = job["mac"], job["xid"], job["inject"] != "none"
    lock = threading.Lock()
    hops: dict[str, dict[str, Any]] = {}
    offers: list[dict[str, Any]] = []
    sniffers = []

    def watcher(iface: str):
        def prn(pkt) -> None:
            if not pkt.haslayer(BOOTP):
                return
            b = pkt[BOOTP]
            if bytes(b.chaddr[:6]).hex(":") != mac or (injecting and b.xid != xid):
                return
            kind = _message_type(pkt)
            vlan = int(pkt[Dot1Q].vlan) if pkt.haslayer(Dot1Q) else 0
            with lock:
                hop = hops[iface]
                if kind == 1:
                    hop["discover"] += 1
                elif kind == 2:
                    hop["offer"] += 1
                    offers.append(
                        {
                            "interface": iface,
                            "server_ip": pkt[IP].src if pkt.haslayer(IP) else None,
                            "offered_ip": b.yiaddr,
                            "vlan": vlan,
                        }
                    )
                else:
                    return
                if vlan not in hop["vlans"]:
                    hop["vlans"].append(vlan)

        return prn

    for iface, role in job["listen"]:
        hops[iface] = {
            "interface": iface,
            "role": role,
            "exists": True,
            "discover": 0,
            "offer": 0,
            "vlans": [],
            "error": "",
        }
        if not Path(f"/sys/class/net/{iface}").exists():
            hops[iface].update(exists=False, error="no such interface")
            continue
        if not _is_up(iface):  # a packet socket on a down interface never starts
            hops[iface]["error"] = "interface is down"
            continue
        ready = threading.Event()
        try:
            sniffer = AsyncSniffer(iface=iface, store=False, prn=watcher(iface), started_callback=ready.set)
            sniffer.start()
            if not ready.wait(2):
                raise RuntimeError("sniffer did not start")
            sniffers.append(sniffer)
        except Exception as exc:
            hops[iface]["error"] = f"cannot listen: {exc}"
    started = time.time()
    injected, note, sent_at = 0, "", []
    if injecting:
        time.sleep(max(0.0, started + job["inject_delay_s"] - time.time()))
        frame = _discover(mac, xid)
        for k in range(job["inject_count"]):
            if k:
                time.sleep(0.4)
            try:
                if job["inject"] == "send":
                    sendp(frame, iface=job["inject_port"], verbose=False)
                else:
                    import subprocess

                    done = subprocess.run(
                        [
                            "ovs-ofctl",
                            "packet-out",
                            job["bridge"],
                            f"in_port={job['in_port']} packet={bytes(frame).hex()} actions=NORMAL",
                        ],
                        capture_output=True,
                        text=True,
                        timeout=5,
                    )
                    if done.returncode != 0:
                        raise RuntimeError((done.stderr.strip().splitlines() or ["ovs-ofctl failed"])[-1])
                injected += 1
                sent_at.append(time.time())
            except Exception as exc:
                note = f"injection failed: {exc}"
                break
    time.sleep(max(0.0, started + job["listen_s"] - time.time()))
    for sniffer in sniffers:
        try:
            sniffer.stop(join=True)
        except Exception:
            pass
    return {
        "hops": list(hops.values()),
        "offers": offers[:16],
        "injected": injected,
        "inject_note": note,
        "listening_since": started,
        "last_injected_at": sent_at[-1] if sent_at else None,
    }


if __name__ == "__main__":
    packets.child_main(child)
