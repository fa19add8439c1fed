"""A miniature ML2/Open vSwitch deployment on top of the local fleet, and the OpenStack API describing it.

    steth lab up --openstack

Per node (network namespace), an Open vSwitch of its own (userspace datapath; database, sockets and logs in
<lab dir>/ovs/<node>; the node's agent finds it through OVS_RUNDIR like ovs-vsctl does) with:

- br-int, and the provider bridge br-phys (bridge_mappings physnet1:br-phys) patched to it
  (int-br-phys / phy-br-phys); br-phys's uplink is the node's trunk0 on the lab's OVS fabric switch
  (steth.lab.ovs), which trunks the tenant VLAN;
- the Neutron OVS agent's VLAN translation as flows: local tag 1 on br-int <-> segmentation id on the wire;
- VM ports: the VM is a namespace whose eth0 is the peer of tap<port-id[:11]>. vm-1 (compute-1) is plugged
  the hybrid way (tap in the Linux bridge qbr, veth qvb-qvo, qvo on br-int), vm-2 (compute-2) natively
  (tap on br-int). OVS ports carry external_ids iface-id / attached-mac / vm-uuid / iface-status and
  other_config net_uuid / network_type / physical_network / segmentation_id, as Nova and Neutron set them.

network-1 holds qdhcp-<network id> with dnsmasq (Neutron's arguments and host file) on the DHCP port, wired as
Neutron's OVSInterfaceDriver does (neutron/agent/linux/interface.py): by default (`ovs_use_veth = False`,
neutron/conf/agent/common.py) tap<port> is an OVS internal port on br-int moved into qdhcp; with
`dhcp_wiring="veth"` (`steth lab up --openstack --ovs-use-veth`) a veth pair, tap<port> on br-int in the node's
namespace and ns-<port> inside qdhcp. qrouter-<router id> holds qr-<port> with the gateway (a veth).

The API stand-in (steth.lab.openstack_api) runs as a process and describes exactly this: hosts, agents,
network, subnet, ports (MACs, addresses, binding:host_id, vif_details), servers. clouds.yaml is written to
<lab dir>/openstack/clouds.yaml: cloud `steth-lab` (admin) and `steth-lab-demo` (member, no admin).
Every id is derived from the lab name, so a lab describes itself the same way each time.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from steth.lab import fleet, nova_samples
from steth.lab.shell import LabError, in_ns, sh
from steth.lab.state import lab_dir, lab_uuid, namespace_for, save_state

PHYSNET = "physnet1"
PROVIDER_BRIDGE = "br-phys"
SEGMENTATION_ID = 101  # in steth.lab.ovs.DEFAULT_TRUNKS
LOCAL_VLAN = 1
TENANT_CIDR = "10.20.0.0/24"  # lives only inside the VM, qdhcp and qrouter namespaces
NETWORK_MTU = 1500
TUNNEL_TYPE = "vxlan"  # what the OVS agents report ([agent] tunnel_types); the lab builds no br-tun
VXLAN_NETWORK_ID = 1001
VXLAN_NETWORK_MTU = NETWORK_MTU - 50  # Neutron's MTU for a VXLAN network on a 1500 underlay (IPv4)
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DHCP_WIRINGS = ("internal", "veth")  # Neutron's ovs_use_veth = False (its default), True


# --- names and ids ---------------------------------------------------------------------------------


def mac_for(port_id: str) -> str:
    b = uuid.UUID(port_id).bytes
    return f"fa:16:3e:{b[0]:02x}:{b[1]:02x}:{b[2]:02x}"


def dev(prefix: str, port_id: str) -> str:
    """Nova/os-vif device names: the prefix and the first 11 characters of the port id (14 in all)."""
    return f"{prefix}{port_id[:11]}"


def ovs_dir(node: str) -> Path:
    return lab_dir() / "ovs" / node


def ovs_env(node: str) -> dict[str, str]:
    d = str(ovs_dir(node))
    return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d}


def vsctl(node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run(["ovs-vsctl", "--timeout=10", *args], ovs_env(node), check)


def ofctl(node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run(["ovs-ofctl", *args], ovs_env(node), check)


def _run(argv: list[str], env: dict[str, str], check: bool) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


# --- the design: what the lab will be (also what the API describes) --------------------------------


def design(nodes: list[dict[str, Any]], dhcp_wiring: str = "internal") -> dict[str, Any]:
    """Ids, names, MACs and addresses of everything, from the node list of the fleet."""
    net = ipaddress.ip_network(TENANT_CIDR)
    computes = [n["name"] for n in nodes if "compute" in n["roles"]]
    networks = [n["name"] for n in nodes if "network" in n["roles"]]
    if not computes or not networks:
        raise LabError("the OpenStack lab needs at least one compute and one network node")
    network_id, subnet_id = lab_uuid("network", "private"), lab_uuid("subnet", "private-v4")
    router_id = lab_uuid("router", "router-1")
    gw_host = networks[0]
    ports = [
        {
            "role": "router",
            "id": lab_uuid("port", "router-1"),
            "host": gw_host,
            "ip": str(net[1]),
            "device_owner": "network:router_interface",
            "device_id": router_id,
        },
        {
            "role": "dhcp",
            "id": lab_uuid("port", "dhcp"),
            "host": gw_host,
            "ip": str(net[2]),
            "device_owner": "network:dhcp",
            "device_id": f"dhcp{lab_uuid('dhcp-device', gw_host)}-{network_id}",
        },
    ]
    servers = []
    for i in range(1, len(computes) + 1):  # one VM per compute node; the odd ones hybrid, the even ones native
        host = computes[i - 1]
        server_id = lab_uuid("server", f"vm-{i}")
        servers.append({"id": server_id, "name": f"vm-{i}", "host": host})
        ports.append(
            {
                "role": "vm",
                "id": lab_uuid("port", f"vm-{i}"),
                "host": host,
                "ip": str(net[10 + i]),
                "device_owner": "compute:nova",
                "device_id": server_id,
                "server": f"vm-{i}",
                "hybrid": i % 2 == 1,
                "netns": namespace_for(f"vm-{i}"),
            }
        )
    for p in ports:
        p["mac"] = mac_for(p["id"])
    return {
        "network": {
            "id": network_id,
            "name": "private",
            "segmentation_id": SEGMENTATION_ID,
            "mtu": NETWORK_MTU,
            "physical_network": PHYSNET,
        },
        "subnet": {"id": subnet_id, "cidr": TENANT_CIDR, "gateway_ip": str(net[1]), "prefixlen": net.prefixlen},
        "router": {"id": router_id, "name": "router-1", "host": gw_host},
        "dhcp_host": gw_host,
        "computes": computes,
        "networks": networks,
        "ports": ports,
        "servers": servers,
        "qdhcp": f"qdhcp-{network_id}",
        "qrouter": f"qrouter-{router_id}",
        "dhcp_wiring": dhcp_wiring,
    }


def dhcp_device(d: dict) -> str:
    """The DHCP port's device inside qdhcp, where dnsmasq listens: tap<id> (an internal port moved in) or
    ns-<id> (the veth's inner end), as neutron/agent/linux/interface.py OVSInterfaceDriver names them."""
    port = next(p for p in d["ports"] if p["role"] == "dhcp")
    return dev("ns-" if d.get("dhcp_wiring") == "veth" else "tap", port["id"])


def ovs_agent_configurations(node: dict[str, Any]) -> dict[str, Any]:
    """The `configurations` an Open vSwitch agent of this node would report: the keys and value types of
    OVSNeutronAgent.__init__'s agent_state in openstack/neutron
    neutron/plugins/ml2/drivers/openvswitch/agent/ovs_neutron_agent.py (bridge_mappings a dict, tunnel_types a
    list, tunneling_ip the [ovs] local_ip: here the node's data0 address, its VXLAN underlay)."""
    return {
        "bridge_mappings": {PHYSNET: PROVIDER_BRIDGE},
        "resource_provider_bandwidths": {},
        "resource_provider_inventory_defaults": {"allocation_ratio": 1.0, "min_unit": 1, "step_size": 1, "reserved": 0},
        "resource_provider_hypervisors": {},
        "integration_bridge": "br-int",
        "tunnel_types": [TUNNEL_TYPE],
        "tunneling_ip": node.get("data_address") or None,
        "l2_population": True,
        "arp_responder_enabled": True,
        "enable_distributed_routing": False,
        "log_agent_heartbeats": False,
        "extensions": [],
        "datapath_type": "netdev",
        "ovs_capabilities": {"datapath_types": ["netdev", "system"], "iface_types": ["internal", "patch", "vxlan"]},
        "vhostuser_socket_dir": "/var/run/openvswitch",
        "ovs_hybrid_plug": False,
        "baremetal_smartnic": False,
    }


def security_group(project: str) -> dict[str, Any]:
    """The project's default security group as GET /v2.0/security-groups/{id} shows it (api-ref
    security-groups/security-group-show-response.json): Neutron's default rules (egress anywhere, ingress from
    the group's own members; the rule templates of neutron/db/migration/alembic_migrations/versions/2023.2/
    expand/c33da356b165_security_group_default_rules.py) plus the ICMP rule operators add so that VMs answer
    ping. The lab filters nothing, and ICMP from anywhere is what this group admits that the defaults do not."""
    sg_id = lab_uuid("security-group", "default")

    def rule(name: str, direction: str, ethertype: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": lab_uuid("security-group-rule", name),
            "security_group_id": sg_id,
            "direction": direction,
            "ethertype": ethertype,
            "protocol": None,
            "port_range_min": None,
            "port_range_max": None,
            "remote_ip_prefix": None,
            "remote_group_id": None,
            "remote_address_group_id": None,
            "project_id": project,
            "tenant_id": project,
            "description": "",
            "belongs_to_default_sg": True,
            **extra,
        }

    return {
        "id": sg_id,
        "name": "default",
        "description": "Default security group",
        "project_id": project,
        "tenant_id": project,
        "stateful": True,
        "shared": False,
        "security_group_rules": [
            rule("egress-v4", "egress", "IPv4"),
            rule("egress-v6", "egress", "IPv6"),
            rule("ingress-v4", "ingress", "IPv4", remote_group_id=sg_id),
            rule("ingress-v6", "ingress", "IPv6", remote_group_id=sg_id),
            rule(
                "icmp-v4", "ingress", "IPv4", protocol="icmp", remote_ip_prefix="0.0.0.0/0", belongs_to_default_sg=False
            ),
        ],
    }


def cloud_description(d: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The OpenStack API's view of the lab: exactly what `design` built."""
    demo, admin = lab_uuid("project", "demo").replace("-", ""), lab_uuid("project", "admin").replace("-", "")
    net, sub = d["network"], d["subnet"]
    agent = lambda kind, host, binary, conf: {  # noqa: E731
        "id": lab_uuid("agent", f"{kind}@{host}"),
        "agent_type": kind,
        "binary": binary,
        "host": host,
        "alive": True,
        "admin_state_up": True,
        "topic": binary.removeprefix("neutron-"),
        "availability_zone": "nova",
        "configurations": conf,
        "started_at": "2024-01-01 00:00:00",
        "heartbeat_timestamp": "2024-01-01 00:00:00",
    }
    agents = [
        agent("Open vSwitch agent", n["name"], "neutron-openvswitch-agent", ovs_agent_configurations(n)) for n in nodes
    ]
    host = d["dhcp_host"]
    dhcp = agent(
        "DHCP agent", host, "neutron-dhcp-agent", {"dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq", "networks": 1}
    )
    l3 = agent("L3 agent", host, "neutron-l3-agent", {"agent_mode": "legacy", "routers": 1})
    agents += [dhcp, l3, agent("Metadata agent", host, "neutron-metadata-agent", {})]
    sg = security_group(demo)
    ports = []
    for p in d["ports"]:
        vm = p["device_owner"].startswith("compute:")
        details = {
            "port_filter": True,
            "datapath_type": "netdev",
            "bridge_name": "br-int",
            "connectivity": "l2",
            "ovs_hybrid_plug": bool(p.get("hybrid")),
        }
        ports.append(
            {
                "id": p["id"],
                "name": "",
                "network_id": net["id"],
                "mac_address": p["mac"],
                "project_id": demo,
                "tenant_id": demo,
                "fixed_ips": [{"subnet_id": sub["id"], "ip_address": p["ip"]}],
                "device_id": p["device_id"],
                "device_owner": p["device_owner"],
                "status": "ACTIVE",
                "admin_state_up": True,
                "binding:host_id": p["host"],
                "binding:vif_type": "ovs",
                "binding:vnic_type": "normal",
                "binding:vif_details": details,
                "binding:profile": {},
                # trusted network:* ports get no group (neutron/db/securitygroups_db.py
                # _ensure_default_security_group_on_port); VM ports the project's default one
                "security_groups": [sg["id"]] if vm else [],
                "port_security_enabled": True,
                "allowed_address_pairs": [],
            }
        )
    servers = []
    for s in d["servers"]:
        port = next(p for p in d["ports"] if p.get("server") == s["name"])
        servers.append(nova_samples.server(s["id"], s["name"], s["host"], demo, net["name"], port["ip"], port["mac"]))
    return {
        **nova_samples.identity(admin, demo),
        "hypervisors": nova_samples.hypervisors(nodes, lab_uuid),
        "agents": agents,
        "networks": [
            {
                "id": net["id"],
                "name": net["name"],
                "project_id": demo,
                "tenant_id": demo,
                "status": "ACTIVE",
                "admin_state_up": True,
                "mtu": net["mtu"],
                "subnets": [sub["id"]],
                "shared": False,
                "router:external": False,
                "provider:network_type": "vlan",
                "provider:physical_network": PHYSNET,
                "provider:segmentation_id": net["segmentation_id"],
            },
            {  # a tenant VXLAN network with no ports: what the agents' tunnel_types and tunneling_ip are for
                "id": lab_uuid("network", "tenant-vxlan"),
                "name": "tenant-vxlan",
                "project_id": demo,
                "tenant_id": demo,
                "status": "ACTIVE",
                "admin_state_up": True,
                "mtu": VXLAN_NETWORK_MTU,
                "subnets": [],
                "shared": False,
                "router:external": False,
                "provider:network_type": TUNNEL_TYPE,
                "provider:physical_network": None,
                "provider:segmentation_id": VXLAN_NETWORK_ID,
            },
        ],
        "subnets": [
            {
                "id": sub["id"],
                "name": "private-v4",
                "network_id": net["id"],
                "project_id": demo,
                "tenant_id": demo,
                "cidr": sub["cidr"],
                "ip_version": 4,
                "gateway_ip": sub["gateway_ip"],
                "enable_dhcp": True,
                "allocation_pools": [
                    {
                        "start": str(ipaddress.ip_network(sub["cidr"])[2]),
                        "end": str(ipaddress.ip_network(sub["cidr"])[-2]),
                    }
                ],
                "dns_nameservers": [],
            }
        ],
        "ports": ports,
        "routers": [
            {
                "id": d["router"]["id"],
                "name": d["router"]["name"],
                "project_id": demo,
                "tenant_id": demo,
                "status": "ACTIVE",
                "admin_state_up": True,
                "external_gateway_info": None,
                "ha": False,
                "distributed": False,
            }
        ],
        "security_groups": [sg],
        "servers": servers,
        "network_dhcp_agents": {net["id"]: [dhcp["id"]]},
        "router_l3_agents": {d["router"]["id"]: [l3["id"]]},
    }


# --- building -------------------------------------------------------------------------------------


def up(
    compute: int = 2,
    network: int = 1,
    mgmt_cidr: str = "10.99.0.0/24",
    data_cidr: str = "10.98.0.0/24",
    heartbeat_s: float = 1.0,
    allow_mutating: bool = True,
    progress=lambda msg: None,
    trunks: list[int] | None = None,
    insecure: bool = False,
    dhcp_wiring: str = "internal",
) -> dict[str, Any]:
    """The fleet with its OVS fabric, then the ML2/OVS pieces on it, then the API; returns the state."""
    if dhcp_wiring not in DHCP_WIRINGS:
        raise LabError(f"dhcp_wiring must be one of {', '.join(DHCP_WIRINGS)}, not {dhcp_wiring!r}")
    if os.geteuid() != 0:
        raise LabError("the OpenStack lab needs root (network namespaces, Open vSwitch)")
    if compute < 1 or network < 1:
        raise LabError("the OpenStack lab needs at least one compute and one network node")
    state = fleet.up(
        compute,
        network,
        mgmt_cidr,
        data_cidr,
        heartbeat_s,
        allow_mutating,
        progress=progress,
        ovs=True,
        trunks=trunks,
        agent_env=ovs_env,
        insecure=insecure,
    )
    try:
        d = design(state["nodes"], dhcp_wiring)
        state["openstack"] = {"design": d, "ovs": {}}
        save_state(state)
        for node in state["nodes"]:
            progress(f"Open vSwitch on {node['name']}")
            _node_ovs(state, node)
        for port in d["ports"]:
            progress(f"plugging {port['role']} port {port['id'][:8]} on {port['host']}")
            _plug(state, d, port)
        progress("starting dnsmasq in " + d["qdhcp"])
        _dnsmasq(state, d)
        progress("starting the OpenStack API stand-in")
        _api(state, d)
        return state
    except BaseException:
        fleet.down(progress)
        raise


def _node(state: dict, name: str) -> dict[str, Any]:
    return next(n for n in state["nodes"] if n["name"] == name)


def _node_ovs(state: dict, node: dict[str, Any]) -> None:
    """ovsdb-server and ovs-vswitchd inside the node's namespace, with OVS's default file names under
    OVS_RUNDIR, so that ovs-vsctl, ovs-ofctl and ovs-appctl find them with no options."""
    name, ns = node["name"], node["namespace"]
    d = ovs_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ovs_env(name)}
    if not (d / "conf.db").exists():
        sh("ovsdb-tool", "create", str(d / "conf.db"), OVS_SCHEMA)
    record = state["openstack"]["ovs"].setdefault(name, {"dir": str(d), "pids": {}})
    for daemon, argv in (
        (
            "ovsdb-server",
            ["ovsdb-server", str(d / "conf.db"), f"--remote=punix:{d / 'db.sock'}", "--pidfile", "--log-file"],
        ),
        ("ovs-vswitchd", ["ovs-vswitchd", "--pidfile", "--log-file"]),
    ):
        log = open(d / f"{daemon}.out", "ab")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        record["pids"][daemon] = proc.pid
        state["pids"][f"{daemon}@{name}"] = proc.pid  # fleet.down stops it (the namespace sweep would too)
        save_state(state)
        ready = d / "db.sock" if daemon == "ovsdb-server" else d / "ovs-vswitchd.pid"
        _wait(ready.exists, 10, f"{daemon} on {name} did not start: see {d}/{daemon}.log")
        if daemon == "ovsdb-server":
            vsctl(name, "--no-wait", "init")
    vsctl(
        name,
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
        "--",
        "add-br",
        PROVIDER_BRIDGE,
        "--",
        "set",
        "bridge",
        PROVIDER_BRIDGE,
        "datapath_type=netdev",
        "--",
        "add-port",
        "br-int",
        "int-br-phys",
        "--",
        "set",
        "interface",
        "int-br-phys",
        "type=patch",
        "options:peer=phy-br-phys",
        "--",
        "add-port",
        PROVIDER_BRIDGE,
        "phy-br-phys",
        "--",
        "set",
        "interface",
        "phy-br-phys",
        "type=patch",
        "options:peer=int-br-phys",
        "--",
        "add-port",
        PROVIDER_BRIDGE,
        "trunk0",
    )
    # The Neutron OVS agent's VLAN translation for the tenant network (local tag <-> segmentation id).
    int_patch, phy_patch = _ofport(name, "int-br-phys"), _ofport(name, "phy-br-phys")
    seg = SEGMENTATION_ID
    for bridge, flows in (
        (
            "br-int",
            [
                f"priority=3,in_port={int_patch},dl_vlan={seg},actions=mod_vlan_vid:{LOCAL_VLAN},NORMAL",
                f"priority=2,in_port={int_patch},actions=drop",
            ],
        ),
        (
            PROVIDER_BRIDGE,
            [
                f"priority=4,in_port={phy_patch},dl_vlan={LOCAL_VLAN},actions=mod_vlan_vid:{seg},NORMAL",
                f"priority=2,in_port={phy_patch},actions=drop",
            ],
        ),
    ):
        for flow in flows:
            ofctl(name, "add-flow", bridge, flow)


def _ofport(node: str, iface: str) -> int:
    for _ in range(100):
        value = vsctl(node, "get", "Interface", iface, "ofport").stdout.strip()
        if value.lstrip("-").isdigit() and int(value) > 0:
            return int(value)
        time.sleep(0.05)
    raise LabError(f"{iface} on {node} got no OpenFlow port number")


def _wait(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(message)
        time.sleep(0.05)


def _veth(ns_a: str, a: str, ns_b: str, b: str, mac_b: str | None = None) -> None:
    """A veth pair created straight in its two namespaces, checksum offload off (the userspace datapath
    forwards frames as they are), both ends up."""
    sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b)
    if mac_b:
        in_ns(ns_b, "ip", "link", "set", b, "address", mac_b)
    for ns, name in ((ns_a, a), (ns_b, b)):
        in_ns(ns, "ethtool", "-K", name, "tx", "off", check=False)
        in_ns(ns, "ip", "link", "set", name, "mtu", str(NETWORK_MTU), "up")


def _ovs_port(node: str, name: str, d: dict, port: dict, vm_uuid: str | None = None, internal: bool = False) -> None:
    net = d["network"]
    ext = (
        [
            f"external_ids:iface-id={port['id']}",
            f"external_ids:attached-mac={port['mac']}",
            "external_ids:iface-status=active",
        ]
        + ([f"external_ids:vm-uuid={vm_uuid}"] if vm_uuid else [])
        + (["type=internal"] if internal else [])
    )
    vsctl(
        node,
        "--",
        "--may-exist",
        "add-port",
        "br-int",
        name,
        "--",
        "set",
        "port",
        name,
        f"tag={LOCAL_VLAN}",
        f"other_config:net_uuid={net['id']}",
        "other_config:network_type=vlan",
        f"other_config:physical_network={PHYSNET}",
        f"other_config:segmentation_id={net['segmentation_id']}",
        "--",
        "set",
        "interface",
        name,
        *ext,
    )


def _namespace(state: dict, ns: str) -> None:
    state["netns"].append(ns)
    save_state(state)
    sh("ip", "netns", "add", ns)
    in_ns(ns, "ip", "link", "set", "lo", "up")


def _plug(state: dict, d: dict, port: dict) -> None:
    node = _node(state, port["host"])
    host_ns, pid = node["namespace"], port["id"]
    prefix = d["subnet"]["prefixlen"]
    if port["role"] == "vm":
        vm_ns = port["netns"]
        _namespace(state, vm_ns)
        _veth(host_ns, dev("tap", pid), vm_ns, "eth0", port["mac"])
        in_ns(vm_ns, "ip", "addr", "add", f"{port['ip']}/{prefix}", "dev", "eth0")
        in_ns(vm_ns, "ip", "route", "add", "default", "via", d["subnet"]["gateway_ip"])
        server_id = port["device_id"]
        if port["hybrid"]:  # tap -> qbr (Linux bridge) -> qvb == qvo -> br-int
            qbr = dev("qbr", pid)
            in_ns(host_ns, "ip", "link", "add", qbr, "type", "bridge")
            in_ns(host_ns, "ip", "link", "set", qbr, "mtu", str(NETWORK_MTU), "up")
            _veth(host_ns, dev("qvb", pid), host_ns, dev("qvo", pid))
            in_ns(host_ns, "ip", "link", "set", dev("tap", pid), "master", qbr)
            in_ns(host_ns, "ip", "link", "set", dev("qvb", pid), "master", qbr)
            _ovs_port(port["host"], dev("qvo", pid), d, port, server_id)
        else:  # native: the tap itself on br-int
            _ovs_port(port["host"], dev("tap", pid), d, port, server_id)
        return
    if port["role"] == "dhcp" and d.get("dhcp_wiring") != "veth":
        _namespace(state, d["qdhcp"])
        _internal_port_into(port["host"], host_ns, d, port, d["qdhcp"])
        return
    # veth wiring (router ports; the DHCP port with ovs_use_veth): ns-/qr- inside, tap<id> on br-int
    ns, inner = (d["qdhcp"], dev("ns-", pid)) if port["role"] == "dhcp" else (d["qrouter"], dev("qr-", pid))
    _namespace(state, ns)
    _veth(host_ns, dev("tap", pid), ns, inner, port["mac"])
    in_ns(ns, "ip", "addr", "add", f"{port['ip']}/{prefix}", "dev", inner)
    _ovs_port(port["host"], dev("tap", pid), d, port)


def _internal_port_into(node: str, host_ns: str, d: dict, port: dict, ns: str) -> None:
    """Neutron's default DHCP port (neutron/agent/linux/interface.py OVSInterfaceDriver.plug_new with
    ovs_use_veth = False): an OVS internal port tap<id> on br-int, moved into the namespace, given the port's
    MAC and address there. The userspace datapath keeps forwarding to it once moved (LAB-NOTES)."""
    name = dev("tap", port["id"])
    _ovs_port(node, name, d, port, internal=True)
    _wait(
        lambda: in_ns(host_ns, "ip", "link", "show", name, check=False).returncode == 0,
        10,
        f"Open vSwitch on {node} did not create the internal port {name}",
    )
    in_ns(host_ns, "ip", "link", "set", name, "netns", ns)
    in_ns(ns, "ip", "link", "set", name, "address", port["mac"])
    in_ns(ns, "ethtool", "-K", name, "tx", "off", check=False)
    in_ns(ns, "ip", "link", "set", name, "mtu", str(NETWORK_MTU), "up")
    in_ns(ns, "ip", "addr", "add", f"{port['ip']}/{d['subnet']['prefixlen']}", "dev", name)


def dhcp_dir(d: dict) -> Path:
    return lab_dir() / "dhcp" / d["network"]["id"]


def dnsmasq_argv(d: dict) -> list[str]:
    """Neutron's dnsmasq command line (neutron.agent.linux.dhcp.Dnsmasq), files in the lab dir."""
    conf, sub = dhcp_dir(d), d["subnet"]
    mask = str(ipaddress.ip_network(sub["cidr"]).netmask)
    tag = f"subnet-{sub['id']}"
    return [
        "dnsmasq",
        "--no-hosts",
        "--no-resolv",
        "--keep-in-foreground",
        "--user=root",
        "--group=root",
        f"--pid-file={conf / 'pid'}",
        f"--dhcp-hostsfile={conf / 'host'}",
        f"--addn-hosts={conf / 'addn_hosts'}",
        f"--dhcp-optsfile={conf / 'opts'}",
        f"--dhcp-leasefile={conf / 'leases'}",
        "--dhcp-match=set:ipxe,175",
        "--local-service",
        "--bind-interfaces",
        f"--interface={dhcp_device(d)}",
        "--except-interface=lo",
        f"--dhcp-range=set:{tag},{ipaddress.ip_network(sub['cidr']).network_address},static,{mask},86400s",
        f"--dhcp-option-force=option:mtu,{d['network']['mtu']}",
        "--dhcp-lease-max=256",
        "--conf-file=/dev/null",
        "--domain=openstacklocal",
    ]


def _dnsmasq(state: dict, d: dict) -> None:
    conf = dhcp_dir(d)
    conf.mkdir(parents=True, exist_ok=True)
    tag = f"subnet-{d['subnet']['id']}"
    hostname = lambda ip: f"host-{ip.replace('.', '-')}"  # noqa: E731
    (conf / "host").write_text(
        "".join(f"{p['mac']},{hostname(p['ip'])}.openstacklocal,{p['ip']}\n" for p in d["ports"])
    )
    (conf / "addn_hosts").write_text(
        "".join(f"{p['ip']}\t{hostname(p['ip'])}.openstacklocal {hostname(p['ip'])}\n" for p in d["ports"])
    )
    dhcp_ip = next(p["ip"] for p in d["ports"] if p["role"] == "dhcp")
    (conf / "opts").write_text(
        f"tag:{tag},option:dns-server,{dhcp_ip}\ntag:{tag},option:router,{d['subnet']['gateway_ip']}\n"
    )
    (conf / "leases").touch()
    (conf / "interface").write_text(dhcp_device(d) + "\n")
    start_dnsmasq(state, d)


def start_dnsmasq(state: dict, d: dict) -> int:
    """(Re)start dnsmasq in the qdhcp namespace (tests stop it to make a fault, then call this)."""
    conf = dhcp_dir(d)
    (conf / "pid").unlink(missing_ok=True)  # a stale pid file would make the wait below return at once
    log = open(conf / "dnsmasq.log", "ab")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", d["qdhcp"], *dnsmasq_argv(d)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    state["pids"]["dnsmasq"] = proc.pid
    save_state(state)
    _wait(lambda: (conf / "pid").exists() or proc.poll() is not None, 10, "dnsmasq did not start")
    if proc.poll() is not None:
        raise LabError(f"dnsmasq exited {proc.returncode}: see {conf / 'dnsmasq.log'}")
    return proc.pid


def _api(state: dict, d: dict) -> None:
    base = lab_dir() / "openstack"
    base.mkdir(parents=True, exist_ok=True)
    cloud = cloud_description(d, state["nodes"])
    (base / "cloud.json").write_text(json.dumps(cloud, indent=2))
    port_file = base / "api.port"
    port_file.unlink(missing_ok=True)
    log = open(base / "api.out", "ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steth.lab.openstack_api",
            "--cloud",
            str(base / "cloud.json"),
            "--port-file",
            str(port_file),
            "--log",
            str(base / "api.log"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    state["pids"]["openstack-api"] = proc.pid
    save_state(state)
    _wait(lambda: port_file.exists() or proc.poll() is not None, 20, "the OpenStack API stand-in did not start")
    if proc.poll() is not None:
        raise LabError(f"the OpenStack API stand-in exited: see {base / 'api.out'}")
    from steth.lab.openstack_api import clouds_yaml

    auth_url = f"http://127.0.0.1:{port_file.read_text().strip()}/identity/v3"
    (base / "clouds.yaml").write_text(clouds_yaml(auth_url, cloud))
    state["openstack"].update(
        auth_url=auth_url, clouds_yaml=str(base / "clouds.yaml"), cloud_json=str(base / "cloud.json"), cloud="steth-lab"
    )
    save_state(state)
