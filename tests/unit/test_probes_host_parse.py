"""Parsers and pure logic of the host probes (interface, netns, address, tcp-check, arping, mtu), fed with tool
output captured on this kind of machine (Debian 12, iproute2 6.1, iputils 20221126, Habets arping 2.23, iputils
arping 20221126 extracted from its .deb), copied here verbatim unless a comment says otherwise."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from pydantic import ValidationError

from steth.agent.probes import ProbeContext
from steth.agent.probes import arping as arping_probe
from steth.agent.probes import mtu as mtu_probe
from steth.agent.probes.address import find_holdings
from steth.agent.probes.interface import parse_links
from steth.agent.probes.netns import entry, parse_netns_addrs, select
from steth.agent.tools import tcpconnect
from steth.agent.tools.iproute import ip_argv, parse_netns_list
from steth.schemas.envelope import Status
from steth.schemas.probes.address import AddressParams
from steth.schemas.probes.arping import ArpingParams
from steth.schemas.probes.interface import InterfaceParams
from steth.schemas.probes.mtu import MtuParams
from steth.schemas.probes.netns import NetnsParams, classify
from steth.schemas.probes.tcp_check import TcpCheckParams
from steth.schemas.types import split_host_port

# --- iproute2: `ip -j -s -d addr show dev X` -------------------------------------------------------------

# Inside a lab node: `ip netns exec h3-compute-1 ip -j -s -d addr show dev data0`
ADDR_DATA0 = '[{"ifindex":3,"link_index":94,"ifname":"data0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"e6:54:47:34:d6:83","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},"num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536,"addr_info":[{"family":"inet","local":"10.86.0.11","prefixlen":24,"scope":"global","label":"data0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::e454:47ff:fe34:d683","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}],"stats64":{"rx":{"bytes":107890,"packets":144,"errors":0,"dropped":0,"over_errors":0,"multicast":0},"tx":{"bytes":168752,"packets":149,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}}]'
# The host end of that veth, a port of the lab's fabric bridge: `ip -j -s -d addr show dev h3f1`
ADDR_BRIDGE_PORT = '[{"ifindex":94,"link_index":3,"ifname":"h3f1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","master":"h3fab","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"1e:85:2d:ea:59:26","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":3,"promiscuity":1,"allmulti":1,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"state":"forwarding","priority":32,"cost":2,"hairpin":false,"guard":false,"root_block":false,"fastleave":false,"learning":true,"flood":true,"id":"0x8001","no":"0x1","designated_port":32769,"designated_cost":0,"bridge_id":"8000.1e:85:2d:ea:59:26","root_id":"8000.1e:85:2d:ea:59:26","hold_timer":0.00,"message_age_timer":0.00,"forward_delay_timer":0.00,"topology_change_ack":0,"config_pending":0,"proxy_arp":false,"proxy_arp_wifi":false,"multicast_router":1,"mcast_flood":true,"bcast_flood":true,"mcast_to_unicast":false,"neigh_suppress":false,"group_fwd_mask":"0","group_fwd_mask_str":"0x0","vlan_tunnel":false,"isolated":false,"locked":false}},"num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536,"addr_info":[{"family":"inet6","local":"fe80::1c85:2dff:feea:5926","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}],"stats64":{"rx":{"bytes":168752,"packets":149,"errors":0,"dropped":0,"over_errors":0,"multicast":0},"tx":{"bytes":107890,"packets":144,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}}]'
# A veth whose peer is down: admin up, no carrier.
ADDR_NO_CARRIER = '[{"ifindex":3,"link":"vB","ifname":"vA","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP","M-DOWN"],"mtu":1500,"qdisc":"noqueue","operstate":"LOWERLAYERDOWN","group":"default","txqlen":1000,"link_type":"ether","address":"a2:87:6d:98:40:9b","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},"num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536,"addr_info":[],"stats64":{"rx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"over_errors":0,"multicast":0},"tx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}}]'
ADDR_LO = '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","promiscuity":0,"allmulti":0,"min_mtu":0,"max_mtu":0,"num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536,"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}],"stats64":{"rx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"over_errors":0,"multicast":0},"tx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}}]'


def test_interface_veth_with_addresses_and_counters():
    (link,) = parse_links(json.loads(ADDR_DATA0))
    assert (link.name, link.index, link.kind, link.link_type) == ("data0", 3, "veth", "ether")
    assert (link.admin_state, link.oper_state, link.carrier, link.mtu_bytes) == ("up", "up", True, 1500)
    assert link.mac == "e6:54:47:34:d6:83"
    assert link.ipv4 == ["10.86.0.11/24"] and link.ipv6 == ["fe80::e454:47ff:fe34:d683/64"]
    assert (link.rx_packets, link.rx_bytes, link.rx_errors, link.rx_dropped) == (144, 107890, 0, 0)
    assert (link.tx_packets, link.tx_bytes, link.tx_errors, link.tx_dropped) == (149, 168752, 0, 0)
    assert link.master == "" and link.vlan_id is None


def test_interface_bridge_port_names_its_master():
    (link,) = parse_links(json.loads(ADDR_BRIDGE_PORT))
    assert link.master == "h3fab" and link.ipv4 == [] and link.ipv6 == ["fe80::1c85:2dff:feea:5926/64"]


def test_interface_admin_up_without_carrier():
    (link,) = parse_links(json.loads(ADDR_NO_CARRIER))
    assert (link.admin_state, link.oper_state, link.carrier) == ("up", "lowerlayerdown", False)
    assert link.parent == "vB"  # a veth's peer in the same namespace


def test_interface_vlan_details():
    # NOT captured: this kernel has no 802.1Q. The data0 entry with the linkinfo iproute2 prints for a VLAN
    # link (ip/iplink_vlan.c: "protocol", "id", "flags") and the parent in "link".
    data = json.loads(ADDR_DATA0)
    data[0].update(
        ifname="data0.100",
        link="data0",
        linkinfo={"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 100, "flags": ["REORDER_HDR"]}},
    )
    (link,) = parse_links(data)
    assert (link.kind, link.vlan_id, link.vlan_protocol, link.parent) == ("vlan", 100, "802.1Q", "data0")


def test_interface_params_refuse_option_like_names():
    for bad in ("-x", "--help", "eth0;reboot", "a" * 16, "eth 0"):
        with pytest.raises(ValidationError):
            InterfaceParams(interface=bad)
    with pytest.raises(ValidationError):
        InterfaceParams(netns="-n")


def test_ip_argv_enters_the_namespace_with_nsenter():
    # Not `ip -n`: it unshares a mount namespace, which the unit's RestrictNamespaces=net refuses.
    assert ip_argv(["addr", "show"], "qdhcp-1") == ["nsenter", "--net=/run/netns/qdhcp-1", "ip", "-j", "addr", "show"]
    assert ip_argv(["netns", "list"]) == ["ip", "-j", "netns", "list"]


# --- namespaces ----------------------------------------------------------------------------------------

NETNS_LIST = '[{"name":"h5-compute-2","id":7},{"name":"h4o-network-1","id":2},{"name":"h5-network-1","id":8},{"name":"h3-compute-2","id":4},{"name":"h4o-fabric-sw"},{"name":"h3-network-1","id":5},{"name":"h5-compute-1","id":6},{"name":"h4o-compute-2","id":1},{"name":"h4o-compute-1","id":0},{"name":"h3-compute-1","id":3}]'


def test_netns_list_with_and_without_ids():
    names = parse_netns_list(json.loads(NETNS_LIST))
    assert ("h4o-fabric-sw", None) in names and ("h3-compute-1", 3) in names and len(names) == 10
    assert parse_netns_list([]) == []


@pytest.mark.parametrize(
    "name,kind,ident",
    [
        ("qdhcp-8a2f6a4e-1c1b-4bde-9a51-0c1c2b3d4e5f", "qdhcp", "8a2f6a4e-1c1b-4bde-9a51-0c1c2b3d4e5f"),
        ("qrouter-5f1c", "qrouter", "5f1c"),
        ("snat-5f1c", "snat", "5f1c"),
        ("fip-77aa", "fip", "77aa"),
        ("ovnmeta-0b9e", "ovnmeta", "0b9e"),
        ("qdhcp-", "other", ""),
        ("h3-compute-1", "other", ""),
        ("qdhcpx-1", "other", ""),
    ],
)
def test_netns_classify(name, kind, ident):
    assert classify(name) == (kind, ident)


def test_netns_entry_summarises_without_loopback_and_ipv6_link_local():
    ifaces = parse_netns_addrs(json.loads(ADDR_LO) + json.loads(ADDR_DATA0))
    row = entry("qdhcp-abc", 3, ifaces)
    assert row.kind == "qdhcp" and row.neutron_id == "abc" and row.nsid == 3
    assert row.interface_names == ["data0"]
    assert row.addresses == ["data0:10.86.0.11/24"]
    assert [i.name for i in row.interfaces] == ["lo", "data0"]  # all of them in JSON


def test_netns_keeps_ipv4_link_local_metadata_address():
    data = json.loads(ADDR_DATA0)
    data[0]["addr_info"].append({"family": "inet", "local": "169.254.169.254", "prefixlen": 32})
    assert "data0:169.254.169.254/32" in entry("ovnmeta-1", None, parse_netns_addrs(data)).addresses


def test_netns_select_by_prefix_and_kind():
    names = [("qdhcp-1", 1), ("qrouter-2", 2), ("other", None), ("qdhcp-3", None)]
    assert select(names, NetnsParams(prefix="qdhcp-")) == [("qdhcp-1", 1), ("qdhcp-3", None)]
    assert select(names, NetnsParams(kind="other")) == [("other", None)]
    with pytest.raises(ValidationError):
        NetnsParams(kind="evil")
    with pytest.raises(ValidationError):
        NetnsParams(max_namespaces=1_000_000)


# --- address -------------------------------------------------------------------------------------------


def test_address_holdings_match_normalised_spellings():
    data = json.loads(ADDR_LO) + json.loads(ADDR_DATA0)
    params = AddressParams(addresses=["10.86.0.11", "FE80:0::E454:47ff:fe34:d683", "10.86.0.99"])
    found = find_holdings(data, set(params.addresses), "qdhcp-x")
    assert [(h.address, h.interface, h.prefixlen, h.netns) for h in found] == [
        ("10.86.0.11", "data0", 24, "qdhcp-x"),
        ("fe80::e454:47ff:fe34:d683", "data0", 64, "qdhcp-x"),
    ]


def test_address_params_bounds():
    with pytest.raises(ValidationError):
        AddressParams(addresses=["10.0.0.1;reboot"])
    with pytest.raises(ValidationError):
        AddressParams(addresses=[])
    with pytest.raises(ValidationError):
        AddressParams(addresses=["10.0.0.1"], netns="x", all_netns=True)


def test_address_check_verdicts():
    from steth.controller.commands.address import holders
    from steth.controller.gather import Gathered, NodeResult

    def node(name, *held, status=Status.OK):
        return NodeResult(
            name, status, result={"holdings": [dict(address=a, interface=i, netns=ns) for a, i, ns in held]}
        )

    g = Gathered(
        "address",
        "r",
        0.1,
        {"a", "b", "c"},
        [
            node("a", ("10.0.0.1", "eth0", ""), ("10.0.0.2", "eth0", ""), ("192.168.0.1", "tap1", "qdhcp-1")),
            node("b", ("10.0.0.2", "eth1", ""), ("192.168.0.1", "tap2", "qdhcp-2")),
            node("c"),
        ],
    )
    report = {r["address"]: r for r in holders(g, ["10.0.0.1", "10.0.0.2", "192.168.0.1", "10.0.0.9"])}
    assert report["10.0.0.1"]["verdict"] == "held"
    assert report["10.0.0.2"]["verdict"] == "duplicate" and report["10.0.0.2"]["duplicate_in"] == ["(node)"]
    assert report["192.168.0.1"]["verdict"] == "held"  # different namespaces: overlapping tenant subnets
    assert report["10.0.0.9"]["verdict"] == "not held"
    g.nodes[2] = NodeResult("c", Status.NO_REPLY)
    assert {r["address"]: r["verdict"] for r in holders(g, ["10.0.0.9"])} == {"10.0.0.9": "unknown"}


# --- tcp-check -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ("10.0.0.1:5672", ("10.0.0.1", 5672)),
        ("rabbit.example.org:5671", ("rabbit.example.org", 5671)),
        ("[fd00::1]:3306", ("fd00::1", 3306)),
        ("controller:1", ("controller", 1)),
    ],
)
def test_host_port_good(value, expected):
    assert split_host_port(value) == expected
    assert TcpCheckParams(targets=[value]).targets == [value]


@pytest.mark.parametrize(
    "value",
    [
        "10.0.0.1:80;reboot",
        "$(touch /tmp/x):80",
        "`id`:22",
        "-x:80",
        "10.0.0.1:0",
        "10.0.0.1:65536",
        "10.0.0.1",
        "fd00::1:80",
        "[fd00::1]",
        "host name:80",
        "a|b:80",
        "10.0.0.1:80 ",
        "-h:1",
        ":80",
    ],
)
def test_host_port_bad(value):
    with pytest.raises(ValidationError):
        TcpCheckParams(targets=[value])


def test_tcp_params_bounds():
    with pytest.raises(ValidationError):
        TcpCheckParams(targets=["10.0.0.1:80"] * 65)
    with pytest.raises(ValidationError):
        TcpCheckParams(targets=["10.0.0.1:80"], connect_timeout_s=1000)


def test_tcpconnect_split_and_errors():
    assert tcpconnect.split("[fd00::1]:22") == ("fd00::1", 22) and tcpconnect.split("h:1") == ("h", 1)
    assert tcpconnect.describe(ConnectionRefusedError(111, "x"), 3) == "refused"
    assert tcpconnect.describe(TimeoutError(), 0.5) == "timeout after 0.5 s"
    assert tcpconnect.describe(OSError(113, "No route to host"), 3) == "no route to host"


def test_tcpconnect_real_loopback_open_and_refused():
    async def go():
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await tcpconnect.check_all([f"127.0.0.1:{port}", "127.0.0.1:1"], 2.0)
        finally:
            server.close()

    opened, refused = asyncio.run(go())
    assert opened["connected"] and 0 < opened["connect_ms"] < 1000 and opened["address"] == "127.0.0.1"
    assert not refused["connected"] and refused["error"] == "refused" and refused["connect_ms"] is None


def test_tcpconnect_helper_refuses_bad_usage():
    assert tcpconnect.main(["10.0.0.1:80"]) == 2


# --- arping --------------------------------------------------------------------------------------------

# iputils arping 20221126: `arping -c 3 -w 4 -I data0 10.86.0.12` (2 answered before a 2 s deadline here)
IPUTILS_REPLY = """ARPING 10.86.0.12 from 10.86.0.11 data0
Unicast reply from 10.86.0.12 [9A:21:B2:E5:27:29]  0.573ms
Unicast reply from 10.86.0.12 [9A:21:B2:E5:27:29]  0.551ms
Sent 3 probes (1 broadcast(s))
Received 2 response(s)
"""
IPUTILS_NONE = """ARPING 10.86.0.250 from 10.86.0.11 data0
Sent 2 probes (2 broadcast(s))
Received 0 response(s)
"""
IPUTILS_NO_DEVICE = "/tmp/h3-iputils/root/usr/bin/arping: Device nosuch not available.\n"
IPUTILS_VERSION = (
    "arping from iputils 20221126\nlibcap: yes, IDN: yes, NLS: no, error.h: yes, getrandom(): yes, __fpending(): yes\n"
)
# Habets arping 2.23: `arping -c 3 -W 1 -w 4 -i data0 10.86.0.12`
HABETS_REPLY = """ARPING 10.86.0.12
42 bytes from 9a:21:b2:e5:27:29 (10.86.0.12): index=0 time=9.775 usec
42 bytes from 9a:21:b2:e5:27:29 (10.86.0.12): index=1 time=6.540 usec
42 bytes from 9a:21:b2:e5:27:29 (10.86.0.12): index=2 time=5.939 usec

