"""dhcp-watch offline: the frames (against scapy's reading of the same bytes), when an exchange is complete,
what port-check asks each node to watch, and how an unwatchable DHCP port reaches the verdict."""

from __future__ import annotations

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from steth.agent import dhcp_frames
from steth.agent.dhcp_sniff import Watch
from steth.controller.diagnosis import FAIL, NOT_RUN, SKIPPED, Diagnosis
from steth.controller.diagnosis_port import PortContext, dhcp_port_unobserved, dhcp_watch_calls, path_hops, plan
from steth.controller.gather import Gathered, NodeResult
from steth.controller.inventory import Network, Port
from steth.schemas.envelope import Status
from steth.schemas.probes.dhcp_watch import DhcpHop, DhcpWatchParams

MAC = "fa:16:3e:88:64:45"
SERVER_MAC = "fa:16:3e:00:00:02"


def offer(xid: int, vlan: int | None = None, mac: str = MAC) -> bytes:
    chaddr = bytes.fromhex(mac.replace(":", "")) + bytes(10)
    eth = Ether(src=SERVER_MAC, dst="ff:ff:ff:ff:ff:ff")
    frame = (
        (eth / Dot1Q(vlan=vlan) if vlan is not None else eth)
        / IP(src="10.20.0.2", dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, chaddr=chaddr, xid=xid, yiaddr="10.20.0.11")
        / DHCP(options=[("message-type", "offer"), ("server_id", "10.20.0.2"), "end"])
    )
    return bytes(frame)


def test_a_discover_we_build_is_what_scapy_reads():
    raw = dhcp_frames.discover(MAC, 0x12345678)
    pkt = Ether(raw)
    assert pkt.src == MAC and pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert pkt[IP].src == "0.0.0.0" and pkt[IP].dst == "255.255.255.255"
    assert (pkt[UDP].sport, pkt[UDP].dport) == (68, 67)
    assert pkt[BOOTP].xid == 0x12345678 and bytes(pkt[BOOTP].chaddr[:6]).hex(":") == MAC
    assert ("message-type", 1) in pkt[DHCP].options
    # Both checksums as scapy computes them from scratch.
    again = Ether(raw)
    del again[IP].chksum, again[UDP].chksum
    rebuilt = Ether(bytes(again))
    assert (rebuilt[IP].chksum, rebuilt[UDP].chksum) == (pkt[IP].chksum, pkt[UDP].chksum)


def test_parse_reads_both_directions_and_the_tag_in_the_frame_or_beside_it():
    mine = dhcp_frames.parse(dhcp_frames.discover(MAC, 7))
    assert (mine.kind, mine.xid, mine.client_mac, mine.vlan) == (dhcp_frames.DISCOVER, 7, MAC, 0)
    tagged = dhcp_frames.parse(offer(9, vlan=101))
    assert (tagged.kind, tagged.xid, tagged.vlan, tagged.source_ip, tagged.offered_ip) == (
        dhcp_frames.OFFER,
        9,
        101,
        "10.20.0.2",
        "10.20.0.11",
    )
    assert dhcp_frames.parse(offer(9), vlan=101).vlan == 101  # a veth: the kernel's auxdata carries the tag


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        bytes(Ether() / IP() / UDP(sport=53, dport=53) / (b"x" * 300)),
        bytes(Ether() / IP(frag=3) / UDP(sport=67, dport=68) / (b"x" * 300)),
        bytes(Ether(type=0x0806) / (b"x" * 60)),
        offer(1)[:100],  # truncated
    ],
)
def test_parse_ignores_what_is_not_a_dhcp_message(frame):
    assert dhcp_frames.parse(frame) is None


def watch(listen: list[str], xid: int = 0, offer_only=()) -> Watch:
    w = Watch({"mac": MAC, "match_xid": xid, "offer_only": list(offer_only)})
    for iface in listen:
        w.add_hop(iface, "", "", "", True)
    return w


def test_complete_needs_the_discover_and_its_offer_at_every_listener():
    w = watch(["qvo", "trunk0"], xid=5)
    w.frame("qvo", dhcp_frames.discover(MAC, 5), 0)
    w.frame("trunk0", dhcp_frames.discover(MAC, 5), 0)
    w.frame("trunk0", offer(5, vlan=101), 0)
    assert not w.complete(["qvo", "trunk0"])  # the OFFER has not come back to qvo yet
    w.frame("qvo", offer(5), 0)
    assert w.complete(["qvo", "trunk0"])
    assert w.hops["trunk0"]["vlans"] == [0, 101]


def test_complete_matches_one_xid_and_ignores_others():
    w = watch(["tap"], xid=5)
    w.frame("tap", dhcp_frames.discover(MAC, 6), 0)
    w.frame("tap", offer(6), 0)
    assert not w.complete(["tap"]) and w.hops["tap"]["offer"] == 0
    listening = watch(["tap", "uplink"])  # no xid given: any one exchange, but the same one everywhere
    listening.frame("tap", dhcp_frames.discover(MAC, 1), 0)
    listening.frame("tap", offer(1), 0)
    listening.frame("uplink", dhcp_frames.discover(MAC, 2), 0)
    listening.frame("uplink", offer(2), 0)
    assert not listening.complete(["tap", "uplink"])
    listening.frame("uplink", dhcp_frames.discover(MAC, 1), 0)
    listening.frame("uplink", offer(1), 0)
    assert listening.complete(["tap", "uplink"])


def test_behind_the_injection_point_only_the_offer_counts_and_another_mac_never():
    w = watch(["tap", "qvb"], xid=3, offer_only=["tap"])
    w.frame("qvb", dhcp_frames.discover(MAC, 3), 0)
    w.frame("qvb", offer(3), 0)
    w.frame("tap", offer(3, mac="fa:16:3e:00:00:99"), 0)
    assert not w.complete(["tap", "qvb"])
    w.frame("tap", offer(3), 0)
    assert w.complete(["tap", "qvb"])
    assert not watch([]).complete([])  # nothing listening is never complete


