"""--from-openstack: reading agents' configurations and networks, and merging them into a plan (the plan wins)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from steth.controller.validate_openstack import (
    NetworkFacts,
    OpenStackFacts,
    Segment,
    l2_agent,
    merge,
    network_facts,
)
from steth.controller.validate_plan import PlanError, parse_plan
from steth.controller.validate_requirements import requirements, step_args

# As the OVS agent reports them (ovs_neutron_agent.py agent_state['configurations']), trimmed.
OVS_CONF = {
    "bridge_mappings": {"physnet1": "br-ex"},
    "integration_bridge": "br-int",
    "tunnel_types": ["vxlan"],
    "tunneling_ip": "192.0.2.11",
    "l2_population": True,
    "datapath_type": "system",
}
HOSTS = {"compute-1": "192.0.2.11", "compute-2": "192.0.2.12", "network-1": "192.0.2.13"}


def facts(**changes) -> OpenStackFacts:
    agents = [l2_agent("Open vSwitch agent", h, {**OVS_CONF, "tunneling_ip": ip}) for h, ip in HOSTS.items()]
    agents.append(l2_agent("DHCP agent", "network-1", {"networks": 1}))
    out = OpenStackFacts(
        agents=[a for a in agents if a],
        networks=[
            NetworkFacts("n1", "provider-101", 1500, [Segment("vlan", "physnet1", 101)]),
            NetworkFacts("n2", "private", 1450, [Segment("vxlan", None, 1001)]),
            NetworkFacts("n3", "jumbo", 8950, [Segment("geneve", None, 7)]),  # another overlay: not ours
        ],
        roles={"compute-1": ["compute"], "compute-2": ["compute"], "network-1": ["network"]},
        where="test",
    )
    for k, v in changes.items():
        setattr(out, k, v)
    return out


def partial(text: str):
    return parse_plan(text, "site.yaml", partial=True)


MINIMAL = """\
version: 1
physnets:
  - name: physnet1
    vlans: "100-110"
"""


def test_a_minimal_plan_gets_nodes_tunnel_and_bridges_from_openstack():
    plan, notes = merge(partial(MINIMAL), facts())
    assert [(n.name, n.roles) for n in plan.nodes] == [
        ("compute-1", ["compute"]),
        ("compute-2", ["compute"]),
        ("network-1", ["network"]),
    ]
    assert plan.hosts["compute-2"].bridge_mappings == {"physnet1": "br-ex"}
    assert plan.hosts["compute-2"].tunnel_ip == "192.0.2.12"
    # the tunnel: vxlan from tunnel_types, its plane from tunneling_ip, tenant_mtu from the VXLAN network
    assert plan.tunnel.overlay == "vxlan" and plan.tunnel.plane == "tunnel" and plan.tunnel.tenant_mtu == 1450
    assert [n.kind for n in notes].count("conflict") == 0
    assert {n.key for n in notes if n.kind == "filled"} >= {"nodes", "tunnel", "hosts.compute-1"}
    reqs = {r.id: r for r in requirements(plan)}
    assert list(reqs) == ["presence", "mesh:tunnel", "mtu:tunnel", "vlan:physnet1"]
    # each node's address on the tunnel plane is its tunneling_ip, which it must hold
    assert reqs["mesh:tunnel"].plane_by_node == {h: f"{ip}/32" for h, ip in HOSTS.items()}
    assert reqs["mtu:tunnel"].expect == {"mtu_bytes": 1500}  # 1450 + VXLAN 50
    # the physnet's trunk: the bridge of each host's bridge_mappings, its uplink looked up with ovs-uplinks
    vlan = reqs["vlan:physnet1"]
    assert vlan.bridge_by_node == {h: "br-ex" for h in HOSTS} and vlan.node_args == {}
    step = reqs["mtu:tunnel"].steps[0]
    assert step_args(reqs["mtu:tunnel"], step, HOSTS)["compute-1"]["target"] == "192.0.2.12"


def test_without_openstack_the_same_minimal_plan_is_an_error():
    with pytest.raises(PlanError) as exc:
        parse_plan(MINIMAL, "site.yaml")
    text = str(exc.value)
    assert "the plan expects no node" in text
    assert "physnets[0]: give the physnet's bridge or uplink (or both), or hosts[].bridge_mappings" in text


FULL = """\
version: 1
nodes:
  - {name: compute-1, roles: [compute]}
  - {name: compute-2, roles: [compute]}
  - {name: network-1, roles: [compute]}
