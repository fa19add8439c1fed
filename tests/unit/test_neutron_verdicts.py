"""Security groups, L3 HA, segments, vnic types and host names, decided over Neutron's own api-ref samples."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

from steth.controller.diagnosis import FAIL, OK, SKIPPED, Diagnosis
from steth.controller.diagnosis_neutron import mtu_hop, network_on_host, router_hosts, security_group_hops, snat_hosts
from steth.controller.inventory import Network, Port, Router
from steth.controller.neutron_wiring import (
    Segment,
    bound_segment,
    ha_state,
    node_for,
    not_applicable,
    parse_host_map,
    same_host,
)
from steth.controller.secgroups import Peer, PortFilter, SecurityGroup, SgRule, admits, admits_echo, needs_findings

DATA = Path(__file__).parent / "data" / "neutron"
DHCP = Peer("10.0.0.2")  # the qdhcp address: a trusted network:dhcp port, member of no group


def sample(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def default_group() -> SecurityGroup:
    return SecurityGroup.from_api(sample("security-group-show-default.json")["security_group"])


def with_rules(*rules: dict, stateful: bool = True) -> SecurityGroup:
    """The default group's sample with its rules replaced (same field names, other values)."""
    g = copy.deepcopy(sample("security-group-show-default.json")["security_group"])
    template = g["security_group_rules"][0]
    g["security_group_rules"] = [{**template, "remote_group_id": None, "remote_ip_prefix": None, **r} for r in rules]
    g["stateful"] = stateful
    g["name"] = "web"
    return SecurityGroup.from_api(g)


# --- security groups -------------------------------------------------------------------------------


def test_default_group_admits_no_icmp_from_qdhcp_and_says_which_rules():
    pf = PortFilter(True, [default_group()])
    a = admits_echo(pf, DHCP)
    assert not a.admitted
    assert a.why.startswith("security group default (85cc3048) admits no ingress ICMP from 10.0.0.2 (rules: ")
    assert "ingress IPv4 any from group default (85cc3048)" in a.why
    assert "egress IPv4 any to 0.0.0.0/0" in a.why


def test_default_group_admits_its_own_members_and_all_egress():
    pf = PortFilter(True, [default_group()])
    member = Peer("10.0.0.7", frozenset({"85cc3048-abc3-43cc-89b3-377341426ac5"}))
    assert admits_echo(pf, member).admitted
    assert needs_findings(pf, ["10.0.0.1"]) == []  # a healthy VM in the default group is no finding


def test_port_security_disabled_admits_everything():
    pf = PortFilter(False, [])
    assert admits_echo(pf, DHCP).admitted
    assert needs_findings(pf, ["10.0.0.1"]) == []


