"""ovs, vlan-check and send against a real lab with an Open vSwitch fabric (userspace datapath).

The lab here is its own (name and CIDRs below), brought up with ovs=True: every node's trunk0 is a trunk
port (VLANs 0,100,101,102) of one OVS bridge in the lab's switch namespace. dnsmasq serves DHCP on
compute-2's trunk0 (untagged) and on an access port of VLAN 100 in the switch namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TEST_LAB, Lab, kernel_has_8021q, lab_named

pytestmark = pytest.mark.lab
TOOLS = ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "dnsmasq")


def require_ovs_lab() -> None:
    """The lab tests need root and the tools; the pure checks at the top run anywhere."""
    if not ROOT:
        pytest.skip("needs root (network namespaces, OVS)")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/setup.sh installs them)")


OVS_LAB = os.environ.get("STETH_TEST_OVS_LAB_NAME", (TEST_LAB[:5] + "o"))
OVS_MGMT = os.environ.get("STETH_TEST_OVS_MGMT_CIDR", "10.91.0.0/24")
OVS_DATA = os.environ.get("STETH_TEST_OVS_DATA_CIDR", "10.90.0.0/24")
TRUNK_DHCP = "10.92.0.1/24"  # on compute-2's trunk0, inside its namespace only
VLAN100_DHCP = "10.93.0.1/24"  # on an access port of VLAN 100, inside the switch namespace only


def scapy_children(namespaces: list[str]) -> list[int]:
    """Pids of steth scapy children running in any of these namespaces."""
    inodes = set()
    for ns in namespaces:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"steth.agent.packets" not in (entry / "cmdline").read_bytes():
                continue
            if os.stat(entry / "ns" / "net").st_ino in inodes:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def ovs_daemons(directory: str) -> list[int]:
    """Pids of ovsdb-server/ovs-vswitchd whose command line names this folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in ("ovsdb-server", "ovs-vswitchd") and directory.encode() in cmd:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] != "Z":
                found.append(int(entry.name))
    return found


# --- pure checks (no lab) ---------------------------------------------------------------------


def test_vlan_list_parsing():
    from steth.schemas.probes.vlan_check import parse_vlans

    assert parse_vlans("100,200-203, 100") == [100, 200, 201, 202, 203]
    for bad in ("", "x", "5-1", "1-4000", "100;200", "-1"):
        with pytest.raises(ValueError):
            parse_vlans(bad)


def test_vlan_ranges_rendering():
    from steth.controller.commands.vlan_check import as_ranges

    assert as_ranges([90, 91, 92, 95, 97, 98]) == "90-92,95,97-98"
    assert as_ranges([300]) == "300"


def test_pair_matrix_marks_unknown_when_an_end_did_not_run():
    from steth.controller.commands.vlan_check import build_pairs, exit_code, failing_vlans
    from steth.controller.gather import Gathered, NodeResult
    from steth.schemas.envelope import Status

    rows_a = [
        {"vlan": 100, "peer": "b", "frames": 3, "passed": True},
        {"vlan": 100, "peer": "c", "frames": 0, "passed": False},
    ]
    rows_b = [
        {"vlan": 100, "peer": "a", "frames": 0, "passed": False},
        {"vlan": 100, "peer": "c", "frames": 0, "passed": False},
    ]
    g = Gathered(
        "vlan-check",
        "r",
        1.0,
        {"a", "b", "c"},
        [
            NodeResult("a", Status.FAILED, result={"interface": "trunk0", "mode": "frames", "rows": rows_a}),
            NodeResult("b", Status.FAILED, result={"interface": "trunk0", "mode": "frames", "rows": rows_b}),
            NodeResult("c", Status.ABORTED, "no interface trunk0"),
        ],
    )
    pairs = {(p["from"], p["to"]): p["result"] for p in build_pairs(g, ["a", "b", "c"], [100])}
    assert pairs[("b", "a")] == "passed" and pairs[("a", "b")] == "lost"
    assert pairs[("c", "a")] == pairs[("a", "c")] == "unknown"
    assert failing_vlans(build_pairs(g, ["a", "b", "c"], [100])) == [100]
    assert exit_code(g, build_pairs(g, ["a", "b", "c"], [100])) == 1
    # a receiver whose listener came up after the sender had sent cannot call the VLAN lost
    g.nodes[0].result.update(listening_since=10.5, sent_at=10.0)
    g.nodes[1].result.update(listening_since=9.0, sent_at=10.2)
    pairs = {(p["from"], p["to"]): p for p in build_pairs(g, ["a", "b", "c"], [100])}
    assert pairs[("b", "a")]["result"] == "passed"  # what did arrive still counts
    assert pairs[("a", "b")]["result"] == "lost"
    g.nodes[0].result["rows"][0].update(frames=0, passed=False)
    pairs = {(p["from"], p["to"]): p for p in build_pairs(g, ["a", "b", "c"], [100])}
    assert pairs[("b", "a")]["result"] == "unknown" and "too late" in pairs[("b", "a")]["detail"]
    # ...and the check is sent once more with a send delay that covers the lateness (bounded by the params')
    from steth.controller.commands.vlan_check import retry_send_delay

    late = list(pairs.values())
    assert retry_send_delay(late, 1.5) == 3.1 and retry_send_delay(late, 0.2) == 1.8
    assert retry_send_delay(late, 10.0) is None
    assert retry_send_delay([p for p in late if p["result"] != "unknown" or "late" not in p], 1.5) is None


