"""Bandwidth, capture and link plumbing against the real lab: agents in namespaces, real iperf3 and tcpdump.

Every test checks that no iperf3 or tcpdump process outlives its request, and the mutating ones that what
they created is gone afterwards (also when the request runs out of time).
"""

from __future__ import annotations

import asyncio
import glob
import ipaddress
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_DATA, kernel_has_8021q, needs_root

from steth.agent.probes.capture import walk_pcap

pytestmark = [needs_root, pytest.mark.lab]

TOOLS = ("iperf3", "tcpdump")


def comms_in(ns: str) -> list[str]:
    """The command names of every process in a namespace."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except FileNotFoundError:
            pass
    return names


def tools_running(lab) -> dict[str, list[str]]:
    out = {}
    for node in lab.names():
        found = [c for c in comms_in(lab.node(node)["namespace"]) if c in TOOLS]
        if found:
            out[node] = found
    return out


def wait_no_tools(lab, timeout: float = 3.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not tools_running(lab):
            return
        time.sleep(0.1)
    raise AssertionError(f"tools outlived their request: {tools_running(lab)}")


def wait_tool(ns: str, tool: str, timeout: float = 10.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if tool in comms_in(ns):
            return
        time.sleep(0.05)
    raise AssertionError(f"{tool} never started in {ns}")


def stop_agent(lab, proc: subprocess.Popen, name: str) -> None:
    """SIGTERM an extra agent (it ends its jobs and leaves presence), and wait until it has left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    if proc in lab.extra:
        lab.extra.remove(proc)
    lab.wait_present({name}, absent=True)


def request(lab, node: str, probe: str, args: dict, timeout: float = 5.0):
    """Send one probe straight to one agent (no CLI validation in front): the agent's own answer."""
    from steth.controller.session import Session

    async def go():
        async with Session(lab.nats_options(), signer=lab.signer()) as s:
            gathered = await s.run(probe, None, timeout, per_node_args={node: args})
            return gathered.nodes[0]

    return asyncio.run(go())


@pytest.fixture
def tbf(lab):
    """A 50 Mbit/s token bucket on compute-1's data-plane egress, removed afterwards."""
    lab.in_ns(
        "compute-1",
        "tc",
        "qdisc",
        "add",
        "dev",
        "data0",
        "root",
        "tbf",
        "rate",
        "50mbit",
        "burst",
        "64kb",
        "latency",
        "50ms",
    )
    yield 50e6
    lab.in_ns("compute-1", "tc", "qdisc", "del", "dev", "data0", "root", check=False)


# --- bandwidth ------------------------------------------------------------------------------------


def test_bandwidth_through_tbf_is_within_ten_percent_of_the_limit(lab, tbf):
    code, doc = lab.cli_json(
        "bandwidth", "--server", "compute-2", "--client", "compute-1", "--duration", "4", "--omit", "1"
    )
    assert code == 0, doc
    (pair,) = doc["pairs"]
    assert (pair["server"], pair["client"], pair["status"]) == ("compute-2", "compute-1", "ok")
    assert pair["server_address"] == lab.node("compute-2")["data_address"]
    assert 5201 <= pair["port"] <= 5299
    received = pair["result"]["received_bps"]
    print(f"tbf 50 Mbit/s: sent {pair['result']['sent_bps'] / 1e6:.2f} Mbit/s, received {received / 1e6:.2f} Mbit/s")
    assert received == pytest.approx(tbf, rel=0.10)
    assert doc["summary"]["ok"] == 1
    wait_no_tools(lab)


def test_bandwidth_below_min_bps_is_failed(lab, tbf):
    code, doc = lab.cli_json(
        "bandwidth", "--server", "compute-2", "--client", "compute-1", "--duration", "2", "--min-bps", "100M"
    )
    assert code == 1
    (pair,) = doc["pairs"]
    assert pair["status"] == "failed" and "below the minimum 100.00 Mbit/s" in pair["message"]
    wait_no_tools(lab)


