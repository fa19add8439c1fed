"""vlan-check's child: `python -m steth.agent.vlan_sniff JOB-JSON`, standard library only.

It listens on the trunk with a raw packet socket, sends `frames` rounds of 802.1Q-tagged frames (one per VLAN,
ethertype 0x88B5) at `send_at`, and reads until `listen_until` (then what is still queued, up to
`drain_until`). Each frame carries "STETH1 <token> <vlan> <node>": receivers know the request, the VLAN the
sender meant (a tag rewritten on the way shows) and who sent it. One JSON line out.

Why no scapy: the child starts in tens of milliseconds instead of the second or more that importing scapy
takes on a loaded host, so every node listens long before its peers send (a late listener cannot tell a
lost VLAN from a frame sent before it listened).
"""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Any

from steth.agent import rawsock
from steth.agent.childproc import child_main

VLAN_ETHERTYPE = 0x88B5  # IEEE "local experimental": no host stack acts on it
TPID = 0x8100
MAGIC = b"STETH1"
RCVBUF_BYTES = 32 << 20  # a few thousand small frames queued between reads
ETH = struct.Struct("!6s6sH")


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def tagged_frame(src_mac: str, vlan: int, payload: bytes) -> bytes:
    """Broadcast, 802.1Q tag `vlan` (priority 0), then the experimental ethertype and the payload."""
    return ETH.pack(b"\xff" * 6, mac_bytes(src_mac), TPID) + struct.pack("!HH", vlan & 0x0FFF, VLAN_ETHERTYPE) + payload


def parse(data: bytes, aux_vlan: int) -> tuple[int, bytes] | None:
    """(the VLAN the frame arrived on, its payload) for a frame of ours, else None. The tag is in the
    metadata (aux_vlan) when the kernel took it off, or still in the bytes (a second tag, or no offload)."""
    if len(data) < ETH.size:
        return None
    ethertype, offset, vlan = ETH.unpack_from(data)[2], ETH.size, aux_vlan
    if ethertype == TPID and len(data) >= offset + 4:
        tci, ethertype = struct.unpack_from("!HH", data, offset)
        vlan, offset = (tci & 0x0FFF) if not aux_vlan else aux_vlan, offset + 4
    if ethertype != VLAN_ETHERTYPE:
        return None
    return vlan, data[offset:]


class Seen:
    """Frames of this request by (arrived VLAN, meant VLAN, sender), our own left out."""

    def __init__(self, token: str, node: str):
        self.prefix = MAGIC + b" " + token.encode() + b" "
        self.node = node
        self.counts: dict[tuple[int, int, str], int] = {}

    def frame(self, data: bytes, aux_vlan: int) -> None:
        got = parse(data, aux_vlan)
        if got is None or not got[1].startswith(self.prefix):
            return
        try:
            meant, sender = got[1][len(self.prefix) :].rstrip(b"\0").decode().split(" ", 1)
            key = (got[0], int(meant), sender)
        except ValueError:
            return
        if sender != self.node:  # our own frames, seen leaving
            self.counts[key] = self.counts.get(key, 0) + 1

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"vlan": tag, "meant_vlan": meant, "sender": sender, "frames": n}
            for (tag, meant, sender), n in sorted(self.counts.items())
        ]


def _read(sock: socket.socket, seen: Seen, until: float) -> None:
    """Every frame that arrives until `until` (and what was already queued)."""
    while True:
        wait = until - time.time()
        ready, _, _ = select.select([sock], [], [], max(0.0, wait))
        if not ready:
            if wait <= 0:
                return
            continue
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(65535, rawsock.ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            seen.frame(data, rawsock.vlan_from(ancillary))
        if time.time() >= until:
            return


def child(job: dict[str, Any]) -> dict[str, Any]:
    interface, node = job["interface"], job["node"]
    sock = rawsock.open_packet_socket(interface, RCVBUF_BYTES)
    try:
        listening_since = time.time()
        mac = ":".join(f"{b:02x}" for b in sock.getsockname()[4][:6])
        seen = Seen(job["token"], node)
        prefix = seen.prefix
        frames = [tagged_frame(mac, vlan, prefix + f"{vlan} {node}".encode()) for vlan in job["vlans"]]
        _read(sock, seen, job["send_at"])
        sent_at = time.time()
        for round_ in range(job["frames"]):  # rounds, not bursts: one lost frame must not lose a VLAN
            # every other round in reverse order: a loss at the same point of each round hits other VLANs
            for i, frame in enumerate(frames if round_ % 2 == 0 else frames[::-1]):
                sock.send(frame)
                if i % 64 == 63:
                    _read(sock, seen, time.time() + 0.002)  # paced: a burst of hundreds overruns backlogs
            if round_ + 1 < job["frames"]:
                _read(sock, seen, time.time() + 0.05)
        _read(sock, seen, job["listen_until"])
        _read(sock, seen, min(job.get("drain_until", job["listen_until"]), time.time()))
        return {
            "mac": mac,
            "listening_since": listening_since,
            "sent_at": sent_at,
            "socket_drops": rawsock.drops(sock),
            "sent": [{"vlan": v, "frames": job["frames"]} for v in job["vlans"]],
            "seen": seen.rows(),
        }
    finally:
        sock.close()


if __name__ == "__main__":
    child_main(child)