def test_send_params_bounds():
    from pydantic import ValidationError

    from steth.schemas.probes.send import SendParams

    SendParams(interface="trunk0", packet="dhcp-discover", src_mac="02:00:00:00:00:01")
    for bad in (
        dict(interface="-x", packet="udp", dst="10.0.0.1"),
        dict(interface="trunk0", packet="udp", dst="10.0.0.1", vlan=5000),
        dict(interface="trunk0", packet="udp"),  # no dst
        dict(interface="trunk0", packet="dhcp-discover", dst="10.0.0.1"),
        dict(interface="trunk0", packet="icmp-echo", dst="10.0.0.1", port=80),
        dict(interface="trunk0", packet="dhcp-discover", src_mac="01:00:5e:00:00:01"),  # multicast source
        dict(interface="trunk0", packet="dhcp-discover", src_mac="02:00:00:00:00"),
        dict(interface="trunk0", packet="icmp-echo", dst="fe80::1"),
        dict(interface="trunk0", packet="dhcp-discover", listen_s=1000),
    ):
        with pytest.raises(ValidationError):
            SendParams(**bad)


# --- lab teardown after a crash (runs before the module's lab exists: same name and addresses) ----


def test_lab_down_after_a_crash_stops_ovs_and_removes_everything():
    require_ovs_lab()
    with lab_named(OVS_LAB):
        from steth.lab import fleet
        from steth.lab.state import lab_dir, load_state

        existing = load_state()
        if existing and existing.get("up"):
            pytest.skip("the OVS test lab is already up")
        fleet.down()
        directory = f"{lab_dir()}/"  # with the slash: never another lab whose name starts alike
        env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
        env["STETH_LAB_NAME"] = OVS_LAB
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "steth.controller.cli",
                "lab",
                "up",
                "--ovs",
                "--compute",
                "2",
                "--network",
                "0",
                "--mgmt-cidr",
                OVS_MGMT,
                "--data-cidr",
                OVS_DATA,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not (load_state() or {}).get("ovs", {}).get("ports"):  # the switch runs and a node is attached
                assert time.monotonic() < deadline, "lab up never attached a node to the OVS fabric"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the crash: no cleanup of any kind
            proc.wait()
        assert ovs_daemons(directory), "the crash left no OVS daemons to clean up: the test proves nothing"
        state = load_state()
        namespaces = list(state["netns"])
        assert fleet.down() is True
        time.sleep(0.2)
        assert ovs_daemons(directory) == []
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert not [ns for ns in namespaces if ns in listed.split()]
        assert not Path(directory).exists()