PORT_ID = "886445c6-481b-5775-8db3-55f43e2cf28d"
DHCP_PORT_ID = "8400f8c5-880b-5d61-9968-04438543b606"
NET_ID = "2909d600-a388-57a1-bc23-3e6d58b3cab4"


def context(hybrid: bool, dhcp_hosts=("network-1",)) -> PortContext:
    port = Port(PORT_ID, MAC, NET_ID, [("s", "10.20.0.11")], "compute-1", vif_details={"ovs_hybrid_plug": hybrid})
    dport = Port(DHCP_PORT_ID, SERVER_MAC, NET_ID, [("s", "10.20.0.2")], "network-1", device_owner="network:dhcp")
    net = Network(NET_ID, "private", "vlan", "physnet1", 101, 1500)
    return PortContext(
        port,
        net,
        [],
        [(h, True) for h in dhcp_hosts],
        {"network-1": dport},
        [],
        {"compute-1": "br-phys", "network-1": "br-phys"},
    )


@pytest.mark.parametrize(
    "hybrid,inject,offer_only",
    [
        (True, "send", ["tap886445c6-48", "qbr886445c6-48"]),
        (False, "ovs", ["tap886445c6-48"]),
    ],
)
def test_every_node_follows_one_xid_and_the_dhcp_port_is_looked_for_in_qdhcp(hybrid, inject, offer_only):
    calls = dhcp_watch_calls(context(hybrid), 5.0, True)
    compute, dhcp = calls["compute-1"], calls["network-1"]
    assert compute["xid"] == dhcp["xid"] != 0
    assert (compute["inject"], compute["offer_only"]) == (inject, offer_only)
    assert compute["finish_early"] and dhcp["finish_early"]
    assert dhcp["interfaces"] == ["tap8400f8c5-88"] and dhcp["netns"] == f"qdhcp-{NET_ID}"
    assert "inject" not in dhcp and "netns" not in compute
    for args in calls.values():
        DhcpWatchParams.model_validate(args)  # what plan() sends must pass the probe's own checks
    listen_only = dhcp_watch_calls(context(hybrid), 5.0, False, finish_early=False)
    assert listen_only["network-1"]["xid"] == 0 and not listen_only["compute-1"]["finish_early"]
    assert plan(context(hybrid), 5.0, True).dhcp_watch["network-1"].netns == f"qdhcp-{NET_ID}"


def hop(**kw) -> DhcpHop:
    return DhcpHop(interface="tap8400f8c5-88", **kw)


def test_an_unwatchable_dhcp_port_is_a_finding_or_incomplete_never_skipped():
    ctx = context(True)
    assert not dhcp_port_unobserved(Diagnosis("t", {}), ctx, "network-1", "DISCOVER at x", hop())
    missing = Diagnosis("t", {})
    assert dhcp_port_unobserved(missing, ctx, "network-1", "DISCOVER at DHCP port tap8400f8c5-88", hop(exists=False))
    assert missing.hops[0].status == FAIL and f"qdhcp-{NET_ID}" in missing.hops[0].detail
    assert "has not plugged its port" in missing.verdict()["cause"]
    # said once: the OFFER at the same port adds nothing
    assert dhcp_port_unobserved(missing, ctx, "network-1", "OFFER at DHCP port tap8400f8c5-88", hop(exists=False))
    assert len(missing.hops) == 1
    down = Diagnosis("t", {})
    dhcp_port_unobserved(down, ctx, "network-1", "DISCOVER at y", hop(error="interface is down", netns="qdhcp-x"))
    assert down.hops[0].status == FAIL and down.hops[0].detail == "tap8400f8c5-88 is down in qdhcp-x"
    blind = Diagnosis("t", {})
    dhcp_port_unobserved(blind, ctx, "network-1", "DISCOVER at z", hop(error="cannot listen in qdhcp-x: denied"))
    assert blind.hops[0].status == NOT_RUN
    verdict = blind.verdict()
    assert verdict["status"] == "incomplete" and "server side of the path is untested" in verdict["cause"]


def watched(node: str, hops: list[dict], **result) -> NodeResult:
    return NodeResult(node, Status.OK, "", 0.5, {"mac": MAC, "hops": hops, **result})


def test_a_dhcp_host_that_began_listening_too_late_leaves_the_verdict_incomplete():
    ctx = context(False)
    seen = {"discover": 1, "offer": 1}
    compute = watched(
        "compute-1",
        [{"interface": "tap886445c6-48", "offer": 1}, {"interface": "trunk0", "role": "uplink", **seen}],
        injected=1,
        xid=7,
        listening_since=100.0,
        last_injected_at=100.5,
    )
    late = watched(
        "network-1",
        [{"interface": "tap8400f8c5-88", "netns": f"qdhcp-{NET_ID}"}, {"interface": "trunk0", "role": "uplink"}],
        listening_since=101.0,
    )
    diag = Diagnosis("port-check", {})
    path_hops(diag, ctx, Gathered("dhcp-watch", "r", 1.0, None, [compute, late]), None, {})
    port_hops = [h for h in diag.hops if "DHCP port" in h.check]
    assert [h.status for h in port_hops] == [NOT_RUN, NOT_RUN]
    assert "server side went untested" in port_hops[0].cause
    uplink = next(h for h in diag.hops if h.node == "network-1" and h.check == "DISCOVER at uplink trunk0")
    assert uplink.status == SKIPPED  # silence on a late uplink proves nothing, and is no verdict of its own
    assert diag.verdict()["status"] == "incomplete"
