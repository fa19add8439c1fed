"""vlan-check's child: frames it sends and how it reads them back, with the tag in the bytes or in metadata."""

from __future__ import annotations

import struct

from steth.agent.vlan_sniff import ETH, VLAN_ETHERTYPE, Seen, parse, tagged_frame

MAC = "02:00:00:00:00:01"


def test_a_tagged_frame_reads_back_with_its_vlan_and_payload():
    frame = tagged_frame(MAC, 101, b"STETH1 ab12 101 compute-1")
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == bytes.fromhex("020000000001")
    assert struct.unpack_from("!HHH", frame, 12) == (0x8100, 101, VLAN_ETHERTYPE)
    assert parse(frame, 0) == (101, b"STETH1 ab12 101 compute-1")


def test_the_kernel_took_the_tag_off_into_metadata():
    """What a veth delivers: the 802.1Q header gone from the bytes, the VLAN in PACKET_AUXDATA."""
    untagged = ETH.pack(b"\xff" * 6, bytes(6), VLAN_ETHERTYPE) + b"STETH1 ab12 101 compute-1"
    assert parse(untagged, 101) == (101, b"STETH1 ab12 101 compute-1")
    assert parse(untagged, 0) == (0, b"STETH1 ab12 101 compute-1")  # arrived untagged
    ipv4 = ETH.pack(b"\xff" * 6, bytes(6), 0x0800) + bytes(20)
    assert parse(ipv4, 0) is None and parse(b"short", 0) is None


def test_seen_counts_this_requests_frames_from_peers_only():
    seen = Seen("ab12", "compute-1")
    peer = tagged_frame(MAC, 101, b"STETH1 ab12 101 compute-2" + b"\0" * 8)  # padded by a NIC
    seen.frame(peer, 0)
    seen.frame(peer, 0)
    seen.frame(tagged_frame(MAC, 102, b"STETH1 ab12 101 compute-2"), 0)  # tag rewritten on the way
    seen.frame(tagged_frame(MAC, 101, b"STETH1 ab12 101 compute-1"), 0)  # our own, seen leaving
    seen.frame(tagged_frame(MAC, 101, b"STETH1 ffff 101 compute-2"), 0)  # another request
    seen.frame(tagged_frame(MAC, 101, b"STETH1 ab12 x compute-2"), 0)  # garbage
    assert seen.rows() == [
        {"vlan": 101, "meant_vlan": 101, "sender": "compute-2", "frames": 2},
        {"vlan": 102, "meant_vlan": 101, "sender": "compute-2", "frames": 1},
    ]
