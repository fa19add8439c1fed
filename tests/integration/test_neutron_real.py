"""The real-Neutron lab (`steth lab up --openstack --neutron real`): Neutron's API, RPC server and agents, on
nodes that are hosts of their own. One lab for the module (it takes about a minute and 2.5 GB); the facts are
Neutron's, read back from its API and from each node's Open vSwitch and namespaces.

The lab is its own: STETH_TEST_NEUTRON_LAB_NAME, STETH_TEST_NEUTRON_MGMT_CIDR, STETH_TEST_NEUTRON_DATA_CIDR.
Needs root, the Debian packages of scripts/setup.sh and the Neutron venv (made on first use, about 80 s).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, Lab, lab_named

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not ROOT, reason="needs root (namespaces, OVS, Neutron)")]

NEUTRON_LAB = os.environ.get("STETH_TEST_NEUTRON_LAB_NAME", "sttn")
NEUTRON_MGMT = os.environ.get("STETH_TEST_NEUTRON_MGMT_CIDR", "10.75.0.0/24")
NEUTRON_DATA = os.environ.get("STETH_TEST_NEUTRON_DATA_CIDR", "10.74.0.0/24")


class NeutronLab(Lab):
    def api(self, path: str) -> dict:
        from steth.lab.neutron_client import NeutronClient

        return NeutronClient(self.state["neutron"]["url"]).get(path)

    @property
    def cloud(self) -> dict:
        return self.state["neutron"]["cloud"]

    def on(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """A command on a node: its network and mount namespaces, its OVS as OVS's tools find it by default."""
        with lab_named(self.name):
            from steth.lab import node_host

            return node_host.run(self.state, node, *argv, check=check)

    def inner_namespaces(self, node: str) -> list[str]:
        with lab_named(self.name):
            from steth.lab import node_host

            return node_host.namespaces(self.state, node)

    def vm(self, name: str) -> dict:
        return next(v for v in self.cloud["vms"] if v["name"] == name)

    def in_vm(self, name: str, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.vm(name)["netns"], *argv], capture_output=True, text=True)

    def ping(self, vm: str, address: str, output: bool = False):
        """True when all of three pings from the VM come back (or, with output, what ping said)."""
        done = self.in_vm(vm, "ping", "-c", "3", "-i", "0.3", "-W", "3", address)
        return done.stdout + done.stderr if output else done.returncode == 0


@pytest.fixture(scope="module")
def neutron_lab():
    with lab_named(NEUTRON_LAB):
        from steth.lab import fleet, neutron_lab

        fleet.down()
        started = time.monotonic()
        state = neutron_lab.up(compute=2, network=1, mgmt_cidr=NEUTRON_MGMT, data_cidr=NEUTRON_DATA)
        print(f"\nreal Neutron lab up in {time.monotonic() - started:.1f} s")
    the_lab = NeutronLab(state, name=NEUTRON_LAB)
    try:
        yield the_lab
    finally:
        with lab_named(NEUTRON_LAB):
            from steth.lab import fleet

            fleet.down()


def test_every_agent_is_alive_in_neutron(neutron_lab):
    agents = neutron_lab.api("/v2.0/agents")["agents"]
    seen = sorted((a["agent_type"], a["host"], a["binary"]) for a in agents if a["alive"])
    assert seen == sorted(
        [
            ("Open vSwitch agent", "compute-1", "neutron-openvswitch-agent"),
            ("Open vSwitch agent", "compute-2", "neutron-openvswitch-agent"),
            ("Open vSwitch agent", "network-1", "neutron-openvswitch-agent"),
            ("DHCP agent", "network-1", "neutron-dhcp-agent"),
            ("L3 agent", "network-1", "neutron-l3-agent"),
        ]
    )
    ovs = {a["host"]: a["configurations"] for a in agents if a["agent_type"] == "Open vSwitch agent"}
    for node in neutron_lab.state["nodes"]:
        conf = ovs[node["name"]]
        assert conf["tunnel_types"] == ["vxlan"] and conf["tunneling_ip"] == node["data_address"]
        assert conf["l2_population"] is True and conf["arp_responder_enabled"] is True
        assert conf["datapath_type"] == "netdev"
    assert ovs["network-1"]["bridge_mappings"] == {"physnet1": "br-ex"}


