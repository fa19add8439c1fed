"""OpenStack-aware diagnosis against the miniature ML2/OVS lab (steth.lab.ml2) and its API stand-in.

A healthy lab passes every check; then one fault at a time, the verdict names the right hop. The lab is its
own (STETH_TEST_OS_LAB_NAME, STETH_TEST_OS_MGMT_CIDR, STETH_TEST_OS_DATA_CIDR), so it can run beside the
shared `lab` fixture and the OVS lab of test_probes_ovs_vlan.py. Each diagnosis's duration is printed
(`pytest -s` shows them).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, TEST_LAB, Lab, lab_named

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not ROOT, reason="needs root (network namespaces, OVS)")]

OS_LAB = os.environ.get("STETH_TEST_OS_LAB_NAME", TEST_LAB[:5] + "s")
OS_MGMT = os.environ.get("STETH_TEST_OS_MGMT_CIDR", "10.89.0.0/24")
OS_DATA = os.environ.get("STETH_TEST_OS_DATA_CIDR", "10.88.0.0/24")
DURATIONS: dict[str, float] = {}


class StackLab(Lab):
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in super().env().items() if not k.startswith("OS_")}
        env.update({"OS_CLOUD": "steth-lab", "OS_CLIENT_CONFIG_FILE": self.state["openstack"]["clouds_yaml"], **extra})
        return env

    @property
    def design(self) -> dict:
        return self.state["openstack"]["design"]

    def vm_port(self, server: str) -> dict:
        return next(p for p in self.design["ports"] if p.get("server") == server)

    def ovs(self, node: str, *args: str) -> None:
        env = {**os.environ, "OVS_RUNDIR": str(self.dir / "ovs" / node)}
        subprocess.run(["ovs-vsctl", "--timeout=10", *args], check=True, env=env, capture_output=True)

    def diagnose(self, *args: str, env: dict | None = None) -> tuple[int, dict, str]:
        started = time.monotonic()
        done = self.cli(*args, "-o", "json", env=env)
        took = time.monotonic() - started
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].rsplit(" (", 1)[0]
        DURATIONS[f"{test}: {args[0]}"] = took
        print(f"\n[{' '.join(args)}] exit {done.returncode} in {took:.2f} s")
        try:
            return done.returncode, json.loads(done.stdout), done.stderr
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {done.returncode}): {done.stdout!r} {done.stderr!r}") from None


@contextlib.contextmanager
def stack_lab(**options):
    """The lab (2 compute nodes, 1 network node, injection allowed) for a module's tests; down afterwards."""
    with lab_named(OS_LAB):
        from steth.lab import fleet, ml2

        fleet.down()
        state = ml2.up(
            compute=2, network=1, mgmt_cidr=OS_MGMT, data_cidr=OS_DATA, heartbeat_s=1.0, allow_mutating=True, **options
        )
    the_lab = StackLab(state, name=OS_LAB)
    try:
        yield the_lab
    finally:
        if DURATIONS:
            print("\ndiagnosis durations: " + ", ".join(f"{k}: {v:.2f} s" for k, v in DURATIONS.items()))
        with lab_named(OS_LAB):
            from steth.lab import fleet

            the_lab.stop_extra()
            fleet.down()


@pytest.fixture(scope="module")
def stack():
    with stack_lab() as the_lab:
        yield the_lab


def hop(doc: dict, stage: str, check_prefix: str) -> dict:
    return next(h for h in doc["hops"] if h["stage"] == stage and h["check"].startswith(check_prefix))


# --- a healthy lab ---------------------------------------------------------------------------------


def test_the_api_describes_the_lab_and_agents_match(stack):
    code, doc = stack.cli_json("agents", "--inventory")
    assert code == 0, doc
    assert {h["host"]: h["steth"] for h in doc["hosts"]} == {
        "compute-1": "alive",
        "compute-2": "alive",
        "network-1": "alive",
    }
    net1 = next(h for h in doc["hosts"] if h["host"] == "network-1")
    assert sorted(a["type"] for a in net1["neutron_agents"]) == [
        "DHCP agent",
        "L3 agent",
        "Metadata agent",
        "Open vSwitch agent",
    ]