# --- the OVS lab ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ovs_lab():
    require_ovs_lab()
    with lab_named(OVS_LAB):
        from steth.lab import dnsmasq, fleet, ovs
        from steth.lab.state import namespace_for

        fleet.down()
        state = fleet.up(compute=2, network=1, mgmt_cidr=OVS_MGMT, data_cidr=OVS_DATA, heartbeat_s=1.0, ovs=True)
        the_lab = Lab(state, name=OVS_LAB)
        servers = []
        try:
            # DHCP untagged on compute-2's trunk0, and on VLAN 100 behind an access port of the switch.
            subprocess.run(
                ["ip", "-n", namespace_for("compute-2"), "addr", "add", TRUNK_DHCP, "dev", "trunk0"], check=True
            )
            servers.append(dnsmasq.start("trunk", namespace_for("compute-2"), "trunk0", TRUNK_DHCP))
            ovs.access_port(state, "dhcp100", 100, VLAN100_DHCP)
            servers.append(dnsmasq.start("vlan100", ovs.switch_namespace(), "dhcp100", VLAN100_DHCP))
            the_lab.dhcp = {s["name"]: s for s in servers}
            the_lab.namespaces = list(state["netns"])
            yield the_lab
        finally:
            with lab_named(OVS_LAB):
                for server in servers:
                    dnsmasq.stop(server)
                the_lab.stop_extra()
                fleet.down()


@pytest.fixture
def no_scapy_left(ovs_lab):
    """After the test: no scapy child of any request is still running in the lab's namespaces."""
    yield
    deadline = time.monotonic() + 2
    while scapy_children(ovs_lab.namespaces) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scapy_children(ovs_lab.namespaces) == []


def test_lab_status_shows_the_fabric(ovs_lab):
    done = ovs_lab.cli("lab", "status", "-o", "json")

    fabric = json.loads(done.stdout)["ovs"]
    assert fabric["running"] and fabric["trunks"] == [0, 100, 101, 102] and len(fabric["ports"]) == 3


def test_vlan_check_passes_trunked_and_fails_untrunked(ovs_lab, no_scapy_left):
    code, doc = ovs_lab.cli_json("vlan-check", "--interface", "trunk0", "--vlan", "100-101,300")
    assert code == 1, doc
    assert doc["failing_vlans"] == [300]
    by_vlan: dict[int, set[str]] = {}
    for p in doc["pairs"]:
        by_vlan.setdefault(p["vlan"], set()).add(p["result"])
    assert by_vlan == {100: {"passed"}, 101: {"passed"}, 300: {"lost"}}
    assert len([p for p in doc["pairs"] if p["vlan"] == 100]) == 6  # 3 nodes: every ordered pair
    assert {n["status"] for n in doc["nodes"]} == {"failed"}

    code, doc = ovs_lab.cli_json("vlan-check", "--interface", "trunk0", "--vlan", "100,102", "--frames", "2")
    assert code == 0, doc
    assert doc["failing_vlans"] == [] and all(p["result"] == "passed" and p["frames"] == 2 for p in doc["pairs"])


def test_vlan_check_with_a_send_delay_too_short_for_the_listeners(ovs_lab, no_scapy_left):
    """0.2 s is less than a scapy child needs to start listening: the pairs a late listener missed are sent
    once more with a longer delay, and the check completes instead of leaving them unknown or lost."""
    done = ovs_lab.cli("vlan-check", "--interface", "trunk0", "--vlan", "100", "--send-delay", "0.2", "-o", "json")
    doc = json.loads(done.stdout)
    assert done.returncode == 0 and {p["result"] for p in doc["pairs"]} == {"passed"}, (doc["pairs"], done.stderr)
    assert "a listener came up late; once more with --send-delay" in done.stderr, done.stderr


