"""DHCPv4 frames as bytes, standard library only: read one from a capture, build a DISCOVER.

dhcp-watch listens in a child process that must start in tens of milliseconds (its peers time their
injection by it), so it does without scapy: the few fields it needs are at fixed offsets (RFC 2131 section 2).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

DISCOVER, OFFER, REQUEST, ACK = 1, 2, 3, 5
BOOTP_MIN = 240  # the fixed BOOTP fields and the magic cookie
MAGIC_COOKIE = b"\x63\x82\x53\x63"
VLAN_TPIDS = (0x8100, 0x88A8)
SERVER_PORT, CLIENT_PORT = 67, 68


@dataclass(frozen=True)
class DhcpFrame:
    kind: int  # option 53, the DHCP message type
    xid: int
    client_mac: str  # chaddr, "aa:bb:..."
    vlan: int  # the outermost 802.1Q tag (0: untagged)
    source_ip: str
    offered_ip: str  # yiaddr


def _message_type(options: bytes) -> int | None:
    at = 0
    while at < len(options):
        code = options[at]
        if code == 255:
            return None
        if code == 0:
            at += 1
            continue
        if at + 1 >= len(options):
            return None
        size = options[at + 1]
        if code == 53 and size >= 1 and at + 2 < len(options):
            return options[at + 2]
        at += 2 + size
    return None


def parse(frame: bytes, vlan: int = 0) -> DhcpFrame | None:
    """The DHCP message in an Ethernet frame, or None. `vlan`: a tag the kernel already took out of the frame
    (packet auxdata), since on a veth the 802.1Q header travels as metadata, not in the bytes."""
    if len(frame) < 14:
        return None
    ethertype, at = struct.unpack_from("!H", frame, 12)[0], 14
    while ethertype in VLAN_TPIDS and len(frame) >= at + 4:
        tci, ethertype = struct.unpack_from("!HH", frame, at)
        vlan = vlan or tci & 0x0FFF
        at += 4
    if ethertype != 0x0800 or len(frame) < at + 20:
        return None
    ihl = (frame[at] & 0x0F) * 4
    flags_fragment = struct.unpack_from("!H", frame, at + 6)[0]
    if frame[at + 9] != 17 or flags_fragment & 0x1FFF or ihl < 20:  # UDP, first fragment only
        return None
    source_ip = str(ipaddress.IPv4Address(frame[at + 12 : at + 16]))
    udp = at + ihl
    if len(frame) < udp + 8 + BOOTP_MIN:
        return None
    sport, dport = struct.unpack_from("!HH", frame, udp)
    if dport not in (SERVER_PORT, CLIENT_PORT) or sport not in (SERVER_PORT, CLIENT_PORT):
        return None
    bootp = frame[udp + 8 :]
    if bootp[236:240] != MAGIC_COOKIE or bootp[2] != 6:  # htype Ethernet, 6-byte addresses
        return None
    kind = _message_type(bootp[240:])
    if kind is None:
        return None
    return DhcpFrame(
        kind=kind,
        xid=struct.unpack_from("!I", bootp, 4)[0],
        client_mac=bootp[28:34].hex(":"),
        vlan=vlan,
        source_ip=source_ip,
        offered_ip=str(ipaddress.IPv4Address(bootp[16:20])),
    )


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def discover(mac: str, xid: int) -> bytes:
    """A broadcast DISCOVER from `mac` (broadcast flag set, asking for mask, router, DNS and MTU), as a client
    with no address sends it: 0.0.0.0:68 -> 255.255.255.255:67."""
    chaddr = bytes.fromhex(mac.replace(":", ""))
    options = bytes([53, 1, DISCOVER, 55, 4, 1, 3, 6, 26, 255])
    bootp = (
        struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000)
        + bytes(16)  # ciaddr, yiaddr, siaddr, giaddr
        + chaddr
        + bytes(10 + 64 + 128)  # chaddr padding, sname, file
        + MAGIC_COOKIE
        + options
    )
    bootp += bytes(max(0, 300 - len(bootp)))  # the BOOTP minimum some servers expect
    src, dst = bytes(4), b"\xff" * 4
    udp_len = 8 + len(bootp)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp_sum = _checksum(pseudo + struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, udp_len, 0) + bootp) or 0xFFFF
    udp = struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, udp_len, udp_sum) + bootp
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), xid & 0xFFFF, 0, 64, 17, 0, src, dst)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return b"\xff" * 6 + chaddr + b"\x08\x00" + header + udp
