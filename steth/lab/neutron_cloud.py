"""The real-Neutron lab's cloud, made through Neutron's API, and its VMs plugged the way Nova and os-vif do it.

Through the API (steth.lab.neutron_client): the tenant network `private` (a VXLAN network: the ML2 type
driver picks the VNI), its subnet, the router `router-1` with an interface on it, a security group `icmp`
(ICMP from anywhere) and one port per VM bound to its compute node (binding:host_id). The DHCP agents make
the DHCP ports and qdhcp- namespaces, the L3 agent the router's qr- port and qrouter- namespace.

A VM is a network namespace (<lab>-vm-N) whose eth0 is the peer of the tap device, as a guest's NIC is the
peer of libvirt's tap. Plugging follows the port's binding:vif_details, with os-vif itself (steth.lab.osvif_plug,
from the Neutron venv, inside the compute node):
- ovs_hybrid_plug True (the iptables_hybrid firewall): os-vif's vif_plug_ovs OvsPlugin._plug_bridge makes the
  Linux bridge qbr<id>, the veth qvb<id>/qvo<id> and the qvo port on br-int with the external_ids of
  ovsdb_lib.create_ovs_vif_port (iface-id, iface-status active, attached-mac, vm-uuid); the lab then does
  libvirt's part, the tap into qbr;
- otherwise (native): os-vif's _plug_vif_generic only checks br-int; libvirt's <virtualport
  type='openvswitch'> puts the tap itself on br-int with the same external_ids, and so does the lab.
Device names are os-vif's OvsPlugin.gen_port_name: the prefix and the port id, 14 characters in all.
Each VM then asks for its address with a DHCP client (udhcpc), across VXLAN to the network node's dnsmasq.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from steth.lab import neutron_conf, neutron_nodes, neutron_services, neutron_venv, node_host
from steth.lab.neutron_client import NeutronClient
from steth.lab.shell import LabError, in_ns, sh
from steth.lab.state import lab_dir, lab_name, lab_uuid, namespace_for, save_state

OSVIF_PLUG = Path(__file__).with_name("osvif_plug.py")  # run by the Neutron venv's Python
TENANT_CIDR = "10.20.0.0/24"  # exists only inside the VMs, qdhcp- and qrouter- namespaces
UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc calls this with the lease in its environment; the lab's VM keeps it (no resolv.conf is touched).
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    printf 'ip=%s\\nmask=%s\\nrouter=%s\\nmtu=%s\\nserverid=%s\\nlease=%s\\n' \
      "$ip" "$mask" "$router" "$mtu" "$serverid" "$lease" > "$STETH_LEASE_FILE"
    ;;
esac
exit 0
"""


def project_id(name: str) -> str:
    return lab_uuid("project", name).replace("-", "")


def dev(prefix: str, port_id: str) -> str:
    """os-vif vif_plug_ovs OvsPlugin.gen_port_name / nova.network.model NIC_NAME_LEN (14)."""
    return (prefix + port_id)[:14]


