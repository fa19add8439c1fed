"""Raw packet sockets for the agent's stdlib-only children (dhcp-watch, vlan-check): open one on an
interface, read the VLAN a frame carried, count the kernel's drops. No scapy: a child starts in tens of ms.

On a veth (and most NICs) the kernel moves a received frame's 802.1Q tag into metadata: it comes back as
PACKET_AUXDATA (struct tpacket_auxdata, linux/if_packet.h), not in the frame's bytes.
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct

ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_AUXDATA, PACKET_STATISTICS = 263, 8, 6
TP_STATUS_VLAN_VALID = 0x10
AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
ANCILLARY_SIZE = socket.CMSG_SPACE(AUXDATA.size)
SIOCGIFFLAGS, IFF_UP = 0x8913, 0x1
SO_RCVBUFFORCE = 33
RCVBUF_BYTES = 4 << 20


def open_packet_socket(iface: str, rcvbuf: int = RCVBUF_BYTES) -> socket.socket:
    """A packet socket on `iface` in the current namespace; OSError(ENODEV) when there is no such interface,
    ENETDOWN when it is down (a packet socket on a down interface sees nothing)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.bind((iface, ETH_P_ALL))
        flags = struct.unpack_from(
            "16sH", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16sH", iface.encode(), 0)), 0
        )[1]
        if not flags & IFF_UP:
            raise OSError(errno.ENETDOWN, "interface is down")
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:  # without CAP_NET_ADMIN: up to rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


def vlan_from(ancillary) -> int:
    """The VLAN the kernel took off a received frame (0: untagged, or the tag is still in the bytes)."""
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUXDATA.size:
            status, _, _, _, _, tci, _ = AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID:
                return tci & 0x0FFF
    return 0


def drops(sock: socket.socket) -> int | None:
    """Frames the kernel dropped because the socket's buffer was full (since the last read)."""
    try:
        return struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]
    except OSError:
        return None