def test_ports_are_active_and_bound_as_their_node_plugs_them(neutron_lab):
    ports = neutron_lab.api(f"/v2.0/ports?network_id={neutron_lab.cloud['network']['id']}")["ports"]
    assert ports and all(p["status"] == "ACTIVE" for p in ports)
    owners = sorted(p["device_owner"] for p in ports)
    assert owners == ["compute:nova", "compute:nova", "network:dhcp", "network:router_interface"]
    for vm, hybrid in (("vm-1", True), ("vm-2", False)):
        port = next(p for p in ports if p["id"] == neutron_lab.vm(vm)["port_id"])
        assert port["binding:host_id"] == neutron_lab.vm(vm)["host"]
        assert port["binding:vif_type"] == "ovs"
        details = port["binding:vif_details"]
        assert details["ovs_hybrid_plug"] is hybrid, details
        assert details["bridge_name"] == "br-int" and details["datapath_type"] == "netdev"
        assert details["port_filter"] is True
    for port in ports:
        if port["device_owner"].startswith("network:"):
            assert port["binding:host_id"] == "network-1"
    net = neutron_lab.api(f"/v2.0/networks/{neutron_lab.cloud['network']['id']}")["network"]
    assert net["provider:network_type"] == "vxlan" and 1 <= net["provider:segmentation_id"] <= 1000
    assert net["mtu"] == 1450  # 1500 underlay less VXLAN's 50 bytes


def until(condition, timeout: float = 30.0):
    """The condition's first truthy value, or its last one after `timeout` (l2population adds tunnels and flows
    after the ports are ACTIVE, asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _tunnels(neutron_lab: NeutronLab, node: dict) -> dict[str, tuple[str, str]]:
    """remote_ip -> (port name, local_ip) of the node's VXLAN ports."""
    rows = neutron_lab.on(
        node["name"], "ovs-vsctl", "--format=json", "--columns=name,options", "find", "Interface", "type=vxlan"
    )
    found = {}
    for name, (_, options) in json.loads(rows.stdout)["data"]:
        opts = dict(options)
        found[opts["remote_ip"]] = (name, opts["local_ip"])
    return found


def test_br_tun_has_a_vxlan_port_to_every_other_node(neutron_lab):
    nodes = neutron_lab.state["nodes"]
    for node in nodes:
        others = {n["data_address"] for n in nodes if n is not node}

        def complete(node=node, others=others) -> dict:
            tunnels = _tunnels(neutron_lab, node)
            return tunnels if set(tunnels) == others else {}

        found = until(complete)
        assert set(found) == others, (node["name"], _tunnels(neutron_lab, node))
        for remote, (name, local_ip) in found.items():
            assert local_ip == node["data_address"]
            # ovs_neutron_agent.py OVSNeutronAgent.get_tunnel_name / get_tunnel_hash: vxlan-<IPv4 as 8 hex digits>
            assert name == "vxlan-" + ipaddress.ip_address(remote).packed.hex()
        ports = neutron_lab.on(node["name"], "ovs-vsctl", "list-ports", "br-tun").stdout.split()
        assert "patch-int" in ports and {name for name, _ in found.values()} <= set(ports)