--- 10.86.0.12 statistics ---
3 packets transmitted, 3 packets received,   0% unanswered (0 extra)
rtt min/avg/max/std-dev = 0.006/0.007/0.010/0.002 ms
"""
HABETS_NONE = """ARPING 10.86.0.250
Timeout
Timeout

--- 10.86.0.250 statistics ---
2 packets transmitted, 0 packets received, 100% unanswered (0 extra)

"""
HABETS_NO_DEVICE = "arping: libnet_init(LIBNET_LINK, nosuch): libnet_check_iface() ioctl: No such device\n"
HABETS_VERSION = "arping: option requires an argument -- 'V'\nARPing 2.23, by Thomas Habets <thomas@habets.se>\nusage: arping [ -0aAbdDeFpPqrRuUvzZ ] [ -w <sec> ] [ -W <sec> ] [ -S <host/ip> ]\n"


def _p(target="10.86.0.12", count=3):
    return ArpingParams(target=target, interface="data0", count=count)


def test_arping_variant_detection():
    assert arping_probe.detect_variant(IPUTILS_VERSION) == "iputils"
    assert arping_probe.detect_variant(HABETS_VERSION) == "habets"
    assert arping_probe.detect_variant("busybox arping") is None


def test_arping_argv_per_variant():
    assert arping_probe.arping_argv("iputils", _p()) == ["arping", "-c", "3", "-w", "4", "-I", "data0", "10.86.0.12"]
    assert arping_probe.arping_argv("habets", _p()) == [
        "arping",
        "-c",
        "3",
        "-W",
        "1",
        "-w",
        "4",
        "-i",
        "data0",
        "10.86.0.12",
    ]


def test_arping_iputils_parse():
    row = arping_probe.parse_arping("iputils", _p(), IPUTILS_REPLY, "", 1)
    assert (row.sent, row.received, row.macs, row.rtt_avg_ms, row.error) == (3, 2, ["9a:21:b2:e5:27:29"], 0.562, "")
    none = arping_probe.parse_arping("iputils", _p("10.86.0.250", 2), IPUTILS_NONE, "", 1)
    assert (none.sent, none.received, none.macs, none.error) == (2, 0, [], "")
    broken = arping_probe.parse_arping("iputils", _p(), "", IPUTILS_NO_DEVICE, 2)
    assert broken.sent == 0 and "Device nosuch not available" in broken.error


def test_arping_habets_parse():
    row = arping_probe.parse_arping("habets", _p(), HABETS_REPLY, "", 0)
    assert (row.sent, row.received, row.macs) == (3, 3, ["9a:21:b2:e5:27:29"])
    assert row.rtt_avg_ms == pytest.approx(0.0074, abs=1e-3)  # usec converted to ms
    none = arping_probe.parse_arping("habets", _p("10.86.0.250", 2), HABETS_NONE, "", 1)
    assert (none.sent, none.received, none.macs, none.error) == (2, 0, [], "")
    broken = arping_probe.parse_arping("habets", _p(), "", HABETS_NO_DEVICE, 1)
    assert broken.sent == 0 and "No such device" in broken.error


def test_arping_two_macs_is_a_conflict():
    # The captured reply with a second (made-up) answering MAC added: what an address conflict looks like.
    doubled = HABETS_REPLY.replace(
        "from 9a:21:b2:e5:27:29 (10.86.0.12): index=2", "from 02:00:00:00:00:01 (10.86.0.12): index=2"
    )
    row = arping_probe.parse_arping("habets", _p(), doubled, "", 0)
    assert row.macs == ["9a:21:b2:e5:27:29", "02:00:00:00:00:01"]


def test_arping_params_bounds():
    for bad in (
        dict(count=1_000_000),
        dict(interface="-x"),
        dict(target="fd00::1"),
        dict(target="10.0.0.1 -x"),
        dict(netns="-n"),
    ):
        with pytest.raises(ValidationError):
            ArpingParams(**{"target": "10.0.0.1", "interface": "data0", **bad})
    with pytest.raises(ValidationError):
        ArpingParams(target="10.0.0.1")  # the interface is required


# --- mtu -----------------------------------------------------------------------------------------------

# `ping -n -c 1 -W 1 -M do -s 1372 10.86.0.12` with the peer's data0 at MTU 1400
PING_PASS = """PING 10.86.0.12 (10.86.0.12) 1372(1400) bytes of data.

