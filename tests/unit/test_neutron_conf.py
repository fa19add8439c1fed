"""The real-Neutron lab's config files carry kolla-ansible's defaults (steth.lab.neutron_conf); its CLI option."""

from __future__ import annotations

import configparser
from pathlib import Path

import clirun

from steth.lab import neutron_conf


def read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return parser


def test_ml2_is_vxlan_with_l2population(tmp_path):
    conf = read(neutron_conf.ml2_conf(tmp_path / "ml2_conf.ini"))
    assert conf["ml2"]["tenant_network_types"] == "vxlan"
    assert conf["ml2"]["type_drivers"] == "flat,vlan,vxlan"
    assert conf["ml2"]["mechanism_drivers"] == "openvswitch,l2population"
    assert conf["ml2_type_vxlan"]["vni_ranges"] == "1:1000"
    assert conf["ml2_type_flat"]["flat_networks"] == "physnet1"


def test_ovs_agent_tunnels_with_arp_responder_and_maps_br_ex_on_network_nodes_only(tmp_path):
    network = read(neutron_conf.openvswitch_agent_ini(tmp_path / "n.ini", local_ip="10.0.0.13", network_node=True))
    assert dict(network["agent"]) == {"tunnel_types": "vxlan", "l2_population": "true", "arp_responder": "true"}
    assert network["ovs"]["local_ip"] == "10.0.0.13" and network["ovs"]["bridge_mappings"] == "physnet1:br-ex"
    assert network["ovs"]["datapath_type"] == "netdev"
    assert network["securitygroup"]["firewall_driver"].endswith("OVSHybridIptablesFirewallDriver")
    compute = read(
        neutron_conf.openvswitch_agent_ini(
            tmp_path / "c.ini", local_ip="10.0.0.12", network_node=False, firewall="openvswitch"
        )
    )
    assert "bridge_mappings" not in compute["ovs"]
    assert compute["securitygroup"]["firewall_driver"] == "openvswitch"


def test_dhcp_and_l3_agents_keep_ovs_use_veth_false_and_legacy_routers(tmp_path):
    dhcp = read(neutron_conf.dhcp_agent_ini(tmp_path / "dhcp.ini", tmp_path / "dnsmasq.conf", tmp_path / "d.log"))
    assert dhcp["DEFAULT"]["ovs_use_veth"] == "false"
    assert (tmp_path / "dnsmasq.conf").read_text().startswith("log-async\n")
    l3 = read(neutron_conf.l3_agent_ini(tmp_path / "l3.ini"))
    assert l3["DEFAULT"]["agent_mode"] == "legacy" and l3["DEFAULT"]["ovs_use_veth"] == "false"


def common(tmp_path, host: str = "network-1", **kw) -> dict:
    return neutron_conf.common(
        host=host,
        state_path=tmp_path,
        transport_url="rabbit://guest:guest@10.0.0.1:5672/",
        dhcp_agents_per_network=2,
        log_file=tmp_path / "n.log",
        **kw,
    )


def test_neutron_conf_names_the_host_and_two_dhcp_agents(tmp_path):
    sections = common(tmp_path)
    conf = read(neutron_conf.neutron_conf(tmp_path / "neutron.conf", sections, {"DEFAULT": {"bind_port": 9696}}))
    assert conf["DEFAULT"]["host"] == "network-1"
    assert conf["DEFAULT"]["dhcp_agents_per_network"] == "2"
    assert conf["DEFAULT"]["auth_strategy"] == "noauth"
    assert conf["DEFAULT"]["interface_driver"] == "openvswitch"
    assert conf["DEFAULT"]["bind_port"] == "9696"
    assert conf["agent"]["root_helper"] == "env"


def test_neutron_real_needs_openstack(tmp_path):
    env = {"STETH_LAB_DIR": str(tmp_path), "STETH_LAB_NAME": None}
    code, out, err, _ = clirun.run_main(["lab", "up", "--neutron", "real"], env)
    assert code == 2 and "--neutron real needs --openstack" in err and out == ""
    assert not (tmp_path / "state.json").exists()


def test_l3_ha_as_kolla_sets_it_with_enable_neutron_agent_ha(tmp_path):
    def default(l3_ha: bool) -> dict:
        sections = common(tmp_path, "controller", l3_ha=l3_ha)
        return dict(read(neutron_conf.neutron_conf(tmp_path / "neutron.conf", sections, {}))["DEFAULT"])

    assert default(True)["l3_ha"] == "true" and default(True)["max_l3_agents_per_router"] == "3"
    assert "l3_ha" not in default(False) and "max_l3_agents_per_router" not in default(False)


def test_one_active_wants_every_instance_and_exactly_one_active():
    from steth.lab.neutron_ha import one_active

    assert one_active(2)({"network-1": "standby", "network-2": "active"})
    assert not one_active(2)({"network-1": "active", "network-2": "active"})
    assert not one_active(2)({"network-1": "standby", "network-2": "standby"})
    assert not one_active(2)({"network-1": "active"})
    assert not one_active(2)({"network-1": "active", "network-2": "unknown"})


def test_ha_routers_need_the_real_neutron_and_two_network_nodes(tmp_path):
    env = {"STETH_LAB_DIR": str(tmp_path), "STETH_LAB_NAME": None}
    code, out, err, _ = clirun.run_main(["lab", "up", "--openstack", "--routers", "ha", "--network", "2"], env)
    assert code == 2 and "--routers ha goes with --openstack --neutron real" in err and out == ""
    code, out, err, _ = clirun.run_main(["lab", "up", "--openstack", "--neutron", "real", "--routers", "ha"], env)
    assert code == 2 and "--routers ha needs two network nodes (--network 2)" in err and out == ""
    assert not (tmp_path / "state.json").exists()