def test_bandwidth_udp_reports_jitter_and_loss(lab):
    code, doc = lab.cli_json(
        "bandwidth",
        "--server",
        "network-1",
        "--client",
        "compute-1",
        "--protocol",
        "udp",
        "--bitrate",
        "20M",
        "--duration",
        "2",
    )
    assert code == 0, doc
    r = doc["pairs"][0]["result"]
    assert r["protocol"] == "udp" and r["received_bps"] == pytest.approx(20e6, rel=0.05)
    assert r["jitter_ms"] is not None and 0 <= r["loss"] <= 0.01 and r["packets"] > 1000
    wait_no_tools(lab)


def test_bandwidth_ring_runs_pairs_one_after_another(lab):
    code, doc = lab.cli_json("bandwidth", "--role", "compute", "--pairs", "ring", "--duration", "1", "--reverse")
    assert code == 0, doc
    pairs = [(p["server"], p["client"]) for p in doc["pairs"]]
    assert pairs == [("compute-2", "compute-1"), ("compute-1", "compute-2")]
    assert all(p["status"] == "ok" and p["result"]["reverse"] for p in doc["pairs"])
    assert doc["elapsed_s"] >= 2.0  # sequential: two one-second tests do not overlap
    done = lab.cli("bandwidth", "--role", "compute", "--pairs", "ring", "--duration", "1")
    assert done.returncode == 0 and "compute-1  compute-2  tcp" in done.stdout and "2/2 pairs measured" in done.stdout
    wait_no_tools(lab)