@pytest.mark.parametrize("server,plugging", [("vm-1", "hybrid"), ("vm-2", "native")])
def test_healthy_port_passes_every_check(stack, server, plugging):
    port = stack.vm_port(server)
    code, doc, err = stack.diagnose("port-check", port["id"])
    assert code == 0 and doc["verdict"]["status"] == "ok", doc["verdict"]
    statuses = {h["status"] for h in doc["hops"]}
    assert statuses == {"ok"}, [h for h in doc["hops"] if h["status"] != "ok"]
    assert hop(doc, "port", "plugging")["check"] == f"plugging {plugging}"
    # The whole DHCP exchange was seen: DISCOVER injected where the VM sends, OFFER back at the VM's tap.
    assert hop(doc, "dhcp-path", "DISCOVER at uplink")["status"] == "ok"
    assert hop(doc, "dhcp-path", f"OFFER at tap{port['id'][:11]}")["status"] == "ok"
    # Neutron's default wiring: the DHCP port is an OVS internal port inside qdhcp, and it was watched there.
    qdhcp = stack.design["qdhcp"]
    assert hop(doc, "dhcp-path", "DISCOVER at DHCP port")["detail"] == f"seen in {qdhcp}"
    assert hop(doc, "dhcp-path", "OFFER at DHCP port")["detail"] == f"seen in {qdhcp}"
    # Every node saw the one injected exchange end to end and stopped listening then, not at the window's end.
    watches = doc["probes"][port["id"]]["dhcp-watch"]["nodes"]
    assert {w["node"] for w in watches} == {port["host"], "network-1"}
    assert all(w["result"]["complete"] and w["result"]["finished_at"] for w in watches), watches
    assert len({w["result"]["xid"] for w in watches}) == 1
    stages = [h["stage"] for h in doc["hops"]]
    assert (
        stages.index("port")
        < stages.index("dhcp-path")
        < stages.index("dhcp-server")
        < stages.index("reach")
        < stages.index("router")
    )
    assert doc["timings_s"]["openstack"] < doc["elapsed_s"]


def test_healthy_vm_and_network_checks(stack):
    code, doc, _ = stack.diagnose("vm-check", "vm-1")
    assert code == 0 and doc["verdict"]["status"] == "ok", doc["verdict"]
    code, doc, _ = stack.diagnose("network-check", "private")
    assert code == 0 and doc["verdict"]["status"] == "ok", doc["verdict"]
    assert [h["check"] for h in doc["hops"] if h["stage"] == "segment" and h["check"].startswith("VLAN")] == [
        "VLAN 101"
    ] * 6


def test_listen_only_skips_the_path_and_still_passes(stack):
    code, doc, _ = stack.diagnose("port-check", stack.vm_port("vm-2")["id"], "--no-inject")
    assert code == 0, doc["verdict"]
    path = [h for h in doc["hops"] if h["stage"] == "dhcp-path"]
    assert path and all(h["status"] == "skipped" for h in path)