@pytest.mark.parametrize(
    "rule,admitted",
    [
        ({"direction": "ingress", "protocol": "icmp"}, True),
        ({"direction": "ingress", "protocol": "1"}, True),  # the protocol number
        ({"direction": "ingress", "protocol": "icmp", "port_range_min": 8}, True),  # echo request
        ({"direction": "ingress", "protocol": "icmp", "port_range_min": 0}, False),  # echo reply only
        ({"direction": "ingress", "protocol": "icmp", "remote_ip_prefix": "10.0.0.0/24"}, True),
        ({"direction": "ingress", "protocol": "icmp", "remote_ip_prefix": "192.168.0.0/16"}, False),
        ({"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}, False),
        ({"direction": "ingress", "protocol": "icmp", "ethertype": "IPv6"}, False),
        ({"direction": "egress", "protocol": "icmp"}, False),
    ],
)
def test_which_rules_admit_the_ping_from_qdhcp(rule, admitted):
    pf = PortFilter(True, [with_rules({"ethertype": "IPv4", **rule})])
    assert admits_echo(pf, DHCP).admitted is admitted


def test_remote_address_group_rule_uses_the_groups_addresses():
    ag = sample("address-group-show.json")  # 10.0.1.34/32, 192.168.100.0/24
    rule = {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "remote_address_group_id": ag["id"]}
    pf = PortFilter(True, [with_rules(rule)], {ag["id"]: ag["addresses"]})
    assert admits_echo(pf, Peer("192.168.100.2")).admitted
    assert not admits_echo(pf, Peer("10.0.1.35")).admitted
    assert "address group" in SgRule.from_api({**rule, "id": "x"}).describe({ag["id"]: ag["name"]})


def test_stateless_group_needs_the_reply_admitted_too():
    ingress = {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}
    egress_tcp = {"direction": "egress", "ethertype": "IPv4", "protocol": "tcp"}
    pf = PortFilter(True, [with_rules(ingress, egress_tcp, stateful=False)])
    a = admits_echo(pf, DHCP)
    assert not a.admitted and a.why.startswith("stateless security group web") and "egress ICMP to 10.0.0.2" in a.why
    egress_icmp = {"direction": "egress", "ethertype": "IPv4", "protocol": "icmp"}
    assert admits_echo(PortFilter(True, [with_rules(ingress, egress_icmp, stateful=False)]), DHCP).admitted


def test_no_egress_is_a_finding_quoting_the_rules():
    ingress_only = with_rules({"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"})
    found = needs_findings(PortFilter(True, [ingress_only]), ["10.0.0.1"])
    assert found == [
        "security group web (85cc3048) admits no egress to the gateway 10.0.0.1: the VM can send DHCP only "
        "(egress rules: no egress rule)"
    ]
    narrow = with_rules({"direction": "egress", "ethertype": "IPv4", "remote_ip_prefix": "172.16.0.0/12"})
    (line,) = needs_findings(PortFilter(True, [narrow]), ["10.0.0.1"])
    assert "egress rules: egress IPv4 any to 172.16.0.0/12" in line
    # a port with no group at all is dropped entirely (only DHCP passes the fixed rules)
    assert needs_findings(PortFilter(True, []), ["10.0.0.1"])[0].startswith("security group none admits no egress")


def test_udp_port_ranges():
    dns = with_rules({"direction": "egress", "ethertype": "IPv4", "protocol": "udp", "port_range_min": 53})
    pf = PortFilter(True, [dns])
    assert admits(pf, "egress", "udp", Peer("10.0.0.1"), 53).admitted
    assert not admits(pf, "egress", "udp", Peer("10.0.0.1"), 54).admitted


def _port(**kw) -> Port:
    base = dict(id="p", mac="fa:16:3e:00:00:01", network_id="n", fixed_ips=[("s", "10.0.0.2")], host="net-1")
    return Port(**{**base, **kw})


def test_mtu_hop_is_not_tested_when_the_rules_drop_the_ping():
    pf = PortFilter(True, [default_group()])
    dhcp = _port(device_owner="network:dhcp")
    status, detail, cause = mtu_hop(pf, dhcp, False, "no echo reply at all", "an MTU below the network's")
    assert (status, cause) == (SKIPPED, "")
    assert detail.startswith("not tested: security group default (85cc3048) admits no ingress ICMP from 10.0.0.2")
    # a reply proves the MTU whatever the rules say; an admitted ping that fails is the MTU finding
    assert mtu_hop(pf, dhcp, True, "1500 bytes", "x")[0] == OK
    icmp = PortFilter(True, [with_rules({"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"})])
    assert mtu_hop(icmp, dhcp, False, "no echo reply", "an MTU below")[0] == FAIL
    assert mtu_hop(None, dhcp, False, "no echo reply", "an MTU below")[0] == FAIL  # groups unknown: as before


def test_security_group_hops_report_the_groups_and_the_egress_finding():
    diag = Diagnosis("port-check", {})
    security_group_hops(diag, "compute-1", PortFilter(True, [default_group()]), ["10.0.0.1"], [_port()])
    assert [(h.stage, h.status) for h in diag.hops] == [("security-group", OK)]
    assert "DHCP and ARP admitted by the firewall" in diag.hops[0].detail
    diag = Diagnosis("port-check", {})
    ingress_only = with_rules({"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"})
    security_group_hops(diag, "compute-1", PortFilter(True, [ingress_only]), ["10.0.0.1"], [_port()])
    assert diag.verdict()["stage"] == "security-group" and "admits no egress" in diag.verdict()["message"]


# --- L3 HA -----------------------------------------------------------------------------------------


def ha_agents(*states: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    """The l3-agents sample's agent once per (host, ha_state), as an HA router lists them."""
    (agent,) = sample("router-l3-agent-list.json")["agents"]
    assert "ha_state" in agent  # the field the verdict reads
    return [(h, {**agent, "host": h, "ha_state": s}["ha_state"]) for h, s in states]


def test_ha_router_is_checked_on_its_active_node_only():
    state = ha_state("router1", ha_agents(("net-1", "standby"), ("net-2", "active")))
    assert (state.active, state.finding) == (["net-2"], "")


def test_ha_router_with_no_active_or_two_is_a_finding_naming_the_nodes():
    none = ha_state("router1", ha_agents(("net-1", "standby"), ("net-2", "standby")))
    assert none.finding == "HA router router1 has no active instance (net-1 standby, net-2 standby)"
    two = ha_state("router1", ha_agents(("net-1", "active"), ("net-2", "active")))
    assert two.active == ["net-1", "net-2"] and "active on 2 nodes at once (net-1 active, net-2 active)" in two.finding


# --- segments --------------------------------------------------------------------------------------


def multi_network() -> Network:
    n = sample("network-multi-show.json")["network"]
    return Network(
        id=n["id"],
        name=n["name"],
        network_type=n.get("provider:network_type"),
        physical_network=n.get("provider:physical_network"),
        segmentation_id=n.get("provider:segmentation_id"),
        mtu=n["mtu"],
        segments=[Segment.from_api(s) for s in n["segments"]],
    )


def test_the_segment_bound_on_the_host_is_the_first_its_agent_can_bind():
    net = multi_network()
    assert net.network_type is None  # the sample has segments and no provider:* attributes
    on_public = {"bridge_mappings": {"public": "br-ex"}, "tunnel_types": ["vxlan"]}
    on_default = {"bridge_mappings": {"default": "br-default"}, "tunnel_types": []}
    assert bound_segment(net.segments, on_public) == Segment("vlan", "public", 2)
    assert bound_segment(net.segments, on_default) == Segment("flat", "default", 0)
    assert bound_segment(net.segments, {"bridge_mappings": {}}) is None
    picked, note = network_on_host(net, "compute-1.example.org", {"compute-1": on_default})
    assert (picked.network_type, picked.physical_network, picked.segmentation_id) == ("flat", "default", 0)
    assert (
        note
        == "multi-segment network (vlan 2 on public, flat 0 on default): flat 0 on default is the one bound on compute-1.example.org"
    )
    unbound, note = network_on_host(net, "compute-9", {"compute-9": {}})
    assert unbound.network_type is None and "no segment the Open vSwitch agent on compute-9 can bind" in note


# --- vnic types ------------------------------------------------------------------------------------


def test_sriov_and_vhostuser_ports_are_not_applicable_to_tap_checks():
    p = sample("port-bind-show.json")["port"]
    assert not_applicable(p["binding:vnic_type"], p["binding:vif_type"]) == ""  # normal, ovs
    assert "binding:vnic_type direct (vif_type hw_veb)" in not_applicable("direct", "hw_veb")
    assert not_applicable("macvtap", "macvtap").startswith("binding:vnic_type macvtap")
    assert not_applicable("normal", "vhostuser").startswith("binding:vif_type vhostuser")
    assert not_applicable("normal", "binding_failed") == ""  # a failed binding is a finding, not n/a


# --- host names ------------------------------------------------------------------------------------


def test_short_name_and_fqdn_are_one_host():
    assert same_host("compute-1", "compute-1.cloud.example")
    assert same_host("Compute-1.cloud.example", "compute-1")
    assert not same_host("compute-1", "compute-10")
    assert not same_host(None, "compute-1")
    nodes = ["compute-1", "network-1"]
    assert node_for("compute-1.cloud.example", nodes) == "compute-1"
    assert node_for("hv-17", nodes, {"hv-17": "compute-1"}) == "compute-1"
    assert node_for("unknown", nodes) == "unknown"


def test_host_map_values():
    assert parse_host_map(["a=b", "c=d e=f"]) == {"a": "b", "c": "d", "e": "f"}
    with pytest.raises(ValueError, match="OLD=NEW"):
        parse_host_map(["nothing"])


# --- DVR -------------------------------------------------------------------------------------------


def _router(**kw) -> Router:
    base = dict(id="f8a44de0-fc8e-45df-93c7-f79bf3b01c95", name="router1", l3_hosts=[], interface_ips={})
    return Router(**{**base, **kw})


def test_dvr_gateway_is_on_the_ports_own_node_and_snat_on_the_dvr_snat_node():
    modes = {"net-1": "dvr_snat", "compute-1": "dvr", "compute-2": "dvr"}
    dvr = _router(distributed=True, l3_modes=modes, l3_hosts=[(h, True) for h in modes], external_network_id="ext")
    assert router_hosts(dvr, "compute-2") == ["compute-2"]
    assert snat_hosts(dvr) == ["net-1"]
    assert snat_hosts(replace(dvr, external_network_id=None)) == []  # no gateway, no SNAT namespace
    dvr_ha = replace(
        dvr, ha=True, l3_modes={**modes, "net-2": "dvr_snat"}, ha_states={"net-1": "standby", "net-2": "active"}
    )
    assert snat_hosts(dvr_ha) == ["net-2"]
    legacy = _router(l3_hosts=[("net-1", True), ("net-2", True)])
    assert router_hosts(legacy, "compute-2") == ["net-1", "net-2"] and snat_hosts(legacy) == []
    ha = _router(
        ha=True, l3_hosts=[("net-1", True), ("net-2", True)], ha_states={"net-1": "standby", "net-2": "active"}
    )
    assert router_hosts(ha, "compute-2") == ["net-2"]


def test_align_hosts_renames_every_host_of_a_port_context():
    from steth.controller.diagnosis_neutron import align_hosts
    from steth.controller.diagnosis_port import PortContext

    modes = {"net-1.cloud": "dvr_snat", "compute-2.cloud": "dvr"}
    router = _router(distributed=True, l3_modes=modes, l3_hosts=[(h, True) for h in modes], external_network_id="x")
    net = Network("n", "private", "vlan", "physnet1", 101, 1500)
    ctx = PortContext(
        _port(host="compute-2.cloud"),
        net,
        [],
        [("net-1.cloud", True)],
        {"net-1.cloud": _port(device_owner="network:dhcp")},
        [router],
        {"net-1.cloud": "br-phys"},
        server_host="compute-2.cloud",
    )
    align_hosts(ctx, ["compute-2", "net-1"], {})
    assert (ctx.host, ctx.server_host, ctx.dhcp_hosts) == ("compute-2", "compute-2", [("net-1", True)])
    assert list(ctx.dhcp_ports) == list(ctx.provider_bridges) == ["net-1"]
    assert snat_hosts(ctx.routers[0]) == ["net-1"] and router_hosts(ctx.routers[0], ctx.host) == ["compute-2"]