@pytest.mark.parametrize(
    "args",
    [
        ("--server", "compute-1", "--client", "compute-1"),
        ("--server", "compute-1"),
        ("--server", "compute-1", "--client", "compute-2", "--parallel", "1000"),
        ("--server", "compute-1", "--client", "compute-2", "--bitrate", "fast"),
        ("--server", "compute-1", "--client", "compute-2", "--duration", "100000"),
        ("--server", "compute-1", "--client", "compute-2", "--role", "compute"),
        ("--server", "no-such-node", "--client", "compute-2"),
        ("--role", "compute"),
    ],
)
def test_bandwidth_usage_errors_exit_2_and_start_nothing(lab, args):
    done = lab.cli("bandwidth", *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "error" in done.stderr
    assert not tools_running(lab)


def test_iperf_server_dies_at_its_lifetime_and_iperf_stop_ends_it(lab):
    ns = lab.node("compute-2")["namespace"]
    started = request(lab, "compute-2", "iperf-server", {"lifetime_s": 2})
    assert started.status.value == "ok", started.message
    assert started.result["address"] == lab.node("compute-2")["data_address"]
    assert "iperf3" in comms_in(ns)
    time.sleep(3.5)
    assert "iperf3" not in comms_in(ns)
    assert request(lab, "compute-2", "iperf-stop", {"job_id": started.result["job_id"]}).result["found"] is False

    second = request(lab, "compute-2", "iperf-server", {"lifetime_s": 60})
    assert "iperf3" in comms_in(ns)
    stopped = request(lab, "compute-2", "iperf-stop", {"job_id": second.result["job_id"]})
    assert stopped.status.value == "ok" and stopped.result == {
        "job_id": second.result["job_id"],
        "found": True,
        "was_running": True,
    }
    wait_no_tools(lab, timeout=1)


def test_iperf_server_on_a_foreign_address_is_aborted(lab):
    reply = request(lab, "compute-2", "iperf-server", {"bind": "192.0.2.77"})
    assert reply.status.value == "aborted" and "not an address of this node" in reply.message
    assert not tools_running(lab)


def test_agent_stop_ends_its_jobs(lab):
    ns = lab.node("network-1")["namespace"]
    proc = lab.spawn_agent("h5-jobs", ["jobs"], netns=ns)
    lab.wait_present({"h5-jobs"})
    started = request(
        lab, "h5-jobs", "iperf-server", {"bind": lab.node("network-1")["data_address"], "lifetime_s": 300}
    )
    assert started.status.value == "ok", started.message
    assert "iperf3" in comms_in(ns)
    stop_agent(lab, proc, "h5-jobs")
    assert "iperf3" not in comms_in(ns)
    assert not glob.glob(f"/tmp/steth-iperf-server-{started.result['job_id']}-*")


# --- capture --------------------------------------------------------------------------------------


def capture_in_background(lab, *args: str, listening_in: tuple[str, ...]) -> subprocess.Popen:
    """Start `steth capture`; return once tcpdump runs in every namespace named, so no packet is missed."""
    argv = [sys.executable, "-m", "steth.controller.cli", "capture", *args, "-o", "json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=lab.env())
    for ns in listening_in:
        wait_tool(ns, "tcpdump")
    time.sleep(0.3)  # the process is up; give it a moment to open its capture socket
    return proc


def test_capture_counts_exactly_the_packets_sent(lab):
    c1, c2 = lab.node("compute-1"), lab.node("compute-2")
    proc = capture_in_background(
        lab,
        "--node",
        "compute-1",
        "--node",
        "network-1",
        "--interface",
        "data0",
        "--filter",
        f"icmp and src host {c2['data_address']}",
        "--count",
        "1000",
        "--duration",
        "5",
        listening_in=(c1["namespace"], lab.node("network-1")["namespace"]),
    )
    lab.in_ns("compute-2", "ping", "-c", "20", "-i", "0.05", "-q", c1["data_address"])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    nodes = {n["node"]: n for n in json.loads(out)["nodes"]}
    r = nodes["compute-1"]["result"]
    assert (r["packets"], r["captured"], r["stopped_by"]) == (20, 20, "duration")
    assert len(r["lines"]) == 20 and all("ICMP echo request" in line["summary"] for line in r["lines"])
    assert r["capture_id"] is None  # not kept: nothing left on the node
    # network-1 hangs off the same fabric bridge but is not the destination: unicast never reaches it
    assert nodes["network-1"]["status"] == "ok" and nodes["network-1"]["result"]["packets"] == 0
    wait_no_tools(lab)


def test_capture_stops_at_count(lab):
    c2 = lab.node("compute-2")
    proc = capture_in_background(
        lab,
        "--node",
        "compute-2",
        "--interface",
        "data0",
        "--filter",
        "icmp",
        "--count",
        "6",
        "--duration",
        "20",
        listening_in=(c2["namespace"],),
    )
    lab.in_ns("compute-1", "ping", "-c", "10", "-i", "0.05", "-q", c2["data_address"])
    out, err = proc.communicate(timeout=30)
    r = json.loads(out)["nodes"][0]["result"]
    assert (r["packets"], r["stopped_by"]) == (6, "count") and r["duration_s"] < 5
    wait_no_tools(lab)


def test_capture_stops_at_max_pcap_bytes_with_whole_packets(lab):
    c2 = lab.node("compute-2")
    proc = capture_in_background(
        lab,
        "--node",
        "compute-2",
        "--interface",
        "data0",
        "--filter",
        "icmp",
        "--max-pcap",
        "4096",
        "--duration",
        "20",
        listening_in=(c2["namespace"],),
    )
    lab.in_ns("compute-1", "ping", "-c", "100", "-i", "0.01", "-s", "500", "-q", c2["data_address"])
    out, err = proc.communicate(timeout=30)
    r = json.loads(out)["nodes"][0]["result"]
    # 542-byte frames + 16-byte record headers: 7 whole records fit in 4096 bytes after the 24-byte header
    assert r["stopped_by"] == "bytes" and r["pcap_bytes"] <= 4096 and r["packets"] == 7, r
    wait_no_tools(lab)


def test_capture_inside_a_namespace_of_the_node(lab):
    # the compute-1 agent captures inside another namespace (as an operator would in qdhcp-...)
    other = lab.node("compute-2")
    proc = capture_in_background(
        lab,
        "--node",
        "compute-1",
        "--interface",
        "data0",
        "--netns",
        other["namespace"],
        "--filter",
        "icmp",
        "--count",
        "4",
        "--duration",
        "10",
        listening_in=(other["namespace"],),
    )
    lab.in_ns("network-1", "ping", "-c", "2", "-i", "0.05", "-q", other["data_address"])
    out, err = proc.communicate(timeout=30)
    r = json.loads(out)["nodes"][0]["result"]
    assert (r["packets"], r["stopped_by"]) == (4, "count")
    assert all(other["data_address"] in line["summary"] for line in r["lines"])
    wait_no_tools(lab)


def test_capture_write_moves_a_multi_chunk_pcap(lab, tmp_path):
    c1 = lab.node("compute-1")
    proc = capture_in_background(
        lab,
        "--node",
        "compute-1",
        "--interface",
        "data0",
        "--filter",
        "icmp",
        "--count",
        "600",
        "--duration",
        "15",
        "--lines",
        "5",
        "-w",
        str(tmp_path / "big.pcap"),
        listening_in=(c1["namespace"],),
    )
    lab.in_ns("compute-2", "ping", "-c", "300", "-i", "0.005", "-s", "1400", "-q", c1["data_address"])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    r = doc["nodes"][0]["result"]
    (written,) = doc["written"]
    data = Path(written["path"]).read_bytes()
    print(f"pcap {len(data)} bytes in {written['chunks']} chunks")
    assert written["path"] == str(tmp_path / "big.compute-1.pcap")
    assert r["packets"] == 600 and r["stopped_by"] == "count"
    assert len(data) == r["pcap_bytes"] > 576 * 1024 and written["chunks"] >= 2
    walk = walk_pcap(data)
    assert walk.packets == 600 and walk.complete
    import hashlib

    assert hashlib.sha256(data).hexdigest() == r["sha256"]
    assert len(r["lines"]) == 5 and r["lines_truncated"]
    assert not glob.glob(f"/tmp/steth-capture-{r['capture_id']}-*")  # released on the node
    # the same pcap cannot be fetched twice: it is gone from the agent
    again = request(lab, "compute-1", "capture-fetch", {"capture_id": r["capture_id"]})
    assert again.status.value == "aborted"
    wait_no_tools(lab)


def test_capture_fetch_small_chunks_and_unfetched_pcaps_expire(lab, tmp_path):
    c2 = lab.node("compute-2")
    proc = capture_in_background(
        lab,
        "--node",
        "compute-2",
        "--interface",
        "data0",
        "--filter",
        "icmp",
        "--count",
        "40",
        "--duration",
        "10",
        "--chunk-size",
        "1024",
        "-w",
        str(tmp_path / "{node}.pcap"),
        listening_in=(c2["namespace"],),
    )
    lab.in_ns("compute-1", "ping", "-c", "20", "-i", "0.02", "-q", c2["data_address"])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    (written,) = json.loads(out)["written"]
    assert written["chunks"] == -(-written["bytes"] // 1024) > 3
    assert walk_pcap((tmp_path / "compute-2.pcap").read_bytes()).packets == 40

    kept = request(lab, "compute-2", "capture", {"interface": "data0", "duration_s": 0.5, "write": True, "keep_s": 10})
    assert kept.status.value == "ok" and kept.result["capture_id"]
    assert glob.glob(f"/tmp/steth-capture-{kept.result['capture_id']}-*")
    first = request(lab, "compute-2", "capture-fetch", {"capture_id": kept.result["capture_id"], "length_bytes": 10})
    assert first.result["length_bytes"] == 10 and not first.result["eof"]
    time.sleep(11.5)  # nobody fetched the rest: the agent removes it at keep_s
    assert not glob.glob(f"/tmp/steth-capture-{kept.result['capture_id']}-*")


def test_capture_ends_at_the_request_deadline(lab):
    started = time.monotonic()
    code, doc = lab.cli_json(
        "capture", "--node", "compute-1", "--interface", "data0", "--duration", "60", "--timeout", "2"
    )
    assert time.monotonic() - started < 6
    r = doc["nodes"][0]
    assert r["status"] == "ok" and r["result"]["stopped_by"] == "deadline", r
    wait_no_tools(lab, timeout=1)


@pytest.mark.parametrize(
    "args, says",
    [
        (("--interface", "-x"), "not an interface name"),
        (("--interface", "data0", "--filter", "icmp; reboot"), "may not contain ';'"),
        (("--interface", "data0", "--filter", "$(touch /tmp/h5-pwned)"), "may not contain"),
        (("--interface", "data0", "--filter", "-w /tmp/x"), "may not start with '-'"),
        (("--interface", "data0", "--count", "1000000"), "count"),
        (("--interface", "data0", "--duration", "99999"), "duration"),
    ],
)
def test_capture_bad_params_exit_2_and_run_nothing(lab, args, says):
    done = lab.cli("capture", "--node", "compute-1", *args)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert not tools_running(lab)
    assert not Path("/tmp/h5-pwned").exists()


@pytest.mark.parametrize(
    "args",
    [
        {"interface": "-x"},
        {"interface": "data0", "filter": "icmp; reboot"},
        {"interface": "data0", "count": 1_000_000},
        {"interface": "data0", "filter": "`id`"},
        {"interface": "data0", "bogus": 1},
    ],
)
def test_capture_bad_params_are_invalid_on_the_agent(lab, args):
    reply = request(lab, "compute-1", "capture", args)
    assert reply.status.value == "invalid" and reply.message.startswith("bad args")
    assert not tools_running(lab)  # the runtime validates before the probe runs: nothing started


def test_capture_bad_filter_syntax_is_invalid_and_missing_interface_aborted(lab):
    bad = request(lab, "compute-1", "capture", {"interface": "data0", "filter": "icmp and ((", "duration_s": 1})
    assert bad.status.value == "invalid" and "can't parse filter" in bad.message
    missing = request(lab, "compute-1", "capture", {"interface": "nosuch0", "duration_s": 1})
    assert missing.status.value == "aborted" and "no interface nosuch0" in missing.message
    wait_no_tools(lab, timeout=1)


# --- link plumbing --------------------------------------------------------------------------------


def link_exists(lab, node: str, name: str) -> bool:
    return lab.in_ns(node, "ip", "link", "show", "dev", name, check=False).returncode == 0


def data0_addresses(lab, node: str) -> list[str]:
    doc = json.loads(lab.in_ns(node, "ip", "-j", "addr", "show", "dev", "data0").stdout)
    return [f"{a['local']}/{a['prefixlen']}" for a in doc[0]["addr_info"]]


@pytest.fixture(scope="module")
def mutator(lab):
    """An extra agent allowed to mutate, in network-1's namespace (the lab's own agents are not)."""
    ns = lab.node("network-1")["namespace"]
    proc = lab.spawn_agent("h5-mut", ["mutator"], netns=ns, STETH_POLICY_ALLOW_MUTATING="true")
    lab.wait_present({"h5-mut"})
    yield "h5-mut"
    stop_agent(lab, proc, "h5-mut")
    lab.in_ns("network-1", "ip", "link", "del", "st0", check=False)


def test_link_setup_refused_when_the_policy_is_off(lab):
    code, doc = lab.cli_json("link", "setup", "--node", "compute-1", "--name", "st0", "--cidr", "192.0.2.10/24")
    assert code == 3
    assert doc["nodes"][0]["status"] == "aborted" and "mutating probes are off" in doc["nodes"][0]["message"]
    assert not link_exists(lab, "compute-1", "st0")
    code, doc = lab.cli_json("link", "teardown", "--node", "compute-1", "data0")
    assert code == 3 and doc["nodes"][0]["status"] == "aborted"
    assert link_exists(lab, "compute-1", "data0")


def test_link_setup_marks_and_teardown_removes(lab, mutator):
    before = data0_addresses(lab, "network-1")
    code, doc = lab.cli_json(
        "link", "setup", "--node", mutator, "--name", "st0", "--cidr", "192.0.2.10/24", "--mtu", "1400"
    )
    assert code == 0, doc
    rows = {r["name"]: r for r in doc["nodes"][0]["result"]["links"]}
    assert set(rows) == {"st0", "st0p"}
    assert rows["st0"]["alias"] == f"steth:{doc['request_id']}:{int(doc['nodes'][0]['result']['expires_at'])}"
    assert rows["st0"]["addresses"] == ["192.0.2.10/24"] and rows["st0"]["up"]
    shown = json.loads(lab.in_ns("network-1", "ip", "-j", "link", "show", "dev", "st0").stdout)[0]
    assert shown["ifalias"].startswith("steth:") and shown["mtu"] == 1400 and "UP" in shown["flags"]

    again = lab.cli_json("link", "setup", "--node", mutator, "--name", "st0")
    assert again[0] == 3 and "exists (made by steth request" in again[1]["nodes"][0]["message"]

    code, doc = lab.cli_json("link", "teardown", "--node", mutator, "st0p")
    assert code == 0 and {r["name"] for r in doc["nodes"][0]["result"]["links"]} == {"st0", "st0p"}
    assert not link_exists(lab, "network-1", "st0") and not link_exists(lab, "network-1", "st0p")
    assert data0_addresses(lab, "network-1") == before


def test_link_never_touches_what_steth_did_not_create(lab, mutator):
    before = data0_addresses(lab, "network-1")
    code, doc = lab.cli_json("link", "teardown", "--node", mutator, "data0", "mgmt0")
    assert code == 3 and "refused: data0, mgmt0 not created by steth" in doc["nodes"][0]["message"]
    code, doc = lab.cli_json(
        "link", "setup", "--node", mutator, "--name", "data0", "--kind", "bridge", "--cidr", "192.0.2.10/24"
    )
    assert code == 3 and "refused: data0 exists (not created by steth)" in doc["nodes"][0]["message"]
    code, doc = lab.cli_json("link", "teardown", "--node", mutator, "--all-marked")
    assert code == 0 and doc["nodes"][0]["message"] == "no steth-marked links here"
    assert data0_addresses(lab, "network-1") == before
    assert link_exists(lab, "network-1", "data0") and link_exists(lab, "network-1", "mgmt0")


def test_add_vlan_where_the_kernel_has_8021q_or_not(lab, mutator):
    """With 802.1Q: the subinterface is made (marked, addressed, up), carries a ping across VLAN 100 on the
    lab's fabric to a peer made by hand on compute-1, and teardown removes it. Without: `aborted`, nothing made."""
    code, doc = lab.cli_json(
        "link", "add-vlan", "--node", mutator, "--parent", "data0", "--vlan-id", "100", "--cidr", "192.0.2.10/24"
    )
    node = doc["nodes"][0]
    if not kernel_has_8021q():
        assert code == 3, doc
        assert node["status"] == "aborted" and "no 802.1Q support" in node["message"]
        assert not link_exists(lab, "network-1", "data0.100")
        return
    try:
        assert code == 0 and node["status"] == "ok", doc
        row = {r["name"]: r for r in node["result"]["links"]}["data0.100"]
        assert row["addresses"] == ["192.0.2.10/24"] and row["up"] and row["alias"].startswith("steth:")
        peer = ["ip", "link", "add", "link", "data0", "name", "stpeer100", "type", "vlan", "id", "100"]
        lab.in_ns("compute-1", *peer)
        lab.in_ns("compute-1", "ip", "addr", "add", "192.0.2.11/24", "dev", "stpeer100")
        lab.in_ns("compute-1", "ip", "link", "set", "stpeer100", "up")
        ping = lab.in_ns(
            "network-1", "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", "data0.100", "192.0.2.11", check=False
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        code, doc = lab.cli_json("link", "teardown", "--node", mutator, "data0.100")
        assert code == 0 and "data0.100" in {r["name"] for r in doc["nodes"][0]["result"]["links"]}, doc
        assert not link_exists(lab, "network-1", "data0.100")
    finally:
        lab.in_ns("compute-1", "ip", "link", "del", "stpeer100", check=False)
        lab.in_ns("network-1", "ip", "link", "del", "data0.100", check=False)
    assert not link_exists(lab, "compute-1", "stpeer100")


def test_macvlan_with_a_check_through_it(lab, mutator):
    c1 = lab.node("compute-1")["data_address"]
    spare = f"{ipaddress.ip_network(TEST_DATA)[200]}/{ipaddress.ip_network(TEST_DATA).prefixlen}"  # on the lab's fabric
    code, doc = lab.cli_json(
        "link",
        "setup",
        "--node",
        mutator,
        "--name",
        "stm0",
        "--kind",
        "macvlan",
        "--parent",
        "data0",
        "--cidr",
        spare,
        "--check",
        c1,
        "--ttl",
        "3",
    )
    assert code == 0, doc
    r = doc["nodes"][0]["result"]
    assert r["check_target"] == c1 and r["check_received"] == r["check_sent"] == 3
    assert link_exists(lab, "network-1", "stm0")
    time.sleep(4.5)  # its ttl: the agent removes it
    assert not link_exists(lab, "network-1", "stm0")


def test_setup_that_runs_out_of_time_leaves_nothing(lab, mutator):
    started = time.monotonic()
    code, doc = lab.cli_json(
        "link",
        "setup",
        "--node",
        mutator,
        "--name",
        "stb0",
        "--kind",
        "bridge",
        "--cidr",
        "192.0.2.1/24",
        "--check",
        "192.0.2.99",
        "--check-count",
        "30",
        "--timeout",
        "2",
    )
    assert time.monotonic() - started < 5
    node = doc["nodes"][0]
    assert code == 3 and node["status"] == "timeout", node
    assert [(r["name"], r["action"]) for r in node["result"]["links"]] == [("stb0", "removed")]
    assert not link_exists(lab, "network-1", "stb0")

    # a failed check (no reply) also undoes the setup
    code, doc = lab.cli_json(
        "link",
        "setup",
        "--node",
        mutator,
        "--name",
        "stb0",
        "--kind",
        "bridge",
        "--cidr",
        "192.0.2.1/24",
        "--check",
        "192.0.2.99",
        "--check-count",
        "2",
    )
    assert code == 1 and "no reply from 192.0.2.99" in doc["nodes"][0]["message"]
    assert not link_exists(lab, "network-1", "stb0")


def test_agent_stop_removes_its_links(lab):
    ns = lab.node("compute-2")["namespace"]
    proc = lab.spawn_agent("h5-mut2", ["mutator"], netns=ns, STETH_POLICY_ALLOW_MUTATING="true")
    lab.wait_present({"h5-mut2"})
    code, doc = lab.cli_json("link", "setup", "--node", "h5-mut2", "--name", "st9", "--cidr", "198.51.100.9/24")
    assert code == 0, doc
    assert link_exists(lab, "compute-2", "st9")
    stop_agent(lab, proc, "h5-mut2")
    assert not link_exists(lab, "compute-2", "st9") and not link_exists(lab, "compute-2", "st9p")
