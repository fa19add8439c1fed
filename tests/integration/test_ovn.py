"""The OVN probes (ovn-chassis, ovn-binding, ovn-port) against a lab of real OVN daemons (steth.lab.ovn).

One module-scoped lab: OVN central, four chassis (two computes, two gateway chassis, so that OVN turns BFD on),
a VM per compute node with a lease from OVN's DHCP. It is its own (STETH_TEST_OVN_LAB_NAME,
STETH_TEST_OVN_MGMT_CIDR, STETH_TEST_OVN_DATA_CIDR), so it runs beside the other labs. Healthy first, then one
fault at a time, each undone before the next test; the last test takes the lab down and checks nothing is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, Lab, lab_named

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not ROOT, reason="needs root (network namespaces, OVS, OVN)")]

OVN_LAB = os.environ.get("STETH_TEST_OVN_LAB_NAME", "stov")
OVN_MGMT = os.environ.get("STETH_TEST_OVN_MGMT_CIDR", "10.49.0.0/24")
OVN_DATA = os.environ.get("STETH_TEST_OVN_DATA_CIDR", "10.48.0.0/24")
NODES = {"compute-1", "compute-2", "network-1", "network-2"}


class OvnLab(Lab):
    @property
    def design(self) -> dict:
        return self.state["ovn"]["design"]

    def vm(self, name: str) -> dict:
        return next(v for v in self.design["vms"] if v["name"] == name)

    def rundir(self, node: str) -> Path:
        return self.dir / "ovn" / node

    def ovs(self, node: str, *argv: str) -> str:
        env = {**os.environ, "OVS_RUNDIR": str(self.rundir(node))}
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=20).stdout

    def ovn(self, tool: str, *args: str) -> str:
        db = self.dir / "ovn" / "central" / ("nb.sock" if tool == "ovn-nbctl" else "sb.sock")
        argv = [tool, f"--db=unix:{db}", "--timeout=20", *args]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout

    def probe(self, *args: str) -> tuple[int, dict]:
        return self.cli_json(*args)


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    """The condition's last truthy value, or an AssertionError naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def node_result(doc: dict, node: str) -> dict:
    return next(n for n in doc["nodes"] if n["node"] == node)


@pytest.fixture(scope="module")
def ovn_lab():
    with lab_named(OVN_LAB):
        from steth.lab import fleet, ovn

        fleet.down()
        state = ovn.up(compute=2, network=2, mgmt_cidr=OVN_MGMT, data_cidr=OVN_DATA, heartbeat_s=1.0)
    the_lab = OvnLab(state, name=OVN_LAB)
    print(f"\nOVN lab up: {state['ovn']['timings']}")
    try:
        yield the_lab
    finally:
        with lab_named(OVN_LAB):
            from steth.lab import fleet

            fleet.down()


# --- healthy -------------------------------------------------------------------------------------