planes:
  - name: data
    cidr: 192.0.2.0/28
physnets:
  - name: physnet1
    bridge: br-provider
    vlans: "100"
tunnel:
  plane: data
  overlay: gre
  tenant_mtu: 1400
hosts:
  compute-1:
    tunnel_ip: 192.0.2.1
"""


def test_the_plan_wins_and_every_disagreement_is_a_conflict():
    os_facts = facts()
    os_facts.agents[2].tunnel_ip = "198.51.100.13"  # network-1 tunnels outside the plan's data CIDR
    plan, notes = merge(partial(FULL), os_facts)
    conflicts = {n.key: n.message for n in notes if n.kind == "conflict"}
    assert conflicts["tunnel.overlay"] == "the plan says gre, Neutron's agents tunnel with vxlan"
    assert "hosts.compute-1.tunnel_ip" in conflicts and plan.hosts["compute-1"].tunnel_ip == "192.0.2.1"
    assert "outside plane data's 192.0.2.0/28" in conflicts["hosts.network-1.tunnel_ip"]
    assert "use VLAN 101 on physnet1, outside the plan's 100" in conflicts["physnets[0].vlans"]
    assert "Neutron maps physnet1 to br-ex, the plan to br-provider" in conflicts["physnets[0].bridge"]
    assert "network-1: OpenStack has it as network, the plan as compute" in conflicts["nodes"]
    # the plan's values stand
    assert plan.tunnel.overlay == "gre" and plan.tunnel.tenant_mtu == 1400 and plan.physnets[0].vlans == "100"
    assert plan.physnets[0].bridge == "br-provider" and [n.roles for n in plan.nodes][2] == ["compute"]
    reqs = {r.id: r for r in requirements(plan)}
    assert reqs["vlan:physnet1"].bridge_by_node == {h: "br-provider" for h in HOSTS}
    assert reqs["mesh:data"].plane_by_node == {h: "192.0.2.0/28" for h in HOSTS}  # the CIDR, not tunneling_ip


def test_tenant_mtu_from_networks_only_when_the_plan_leaves_it_out():
    text = FULL.replace("  overlay: gre\n  tenant_mtu: 1400\n", "  overlay: vxlan\n")
    plan, notes = merge(partial(text), facts())
    assert plan.tunnel.tenant_mtu == 1450
    assert any(n.key == "tunnel.tenant_mtu" and n.kind == "filled" for n in notes)
    text = FULL.replace("  overlay: gre\n  tenant_mtu: 1400\n", "  overlay: vxlan\n  tenant_mtu: 1400\n")
    plan, notes = merge(partial(text), facts())
    assert plan.tunnel.tenant_mtu == 1400
    assert any(n.key == "tunnel.tenant_mtu" and n.kind == "conflict" and "MTU 1450" in n.message for n in notes)


def test_physnets_in_use_become_requirements_and_unmapped_ones_are_named():
    os_facts = facts()
    os_facts.networks += [
        NetworkFacts("n4", "provider-2", 1500, [Segment("vlan", "physnet2", 200), Segment("vlan", "physnet2", 202)]),
        NetworkFacts("n5", "nowhere", 1500, [Segment("vlan", "physnet9", 5)]),
    ]
    os_facts.agents[0].bridge_mappings["physnet2"] = "br-p2"
    os_facts.agents[1].bridge_mappings["physnet2"] = "br-p2"
    os_facts.agents[1].bridge_mappings["physnet3"] = "br-p3"
    plan, notes = merge(partial(MINIMAL), os_facts)
    assert [(p.name, p.vlans) for p in plan.physnets] == [("physnet1", "100-110"), ("physnet2", "200,202")]
    reqs = {r.id: r for r in requirements(plan)}
    assert reqs["vlan:physnet2"].nodes == ("compute-1", "compute-2")  # the hosts that map it
    unused = [n.message for n in notes if n.kind == "unused"]
    assert any(m.startswith("physnet9 (VLANs 5): no agent maps it") for m in unused)
    assert any(m.startswith("physnet3 is mapped but neither the plan nor a network gives its VLANs") for m in unused)


def test_nothing_to_fill_leaves_a_plan_that_still_needs_its_parts():
    with pytest.raises(ValueError, match="the plan expects no node"):
        merge(partial(MINIMAL), OpenStackFacts())


def test_agent_configurations_of_each_kind():
    ovs = l2_agent("Open vSwitch agent", "h", OVS_CONF)
    assert (ovs.bridge_mappings, ovs.tunnel_ip, ovs.tunnel_types) == ({"physnet1": "br-ex"}, "192.0.2.11", ["vxlan"])
    # without tunnel types the agent's local_ip carries no tunnel
    assert l2_agent("Open vSwitch agent", "h", {**OVS_CONF, "tunnel_types": []}).tunnel_ip is None
    # OVN reports bridge mappings as text and no tunnel address
    ovn = l2_agent("OVN Controller agent", "h", {"chassis_name": "x", "bridge-mappings": "physnet1:br-ex, p2:br-2"})
    assert ovn.bridge_mappings == {"physnet1": "br-ex", "p2": "br-2"} and ovn.tunnel_ip is None
    # Linux bridge: the interface is the uplink; its bridges are Linux bridges, not OVS ones
    lb = l2_agent(
        "Linux bridge agent",
        "h",
        {"interface_mappings": {"physnet1": "eth2"}, "bridge_mappings": {"p": "br0"}, "tunnel_types": ["vxlan"]},
    )
    assert lb.interface_mappings == {"physnet1": "eth2"} and lb.bridge_mappings == {}
    assert l2_agent("DHCP agent", "h", {}) is None
    assert l2_agent("Open vSwitch agent", "h", {**OVS_CONF, "tunneling_ip": "not-an-ip"}).tunnel_ip is None


def test_network_facts_from_provider_attributes_or_segments():
    single = SimpleNamespace(
        id="a",
        name="n",
        mtu=1500,
        segments=None,
        provider_network_type="vlan",
        provider_physical_network="physnet1",
        provider_segmentation_id=101,
    )
    assert network_facts(single).segments == [Segment("vlan", "physnet1", 101)]
    multi = SimpleNamespace(
        id="b",
        name="m",
        mtu=1450,
        segments=[
            {"provider:network_type": "vxlan", "provider:physical_network": None, "provider:segmentation_id": 5},
            {"provider:network_type": "vlan", "provider:physical_network": "p", "provider:segmentation_id": 7},
        ],
        provider_network_type=None,
        provider_physical_network=None,
        provider_segmentation_id=None,
    )
    assert network_facts(multi).segments == [Segment("vxlan", None, 5), Segment("vlan", "p", 7)]


def test_hosts_can_be_written_in_the_plan_without_openstack():
    text = MINIMAL.replace(
        "version: 1\n", "version: 1\nnodes: [{name: a, roles: [compute]}, {name: b, roles: [compute]}]\n"
    )
    text += "hosts:\n  a: {bridge_mappings: {physnet1: br-ex}}\n  b: {interface_mappings: {physnet1: eth2}}\n"
    plan = parse_plan(text, "site.yaml")
    vlan = {r.id: r for r in requirements(plan)}["vlan:physnet1"]
    assert vlan.bridge_by_node == {"a": "br-ex"} and vlan.node_args == {"b": {"interface": "eth2"}}
    with pytest.raises(PlanError, match=r"site.yaml:\d+: hosts.a.tunnel_ip: 'x' is not an IP address"):
        parse_plan(text.replace("a: {bridge_mappings", "a: {tunnel_ip: x, bridge_mappings"), "site.yaml")
