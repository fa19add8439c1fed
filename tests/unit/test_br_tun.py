"""br-tun's parsers and checks on real captures: `ovs-ofctl -O OpenFlow13 --no-names --no-stats dump-flows br-tun`
and the ovs-vsctl listing of steth.agent.ovsdb, taken on the real-Neutron lab (Neutron 29's OVS agent, native
OpenFlow interface, VXLAN VNI 869 = 0x365; compute-1 10.32.0.11, compute-2 10.32.0.12, network-1 10.32.0.13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from steth.agent import ovsdb
from steth.agent.openflow import parse_flow, parse_flows, split_top
from steth.agent.probes.br_tun import dump_flows_argv, evaluate, local_vlan
from steth.schemas.probes.br_tun import BrTunParams, tunnel_name

DATA = Path(__file__).parent / "data" / "ovs"
VNI = 869
C1, C2, N1 = "10.32.0.11", "10.32.0.12", "10.32.0.13"
VM1_MAC, VM2_MAC, DHCP_MAC = "fa:16:3e:d6:bc:5c", "fa:16:3e:29:69:77", "fa:16:3e:86:d1:78"


def captured(node: str):
    flows = parse_flows((DATA / f"br-tun-flows-{node}.txt").read_text())
    bridges, ports, ifaces, _ = ovsdb.parse_output((DATA / f"br-tun-vsctl-{node}.jsonl").read_text())
    bridges, ports = ovsdb.build(bridges, ports, ifaces)
    return bridges, ports, flows


def test_dump_flows_asks_for_openflow13_by_number_without_counters():
    assert dump_flows_argv("br-tun") == [
        "ovs-ofctl",
        "-O",
        "OpenFlow13",
        "--no-names",
        "--no-stats",
        "dump-flows",
        "br-tun",
    ]


def test_every_captured_line_is_a_flow_with_its_table():
    text = (DATA / "br-tun-flows-compute-1.txt").read_text()
    flows = parse_flows(text)
    assert len(flows) == len([ln for ln in text.splitlines() if " actions=" in ln])
    assert flows[0].table == 0 and flows[0].match == {"in_port": "1"} and flows[0].actions == ["goto_table:2"]
    assert {f.table for f in flows} == {0, 2, 3, 4, 6, 10, 20, 21, 22}


def test_flood_and_unicast_flows_are_read_from_their_tables():
    flood = parse_flow(
        " cookie=0x78c135ef93cb1453, table=22, priority=1,dl_vlan=1 actions=pop_vlan,set_field:0x365->tun_id,"
        "output:2,output:3"
    )
    assert (flood.table, flood.priority, flood.match) == (22, 1, {"dl_vlan": "1"})
    assert flood.outputs() == ["2", "3"] and flood.set_field("tun_id") == "0x365"
    learned = parse_flow(
        " cookie=0x1, table=20, hard_timeout=300, priority=1,vlan_tci=0x0001/0x0fff,dl_dst=fa:16:3e:29:69:77 "
        "actions=load:0->NXM_OF_VLAN_TCI[],load:0x365->NXM_NX_TUN_ID[],output:3"
    )
    assert learned.priority == 1 and "hard_timeout" not in learned.match and learned.outputs() == ["3"]


def test_learn_actions_keep_their_inner_commas():
    items = split_top('learn(table=20,priority=1,NXM_OF_VLAN_TCI[0..11]),output:1,output:"vxlan-0a20000d"')
    assert items == ["learn(table=20,priority=1,NXM_OF_VLAN_TCI[0..11])", "output:1", 'output:"vxlan-0a20000d"']


def test_the_local_vlan_of_the_vni_comes_from_table_4():
    assert local_vlan(captured("compute-1")[2], "vxlan", VNI) == 1
    assert local_vlan(captured("network-1")[2], "vxlan", VNI) == 2
    assert local_vlan(captured("network-1")[2], "vxlan", VNI + 1) is None


def test_tunnel_names_are_the_ovs_agents():
    assert tunnel_name("vxlan", N1) == "vxlan-0a20000d" and tunnel_name("gre", "10.44.0.13") == "gre-0a2c000d"


def test_a_healthy_compute_node_passes_every_check():
    params = BrTunParams(
        vni=VNI,
        local_ip=C1,
        remote_ips=[N1, C2],
        unicast=[{"mac": DHCP_MAC, "remote_ip": N1}, {"mac": VM2_MAC, "remote_ip": C2}],
    )
    res = evaluate(params, *captured("compute-1"))
    assert [c for c in res.checks if not c.ok] == []
    assert [c.check for c in res.checks] == [
        "patch",
        "patch",
        "tunnel port",
        "tunnel port",
        "local vlan",
        "l2pop flood",
        "l2pop unicast",
        "l2pop unicast",
    ]
    assert {(t.name, t.remote_ip, t.local_ip) for t in res.tunnels} == {
        ("vxlan-0a20000d", N1, C1),
        ("vxlan-0a20000c", C2, C1),
    }
    assert res.local_vlan == 1 and sorted(res.flood_ports) == ["vxlan-0a20000c", "vxlan-0a20000d"]
    assert res.unicast[DHCP_MAC] == "vxlan-0a20000d" and "10.20.0.171" in res.arp_responder


def test_a_missing_flood_flow_and_unicast_flow_are_named_with_the_peer():
    bridges, ports, flows = captured("network-1")
    gone = [f for f in flows if not (f.table in (20, 22) and f.match.get("dl_vlan") == "2")]
    params = BrTunParams(vni=VNI, local_ip=N1, remote_ips=[C1], unicast=[{"mac": VM1_MAC, "remote_ip": C1}])
    assert [c for c in evaluate(params, bridges, ports, flows).checks if not c.ok] == []
    bad = [c for c in evaluate(params, bridges, ports, gone).checks if not c.ok]
    assert [(c.check, c.target) for c in bad] == [("l2pop flood", f"VNI {VNI}"), ("l2pop unicast", VM1_MAC)]
    assert "vxlan-0a20000b" in bad[0].detail and "table 22" in bad[0].detail
    assert "table 20" in bad[1].detail and "local VLAN 2" in bad[1].detail


def test_a_missing_tunnel_port_and_a_wrong_local_ip_are_findings():
    bridges, ports, flows = captured("compute-1")
    without = [p for p in ports if p["name"] != "vxlan-0a20000d"]
    res = evaluate(BrTunParams(vni=VNI, local_ip=C1, remote_ips=[N1]), bridges, without, flows)
    bad = [c for c in res.checks if not c.ok]
    assert (bad[0].check, bad[0].target) == ("tunnel port", N1) and "vxlan-0a20000d" in bad[0].detail
    res = evaluate(BrTunParams(vni=VNI, local_ip="10.32.0.99", remote_ips=[N1]), bridges, ports, flows)
    assert [c.detail for c in res.checks if not c.ok][0].endswith(
        "local_ip 10.32.0.11, this host's tunneling_ip is 10.32.0.99"
    )


def test_an_unprovisioned_vni_and_a_missing_bridge_stop_early():
    bridges, ports, flows = captured("compute-1")
    res = evaluate(BrTunParams(vni=VNI + 1, remote_ips=[N1]), bridges, ports, flows)
    assert res.checks[-1].check == "local vlan" and not res.checks[-1].ok
    res = evaluate(BrTunParams(vni=VNI, bridge="br-nope"), bridges, ports, flows)
    assert [(c.check, c.ok) for c in res.checks] == [("bridge", False)]


def test_patch_pair_broken_on_one_side():
    bridges, ports, flows = captured("compute-1")
    ports = [dict(p, peer="elsewhere", peer_ok=False) if p["name"] == "patch-int" else p for p in ports]
    bad = [c for c in evaluate(BrTunParams(vni=VNI), bridges, ports, flows).checks if not c.ok]
    assert [(c.target, c.detail) for c in bad] == [("patch-int", "peer elsewhere, not patch-tun")]


@pytest.mark.parametrize(
    "bad", [{"vni": 0}, {"vni": 1 << 24}, {"vni": 5, "bridge": "br tun"}, {"vni": 5, "remote_ips": ["x"]}]
)
def test_params_are_validated(bad):
    with pytest.raises(ValidationError):
        BrTunParams.model_validate(bad)


# --- port-check: which br-tun checks it asks for, and what an ARP reply proves ---------------------------------


def _ctx(network_type: str = "vxlan", dhcp_host: str = "network-1"):
    from steth.controller.diagnosis_port import PortContext
    from steth.controller.inventory import Network, Port

    port = Port(id="p1", mac=VM2_MAC, network_id="n", fixed_ips=[("s", "10.20.0.171")], host="compute-2")
    dhcp = Port(
        id="d1",
        mac=DHCP_MAC,
        network_id="n",
        fixed_ips=[("s", "10.20.0.2")],
        host=dhcp_host,
        device_owner="network:dhcp",
    )
    net = Network("n", "private", network_type, None if network_type != "vlan" else "physnet1", VNI, 1450)
    ctx = PortContext(port, net, [], [(dhcp_host, True)], {dhcp_host: dhcp}, [], {})
    ctx.tunnel_ips = {"compute-1": C1, "compute-2": C2, "network-1": N1}
    ctx.arp_responders = {"compute-2": True, "network-1": True}
    return ctx


def test_br_tun_is_asked_on_both_ends_for_each_others_tunnel_and_macs():
    from steth.controller.diagnosis_tunnel import br_tun_calls

    calls = br_tun_calls(_ctx())
    assert sorted(calls) == ["compute-2", "network-1"]
    here, there = calls["compute-2"], calls["network-1"]
    assert (here.vni, here.local_ip, here.remote_ips) == (VNI, C2, [N1])
    assert [(u.mac, u.remote_ip) for u in here.unicast] == [(DHCP_MAC, N1)]
    assert (there.local_ip, there.remote_ips, [(u.mac, u.remote_ip) for u in there.unicast]) == (
        N1,
        [C2],
        [(VM2_MAC, C2)],
    )
    assert br_tun_calls(_ctx("vlan")) == {}  # no tunnel
    assert br_tun_calls(_ctx(dhcp_host="compute-2")) == {}  # the DHCP server on the port's own host


def _arping(ok: bool = True):
    from steth.schemas.checks import CheckRow

    return CheckRow(check="arping", target="10.20.0.171", ok=ok, detail="2/2 replies" if ok else "no reply")


def test_an_arp_reply_over_a_tunnel_with_arp_responder_is_no_proof_alone():
    from steth.controller.diagnosis import FAIL, OK, SKIPPED, Diagnosis
    from steth.controller.diagnosis_tunnel import arp_reply

    ctx, diag = _ctx(), Diagnosis("port-check", {})
    status, detail = arp_reply(diag, ctx, "network-1", _arping(), [], None)
    assert status == SKIPPED and "br-tun on network-1 answers ARP itself (arp_responder): no proof of reach" in detail
    diag.add("dhcp-path", "compute-2", "OFFER at tap", OK, "seen")
    status, detail = arp_reply(diag, ctx, "network-1", _arping(), [], None)
    assert status == OK and detail.endswith("(reach proven by the DHCP exchange)")
    assert arp_reply(diag, ctx, "network-1", _arping(ok=False), [], None) == (FAIL, "no reply")
    # the port's own host, a VLAN network, or an agent without the responder: the reply is the VM's
    assert arp_reply(Diagnosis("p", {}), ctx, "compute-2", _arping(), [], None)[0] == OK
    assert arp_reply(Diagnosis("p", {}), _ctx("vlan"), "network-1", _arping(), [], None)[0] == OK
    ctx.arp_responders["network-1"] = False
    assert arp_reply(Diagnosis("p", {}), ctx, "network-1", _arping(), [], None)[0] == OK


def test_the_ping_from_qdhcp_on_the_same_host_proves_the_routers_arp_too():
    from steth.controller.diagnosis import OK, SKIPPED, Diagnosis
    from steth.controller.diagnosis_tunnel import arp_reply

    ctx, diag = _ctx(), Diagnosis("port-check", {})
    diag.add("reach", "compute-1", "MTU qdhcp -> 10.20.0.171", OK, "1450-byte packets pass")
    assert arp_reply(diag, ctx, "network-1", _arping(), [], None)[0] == SKIPPED  # another host's ping
    diag.add("reach", "network-1", "MTU qdhcp -> 10.20.0.171", OK, "1450-byte packets pass")
    status, detail = arp_reply(diag, ctx, "network-1", _arping(), [], None)
    assert status == OK and detail.endswith("(reach proven by the ping from qdhcp)")


def test_a_missing_tunnel_port_hop_names_the_port_neutron_would_make_the_peer_and_the_vni():
    from steth.controller.diagnosis_tunnel import _label_and_cause

    bridges, ports, flows = captured("compute-1")
    res = evaluate(
        BrTunParams(vni=VNI, remote_ips=[N1]), bridges, [p for p in ports if p["name"] != "vxlan-0a20000d"], flows
    )
    bad = next(c for c in res.checks if not c.ok)
    label, cause = _label_and_cause(bad, "compute-1", VNI, {N1: "network-1"}, {}, res, ["network-1"])
    assert label == f"tunnel port vxlan-0a20000d -> network-1 ({N1})"
    assert cause.startswith(f"tunnel compute-1 -> network-1 ({N1}), VNI {VNI}: br-tun on compute-1 has no usable")