def test_qdhcp_lives_on_the_network_node_only_with_an_internal_dhcp_port(neutron_lab):
    qdhcp = f"qdhcp-{neutron_lab.cloud['network']['id']}"
    qrouter = f"qrouter-{neutron_lab.cloud['router']['id']}"
    assert {qdhcp, qrouter} <= set(neutron_lab.inner_namespaces("network-1"))
    for node in ("compute-1", "compute-2"):
        assert not {qdhcp, qrouter} & set(neutron_lab.inner_namespaces(node))
    host_view = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert qdhcp not in host_view  # the host's /run/netns is not the node's
    dhcp_port = neutron_lab.api(
        f"/v2.0/ports?network_id={neutron_lab.cloud['network']['id']}&device_owner=network:dhcp"
    )["ports"][0]
    tap = ("tap" + dhcp_port["id"])[:14]
    # ovs_use_veth = False: an OVS internal port, moved into qdhcp (neutron/agent/linux/interface.py OVSInterfaceDriver)
    assert neutron_lab.on("network-1", "ovs-vsctl", "get", "Interface", tap, "type").stdout.strip() == "internal"
    inside = neutron_lab.on("network-1", "ip", "netns", "exec", qdhcp, "ip", "-j", "addr", "show", tap)
    addrs = [a["local"] for link in json.loads(inside.stdout) for a in link["addr_info"] if a["family"] == "inet"]
    assert dhcp_port["fixed_ips"][0]["ip_address"] in addrs
    assert neutron_lab.on("network-1", "ip", "link", "show", tap, check=False).returncode != 0
    dnsmasq = neutron_lab.on("network-1", "ip", "netns", "pids", qdhcp).stdout.split()
    assert any(Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq" for pid in dnsmasq)


def test_vms_are_plugged_hybrid_and_native(neutron_lab):
    vm1, vm2 = neutron_lab.vm("vm-1"), neutron_lab.vm("vm-2")
    qbr, qvo = ("qbr" + vm1["port_id"])[:14], ("qvo" + vm1["port_id"])[:14]
    assert qvo in neutron_lab.on("compute-1", "ovs-vsctl", "list-ports", "br-int").stdout.split()
    members = neutron_lab.on("compute-1", "ip", "-j", "link", "show", "master", qbr).stdout
    assert {("tap" + vm1["port_id"])[:14], ("qvb" + vm1["port_id"])[:14]} <= {m["ifname"] for m in json.loads(members)}
    tap2 = ("tap" + vm2["port_id"])[:14]
    assert tap2 in neutron_lab.on("compute-2", "ovs-vsctl", "list-ports", "br-int").stdout.split()
    ids = neutron_lab.on("compute-2", "ovs-vsctl", "get", "Interface", tap2, "external_ids").stdout
    assert vm2["port_id"] in ids and vm2["id"] in ids and vm2["mac"] in ids


def test_vms_got_their_lease_across_vxlan_and_reach_each_other_and_the_router(neutron_lab):
    dhcp_ip = neutron_lab.api(f"/v2.0/ports?network_id={neutron_lab.cloud['network']['id']}&device_owner=network:dhcp")[
        "ports"
    ][0]["fixed_ips"][0]["ip_address"]
    gateway = neutron_lab.cloud["subnet"]["gateway_ip"]
    for name, lease in neutron_lab.state["neutron"]["leases"].items():
        vm = neutron_lab.vm(name)
        assert lease["ip"] == vm["ip"] and lease["serverid"] == dhcp_ip and lease["router"] == gateway
        assert lease["mtu"] == "1450"
        addr = json.loads(neutron_lab.in_vm(name, "ip", "-j", "addr", "show", "eth0").stdout)[0]
        assert any(a.get("local") == vm["ip"] for a in addr["addr_info"])
    for src, dst in (
        ("vm-1", neutron_lab.vm("vm-2")["ip"]),
        ("vm-2", neutron_lab.vm("vm-1")["ip"]),
        ("vm-1", gateway),
        ("vm-2", gateway),
    ):
        assert until(lambda src=src, dst=dst: neutron_lab.ping(src, dst)), neutron_lab.ping(src, dst, output=True)


def test_the_router_has_its_gateway_on_the_external_network(neutron_lab):
    """physnet1 (flat, br-ex on the network node) as router:external; the router's qg- port SNATs the VMs."""
    router = neutron_lab.api(f"/v2.0/routers/{neutron_lab.cloud['router']['id']}")["router"]
    gateway_info = router["external_gateway_info"]
    assert gateway_info["network_id"] == neutron_lab.cloud["external"]["id"] and gateway_info["enable_snat"] is True
    gw_port = neutron_lab.api(f"/v2.0/ports?device_id={router['id']}&device_owner=network:router_gateway")["ports"][0]
    assert gw_port["status"] == "ACTIVE" and gw_port["binding:host_id"] == "network-1"
    external = neutron_lab.api(f"/v2.0/networks/{gateway_info['network_id']}")["network"]
    assert external["router:external"] is True and external["provider:network_type"] == "flat"
    assert external["provider:physical_network"] == "physnet1"
    qrouter = f"qrouter-{router['id']}"
    qg = ("qg-" + gw_port["id"])[:14]
    inside = json.loads(
        neutron_lab.on("network-1", "ip", "netns", "exec", qrouter, "ip", "-j", "addr", "show", qg).stdout
    )
    assert gw_port["fixed_ips"][0]["ip_address"] in [a["local"] for a in inside[0]["addr_info"]]
    from steth.lab.neutron_nodes import UPSTREAM_GATEWAY

    for vm in ("vm-1", "vm-2"):
        assert until(lambda vm=vm: neutron_lab.ping(vm, UPSTREAM_GATEWAY)), neutron_lab.ping(vm, UPSTREAM_GATEWAY, True)


def _lab_processes(name: str) -> list[int]:
    from steth.lab.node_host import MARKER

    wanted = f"{MARKER}={name}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                pass
    return found


def test_port_check_passes_every_hop_of_a_healthy_port(neutron_lab):
    """On real Neutron (VXLAN, ovs_use_veth = False, the default security group): both VMs pass, the DHCP
    exchange is seen end to end (the DHCP port inside qdhcp too), and the MTU ping the default group drops is
    `skipped` quoting the group, never an MTU failure."""
    for vm, hybrid in (("vm-1", True), ("vm-2", False)):
        done = neutron_lab.cli("vm-check", vm, "-o", "json")
        doc = json.loads(done.stdout)
        verdict, hops = doc["verdict"], doc["hops"]
        assert done.returncode == 0 and verdict["status"] == "ok", (verdict, done.stderr)
        assert not [h for h in hops if h["status"] not in ("ok", "skipped")], hops
        seen = {h["check"]: h for h in hops if h["stage"] == "dhcp-path"}
        dhcp_port = [h for c, h in seen.items() if c.startswith("OFFER at DHCP port")]
        assert dhcp_port and dhcp_port[0]["status"] == "ok" and "qdhcp-" in dhcp_port[0]["detail"], seen
        assert any(c.startswith("OFFER at tap") and h["status"] == "ok" for c, h in seen.items()), seen
        mtu = [h for h in hops if h["check"].startswith("MTU qdhcp")]
        if vm == "vm-1":  # the default group only: no ICMP from the DHCP port
            assert mtu[0]["status"] == "skipped" and "security group default" in mtu[0]["detail"], mtu
        else:  # default + icmp
            assert mtu[0]["status"] == "ok", mtu
        assert any(h["check"] == f"plugging {'hybrid' if hybrid else 'native'}" for h in hops), hops


def verdict_of(neutron_lab, vm: str) -> tuple[int, dict]:
    done = neutron_lab.cli("vm-check", vm, "-o", "json")
    return done.returncode, json.loads(done.stdout)["verdict"]


def data_address(neutron_lab, node: str) -> str:
    return next(n["data_address"] for n in neutron_lab.state["nodes"] if n["name"] == node)


@contextlib.contextmanager
def vxlan_dropped(neutron_lab, on: str, source: str):
    """VXLAN from `source` dropped where it enters `on` (an OpenFlow rule on the node's underlay bridge)."""
    match = f"udp,nw_src={data_address(neutron_lab, source)},tp_dst=4789"
    neutron_lab.on(on, "ovs-ofctl", "add-flow", "br-phy", f"priority=200,{match},actions=drop")
    try:
        yield
    finally:
        neutron_lab.on(on, "ovs-ofctl", "del-flows", "br-phy", match)


@pytest.mark.parametrize(
    ("on", "source", "failing"), [("network-1", "compute-2", "DISCOVER"), ("compute-2", "network-1", "OFFER")]
)
def test_a_blocked_tunnel_is_named_with_its_ends_and_vni(neutron_lab, on, source, failing):
    """Issue 10's wording: `tunnel compute-1 -> network-1 (10.0.0.11 -> 10.0.0.13), VNI 1042`."""
    with vxlan_dropped(neutron_lab, on, source):
        code, v = verdict_of(neutron_lab, "vm-2")
    assert code == 1 and v["check"].startswith(failing), v
    vni = neutron_lab.cloud["network"]["vni"]
    ends = f"({data_address(neutron_lab, source)} -> {data_address(neutron_lab, on)}), VNI {vni}"
    assert v["cause"].startswith(f"tunnel {source} -> {on} {ends}"), v
    assert verdict_of(neutron_lab, "vm-2")[0] == 0  # healthy again once the rule is gone


def tunnel_port_name(neutron_lab, to: str) -> str:
    # ovs_neutron_agent.py OVSNeutronAgent.get_tunnel_name: vxlan-<IPv4 as 8 hex digits>
    return "vxlan-" + ipaddress.ip_address(data_address(neutron_lab, to)).packed.hex()


def test_port_check_examines_br_tun_on_both_ends(neutron_lab):
    """vm-2 (compute-2) and the DHCP host network-1: each end's tunnel port to the other and l2population's flood
    and unicast flows for the VNI are hops of their own, ok; the ARP from qdhcp, which br-tun's ARP responder on
    network-1 answers, says so and is ok only because the DHCP exchange proved the way."""
    vni = neutron_lab.cloud["network"]["vni"]
    dhcp_mac = neutron_lab.api(
        f"/v2.0/ports?network_id={neutron_lab.cloud['network']['id']}&device_owner=network:dhcp"
    )["ports"][0]["mac_address"]
    vm = neutron_lab.vm("vm-2")
    done = neutron_lab.cli("vm-check", "vm-2", "-o", "json")
    doc = json.loads(done.stdout)
    assert done.returncode == 0, (doc["verdict"], done.stderr)
    tunnel = {(h["node"], h["check"]): h for h in doc["hops"] if h["stage"] == "tunnel"}
    expected = [
        ("compute-2", "patch patch-tun"),
        ("compute-2", "patch patch-int"),
        (
            "compute-2",
            f"tunnel port {tunnel_port_name(neutron_lab, 'network-1')} -> network-1 "
            f"({data_address(neutron_lab, 'network-1')})",
        ),
        ("compute-2", f"local VLAN VNI {vni}"),
        ("compute-2", f"l2pop flood VNI {vni}"),
        ("compute-2", f"l2pop unicast {dhcp_mac} VNI {vni}"),
        (
            "network-1",
            f"tunnel port {tunnel_port_name(neutron_lab, 'compute-2')} -> compute-2 "
            f"({data_address(neutron_lab, 'compute-2')})",
        ),
        ("network-1", f"l2pop flood VNI {vni}"),
        ("network-1", f"l2pop unicast {vm['mac']} VNI {vni}"),
    ]
    for key in expected:
        assert key in tunnel and tunnel[key]["status"] == "ok", (key, sorted(tunnel))
    order = [h["stage"] for h in doc["hops"]]
    assert order.index("tunnel") < order.index("dhcp-path")  # the tunnel explains the path hops after it
    arp = next(h for h in doc["hops"] if h["check"] == f"ARP qdhcp -> {vm['ip']}")
    assert arp["status"] == "ok" and "ARP responder on network-1" in arp["detail"], arp
    assert "reach proven by the DHCP exchange" in arp["detail"], arp


def _br_tun_flows(neutron_lab, node: str) -> list[str]:
    out = neutron_lab.on(node, "ovs-ofctl", "-O", "OpenFlow13", "--no-names", "--no-stats", "dump-flows", "br-tun")
    return [line.strip() for line in out.stdout.splitlines() if " actions=" in line]


def _l2pop_flows(neutron_lab, node: str, mac: str) -> tuple[int, list[str]]:
    """The VNI's local VLAN on `node` (br_tun.py provision_local_vlan: table 4, tun_id=VNI) and l2population's
    flood flow (table 22) and unicast flow for `mac` (table 20, priority 2) on it."""
    vni = neutron_lab.cloud["network"]["vni"]
    flows = _br_tun_flows(neutron_lab, node)
    provision = next(f for f in flows if "table=4," in f and f"tun_id={vni:#x} " in f)
    lvid = int(provision.split("set_field:")[1].split("->vlan_vid")[0]) & 0xFFF
    mine = [
        f
        for f in flows
        if (f"table=22, priority=1,dl_vlan={lvid} " in f) or (f"table=20, priority=2,dl_vlan={lvid},dl_dst={mac} " in f)
    ]
    return lvid, mine


@contextlib.contextmanager
def l2pop_flows_deleted(neutron_lab, node: str, mac: str):
    """The flood flow and `mac`'s unicast flow of the network's VNI deleted on `node`, put back as they were.

    l2population's flows change only on its RPCs (fdb_add/fdb_remove when ports come and go) and on the agent's
    full resync (OVS or agent restart): the OVS agent's periodic loop does not repair them, so they stay away
    until put back here (measured: docs/diagnosis.md)."""
    lvid, saved = _l2pop_flows(neutron_lab, node, mac)
    assert len(saved) == 2, saved
    neutron_lab.on(node, "ovs-ofctl", "-O", "OpenFlow13", "del-flows", "br-tun", f"table=22,dl_vlan={lvid}")
    neutron_lab.on(
        node, "ovs-ofctl", "-O", "OpenFlow13", "del-flows", "br-tun", f"table=20,dl_vlan={lvid},dl_dst={mac}"
    )
    try:
        yield lvid
    finally:
        for flow in saved:
            neutron_lab.on(node, "ovs-ofctl", "-O", "OpenFlow13", "add-flow", "br-tun", flow)


def test_missing_l2pop_flows_are_named_before_the_dhcp_path(neutron_lab):
    vni, vm = neutron_lab.cloud["network"]["vni"], neutron_lab.vm("vm-2")
    with l2pop_flows_deleted(neutron_lab, "network-1", vm["mac"]):
        code, v = verdict_of(neutron_lab, "vm-2")
        still_gone = len(_l2pop_flows(neutron_lab, "network-1", vm["mac"])[1]) == 0
    assert code == 1 and (v["node"], v["check"]) == ("network-1", f"l2pop flood VNI {vni}"), v
    assert f"tunnel network-1 -> compute-2, VNI {vni}" in v["cause"] and "l2population" in v["cause"], v
    assert still_gone  # the agent did not put them back while port-check ran
    assert until(lambda: verdict_of(neutron_lab, "vm-2")[0] == 0), verdict_of(neutron_lab, "vm-2")


def test_a_missing_unicast_flow_is_named_with_the_peer_and_vni(neutron_lab):
    """Only the unicast flow gone: the finding is that flow, naming the peer the MAC lives on."""
    vni, vm = neutron_lab.cloud["network"]["vni"], neutron_lab.vm("vm-2")
    lvid, saved = _l2pop_flows(neutron_lab, "network-1", vm["mac"])
    unicast = next(f for f in saved if "table=20" in f)
    args = ("-O", "OpenFlow13")
    neutron_lab.on(
        "network-1", "ovs-ofctl", *args, "del-flows", "br-tun", f"table=20,dl_vlan={lvid},dl_dst={vm['mac']}"
    )
    try:
        code, v = verdict_of(neutron_lab, "vm-2")
    finally:
        neutron_lab.on("network-1", "ovs-ofctl", *args, "add-flow", "br-tun", unicast)
    assert code == 1 and (v["node"], v["check"]) == ("network-1", f"l2pop unicast {vm['mac']} VNI {vni}"), v
    assert f"tunnel network-1 -> compute-2, VNI {vni}" in v["cause"], v


def test_a_port_bound_to_another_host_is_the_finding(neutron_lab):
    from steth.lab.neutron_client import NeutronClient

    api = NeutronClient(neutron_lab.state["neutron"]["url"])
    port = neutron_lab.vm("vm-1")["port_id"]
    api.put(f"/v2.0/ports/{port}", {"port": {"binding:host_id": "compute-2"}})
    try:
        code, v = verdict_of(neutron_lab, "vm-1")
    finally:
        api.put(f"/v2.0/ports/{port}", {"port": {"binding:host_id": "compute-1"}})
    assert code == 1 and (v["node"], v["check"]) == ("compute-2", "binding:host_id"), v
    assert "server runs on compute-1" in v["message"], v
    deadline = time.monotonic() + 60  # the OVS agent on compute-1 wires the port again
    while verdict_of(neutron_lab, "vm-1")[0] != 0:
        assert time.monotonic() < deadline, "vm-1 did not pass again after its binding was restored"
        time.sleep(1)


def test_the_routers_gateway_missing_is_named(neutron_lab):
    router, gateway = neutron_lab.cloud["router"]["id"], neutron_lab.cloud["subnet"]["gateway_ip"]
    prefix = neutron_lab.cloud["subnet"]["cidr"].split("/")[1]
    qr = next(
        line.split()[0]
        for line in neutron_lab.on("network-1", "ip", "-br", "-n", f"qrouter-{router}", "addr").stdout.splitlines()
        if line.startswith("qr-")
    )
    neutron_lab.on("network-1", "ip", "-n", f"qrouter-{router}", "addr", "del", f"{gateway}/{prefix}", "dev", qr)
    try:
        code, v = verdict_of(neutron_lab, "vm-1")
    finally:
        neutron_lab.on("network-1", "ip", "-n", f"qrouter-{router}", "addr", "add", f"{gateway}/{prefix}", "dev", qr)
    assert code == 1 and (v["node"], v["check"]) == ("network-1", f"gateway {gateway}"), v


def test_lab_down_leaves_nothing(neutron_lab):
    """Last in the module: the lab goes, and with it every process, namespace, link, listener and file."""
    state = neutron_lab.state
    mgmt_ip = str(ipaddress.ip_network(NEUTRON_MGMT)[1])
    pids = [pid for key, pid in state["pids"].items() if key != "nats-server"]
    holders = [h["pid"] for h in state["node_hosts"].values()]
    assert _lab_processes(NEUTRON_LAB)  # the marker is there while the lab is up
    with lab_named(NEUTRON_LAB):
        from steth.lab import fleet

        assert fleet.down()
    assert not _lab_processes(NEUTRON_LAB)
    from steth.lab.shell import alive

    assert not [p for p in pids + holders if alive(p)]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in state["netns"] if ns in netns.split()]
    listening = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
    assert mgmt_ip not in listening
    for port in (state["neutron"]["rabbitmq"]["epmd_port"], state["neutron"]["rabbitmq"]["dist_port"]):
        assert f"127.0.0.1:{port} " not in listening
    links = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    assert not [link for link in state["links"] if f'"{link}"' in links]
    assert not Path(state["dir"]).exists()