def test_lab_comes_up_in_time_and_vms_reach_each_other_across_geneve(ovn_lab):
    timings = ovn_lab.state["ovn"]["timings"]
    assert timings["total_s"] < 60, timings
    vm1, vm2 = ovn_lab.vm("vm-1"), ovn_lab.vm("vm-2")
    assert vm1["host"] != vm2["host"]
    for vm in (vm1, vm2):  # the address came from OVN's DHCP (the lab's udhcpc script set it)
        shown = subprocess.run(
            ["ip", "netns", "exec", vm["netns"], "ip", "-4", "-o", "addr", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"{vm['ip']}/24" in shown, shown
    from steth.lab import ovn

    with lab_named(OVN_LAB):
        assert wait_until(lambda: ovn.ping(vm1, vm2["ip"]), 20, "vm-1 pings vm-2")
        assert wait_until(lambda: ovn.ping(vm2, ovn_lab.design["gateway_ip"]), 20, "vm-2 pings its router")


def test_healthy_chassis_everywhere(ovn_lab):
    code, doc = ovn_lab.probe("ovn-chassis", "--all")
    assert code == 0, [(n["node"], n["message"]) for n in doc["nodes"]]
    assert {n["node"] for n in doc["nodes"]} == NODES
    bfd_seen = 0
    for n in doc["nodes"]:
        r = n["result"]
        node = ovn_lab.node(n["node"])
        assert r["system_id"] == n["node"] and r["encap_type"] == "geneve"
        assert r["encap_ip"] == node["data_address"]
        assert r["gateway"] == ("network" in node["roles"])
        assert r["controller_status"] == "connected" and r["controller_pid"]
        assert r["nb_cfg"] is not None and r["nb_cfg"] == r["sb_nb_cfg"]
        assert sorted(r["sb_chassis"]) == sorted(NODES)
        assert {t["chassis"] for t in r["tunnels"]} == NODES - {n["node"]}
        for t in r["tunnels"]:
            assert t["ofport"] and t["ofport"] > 0 and t["type"] == "geneve"
            if t["bfd_enabled"]:
                bfd_seen += 1
                assert t["bfd_state"] == "up"
    assert bfd_seen >= 4  # computes <-> gateways and between the gateways


def test_healthy_binding_and_logical_port(ovn_lab):
    vm = ovn_lab.vm("vm-1")
    code, doc = ovn_lab.probe("ovn-binding", vm["port_id"], "--node", vm["host"])
    assert code == 0, doc
    b = node_result(doc, vm["host"])["result"]["bindings"][0]
    assert b["interface"] == vm["tap"] and b["bridge"] == "br-int" and b["ofport"] > 0
    assert b["ovn_installed"] and b["link_state"] == "up" and b["attached_mac"] == vm["mac"]
    code, doc = ovn_lab.probe("ovn-port", vm["port_id"], "--node", "network-1")
    assert code == 0, doc
    p = node_result(doc, "network-1")["result"]["ports"][0]
    assert p["up"] is True and p["sb_up"] is True
    assert p["chassis"] == p["requested_chassis"] == vm["host"]
    assert p["addresses"] == [f"{vm['mac']} {vm['ip']}"] and p["port_security"] == p["addresses"]
    assert p["dhcpv4_cidr"] == ovn_lab.design["cidr"] and p["dhcpv4_options"]["router"] == ovn_lab.design["gateway_ip"]


def test_binding_is_absent_on_another_node(ovn_lab):
    vm = ovn_lab.vm("vm-1")
    other = ovn_lab.vm("vm-2")["host"]
    code, doc = ovn_lab.probe("ovn-binding", vm["port_id"], "--node", other)
    assert code == 1
    assert node_result(doc, other)["result"]["findings"] == [
        f"{vm['port_id']}: no interface with iface-id {vm['port_id']} on this node"
    ]


# --- faults ---------------------------------------------------------------------------------------


def test_iface_id_removed(ovn_lab):
    vm = ovn_lab.vm("vm-1")
    pb_chassis = lambda: ovn_lab.ovn(  # noqa: E731
        "ovn-sbctl", "--bare", "--columns=chassis", "find", "Port_Binding", f"logical_port={vm['port_id']}"
    ).strip()
    ovn_lab.ovs(vm["host"], "ovs-vsctl", "remove", "Interface", vm["tap"], "external_ids", "iface-id")
    try:
        wait_until(lambda: not pb_chassis(), 20, "the Port_Binding loses its chassis")
        code, doc = ovn_lab.probe("ovn-binding", vm["port_id"], "--node", vm["host"])
        assert code == 1
        assert "no interface with iface-id" in node_result(doc, vm["host"])["message"]
        code, doc = ovn_lab.probe("ovn-port", vm["port_id"], "--node", "network-1")
        assert code == 1
        p = node_result(doc, "network-1")["result"]["ports"][0]
        assert p["chassis"] is None and p["sb_up"] is False and p["up"] is False
        assert "Port_Binding bound to no chassis" in p["findings"]
    finally:
        ovn_lab.ovs(vm["host"], "ovs-vsctl", "set", "Interface", vm["tap"], f"external_ids:iface-id={vm['port_id']}")
        wait_until(lambda: pb_chassis(), 20, "the Port_Binding is claimed again")
    code, doc = ovn_lab.probe("ovn-binding", vm["port_id"], "--node", vm["host"])
    assert code == 0, doc
    # With no port left on the router's network the chassis lost its BFD sessions to the gateways; they are
    # enabled again (starting down) with the port: healthy once they are up.
    wait_until(lambda: ovn_lab.probe("ovn-chassis", "--node", vm["host"])[0] == 0, 30, "BFD back up")


def test_ovn_controller_stopped(ovn_lab):
    node = "compute-2"
    pidfile = ovn_lab.rundir(node) / "ovn-controller.pid"
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or not pidfile.exists(), 20, "ovn-controller exits")
        ovn_lab.ovn("ovn-nbctl", "--wait=sb", "sync")  # bump nb_cfg: ovn-northd copies it to the SB
        code, doc = ovn_lab.probe("ovn-chassis", "--node", node, "--node", "compute-1")
        assert code == 1
        stopped = node_result(doc, node)
        findings = stopped["result"]["findings"]
        assert findings[0].startswith("ovn-controller is not running"), findings
        assert any(f.startswith("nb_cfg behind: this chassis acknowledged") for f in findings), findings
        assert stopped["result"]["nb_cfg"] < stopped["result"]["sb_nb_cfg"]
        assert node_result(doc, "compute-1")["status"] == "ok", node_result(doc, "compute-1")
    finally:
        with lab_named(OVN_LAB):
            from steth.lab import ovn

            ovn.start_controller(ovn_lab.state, ovn_lab.node(node))
        ovn_lab.ovn("ovn-nbctl", "--wait=hv", "sync")  # returns once every chassis, compute-2 too, caught up
    wait_until(lambda: ovn_lab.probe("ovn-chassis", "--node", node)[0] == 0, 30, "compute-2 healthy again")


def test_ovn_controller_not_connected(ovn_lab):
    """ovn-remote pointed at a port where no SB listens: ovn-controller runs but says `not connected`."""
    node = "compute-1"
    remote = ovn_lab.design["sb_connection"]
    wrong = remote.rsplit(":", 1)[0] + ":6699"
    ovn_lab.ovs(node, "ovs-vsctl", "set", "Open_vSwitch", ".", f"external_ids:ovn-remote={wrong}")

    def not_connected():
        code, doc = ovn_lab.probe("ovn-chassis", "--node", node)
        r = node_result(doc, node)["result"]
        return (code, r) if r["controller_status"] == "not connected" else None

    try:
        code, r = wait_until(not_connected, 30, "ovn-controller reports not connected")
        assert code == 1 and r["controller_pid"]
        assert r["findings"][0] == f"ovn-controller is not connected to the SB {wrong}: not connected", r["findings"]
    finally:
        ovn_lab.ovs(node, "ovs-vsctl", "set", "Open_vSwitch", ".", f"external_ids:ovn-remote={remote}")
    wait_until(lambda: ovn_lab.probe("ovn-chassis", "--node", node)[0] == 0, 30, "compute-1 connected again")


def test_sb_unreachable_from_the_node(ovn_lab):
    """An nftables drop in compute-1's namespace towards the SB's port: the agent's ovn-sbctl gets no answer,
    which ovn-chassis reports as a finding (not as `aborted`: the local part of the chassis was read)."""
    node = "compute-1"
    central, port = ovn_lab.design["sb_connection"].removeprefix("tcp:").rsplit(":", 1)
    table = "stethovntest"
    ovn_lab.in_ns(node, "nft", "add", "table", "inet", table)
    try:
        ovn_lab.in_ns(node, "nft", "add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }")
        ovn_lab.in_ns(
            node, "nft", "add", "rule", "inet", table, "out", "ip", "daddr", central, "tcp", "dport", port, "drop"
        )
        code, doc = ovn_lab.probe("ovn-chassis", "--node", node)
        r = node_result(doc, node)
        assert code == 1 and r["status"] == "failed", r
        assert r["result"]["sb_error"] and r["result"]["sb_error"] in r["result"]["findings"], r["result"]
        assert r["result"]["system_id"] == node and r["result"]["sb_nb_cfg"] is None
        print(f"\nSB blocked: {r['message']} ({r['duration_s']:.1f} s)")
    finally:
        ovn_lab.in_ns(node, "nft", "delete", "table", "inet", table, check=False)
    wait_until(lambda: ovn_lab.probe("ovn-chassis", "--node", node)[0] == 0, 60, "compute-1 reaches the SB again")


def test_geneve_blocked_to_one_chassis(ovn_lab):
    """An OpenFlow drop on network-1's underlay bridge for Geneve from compute-1 (LAB-NOTES: iptables in the
    namespace does not see userspace Geneve). BFD on that tunnel goes down on both ends; the others stay up."""
    c1 = ovn_lab.node("compute-1")
    flow = f"udp,nw_src={c1['data_address']},tp_dst=6081"
    ovn_lab.ovs("network-1", "ovs-ofctl", "add-flow", "br-phy", f"priority=100,{flow},actions=drop")
    started = time.monotonic()

    def tunnel_finding(node: str, peer: str):
        code, doc = ovn_lab.probe("ovn-chassis", "--node", node)
        r = node_result(doc, node)["result"]
        t = next(t for t in r["tunnels"] if t["chassis"] == peer)
        return (code, r, t) if t["findings"] else None

    try:
        code, r, t = wait_until(lambda: tunnel_finding("compute-1", "network-1"), 30, "compute-1 sees BFD not up")
        print(
            f"\ncompute-1 reported BFD {t['bfd_state']} to network-1 {time.monotonic() - started:.1f} s after the drop"
        )
        assert code == 1 and t["bfd_state"] in ("down", "init") and t["bfd_remote_state"] == "down"
        assert any(f.startswith(f"tunnel {t['port']} to network-1: BFD") for f in r["findings"])
        others = [x for x in r["tunnels"] if x["chassis"] == "network-2"]
        assert others and others[0]["bfd_state"] == "up"
        code, r, t = wait_until(lambda: tunnel_finding("network-1", "compute-1"), 30, "network-1 sees BFD down")
        assert t["bfd_state"] == "down" and "Control Detection Time Expired" in (t["bfd_diagnostic"] or "")
    finally:
        ovn_lab.ovs("network-1", "ovs-ofctl", "del-flows", "br-phy", flow)
    wait_until(lambda: ovn_lab.probe("ovn-chassis", "--node", "compute-1")[0] == 0, 30, "BFD back up on compute-1")


# --- last: down leaves nothing --------------------------------------------------------------------


def test_lab_down_removes_everything(ovn_lab):
    pids = [p for p in ovn_lab.state["pids"].values()]
    namespaces = list(ovn_lab.state["netns"])
    with lab_named(OVN_LAB):
        from steth.lab import fleet, ovn

        recorded = fleet.load_state()["pids"]
        assert any(k.startswith("ovn-controller@") for k in recorded) and "ovn-northd@central" in recorded
        started = time.monotonic()
        assert fleet.down()
        print(f"\nOVN lab down in {time.monotonic() - started:.1f} s")
        assert not ovn.lab_dir().exists()
    alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
    assert not alive, alive
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in namespaces if ns in listed.split()], listed
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f" {OVN_LAB}" not in links
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"steth-lab-{OVN_LAB}/" not in procs


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"