def test_validate_from_openstack_fills_the_plan_from_neutron(stack, tmp_path):
    """A plan of VLAN ranges only: nodes, the physnet's bridge and the VXLAN tunnel come from the API."""
    plan = tmp_path / "site.yaml"
    plan.write_text('version: 1\nsite: stack\nphysnets:\n  - name: physnet1\n    vlans: "100-102"\n')
    html, junit = tmp_path / "site.html", tmp_path / "site.xml"
    args = ("validate", str(plan), "--from-openstack", "--report", str(html), "--junit", str(junit))
    code, doc, err = stack.diagnose(*args)
    statuses = {r["id"]: r["status"] for r in doc["requirements"]}
    assert code == 0, (statuses, doc["findings"], err)
    assert statuses == {"presence": "pass", "mesh:tunnel": "pass", "mtu:tunnel": "pass", "vlan:physnet1": "pass"}
    by_id = {r["id"]: r for r in doc["requirements"]}
    assert "tenant 1450 + 50" in by_id["mtu:tunnel"]["title"]  # the VXLAN network's MTU + Neutron's overhead
    assert by_id["vlan:physnet1"]["value"] == 3 and by_id["presence"]["nodes"] == stack.names()
    notes = doc["openstack"]["notes"]
    assert [n for n in notes if n["kind"] == "conflict"] == []
    filled = {n["key"]: n["message"] for n in notes if n["kind"] == "filled"}
    assert filled["nodes"] == "3 from OpenStack: compute: compute-1, compute-2; network: network-1"
    assert filled["tunnel"].startswith("vxlan on plane tunnel (tunneling_ip of compute-1, compute-2, network-1)")
    assert filled["hosts.compute-1"] == (
        f"Open vSwitch agent: physnet1:br-phys, tunneling_ip {stack.node('compute-1')['data_address']} (vxlan)"
    )
    assert "openstack: filled: tunnel: vxlan" in err and "From OpenStack" in html.read_text() and junit.exists()
    # The plan wins; where it disagrees with Neutron, it says so.
    plan.write_text(
        plan.read_text() + "    bridge: br-other\ntunnel: {plane: tunnel, overlay: gre}\n"
        "planes: [{name: tunnel, interface: data0}]\nnodes: [{name: compute-1, roles: [compute]}]\n"
        "role_counts: {compute: 2, network: 1}\n"
    )
    code, doc, err = stack.diagnose("validate", str(plan), "--from-openstack", "--progress", "none")
    conflicts = {n["key"]: n["message"] for n in doc["openstack"]["notes"] if n["kind"] == "conflict"}
    assert conflicts["tunnel.overlay"] == "the plan says gre, Neutron's agents tunnel with vxlan"
    assert "Neutron maps physnet1 to br-phys, the plan to br-other" in conflicts["physnets[0].bridge"]
    # what the plan says is what is checked: GRE needs 1500 + 42 on the data0 plane; br-other has no uplink
    found = {f["requirement"]: (f["status"], f["message"]) for f in doc["findings"]}
    assert code == 1 and found["mtu:tunnel"][0] == "fail" and "below 1542" in found["mtu:tunnel"][1], found
    assert (
        found["vlan:physnet1"][0] == "incomplete" and "no uplink found on bridge br-other" in found["vlan:physnet1"][1]
    )


# --- one fault at a time ------------------------------------------------------------------------------


def _kill_dnsmasq(lab: StackLab):
    os.kill(json.loads((lab.dir / "state.json").read_text())["pids"]["dnsmasq"], signal.SIGTERM)
    time.sleep(0.3)


def _start_dnsmasq(lab: StackLab):
    with lab_named(OS_LAB):
        from steth.lab import ml2

        state = json.loads((lab.dir / "state.json").read_text())
        ml2.start_dnsmasq(state, state["openstack"]["design"])


def _trunks(lab: StackLab, vlans: str):
    from steth.lab import ovs

    record = lab.state["ovs"]
    port = record["ports"][lab.node("network-1")["namespace"]]
    ovs.vsctl(record["instance"], "set", "port", port, f"trunks={vlans}")


def _readd_qvo(lab: StackLab):
    with lab_named(OS_LAB):
        from steth.lab import ml2

        p = lab.vm_port("vm-1")
        ml2._ovs_port(p["host"], ml2.dev("qvo", p["id"]), lab.design, p, p["device_id"])


def _link(lab: StackLab, node: str, *args: str):
    subprocess.run(["ip", "-n", lab.node(node)["namespace"], "link", "set", *args], check=True)


def _dhcp_tap(lab: StackLab) -> str:
    return f"tap{next(p for p in lab.design['ports'] if p['role'] == 'dhcp')['id'][:11]}"


def _dhcp_tap_state(lab: StackLab, state: str):
    subprocess.run(["ip", "-n", lab.design["qdhcp"], "link", "set", _dhcp_tap(lab), state], check=True)


def _replug_dhcp_port(lab: StackLab):
    """The DHCP agent's plugging again (an internal port moved into qdhcp), then dnsmasq on it afresh."""
    with lab_named(OS_LAB):
        from steth.lab import ml2

        port = next(p for p in lab.design["ports"] if p["role"] == "dhcp")
        host_ns = lab.node(port["host"])["namespace"]
        ml2._internal_port_into(port["host"], host_ns, lab.design, port, lab.design["qdhcp"])
    _kill_dnsmasq(lab)
    _start_dnsmasq(lab)