def create(api: NeutronClient, computes: list[str], progress, ha: bool = False) -> dict[str, Any]:
    """Network, subnet, router, security group and one VM port per compute node; returns the ids."""
    demo = project_id("demo")
    progress("creating network, subnet, router and security group through the Neutron API")
    net = api.post("/v2.0/networks", {"network": {"name": "private", "project_id": demo}})["network"]
    sub = api.post(
        "/v2.0/subnets",
        {
            "subnet": {
                "name": "private-v4",
                "network_id": net["id"],
                "project_id": demo,
                "ip_version": 4,
                "cidr": TENANT_CIDR,
                "enable_dhcp": True,
            }
        },
    )["subnet"]
    # The provider network physnet1 as the cloud's external network (flat on br-ex, kolla's
    # neutron_physical_networks), the router's gateway on it: a qg- port in qrouter- and SNAT.
    public = api.post(
        "/v2.0/networks",
        {
            "network": {
                "name": "public",
                "router:external": True,
                "provider:network_type": "flat",
                "provider:physical_network": neutron_conf.PHYSNET,
            }
        },
    )["network"]
    public_sub = api.post(
        "/v2.0/subnets",
        {
            "subnet": {
                "name": "public-v4",
                "network_id": public["id"],
                "ip_version": 4,
                "cidr": neutron_nodes.EXTERNAL_CIDR,
                "gateway_ip": neutron_nodes.UPSTREAM_GATEWAY,
                "enable_dhcp": False,
            }
        },
    )["subnet"]
    router_body = {"name": "router-1", "project_id": demo, "external_gateway_info": {"network_id": public["id"]}}
    if ha:  # l3_ha = True makes it the default; said outright, as `openstack router create --ha` does
        router_body["ha"] = True
    router = api.post("/v2.0/routers", {"router": router_body})["router"]
    api.put(f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    sg = api.post(
        "/v2.0/security-groups",
        {"security_group": {"name": "icmp", "description": "ICMP from anywhere", "project_id": demo}},
    )["security_group"]
    api.post(
        "/v2.0/security-group-rules",
        {
            "security_group_rule": {
                "security_group_id": sg["id"],
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "icmp",
                "remote_ip_prefix": "0.0.0.0/0",
                "project_id": demo,
            }
        },
    )
    vms = []
    for i, host in enumerate(computes, start=1):
        server_id = lab_uuid("server", f"vm-{i}")
        body: dict[str, Any] = {
            "name": f"vm-{i}-port",
            "network_id": net["id"],
            "project_id": demo,
            "device_id": server_id,
            "device_owner": "compute:nova",
            "binding:host_id": host,
        }
        if i % 2 == 0:  # vm-2, vm-4, ...: the project's default group and `icmp`; the others default only
            default = api.get(f"/v2.0/security-groups?name=default&project_id={demo}")["security_groups"]
            body["security_groups"] = [g["id"] for g in default][:1] + [sg["id"]]
        progress(f"creating port of vm-{i} bound to {host}")
        port = api.post("/v2.0/ports", {"port": body})["port"]
        if port["binding:vif_type"] != "ovs":
            raise LabError(
                f"port of vm-{i} on {host}: binding:vif_type {port['binding:vif_type']} (no live OVS agent?)"
            )
        vms.append(
            {
                "name": f"vm-{i}",
                "id": server_id,
                "host": host,
                "port_id": port["id"],
                "mac": port["mac_address"],
                "ip": port["fixed_ips"][0]["ip_address"],
                "hybrid": bool(port["binding:vif_details"].get("ovs_hybrid_plug")),
                "netns": namespace_for(f"vm-{i}"),
            }
        )
    return {
        "project_id": demo,
        "network": {"id": net["id"], "name": net["name"], "mtu": net["mtu"], "vni": net["provider:segmentation_id"]},
        "subnet": {"id": sub["id"], "cidr": sub["cidr"], "gateway_ip": sub["gateway_ip"]},
        "router": {
            "id": router["id"],
            "name": router["name"],
            "gateway_ip": router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"],
            "ha": bool(router.get("ha")),
        },
        "external": {"id": public["id"], "name": public["name"], "subnet_id": public_sub["id"]},
        "security_group": {"id": sg["id"], "name": sg["name"]},
        "vms": vms,
    }


def os_vif_plug(state: dict, vms: list[dict[str, Any]], network_id: str, mtu: int) -> None:
    """os-vif itself plugs each VM's port on its compute node (steth.lab.osvif_plug), all VMs at once."""
    procs = {}
    for vm in vms:
        spec = {
            "port_id": vm["port_id"],
            "mac": vm["mac"],
            "network_id": network_id,
            "mtu": mtu,
            "hybrid": vm["hybrid"],
            "datapath_type": "netdev",
            "instance_uuid": vm["id"],
            "instance_name": f"instance-{vm['id'][:8]}",
        }
        procs[vm["name"]] = subprocess.Popen(
            # -P: the script's folder (steth/lab, with its own ovs.py) must not shadow python-ovs
            [
                *node_host.enter(state, vm["host"]),
                neutron_venv.binary("python"),
                "-P",
                str(OSVIF_PLUG),
                json.dumps(spec),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **neutron_services.venv_env(), node_host.MARKER: lab_name()},
        )
    failed = []
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failed.append(f"{name}: {((err or out).strip().splitlines() or [str(proc.returncode)])[-1]}")
    if failed:
        raise LabError(f"os-vif could not plug {failed[0]}")


def attach(state: dict, vm: dict[str, Any], mtu: int) -> None:
    """The VM's namespace and NIC after os-vif: libvirt's part, the tap into qbr (hybrid) or onto br-int with
    the port's external_ids (native: libvirt's <virtualport type='openvswitch'>, the ids os-vif's
    create_ovs_vif_port sets)."""
    node = next(n for n in state["nodes"] if n["name"] == vm["host"])
    host_ns, vm_ns, pid = node["namespace"], vm["netns"], vm["port_id"]
    state["netns"].append(vm_ns)
    save_state(state)
    sh("ip", "netns", "add", vm_ns)
    in_ns(vm_ns, "ip", "link", "set", "lo", "up")
    tap = dev("tap", pid)
    sh("ip", "link", "add", tap, "netns", host_ns, "type", "veth", "peer", "name", "eth0", "netns", vm_ns)
    in_ns(vm_ns, "ip", "link", "set", "eth0", "address", vm["mac"])
    # The userspace datapath forwards frames as they are: checksum offload off on both ends (LAB-NOTES).
    for ns, name in ((host_ns, tap), (vm_ns, "eth0")):
        in_ns(ns, "ethtool", "-K", name, "tx", "off", check=False)
        in_ns(ns, "ip", "link", "set", name, "mtu", str(mtu), "up")
    if vm["hybrid"]:
        for name in (dev("qvb", pid), dev("qvo", pid)):  # os-vif's veth: offload off for the userspace datapath
            in_ns(host_ns, "ethtool", "-K", name, "tx", "off", check=False)
        in_ns(host_ns, "ip", "link", "set", tap, "master", dev("qbr", pid))
        return
    ids = [
        f"external_ids:iface-id={pid}",
        "external_ids:iface-status=active",
        f"external_ids:attached-mac={vm['mac']}",
        f"external_ids:vm-uuid={vm['id']}",
    ]
    neutron_nodes.vsctl(
        state, vm["host"], "--", "--may-exist", "add-port", "br-int", tap, "--", "set", "Interface", tap, *ids
    )


def wait_ports_active(api: NeutronClient, cloud: dict[str, Any], timeout: float, progress) -> list[dict]:
    """Until every port of the tenant network (VMs', DHCP, router) and the router's gateway port are ACTIVE."""
    progress("waiting for the ports to become ACTIVE")
    deadline = time.monotonic() + timeout
    ports: list[dict] = []
    # An HA router's interfaces are network:ha_router_replicated_interface (neutron/db/l3_hamode_db.py:
    # L3_HA_NAT_db_mixin._get_device_owner).
    interface = "network:ha_router_replicated_interface" if cloud["router"].get("ha") else "network:router_interface"
    wanted = {"network:dhcp", "compute:nova", interface, "network:router_gateway"}
    while time.monotonic() < deadline:
        ports = api.get(f"/v2.0/ports?network_id={cloud['network']['id']}")["ports"]
        ports += api.get(f"/v2.0/ports?device_id={cloud['router']['id']}&device_owner=network:router_gateway")["ports"]
        owners = {p["device_owner"] for p in ports}
        if all(p["status"] == "ACTIVE" for p in ports) and wanted <= owners:
            return ports
        time.sleep(0.5)
    down = [f"{p['device_owner'] or 'port'} {p['id'][:8]} {p['status']}" for p in ports if p["status"] != "ACTIVE"]
    raise LabError(f"ports not ACTIVE after {timeout:.0f} s: {', '.join(down) or 'no DHCP port yet'}")


def dhcp(state: dict, vm: dict[str, Any], timeout: float) -> subprocess.Popen:
    """Start udhcpc in the VM (it exits once it has a lease); `lease` reads what it got."""
    folder = lab_dir() / "vms" / vm["name"]
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "udhcpc.script"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    lease = folder / "lease"
    lease.unlink(missing_ok=True)
    argv = ["ip", "netns", "exec", vm["netns"], "udhcpc", "-i", "eth0", "-f", "-q", "-n"]
    argv += ["-t", str(int(timeout)), "-T", "1", "-A", "1", "-O", "mtu", "-s", str(script)]
    with open(folder / "udhcpc.log", "ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "STETH_LEASE_FILE": str(lease), node_host.MARKER: lab_name()},
            start_new_session=True,
        )


def lease(vm_name: str) -> dict[str, str]:
    path = lab_dir() / "vms" / vm_name / "lease"
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def wait_leases(state: dict, vms: list[dict[str, Any]], timeout: float, progress) -> dict[str, dict[str, str]]:
    progress("waiting for each VM's DHCP lease (udhcpc in the VM, across VXLAN)")
    procs = {vm["name"]: dhcp(state, vm, timeout) for vm in vms}
    deadline = time.monotonic() + timeout + 5
    try:
        while time.monotonic() < deadline:
            if all(p.poll() is not None for p in procs.values()):
                break
            time.sleep(0.2)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    got = {vm["name"]: lease(vm["name"]) for vm in vms}
    missing = [name for name, found in got.items() if not found.get("ip")]
    if missing:
        raise LabError(
            f"no DHCP lease for {', '.join(missing)} within {timeout:.0f} s: see "
            f"{Path(lab_dir() / 'vms' / missing[0] / 'udhcpc.log')}"
        )
    wrong = [n for n, vm in ((vm["name"], vm) for vm in vms) if got[n]["ip"] != vm["ip"]]
    if wrong:
        raise LabError(f"{wrong[0]} got {got[wrong[0]]['ip']}, not its port's address")
    return got
