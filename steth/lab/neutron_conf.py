"""Neutron's configuration files for the real-Neutron lab, written the way a deployment writes them.

The defaults are kolla-ansible's (openstack/kolla-ansible, ansible/roles/neutron/templates/*.j2 and
ansible/group_vars/all/neutron.yml, ansible/roles/neutron/defaults/main.yml); where the lab departs from
them the comment says why (no Keystone, no Nova, no metadata agent, one machine).
"""

from __future__ import annotations

from pathlib import Path

# kolla-ansible ansible/group_vars/all/neutron.yml: neutron_physical_networks "physnet1" for neutron_bridge_name
# "br-ex"; neutron_type_drivers "flat,vlan,vxlan"; neutron_tenant_network_types "vxlan".
PHYSNET = "physnet1"
EXTERNAL_BRIDGE = "br-ex"
TYPE_DRIVERS = "flat,vlan,vxlan"
TENANT_NETWORK_TYPES = "vxlan"
VNI_RANGES = "1:1000"  # kolla-ansible ml2_conf.ini.j2 [ml2_type_vxlan]
OVSDB_PORT = 6640  # kolla-ansible ansible/group_vars/all/openvswitch.yml ovsdb_port: each node's own loopback here


def _ini(sections: dict[str, dict[str, object]], header: str) -> str:
    out = [f"# {header}\n# written by steth lab (steth.lab.neutron_conf)\n"]
    for name, options in sections.items():
        out.append(f"\n[{name}]\n")
        for key, value in options.items():
            if isinstance(value, bool):
                value = str(value).lower()
            out.append(f"{key} = {value}\n")
    return "".join(out)


# kolla-ansible ansible/roles/neutron/defaults/main.yml max_l3_agents_per_router: 3 (the lab has two network nodes:
# Neutron schedules min(3, agents) instances, neutron/db/l3_hamode_db.py: L3_HA_NAT_db_mixin.get_number_of_agents_for_scheduling).
MAX_L3_AGENTS_PER_ROUTER = 3


def common(
    *,
    host: str,
    state_path: Path,
    transport_url: str,
    dhcp_agents_per_network: int,
    log_file: Path,
    l3_ha: bool = False,
) -> dict[str, dict[str, object]]:
    """neutron.conf's sections every Neutron process reads (kolla-ansible neutron.conf.j2)."""
    sections = {
        "DEFAULT": {
            # Every lab node shares the machine's host name: each says which host it is, as nodes of a
            # real cloud do through their own host names (Neutron's default: socket.gethostname()).
            "host": host,
            "debug": False,
            "log_file": log_file,
            "use_stderr": False,
            "state_path": state_path,
            "interface_driver": "openvswitch",  # neutron.conf.j2 when neutron_plugin_agent == openvswitch
            "core_plugin": "ml2",
            "service_plugins": "router",  # neutron_service_plugins: "router" enabled for ML2/OVS
            # neutron.conf.j2 sets it with enable_neutron_agent_ha; defaults/main.yml dhcp_agents_per_network: 2.
            "dhcp_agents_per_network": dhcp_agents_per_network,
            "transport_url": transport_url,
            "dns_domain": "openstacklocal.",
            # No Keystone this round: every request runs as admin, no tenant isolation (docs/lab.md).
            "auth_strategy": "noauth",
            # No Nova to tell about port events (kolla fills [nova]; the lab's Nova is a stand-in).
            "notify_nova_on_port_status_changes": False,
            "notify_nova_on_port_data_changes": False,
        },
        "agent": {
            # kolla: sudo neutron-rootwrap; the lab runs as root, and an empty helper makes privsep call sudo.
            "root_helper": "env",
            # Agents report every 30 s by default; 10 s makes `lab up` see them alive sooner (down after 75 s).
            "report_interval": 10,
        },
        "oslo_concurrency": {"lock_path": state_path / "lock"},
        "oslo_messaging_rabbit": {"heartbeat_in_pthread": False},
    }
    if l3_ha:
        # neutron.conf.j2 under `enable_neutron_agent_ha`: l3_ha = true and max_l3_agents_per_router (routers are
        # created HA by default; the agents spawn keepalived, Debian's, in each qrouter-).
        sections["DEFAULT"].update(l3_ha=True, max_l3_agents_per_router=MAX_L3_AGENTS_PER_ROUTER)
    return sections


def neutron_conf(path: Path, sections: dict[str, dict[str, object]], extra: dict[str, dict[str, object]]) -> Path:
    merged = {name: dict(options) for name, options in sections.items()}
    for name, options in extra.items():
        merged.setdefault(name, {}).update(options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_ini(merged, "neutron.conf"))
    return path