--- 10.86.0.12 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.232/0.232/0.232/0.000 ms
"""
PING_LOST = """PING 10.86.0.12 (10.86.0.12) 1472(1500) bytes of data.

--- 10.86.0.12 ping statistics ---
1 packets transmitted, 0 received, 100% packet loss, time 0ms

"""
# -s 8972 over a 1500-byte link: refused locally
PING_LOCAL_OUT = """PING 10.86.0.12 (10.86.0.12) 8972(9000) bytes of data.

--- 10.86.0.12 ping statistics ---
1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms

"""
PING_LOCAL_ERR = "ping: local error: message too long, mtu=1500\n"
# Through a router namespace whose egress link has MTU 1400: `ping -n -c 2 -i 0.2 -W 1 -M do -s 1472 192.0.2.6`
PING_FRAG_OUT = """PING 192.0.2.6 (192.0.2.6) 1472(1500) bytes of data.
From 192.0.2.2 icmp_seq=1 Frag needed and DF set (mtu = 1400)

--- 192.0.2.6 ping statistics ---
2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 203ms

"""
PING_FRAG_ERR = "ping: local error: message too long, mtu=1400\n"
PING_UNREACHABLE_ERR = "ping: connect: Network is unreachable\n"


def test_mtu_parse_probes():
    assert mtu_probe.parse_probe(1372, PING_PASS, "", 0) == mtu_probe.Probe(1372, True)
    assert mtu_probe.parse_probe(1472, PING_LOST, "", 1) == mtu_probe.Probe(1472, False)
    assert mtu_probe.parse_probe(8972, PING_LOCAL_OUT, PING_LOCAL_ERR, 1) == mtu_probe.Probe(8972, False, 1500)
    assert mtu_probe.parse_probe(1472, PING_FRAG_OUT, PING_FRAG_ERR, 1) == mtu_probe.Probe(1472, False, 1400)
    unreachable = mtu_probe.parse_probe(40, "", PING_UNREACHABLE_ERR, 2)
    assert not unreachable.passed and unreachable.error == "ping: connect: Network is unreachable"


def test_mtu_argv():
    p = MtuParams(target="10.0.0.1", attempts=2, wait_s=0.5, interface="data0")
    assert mtu_probe.ping_argv(1472, p) == [
        "ping",
        "-n",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "0.5",
        "-M",
        "do",
        "-s",
        "1472",
        "-I",
        "data0",
        "10.0.0.1",
    ]


def test_mtu_next_sizes():
    assert mtu_probe.next_sizes(100, 101, None) == []
    assert mtu_probe.next_sizes(100, 103, None) == [101, 102]
    sizes = mtu_probe.next_sizes(40, 1473, 1472)
    assert sizes[-1] == 1472 and len(sizes) == 8 and all(40 < s <= 1472 for s in sizes)


def _simulate(path_mtu: int, local_mtu: int, **kw):
    """The search against a modelled path: sizes above local_mtu fail locally (with the hint), above path_mtu lost."""

    async def fake(payload, p, ctx):
        size = payload + 28
        if size > local_mtu:
            return mtu_probe.Probe(payload, False, local_mtu)
        return mtu_probe.Probe(payload, size <= path_mtu)

    ctx = ProbeContext("n", [], "v", "", False, time.time() + 30)
    real, mtu_probe.try_size = mtu_probe.try_size, fake
    try:
        return asyncio.run(mtu_probe.run(MtuParams(target="10.0.0.1", **kw), ctx))
    finally:
        mtu_probe.try_size = real


@pytest.mark.parametrize(
    "path,local", [(1404, 1500), (1500, 1500), (9000, 9000), (68, 1500), (8999, 9000), (1450, 1450)]
)
def test_mtu_search_finds_the_path_mtu(path, local):
    out = _simulate(path, local)
    assert out.status is Status.OK and out.result.path_mtu_bytes == path
    assert out.result.rounds <= 6


def test_mtu_below_expect_is_failed_and_dead_target_too():
    out = _simulate(1404, 1500, expect_bytes=1500)
    assert out.status is Status.FAILED and "1404" in out.message
    dead = _simulate(60, 1500)
    assert dead.status is Status.FAILED and dead.result.path_mtu_bytes is None


def test_mtu_params_bounds():
    for bad in (
        dict(expect_bytes=10),
        dict(max_bytes=100_000),
        dict(attempts=1_000_000),
        dict(wait_s=60),
        dict(target="10.0.0.1;reboot"),
        dict(interface="-x"),
        dict(netns="-x"),
    ):
        with pytest.raises(ValidationError):
            MtuParams(**{"target": "10.0.0.1", **bad})
    assert MtuParams(target="fd00::1").version() == 6
