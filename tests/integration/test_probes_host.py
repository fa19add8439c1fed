"""Host probes against the real lab: interface, netns, address-check, tcp-check, arping, mtu, and ping --netns.

Everything a test adds to the hosts (a qdhcp- namespace on the fabric, a duplicated address, a lowered MTU, a TCP
listener, an nftables drop rule, a small routed path) is named after the test lab and removed afterwards, also
when the test fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_DATA, TEST_LAB, needs_root

pytestmark = [needs_root, pytest.mark.lab]

DATA_NET = ipaddress.ip_network(TEST_DATA)
SIDE_ADDRESS = str(DATA_NET[100])  # the side namespace's address on the fabric
DUPLICATE = str(DATA_NET[200])  # added to two nodes by the duplicate test
UNUSED = str(DATA_NET[250])  # nobody holds it
LOOPBACK_ONLY = "192.0.2.77"  # on the side namespace's lo: reachable from inside it only
OPEN_PORT, DROPPED_PORT, REFUSED_PORT, SIDE_PORT = 18080, 18081, 18082, 18083
PWNED = Path(f"/tmp/{TEST_LAB}-pwned")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def data(lab, node: str) -> str:
    return lab.node(node)["data_address"]


@dataclass
class Side:
    name: str  # qdhcp-<lab>-<uuid>: a namespace as a DHCP agent would make it
    host_end: str
    tap: str = "tapq0"


@pytest.fixture(scope="module")
def side(lab):
    """A qdhcp- namespace plugged into the lab fabric, with a bridge and a veth without carrier inside."""
    from steth.lab.fleet import fabric_bridge

    ns = Side(name=f"qdhcp-{TEST_LAB}-{uuid.uuid4()}", host_end=f"{TEST_LAB}q{uuid.uuid4().hex[:4]}")
    try:
        sh("ip", "netns", "add", ns.name)
        sh("ip", "-n", ns.name, "link", "set", "lo", "up")
        sh("ip", "-n", ns.name, "addr", "add", f"{LOOPBACK_ONLY}/32", "dev", "lo")
        sh("ip", "link", "add", ns.host_end, "type", "veth", "peer", "name", ns.tap, "netns", ns.name)
        sh("ip", "link", "set", ns.host_end, "master", fabric_bridge(), "up")
        sh("ip", "-n", ns.name, "addr", "add", f"{SIDE_ADDRESS}/{DATA_NET.prefixlen}", "dev", ns.tap)
        sh("ip", "-n", ns.name, "link", "set", ns.tap, "up")
        sh("ip", "-n", ns.name, "link", "add", "brq0", "type", "bridge")
        sh("ip", "-n", ns.name, "link", "add", "vq0", "type", "veth", "peer", "name", "vq1")
        sh("ip", "-n", ns.name, "link", "set", "vq0", "master", "brq0")
        sh("ip", "-n", ns.name, "link", "set", "vq1", "up")  # its peer vq0 stays down: admin up, no carrier
        yield ns
    finally:
        for pid in sh("ip", "netns", "pids", ns.name, check=False).stdout.split():
            sh("kill", "-9", pid, check=False)
        sh("ip", "netns", "del", ns.name, check=False)
        sh("ip", "link", "del", ns.host_end, check=False)


@contextmanager
def listener(netns: str, host: str, port: int):
    """A python TCP listener inside a namespace, killed afterwards."""
    code = (
        "import socket,sys\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(({host!r}, {port})); s.listen(16); print('ready', flush=True)\n"
        "while True:\n    c, _ = s.accept(); c.close()\n"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def mtu_set(netns: str, dev: str, mtu: int):
    before = sh("ip", "netns", "exec", netns, "cat", f"/sys/class/net/{dev}/mtu").stdout.strip()
    sh("ip", "-n", netns, "link", "set", dev, "mtu", str(mtu))
    try:
        yield
    finally:
        sh("ip", "-n", netns, "link", "set", dev, "mtu", before)


def raw_request(lab, probe: str, node: str, args: dict, timeout: float = 10):
    """Send args the CLI would refuse, straight to one agent: what does the agent itself answer?"""
    from steth.controller.session import Selection, Session

    async def go():
        async with Session(lab.nats_options(), signer=lab.signer()) as s:
            return await s.run(probe, Selection(nodes=(node,)), timeout, per_node_args={node: args})

    return asyncio.run(go())


# --- interface -------------------------------------------------------------------------------------------


def test_interface_reports_the_nodes_links(lab):
    code, doc = lab.cli_json("interface", "--node", "compute-1")
    assert code == 0, doc
    (node,) = doc["nodes"]
    links = {link["name"]: link for link in node["result"]["interfaces"]}
    assert {"lo", "data0", "mgmt0"} <= set(links)
    d = links["data0"]
    mac = lab.in_ns("compute-1", "cat", "/sys/class/net/data0/address").stdout.strip()
    assert (d["kind"], d["admin_state"], d["oper_state"], d["carrier"], d["mtu_bytes"], d["mac"]) == (
        "veth",
        "up",
        "up",
        True,
        1500,
        mac,
    )
    assert d["ipv4"] == [f"{data(lab, 'compute-1')}/{DATA_NET.prefixlen}"]
    assert d["rx_packets"] > 0 and d["tx_bytes"] > 0 and d["rx_errors"] == 0
    assert links["lo"]["ipv4"] == ["127.0.0.1/8"] and links["lo"]["link_type"] == "loopback"


def test_interface_in_a_namespace_names_masters_and_flags_no_carrier(lab, side):
    code, doc = lab.cli_json("interface", "--netns", side.name, "--node", "compute-1")
    assert code == 0, doc
    links = {link["name"]: link for link in doc["nodes"][0]["result"]["interfaces"]}
    assert links["brq0"]["kind"] == "bridge" and links["vq0"]["master"] == "brq0"
    assert links[side.tap]["ipv4"] == [f"{SIDE_ADDRESS}/{DATA_NET.prefixlen}"]

    done = lab.cli("interface", "vq1", "--netns", side.name, "--node", "compute-1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed" in done.stdout and "admin up but has no carrier" in done.stdout
    assert "1/1 nodes replied" in done.stdout  # the footer


def test_interface_missing_is_aborted(lab):
    code, doc = lab.cli_json("interface", "nosuch0", "--node", "compute-1")
    assert code == 3
    assert doc["nodes"][0]["status"] == "aborted" and "nosuch0" in doc["nodes"][0]["message"]


# --- netns -----------------------------------------------------------------------------------------------


def test_netns_lists_and_classifies(lab, side):
    code, doc = lab.cli_json("netns", "--prefix", f"qdhcp-{TEST_LAB}-")
    assert code == 0, doc
    assert {n["node"] for n in doc["nodes"]} == set(lab.names())
    for node in doc["nodes"]:  # namespaces are global on one machine: every lab node sees the same ones
        rows = {r["name"]: r for r in node["result"]["namespaces"]}
        row = rows[side.name]
        assert row["kind"] == "qdhcp" and row["neutron_id"] == side.name[len("qdhcp-") :]
        assert set(row["interface_names"]) == {side.tap, "brq0", "vq0", "vq1"}
        assert f"{side.tap}:{SIDE_ADDRESS}/{DATA_NET.prefixlen}" in row["addresses"]
        assert f"lo:{LOOPBACK_ONLY}/32" in row["addresses"]
    code, doc = lab.cli_json("netns", "--kind", "qdhcp", "--node", "compute-1")
    assert code == 0 and side.name in {r["name"] for r in doc["nodes"][0]["result"]["namespaces"]}
    assert all(r["kind"] == "qdhcp" for r in doc["nodes"][0]["result"]["namespaces"])
    table = lab.cli("netns", "--prefix", side.name, "--node", "compute-1")
    assert table.returncode == 0 and "qdhcp" in table.stdout and "1/1 nodes replied" in table.stdout


# --- address-check ---------------------------------------------------------------------------------------


def test_address_check_finds_holders(lab):
    c1, c2 = data(lab, "compute-1"), data(lab, "compute-2")
    code, doc = lab.cli_json("address-check", c1, c2, UNUSED)
    assert code == 0, doc
    report = {a["address"]: a for a in doc["addresses"]}
    assert report[c1]["verdict"] == "held" and report[c1]["holders"] == [
        {"node": "compute-1", "interface": "data0", "netns": "", "prefixlen": DATA_NET.prefixlen}
    ]
    assert [h["node"] for h in report[c2]["holders"]] == ["compute-2"]
    assert report[UNUSED]["verdict"] == "not held" and doc["duplicates"] == []


def test_address_check_duplicate_is_a_finding(lab):
    added = []
    try:
        for node in ("compute-1", "compute-2"):
            lab.in_ns(node, "ip", "addr", "add", f"{DUPLICATE}/32", "dev", "data0")
            added.append(node)
        code, doc = lab.cli_json("address-check", DUPLICATE, data(lab, "network-1"))
        assert code == 1, doc
        report = {a["address"]: a for a in doc["addresses"]}
        assert report[DUPLICATE]["verdict"] == "duplicate" and doc["duplicates"] == [DUPLICATE]
        assert sorted(h["node"] for h in report[DUPLICATE]["holders"]) == ["compute-1", "compute-2"]
        assert report[data(lab, "network-1")]["verdict"] == "held"
        table = lab.cli("address-check", DUPLICATE)
        assert table.returncode == 1 and "DUPLICATE" in table.stdout and "compute-2:data0" in table.stdout
    finally:
        for node in added:
            lab.in_ns(node, "ip", "addr", "del", f"{DUPLICATE}/32", "dev", "data0", check=False)
    code, doc = lab.cli_json("address-check", DUPLICATE)
    assert code == 0 and doc["addresses"][0]["verdict"] == "not held"


def test_address_check_looks_into_namespaces(lab, side):
    code, doc = lab.cli_json("address-check", SIDE_ADDRESS, "--all-netns", "--node", "compute-1")
    assert code == 0, doc
    (row,) = doc["addresses"]
    assert row["holders"] == [
        {"node": "compute-1", "interface": side.tap, "netns": side.name, "prefixlen": DATA_NET.prefixlen}
    ]
    code, doc = lab.cli_json("address-check", SIDE_ADDRESS, "--node", "compute-1")  # its own namespace only
    assert code == 0 and doc["addresses"][0]["verdict"] == "not held"


# --- tcp-check -------------------------------------------------------------------------------------------


@pytest.fixture
def tcp_targets(lab):
    """compute-2: a listener on OPEN_PORT, an nftables rule dropping SYNs to DROPPED_PORT, nothing on REFUSED_PORT."""
    ns = lab.node("compute-2")["namespace"]
    table = f"{TEST_LAB}test"
    with listener(ns, "0.0.0.0", OPEN_PORT):
        lab.in_ns("compute-2", "nft", "add", "table", "inet", table)
        try:
            lab.in_ns(
                "compute-2",
                "nft",
                "add",
                "chain",
                "inet",
                table,
                "in",
                "{ type filter hook input priority 0; policy accept; }",
            )
            lab.in_ns("compute-2", "nft", "add", "rule", "inet", table, "in", "tcp", "dport", str(DROPPED_PORT), "drop")
            yield data(lab, "compute-2")
        finally:
            lab.in_ns("compute-2", "nft", "delete", "table", "inet", table, check=False)


def test_tcp_check_open_refused_timeout(lab, tcp_targets):
    c2 = tcp_targets
    targets = [f"{c2}:{OPEN_PORT}", f"{c2}:{REFUSED_PORT}", f"{c2}:{DROPPED_PORT}"]
    started = time.monotonic()
    code, doc = lab.cli_json("tcp-check", *targets, "--connect-timeout", "0.5", "--node", "compute-1")
    elapsed = time.monotonic() - started
    assert code == 1, doc
    (node,) = doc["nodes"]
    rows = {r["target"]: r for r in node["result"]["targets"]}
    opened, refused, dropped = (rows[t] for t in targets)
    assert opened["connected"] and 0 < opened["connect_ms"] < 100 and opened["address"] == c2
    assert not refused["connected"] and refused["error"] == "refused"
    assert not dropped["connected"] and dropped["error"] == "timeout after 0.5 s"
    assert node["status"] == "failed" and elapsed < 5
    print(f"tcp-check: open {opened['connect_ms']} ms; whole command {elapsed:.2f} s")

    code, doc = lab.cli_json("tcp-check", f"{c2}:{OPEN_PORT}", "--role", "compute", "--role", "network")
    assert code == 0 and {n["status"] for n in doc["nodes"]} == {"ok"} and len(doc["nodes"]) == 3


def test_tcp_check_inside_a_namespace(lab, side):
    target = f"{LOOPBACK_ONLY}:{SIDE_PORT}"
    with listener(side.name, LOOPBACK_ONLY, SIDE_PORT):
        code, doc = lab.cli_json("tcp-check", target, "--netns", side.name, "--node", "compute-1")
        assert code == 0, doc
        assert doc["nodes"][0]["result"]["targets"][0]["connected"]
        code, doc = lab.cli_json("tcp-check", target, "--node", "compute-1", "--connect-timeout", "0.5")
        assert code == 1  # from the node's own namespace the address is not there
    code, doc = lab.cli_json("tcp-check", target, "--netns", f"{TEST_LAB}-no-such-ns", "--node", "compute-1")
    assert code == 3 and doc["nodes"][0]["status"] == "aborted" and "no-such-ns" in doc["nodes"][0]["message"]


# --- arping ----------------------------------------------------------------------------------------------


def test_arping_answer_and_none(lab, side):
    c2 = data(lab, "compute-2")
    mac = lab.in_ns("compute-2", "cat", "/sys/class/net/data0/address").stdout.strip()
    code, doc = lab.cli_json("arping", c2, "--interface", "data0", "--count", "2", "--node", "compute-1")
    assert code == 0, doc
    result = doc["nodes"][0]["result"]
    assert (result["sent"], result["received"], result["macs"]) == (2, 2, [mac])

    code, doc = lab.cli_json("arping", UNUSED, "--interface", "data0", "--count", "2", "--node", "compute-1")
    assert code == 1, doc
    node = doc["nodes"][0]
    assert node["status"] == "failed" and node["result"]["received"] == 0 and node["result"]["sent"] == 2
    assert "no ARP reply" in node["message"]

    code, doc = lab.cli_json(
        "arping", c2, "--interface", side.tap, "--netns", side.name, "--count", "1", "--node", "compute-1"
    )
    assert code == 0 and doc["nodes"][0]["result"]["macs"] == [mac]

    code, doc = lab.cli_json("arping", c2, "--interface", "nosuch0", "--count", "1", "--node", "compute-1")
    assert code == 3 and doc["nodes"][0]["status"] == "aborted"


# --- mtu -------------------------------------------------------------------------------------------------


def test_mtu_finds_a_lowered_mtu(lab):
    started = time.monotonic()
    code, doc = lab.cli_json("mtu", "--to", "node:compute-2", "--expect", "1500", "--wait", "0.3")
    assert code == 0, doc
    assert {n["node"] for n in doc["nodes"]} == {"compute-1", "network-1"}  # the target itself is left out
    assert {n["result"]["path_mtu_bytes"] for n in doc["nodes"]} == {1500}
    clean = time.monotonic() - started

    with mtu_set(lab.node("compute-2")["namespace"], "data0", 1400):
        started = time.monotonic()
        code, doc = lab.cli_json("mtu", "--to", "node:compute-2", "--expect", "1500", "--wait", "0.3")
        lowered = time.monotonic() - started
    assert code == 1, doc
    for node in doc["nodes"]:
        r = node["result"]
        # A veth accepts frames up to its MTU + 4 bytes (room for a VLAN tag), so a lowered MTU on the
        # receiving end black-holes packets above 1404, not 1400: the probe measures what really passes.
        assert node["status"] == "failed" and 1400 <= r["path_mtu_bytes"] <= 1404, r
        assert r["largest_payload_bytes"] == r["path_mtu_bytes"] - 28 and "below the expected 1500" in node["message"]
    print(
        f"mtu: clean path {clean:.2f} s; black hole at 1400 found as {r['path_mtu_bytes']} in {r['rounds']} "
        f"rounds, {r['probes']} pings, {lowered:.2f} s"
    )

    with mtu_set(lab.node("compute-1")["namespace"], "data0", 1450):
        code, doc = lab.cli_json("mtu", "--to", data(lab, "compute-2"), "--node", "compute-1", "--wait", "0.3")
    assert code == 0, doc
    r = doc["nodes"][0]["result"]
    assert (r["path_mtu_bytes"], r["reported_mtu_bytes"]) == (1450, 1450)


@pytest.fixture
def routed_path():
    """a --(1500)-- r --(1400)-- b: a router with a smaller egress MTU answers "fragmentation needed"."""
    tag = uuid.uuid4().hex[:6]
    a, r, b = (f"{TEST_LAB}-mtu{x}-{tag}" for x in "arb")
    try:
        for ns in (a, r, b):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "e0", "netns", a, "type", "veth", "peer", "name", "r0", "netns", r)
        sh("ip", "link", "add", "e0", "netns", b, "type", "veth", "peer", "name", "r1", "netns", r)
        for ns, dev, cidr in (
            (a, "e0", "192.0.2.1/30"),
            (r, "r0", "192.0.2.2/30"),
            (r, "r1", "192.0.2.5/30"),
            (b, "e0", "192.0.2.6/30"),
        ):
            sh("ip", "-n", ns, "addr", "add", cidr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", r, "link", "set", "r1", "mtu", "1400")
        sh("ip", "-n", a, "route", "add", "default", "via", "192.0.2.2")
        sh("ip", "-n", b, "route", "add", "default", "via", "192.0.2.5")
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield a
    finally:
        for ns in (a, r, b):
            sh("ip", "netns", "del", ns, check=False)


def test_mtu_through_a_router_in_a_namespace(lab, routed_path):
    code, doc = lab.cli_json(
        "mtu", "--to", "192.0.2.6", "--netns", routed_path, "--expect", "1500", "--node", "compute-1"
    )
    assert code == 1, doc
    r = doc["nodes"][0]["result"]
    assert (r["path_mtu_bytes"], r["reported_mtu_bytes"]) == (1400, 1400)
    print(f"mtu via a router: {r['path_mtu_bytes']} in {r['rounds']} rounds, {doc['nodes'][0]['duration_s']} s")


def test_mtu_dead_target_is_a_finding(lab):
    code, doc = lab.cli_json("mtu", "--to", UNUSED, "--node", "compute-1", "--wait", "0.3", "--attempts", "1")
    assert code == 1 and "no reply even to a 68-byte packet" in doc["nodes"][0]["message"]


# --- ping --netns ----------------------------------------------------------------------------------------


def test_ping_inside_a_namespace(lab, side):
    code, doc = lab.cli_json(
        "ping", LOOPBACK_ONLY, "--netns", side.name, "--node", "compute-1", "--count", "2", "--interval", "0.2"
    )
    assert code == 0, doc
    assert doc["nodes"][0]["result"]["targets"][0]["received"] == 2
    code, doc = lab.cli_json(
        "ping", data(lab, "compute-2"), "--netns", side.name, "--node", "compute-1", "--count", "2", "--interval", "0.2"
    )
    assert code == 0, doc  # from the namespace, over its own tap on the fabric
    code, doc = lab.cli_json("ping", LOOPBACK_ONLY, "--node", "compute-1", "--count", "1")
    assert code != 0 and doc["nodes"][0]["result"]["targets"][0]["received"] == 0  # not from the node itself
    code, doc = lab.cli_json(
        "ping", LOOPBACK_ONLY, "--netns", f"{TEST_LAB}-no-such-ns", "--node", "compute-1", "--count", "1"
    )
    assert code == 3 and doc["nodes"][0]["status"] == "aborted" and "no-such-ns" in doc["nodes"][0]["message"]


# --- bad params: refused before anything runs ------------------------------------------------------------

BAD_CLI = [
    ("interface", "--", "-x"),
    ("interface", "--netns", "-x"),
    ("arping", "10.0.0.1", "--interface", "-x"),
    ("arping", "10.0.0.1", "--interface", "data0", "--count", "1000000"),
    ("arping", "10.0.0.1"),
    ("arping", "fd00::1", "--interface", "data0"),
    ("tcp-check", f"10.0.0.1:80;touch {PWNED}"),
    ("tcp-check", f"$(touch {PWNED}):80"),
    ("tcp-check", "10.0.0.1:99999"),
    ("tcp-check", "10.0.0.1:80", "--connect-timeout", "1000000"),
    ("netns", "--prefix", "-x"),
    ("netns", "--max-namespaces", "1000000"),
    ("address-check", "10.0.0.300"),
    ("address-check", "-x"),
    ("mtu", "--to", "10.0.0.1;reboot"),
    ("mtu", "--to", "node:-x"),
    ("mtu", "--to", "10.0.0.1", "--expect", "10"),
    ("mtu", "--to", "10.0.0.1", "--attempts", "1000000"),
    ("ping", "10.0.0.1", "--netns", "-x"),
]


@pytest.mark.parametrize("argv", BAD_CLI, ids=lambda a: " ".join(a))
def test_bad_params_exit_2_before_any_network(lab, argv):
    env = lab.env()
    env["STETH_NATS_URL"] = "nats://127.0.0.1:1"  # nothing listens: reaching for NATS would exit 4, not 2
    done = lab.cli(*argv, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) <= 3 and "Traceback" not in done.stderr
    assert not PWNED.exists()


def test_agents_answer_invalid_and_run_nothing(lab):
    c2 = data(lab, "compute-2")
    cases = [
        ("interface", {"interface": "-x"}),
        ("arping", {"target": c2, "interface": "-x"}),
        ("arping", {"target": c2, "interface": "data0", "count": 1_000_000}),
        ("tcp-check", {"targets": [f"{c2}:80;touch {PWNED}"]}),
        ("tcp-check", {"targets": [f"$(touch {PWNED}):80"]}),
        ("mtu", {"target": c2, "attempts": 1_000_000}),
        ("netns", {"prefix": "-x"}),
        ("address", {"addresses": ["-x"]}),
        ("ping", {"targets": [c2], "netns": "-x"}),
    ]
    for probe, args in cases:
        started = time.monotonic()
        gathered = raw_request(lab, probe, "compute-1", args)
        (node,) = gathered.nodes
        assert node.status.value == "invalid", (probe, args, node)
        assert node.message.startswith("bad args:"), node.message
        assert time.monotonic() - started < 3  # answered at once: a million ARP requests were never sent
    assert not PWNED.exists()
    log = (lab.dir / "compute-1.log").read_text()
    # the agent logged the refusals (whatever quoting the log line uses)
    assert any("arping" in line and "status=invalid" in line for line in log.splitlines())