def server_sections(*, bind_host: str, bind_port: int, database: str, api_paste: Path) -> dict[str, dict[str, object]]:
    """The server's part of neutron.conf (API and RPC server)."""
    return {
        "DEFAULT": {
            "bind_host": bind_host,
            "bind_port": bind_port,
            "api_paste_config": api_paste,
            "api_workers": 1,  # two cores shared with the agents
            "rpc_workers": 1,  # neutron-rpc-server needs at least one
            "rpc_state_report_workers": 1,
        },
        # neutron.conf.j2 [database]: mysql+pymysql; here through the lab's own mysqld socket.
        "database": {"connection": database, "max_retries": -1},
    }


def ml2_conf(path: Path) -> Path:
    """kolla-ansible ml2_conf.ini.j2 for neutron_plugin_agent == openvswitch."""
    path.write_text(
        _ini(
            {
                "ml2": {
                    "type_drivers": TYPE_DRIVERS,
                    "tenant_network_types": TENANT_NETWORK_TYPES,
                    # defaults/main.yml mechanism_drivers: openvswitch and l2population are enabled for ML2/OVS.
                    "mechanism_drivers": "openvswitch,l2population",
                    "extension_drivers": "port_security",  # extension_drivers: port_security always enabled
                },
                "ml2_type_vlan": {"network_vlan_ranges": ""},
                "ml2_type_flat": {"flat_networks": PHYSNET},
                "ml2_type_vxlan": {"vni_ranges": VNI_RANGES},
            },
            "ml2_conf.ini",
        )
    )
    return path


FIREWALL_DRIVERS = {
    # kolla-ansible openvswitch_agent.ini.j2 [securitygroup] firewall_driver
    "iptables_hybrid": "neutron.agent.linux.iptables_firewall.OVSHybridIptablesFirewallDriver",
    "openvswitch": "openvswitch",  # neutron/agent/linux/openvswitch_firewall (userspace conntrack here)
}


def openvswitch_agent_ini(path: Path, *, local_ip: str, network_node: bool, firewall: str = "iptables_hybrid") -> Path:
    """kolla-ansible openvswitch_agent.ini.j2."""
    ovs: dict[str, object] = {}
    if network_node:  # bridge_mappings only on network nodes (and computes that need the external bridge)
        ovs["bridge_mappings"] = f"{PHYSNET}:{EXTERNAL_BRIDGE}"
    ovs.update(
        {
            "datapath_type": "netdev",  # ovs_datapath: the kernel here has no OVS datapath, only userspace
            "ovsdb_connection": f"tcp:127.0.0.1:{OVSDB_PORT}",
            "local_ip": local_ip,
        }
    )
    path.write_text(
        _ini(
            {
                "agent": {"tunnel_types": "vxlan", "l2_population": True, "arp_responder": True},
                "securitygroup": {
                    "firewall_driver": FIREWALL_DRIVERS[firewall],
                    # Neutron's default is True; this kernel has no ip_set (VM ports would stay DOWN).
                    "enable_ipset": False,
                },
                "ovs": ovs,
            },
            "openvswitch_agent.ini",
        )
    )
    return path


def dhcp_agent_ini(path: Path, dnsmasq_conf: Path, dnsmasq_log: Path) -> Path:
    """kolla-ansible dhcp_agent.ini.j2 and dnsmasq.conf.j2."""
    dnsmasq_conf.write_text(f"log-async\nlog-facility={dnsmasq_log}\n")
    path.write_text(
        _ini(
            {
                "DEFAULT": {
                    "dnsmasq_config_file": dnsmasq_conf,
                    # kolla sets both true; the lab runs no metadata agent nor haproxy (no Nova to ask).
                    "enable_isolated_metadata": False,
                    "force_metadata": False,
                    # Neutron's default (neutron/conf/agent/common.py INTERFACE_OPTS), which kolla keeps: the
                    # DHCP port is an OVS internal port moved into qdhcp-, not a veth pair.
                    "ovs_use_veth": False,
                },
                "ovs": {"ovsdb_connection": f"tcp:127.0.0.1:{OVSDB_PORT}"},
            },
            "dhcp_agent.ini",
        )
    )
    return path


def l3_agent_ini(path: Path) -> Path:
    """kolla-ansible l3_agent.ini.j2 without DVR: agent_mode legacy."""
    path.write_text(
        _ini(
            {
                "DEFAULT": {
                    "agent_mode": "legacy",
                    "ovs_use_veth": False,
                    "enable_metadata_proxy": False,  # no haproxy nor metadata agent in the lab
                },
                "ovs": {"ovsdb_connection": f"tcp:127.0.0.1:{OVSDB_PORT}"},
            },
            "l3_agent.ini",
        )
    )
    return path