def test_vlan_check_table_names_failing_vlans(ovs_lab, no_scapy_left):
    done = ovs_lab.cli(
        "vlan-check", "--interface", "trunk0", "--vlan", "101,250", "--node", "compute-1", "--node", "network-1"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "compute-1>network-1" in done.stdout and "VLANs that do not pass: 250" in done.stdout
    assert "2/2 nodes replied" in done.stdout


def test_vlan_check_missing_interface_is_aborted(ovs_lab, no_scapy_left):
    code, doc = ovs_lab.cli_json(
        "vlan-check", "--interface", "nosuch0", "--vlan", "100", "--node", "compute-1", "--node", "compute-2"
    )
    assert code == 3
    assert {n["status"] for n in doc["nodes"]} == {"aborted"} and "no interface nosuch0" in doc["nodes"][0]["message"]
    assert {p["result"] for p in doc["pairs"]} == {"unknown"}


def test_vlan_check_subinterface_mode(ovs_lab):
    """Agents with the mutating policy on in compute-1 and compute-2: with 802.1Q in the kernel, VLAN 100
    passes both ways through the OVS trunk ports over temporary subinterfaces; without it, both answer
    `aborted` naming 802.1Q. Either way no subinterface (nor the support test's) is left behind; agents with
    the policy off refuse."""
    with lab_named(OVS_LAB):
        from steth.lab.state import namespace_for

        for node in ("compute-1", "compute-2"):
            ovs_lab.spawn_agent(f"{node}m", ["mutator"], netns=namespace_for(node), STETH_POLICY_ALLOW_MUTATING="true")
        try:
            ovs_lab.wait_present({"compute-1m", "compute-2m"})
            check = ["vlan-check", "--interface", "trunk0", "--vlan", "100", "--mode", "subinterface"]
            check += ["--cidr", "10.94.0.0/24"]
            code, doc = ovs_lab.cli_json(*check, "--node", "compute-1m", "--node", "compute-2m")
            by_node = {n["node"]: n for n in doc["nodes"]}
            if kernel_has_8021q():
                assert code == 0, doc
                assert {n["status"] for n in doc["nodes"]} == {"ok"}, doc
                assert {p["result"] for p in doc["pairs"]} == {"passed"} and len(doc["pairs"]) == 2, doc["pairs"]
            else:
                assert code == 3, doc
                for node in ("compute-1m", "compute-2m"):
                    assert by_node[node]["status"] == "aborted" and "802.1Q" in by_node[node]["message"], doc
                assert {p["result"] for p in doc["pairs"]} == {"unknown"}
            for node in ("compute-1", "compute-2"):
                links = ovs_lab.in_ns(node, "ip", "-o", "link").stdout
                assert "stq" not in links and "stv" not in links, links  # made and removed, or never made
            # agents whose policy is off refuse before anything else, 802.1Q or not
            code, doc = ovs_lab.cli_json(*check, "--node", "compute-1", "--node", "compute-2")
            assert code == 3, doc
            assert all(n["status"] == "aborted" and "refused" in n["message"] for n in doc["nodes"]), doc
            # subinterface mode without --cidr is a usage error, before any network
            done = ovs_lab.cli("vlan-check", "--interface", "trunk0", "--vlan", "100", "--mode", "subinterface")
            assert done.returncode == 2 and "cidr" in done.stderr
        finally:
            ovs_lab.stop_extra()


def test_dhcp_discover_is_answered_by_dnsmasq(ovs_lab, no_scapy_left):
    code, doc = ovs_lab.cli_json("send", "--interface", "trunk0", "--packet", "dhcp-discover", "--node", "compute-1")
    assert code == 0, doc
    node = doc["nodes"][0]
    offers = [r for r in node["result"]["replies"] if r["kind"] == "offer"]
    assert len(offers) == 1, node
    offer = offers[0]
    assert offer["server_id"] == "10.92.0.1" and offer["from_ip"] == "10.92.0.1"
    assert 50 <= int(offer["offered_ip"].rsplit(".", 1)[1]) <= 99 and offer["offered_ip"].startswith("10.92.0.")
    assert offer["lease_time_s"] == 600 and offer["vlan"] is None
    assert "DHCPDISCOVER(trunk0)" in Path(ovs_lab.dhcp["trunk"]["log"]).read_text()


def test_dhcp_discover_on_a_vlan(ovs_lab, no_scapy_left):
    code, doc = ovs_lab.cli_json(
        "send", "--interface", "trunk0", "--packet", "dhcp-discover", "--vlan", "100", "--node", "network-1"
    )
    assert code == 0, doc
    offer = doc["nodes"][0]["result"]["replies"][0]
    assert offer["kind"] == "offer" and offer["server_id"] == "10.93.0.1" and offer["vlan"] == 100
    # VLAN 101 is trunked but has no DHCP server: no reply is a finding
    code, doc = ovs_lab.cli_json(
        "send",
        "--interface",
        "trunk0",
        "--packet",
        "dhcp-discover",
        "--vlan",
        "101",
        "--listen",
        "1",
        "--node",
        "network-1",
    )
    assert code == 1 and doc["nodes"][0]["status"] == "failed" and doc["nodes"][0]["result"]["replies"] == []


def test_spoofed_mac_refused_with_policy_off(ovs_lab, no_scapy_left):
    spoof = "02:5e:00:00:00:42"
    code, doc = ovs_lab.cli_json(
        "send", "--interface", "trunk0", "--packet", "dhcp-discover", "--src-mac", spoof, "--node", "compute-1"
    )
    assert code == 3
    node = doc["nodes"][0]
    assert node["status"] == "aborted" and "refused" in node["message"] and "mutating" in node["message"]
    assert node["duration_s"] < 0.2  # refused before any scapy child started
    time.sleep(0.3)
    assert spoof not in Path(ovs_lab.dhcp["trunk"]["log"]).read_text()  # nothing was sent
    # The interface's own MAC, given explicitly, is no spoofing
    own = ovs_lab.in_ns("compute-1", "cat", "/sys/class/net/trunk0/address").stdout.strip()
    code, doc = ovs_lab.cli_json(
        "send", "--interface", "trunk0", "--packet", "dhcp-discover", "--src-mac", own, "--node", "compute-1"
    )
    assert code == 0 and doc["nodes"][0]["result"]["spoofed"] is False


def test_spoofed_mac_allowed_with_policy_on(ovs_lab, no_scapy_left):
    spoof = "02:5e:00:00:00:43"
    with lab_named(OVS_LAB):
        from steth.lab.state import namespace_for

        ovs_lab.spawn_agent(
            "compute-1m", ["mutator"], netns=namespace_for("compute-1"), STETH_POLICY_ALLOW_MUTATING="true"
        )
    try:
        ovs_lab.wait_present({"compute-1m"})
        code, doc = ovs_lab.cli_json(
            "send", "--interface", "trunk0", "--packet", "dhcp-discover", "--src-mac", spoof, "--node", "compute-1m"
        )
        assert code == 0, doc
        result = doc["nodes"][0]["result"]
        assert result["spoofed"] is True and result["src_mac"] == spoof and result["replies"][0]["kind"] == "offer"
        assert "DHCPOFFER(trunk0)" in Path(ovs_lab.dhcp["trunk"]["log"]).read_text()
        assert spoof in Path(ovs_lab.dhcp["trunk"]["log"]).read_text()
    finally:
        ovs_lab.stop_extra()


def test_send_icmp_tcp_udp_arp_on_the_data_plane(ovs_lab, no_scapy_left):
    target = ovs_lab.node("compute-2")["data_address"]
    for packet, extra, kind in (
        ("icmp-echo", [], "echo-reply"),
        ("arp-request", [], "arp-reply"),
        ("tcp-syn", ["--port", "9"], "rst (closed)"),
        ("udp", ["--port", "9"], "icmp-unreachable (port)"),
    ):
        code, doc = ovs_lab.cli_json(
            "send", "--interface", "data0", "--packet", packet, "--dst", target, *extra, "--node", "compute-1"
        )
        assert code == 0, doc
        reply = doc["nodes"][0]["result"]["replies"][0]
        assert reply["kind"] == kind and reply["from_ip"] == target and reply["delay_ms"] < 1000


def test_bad_params_exit_2_and_run_nothing(ovs_lab):
    for args in (
        ["send", "--interface", "-x", "--packet", "udp", "--dst", "10.0.0.1"],
        ["send", "--interface", "trunk0", "--packet", "udp", "--dst", "10.0.0.1", "--vlan", "5000"],
        ["send", "--interface", "trunk0", "--packet", "dhcp-discover", "--src-mac", "01:00:5e:00:00:01"],
        ["vlan-check", "--interface", "trunk0", "--vlan", "5000"],
        ["vlan-check", "--interface", "-x", "--vlan", "100"],
        ["vlan-check", "--interface", "trunk0", "--vlan", "100;reboot"],
        ["ovs", "ports", "--db", "unix:../db.sock"],
        ["ovs", "check", "--port", "-x"],
    ):
        done = ovs_lab.cli(*args, env={**ovs_lab.env(), "STETH_NATS_URL": "nats://192.0.2.1:4222"})  # no NATS reachable
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "error" in done.stderr.lower() and len(done.stderr.strip().splitlines()) == 1, done.stderr


def _raw(lab: Lab, probe: str, node: str, args: dict, timeout: float = 5.0):
    """Send a request straight over NATS, bypassing the CLI's checks: the agent must judge the args."""
    from steth.controller.session import Selection, Session

    async def go():
        async with Session(lab.nats_options(), signer=lab.signer()) as s:
            return await s.run(probe, Selection(nodes=(node,)), timeout, args)

    return asyncio.run(go()).nodes[0]


def test_agents_answer_invalid_and_run_nothing(ovs_lab, no_scapy_left):
    for probe, args in (
        ("send", {"interface": "-x", "packet": "udp", "dst": "10.0.0.1"}),
        ("send", {"interface": "trunk0", "packet": "dhcp-discover", "vlan": 5000}),
        (
            "vlan-check",
            {"interface": "trunk0", "vlans": [100, 5000], "token": "ab12", "nodes": ["compute-1", "compute-2"]},
        ),
        ("vlan-check", {"interface": "-x", "vlans": [100], "token": "ab12"}),
        ("ovs", {"view": "ports", "db": "unix:/a/../b"}),
        ("ovs", {"view": "ports", "db": "--help"}),
        ("ovs", {"view": "ports", "db": "tcp:fe80::1%x,punix:db.sock,tcp:127.0.0.1:1"}),  # issue 12's hole
    ):
        node = _raw(ovs_lab, probe, "compute-1", args)
        assert node.status.value == "invalid", (probe, args, node)
        assert node.duration_s is not None and node.duration_s < 0.1  # validated, not run
        assert scapy_children(ovs_lab.namespaces) == []


def test_no_scapy_child_outlives_a_request_cut_at_its_deadline(ovs_lab, no_scapy_left):
    started = time.monotonic()
    code, doc = ovs_lab.cli_json(
        "send",
        "--interface",
        "trunk0",
        "--packet",
        "dhcp-discover",
        "--vlan",
        "102",
        "--listen",
        "20",
        "--node",
        "compute-2",
        "--timeout",
        "2",
    )
    assert time.monotonic() - started < 6
    assert code == 3 and doc["nodes"][0]["status"] == "timeout", doc
    assert scapy_children(ovs_lab.namespaces) == []  # killed with its process group at the deadline


# --- ovs: a hermetic OVS of the test's own, inside compute-1's namespace ---------------------------


@pytest.fixture(scope="module")
def node_ovs(ovs_lab):
    with lab_named(OVS_LAB):
        from steth.lab import ovs
        from steth.lab.state import lab_dir, namespace_for

        inst = ovs.start(lab_dir() / "ovs-test-compute-1", namespace_for("compute-1"))
    try:
        v = lambda *a, check=True: ovs.vsctl(inst, *a, check=check)  # noqa: E731
        ovs.add_bridge(inst, "br-int")
        ovs.add_bridge(inst, "br-ex")
        v(
            "add-port",
            "br-int",
            "tapvm1",
            "--",
            "set",
            "interface",
            "tapvm1",
            "type=internal",
            "external_ids:iface-id=3f1c-port",
            "external_ids:attached-mac=fa:16:3e:11:22:33",
            "external_ids:vm-uuid=9d2e-vm",
            "--",
            "set",
            "port",
            "tapvm1",
            "tag=1",
            "other_config:net_uuid=7a0b-net",
            "other_config:segmentation_id=100",
        )
        v(
            "add-port",
            "br-int",
            "tapdead",
            "--",
            "set",
            "interface",
            "tapdead",
            "type=internal",
            "--",
            "set",
            "port",
            "tapdead",
            "tag=4095",
        )
        v(
            "add-port",
            "br-int",
            "patch-int",
            "--",
            "set",
            "interface",
            "patch-int",
            "type=patch",
            "options:peer=patch-ex",
            "--",
            "add-port",
            "br-ex",
            "patch-ex",
            "--",
            "set",
            "interface",
            "patch-ex",
            "type=patch",
            "options:peer=patch-int",
        )
        v(
            "add-port",
            "br-int",
            "patch-lost",
            "--",
            "set",
            "interface",
            "patch-lost",
            "type=patch",
            "options:peer=patch-gone",
        )
        v("add-port", "br-int", "nosuchdev", check=False)  # OVS cannot open it: ofport -1
        yield ovs.db_url(inst["dir"])
    finally:
        ovs.stop(inst)


def test_ovs_dead_port_and_other_findings_are_flagged(ovs_lab, node_ovs):
    code, doc = ovs_lab.cli_json("ovs", "ports", "--db", node_ovs, "--node", "compute-1")
    assert code == 1, doc
    node = doc["nodes"][0]
    assert node["status"] == "failed"
    ports = {p["name"]: p for p in node["result"]["ports"]}
    assert ports["tapdead"]["tag"] == 4095 and ports["tapdead"]["findings"] == ["dead port (tag 4095)"]
    assert ports["nosuchdev"]["ofport"] == -1 and ports["nosuchdev"]["findings"][0].startswith("ofport -1")
    assert ports["patch-lost"]["findings"] == ["patch peer patch-gone missing"]
    assert ports["patch-int"]["peer_ok"] is True and ports["patch-int"]["findings"] == []
    vm = ports["tapvm1"]
    assert (vm["iface_id"], vm["attached_mac"], vm["vm_uuid"], vm["net_uuid"], vm["segmentation_id"]) == (
        "3f1c-port",
        "fa:16:3e:11:22:33",
        "9d2e-vm",
        "7a0b-net",
        "100",
    )
    assert vm["ofport"] >= 1 and vm["type"] == "internal" and vm["findings"] == []
    assert "tapdead: dead port (tag 4095)" in node["result"]["findings"]


def test_ovs_check(ovs_lab, node_ovs):
    code, doc = ovs_lab.cli_json(
        "ovs",
        "check",
        "--bridge",
        "br-int",
        "--port",
        "tapvm1",
        "--port",
        "patch-int",
        "--db",
        node_ovs,
        "--node",
        "compute-1",
    )
    assert code == 0, doc
    code, doc = ovs_lab.cli_json(
        "ovs",
        "check",
        "--bridge",
        "br-int",
        "--port",
        "tapvm1",
        "--port",
        "qvo-gone",
        "--port",
        "patch-ex",
        "--db",
        node_ovs,
        "--node",
        "compute-1",
    )
    assert code == 1
    assert doc["nodes"][0]["result"]["findings"] == ["port qvo-gone absent", "port patch-ex is on br-ex, not br-int"]
    code, doc = ovs_lab.cli_json("ovs", "check", "--bridge", "br-tun", "--db", node_ovs, "--node", "compute-1")
    assert code == 1 and doc["nodes"][0]["result"]["findings"] == ["bridge br-tun absent"]
    code, doc = ovs_lab.cli_json("ovs", "check", "--bridge", "br-int", "--db", node_ovs, "--node", "compute-1")
    assert code == 1 and len(doc["nodes"][0]["result"]["findings"]) == 3  # dead, ofport -1, lost patch peer


def test_ovs_bridges_and_port(ovs_lab, node_ovs):
    code, doc = ovs_lab.cli_json("ovs", "bridges", "--db", node_ovs, "--node", "compute-1")
    assert code == 0
    assert {b["name"]: b["ports"] for b in doc["nodes"][0]["result"]["bridges"]} == {"br-ex": 2, "br-int": 6}
    done = ovs_lab.cli("ovs", "port", "tapvm1", "--db", node_ovs, "--node", "compute-1")
    assert done.returncode == 0 and "external_ids:iface-id" in done.stdout and "3f1c-port" in done.stdout
    done = ovs_lab.cli("ovs", "port", "tap-nowhere", "--db", node_ovs, "--node", "compute-1")
    assert done.returncode == 1 and "found on no node" in done.stdout


def test_ovs_db_outside_the_allow_list_is_refused_and_the_socket_stays(ovs_lab, node_ovs):
    """A db the agent's allowed_ovsdb does not name is refused before ovs-vsctl runs; the live socket survives."""
    sock = Path(node_ovs.removeprefix("unix:"))
    for db in ("tcp:127.0.0.1:6640", "unix:/tmp/steth-not-allowed/db.sock"):
        code, doc = ovs_lab.cli_json("ovs", "ports", "--db", db, "--node", "compute-1")
        node = doc["nodes"][0]
        assert code == 3 and node["status"] == "aborted", doc
        assert "not in this agent's allowed_ovsdb" in node["message"], node
    assert sock.is_socket()
    code, doc = ovs_lab.cli_json("ovs", "bridges", "--db", node_ovs, "--node", "compute-1")
    assert code == 0, doc  # still served


def test_ovs_unreachable_db_is_aborted(ovs_lab):
    code, doc = ovs_lab.cli_json("ovs", "ports", "--node", "compute-2")  # the default socket does not exist here
    assert code == 3
    assert doc["nodes"][0]["status"] == "aborted" and "cannot read OVSDB" in doc["nodes"][0]["message"]