VM1 = "vm-1"  # hybrid plugging on compute-1
FAULTS = {
    # name: (server, apply, revert, expected stage, expected check prefix, expected node)
    "dnsmasq stopped": (VM1, _kill_dnsmasq, _start_dnsmasq, "dhcp-server", "dnsmasq", "network-1"),
    "port tag 4095": (
        VM1,
        lambda lab: lab.ovs("compute-1", "set", "port", f"qvo{lab.vm_port(VM1)['id'][:11]}", "tag=4095"),
        lambda lab: lab.ovs("compute-1", "set", "port", f"qvo{lab.vm_port(VM1)['id'][:11]}", "tag=1"),
        "port",
        "tag qvo",
        "compute-1",
    ),
    "port missing from br-int": (
        VM1,
        lambda lab: lab.ovs("compute-1", "del-port", "br-int", f"qvo{lab.vm_port(VM1)['id'][:11]}"),
        _readd_qvo,
        "port",
        "ovs-port",
        "compute-1",
    ),
    "VLAN not trunked to network-1": (
        VM1,
        lambda lab: _trunks(lab, "0,100,102"),
        lambda lab: _trunks(lab, "0,100,101,102"),
        "dhcp-path",
        "DISCOVER at uplink",
        "network-1",
    ),
    "tap down (native)": (
        "vm-2",
        lambda lab: _link(lab, "compute-2", f"tap{lab.vm_port('vm-2')['id'][:11]}", "down"),
        lambda lab: _link(lab, "compute-2", f"tap{lab.vm_port('vm-2')['id'][:11]}", "up"),
        "port",
        "device tap",
        "compute-2",
    ),
    "DHCP port unplugged": (
        VM1,
        lambda lab: lab.ovs("network-1", "del-port", "br-int", _dhcp_tap(lab)),
        _replug_dhcp_port,
        "dhcp-path",
        "DISCOVER at DHCP port",
        "network-1",
    ),
    "DHCP port down in qdhcp": (
        "vm-2",
        lambda lab: _dhcp_tap_state(lab, "down"),
        lambda lab: _dhcp_tap_state(lab, "up"),
        "dhcp-path",
        "DISCOVER at DHCP port",
        "network-1",
    ),
    "fabric MTU lowered": (
        VM1,
        lambda lab: _link(lab, "network-1", "trunk0", "mtu", "1400"),
        lambda lab: _link(lab, "network-1", "trunk0", "mtu", "1500"),
        "reach",
        "MTU qdhcp",
        "network-1",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_one_fault_the_verdict_names_the_hop(stack, fault):
    server, apply, revert, stage, check, node = FAULTS[fault]
    apply(stack)
    try:
        code, doc, err = stack.diagnose("port-check", stack.vm_port(server)["id"])
    finally:
        revert(stack)
    v = doc["verdict"]
    assert code == 1 and v["status"] == "finding", v
    assert (v["stage"], v["node"]) == (stage, node) and v["check"].startswith(check), v
    assert v["cause"], v
    assert "Traceback" not in err


def test_vlan_not_trunked_shows_in_network_check(stack):
    _trunks(stack, "0,100,102")
    try:
        code, doc, _ = stack.diagnose("network-check", "private")
    finally:
        _trunks(stack, "0,100,101,102")
    v = doc["verdict"]
    assert code == 1 and v["stage"] == "segment" and "network-1" in v["node"] and v["check"] == "VLAN 101", v
    lost = {h["node"] for h in doc["hops"] if h["stage"] == "segment" and h["status"] == "FAIL"}
    assert lost == {"compute-1>network-1", "compute-2>network-1", "network-1>compute-1", "network-1>compute-2"}


def test_dnsmasq_stopped_shows_in_network_check(stack):
    _kill_dnsmasq(stack)
    try:
        code, doc, _ = stack.diagnose("network-check", "private")
    finally:
        _start_dnsmasq(stack)
    assert code == 1 and (doc["verdict"]["stage"], doc["verdict"]["check"]) == ("dhcp-server", "dnsmasq"), doc[
        "verdict"
    ]


def test_dhcp_host_without_agent_is_no_reply_not_a_crash(stack):
    pid = stack.node("network-1")["pid"]
    os.killpg(pid, signal.SIGSTOP)
    try:
        code, doc, err = stack.diagnose("port-check", stack.vm_port(VM1)["id"])
    finally:
        os.killpg(pid, signal.SIGCONT)
    v = doc["verdict"]
    assert code == 3 and v["status"] == "incomplete" and v["node"] == "network-1", v
    silent = [h for h in doc["hops"] if h["node"] == "network-1"]
    assert silent and all(h["status"] == "no_reply" for h in silent)
    assert hop(doc, "port", "ovs-port")["status"] == "ok"  # the compute side was still checked
    assert "Traceback" not in err
    stack.wait_present({"network-1"})


# --- OpenStack side: one clear line each ------------------------------------------------------------


def _one_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and done.stdout == "", (done.stdout, done.stderr)
    return lines[0]


def test_missing_admin_unknown_server_or_port_api_down(stack, tmp_path):
    port = stack.vm_port(VM1)["id"]
    done = stack.cli("port-check", port, env=stack.env(OS_CLOUD="steth-lab-demo"))
    assert done.returncode == 4 and "needs admin credentials" in _one_line(done)
    done = stack.cli("port-check", "00000000-1111-2222-3333-444444444444")
    assert done.returncode == 2 and "OpenStack knows no port" in _one_line(done)
    done = stack.cli("vm-check", "no-such-vm")
    assert done.returncode == 2 and "OpenStack knows no server no-such-vm" in _one_line(done)
    done = stack.cli("port-check", "not-a-port")
    assert done.returncode == 2 and "must be a Neutron port UUID" in _one_line(done)
    # An API that does not answer: the stand-in stopped (SIGSTOP: connections hang) with a short API timeout.
    api = json.loads((stack.dir / "state.json").read_text())["pids"]["openstack-api"]
    os.kill(api, signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = stack.cli("vm-check", "vm-1", "--os-api-timeout", "2")
        took = time.monotonic() - started
    finally:
        os.kill(api, signal.SIGCONT)
    assert done.returncode == 4 and "is not answering" in _one_line(done) and took < 30


def test_agents_inventory_names_each_mismatch(stack):
    path = Path(stack.state["openstack"]["cloud_json"])
    original = path.read_text()
    cloud = json.loads(original)
    ghost = dict(cloud["agents"][0], id="ghost-agent", host="compute-9")
    cloud["agents"].append(ghost)  # a host with a Neutron agent and no steth agent
    next(a for a in cloud["agents"] if a["agent_type"] == "DHCP agent")["alive"] = False
    path.write_text(json.dumps(cloud))
    extra = stack.spawn_agent("stray-1", ["compute"], netns=stack.node("compute-1")["namespace"])
    try:
        stack.wait_present({"stray-1"})
        code, doc = stack.cli_json("agents", "--inventory")
    finally:
        path.write_text(original)
        extra.terminate()
        stack.stop_extra()
    rows = {h["host"]: h["findings"] for h in doc["hosts"]}
    assert code == 1
    assert rows["compute-9"] == ["runs OpenStack services but no steth agent"]
    assert rows["network-1"] == ["Neutron agent down: DHCP agent"]
    assert rows["stray-1"] == ["steth agent unknown to OpenStack (no hypervisor, no Neutron agent)"]
    assert rows["compute-1"] == [] and rows["compute-2"] == []


def test_expect_from_openstack_names_a_hypervisor_without_agent(stack):
    """--expect-from openstack: OpenStack's hosts for the role must answer; one without an agent is named."""
    path = Path(stack.state["openstack"]["cloud_json"])
    original = path.read_text()
    cloud = json.loads(original)
    ghost = dict(cloud["hypervisors"][0], id="hypervisor-compute-9", hypervisor_hostname="compute-9")
    cloud["hypervisors"].append(dict(ghost, service=dict(ghost["service"], host="compute-9")))
    path.write_text(json.dumps(cloud))
    try:
        code, doc = stack.cli_json("--expect-from", "openstack", "hello", "--role", "compute", "--timeout", "2")
        _, plain = stack.cli_json("hello", "--role", "compute", "--timeout", "2")
    finally:
        path.write_text(original)
    rows = {n["node"]: n for n in doc["nodes"]}
    assert code == 3 and rows["compute-9"]["status"] == "no_reply", doc
    assert "OpenStack lists it as a compute host" in rows["compute-9"]["message"]
    assert rows["compute-1"]["status"] == rows["compute-2"]["status"] == "ok"
    # presence alone does not know compute-9 (an agent another test just stopped may still be leaving)
    plain_rows = {n["node"]: n for n in plain["nodes"]}
    assert "compute-9" not in plain_rows and plain_rows["compute-1"]["status"] == "ok", plain


# --- bond and DPDK uplinks, on network-1's real Open vSwitch ---------------------------------------------


def _request(lab: StackLab, probe: str, node: str, args: dict, timeout: float = 15):
    import asyncio

    from steth.controller.session import Selection, Session

    async def go():
        async with Session(lab.nats_options(), signer=lab.signer()) as s:
            return await s.run(probe, Selection(nodes=(node,)), timeout, per_node_args={node: args})

    return asyncio.run(go()).nodes[0]


@pytest.fixture
def bond_and_dpdk_bridge(stack):
    """br-upl on network-1: a bond of two veths (bond0) and a DPDK row (dpdk0), which this vswitchd, built
    without DPDK, keeps with ofport -1 and an error; removed afterwards."""
    ns = stack.node("network-1")["namespace"]
    for a in ("upla", "uplb"):
        subprocess.run(["ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", f"{a}-p"], check=True)
        for dev in (a, f"{a}-p"):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
    try:
        stack.ovs("network-1", "add-br", "br-upl", "--", "set", "bridge", "br-upl", "datapath_type=netdev")
        stack.ovs("network-1", "add-bond", "br-upl", "bond0", "upla", "uplb")
        done = subprocess.run(
            ["ovs-vsctl", "--timeout=10", "add-port", "br-upl", "dpdk0", "--", "set", "interface", "dpdk0"]
            + ["type=dpdk", "options:dpdk-devargs=0000:00:04.0"],
            env={**os.environ, "OVS_RUNDIR": str(stack.dir / "ovs" / "network-1")},
            capture_output=True,
            text=True,
        )
        assert "could not open network device dpdk0" in done.stderr  # the row stays; vswitchd cannot open it
        yield
    finally:
        stack.ovs("network-1", "--if-exists", "del-br", "br-upl")
        for a in ("upla", "uplb"):
            subprocess.run(["ip", "-n", ns, "link", "del", a], check=False)


def test_a_bond_uplink_is_its_members_and_a_dpdk_uplink_not_a_device(stack, bond_and_dpdk_bridge):
    found = _request(stack, "ovs-uplinks", "network-1", {"bridges": ["br-upl"]})
    rows = {u["interface"]: u for u in found.result["uplinks"]}
    assert sorted(rows) == ["dpdk0", "upla", "uplb"], rows
    assert rows["upla"]["port"] == rows["uplb"]["port"] == "bond0" and rows["upla"]["bond"]
    assert not rows["upla"]["not_applicable"] and not rows["uplb"]["not_applicable"]
    assert rows["dpdk0"]["type"] == "dpdk"
    assert rows["dpdk0"]["not_applicable"] == "not applicable: DPDK port, not a kernel device"
    # dhcp-watch listens on the bond's members and says why it does not on the DPDK port
    mac = stack.vm_port(VM1)["mac"]
    watched = _request(stack, "dhcp-watch", "network-1", {"mac": mac, "uplink_bridges": ["br-upl"], "listen_s": 0.5})
    hops = {h["interface"]: h for h in watched.result["hops"]}
    assert sorted(hops) == ["dpdk0", "upla", "uplb"], hops
    assert hops["upla"]["error"] == hops["uplb"]["error"] == ""
    assert hops["dpdk0"]["error"] == "not applicable: DPDK port, not a kernel device"
