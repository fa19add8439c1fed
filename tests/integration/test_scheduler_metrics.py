"""Scheduled probes, the mesh, /metrics, the results stream, and a real Prometheus scraping the lab.

Extra nodes (m1..m6) get their own namespaces on the lab's bridges and run agents with a mesh of K=2
among the `meshtest` role, so the lab's own agents (and other tests) are not part of it. Prometheus is
Debian's real server, started here on loopback with a copy of deploy/prometheus and stopped after.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import TEST_DATA, TEST_LAB, TEST_MGMT, needs_root
from natsservers import ns_pids

pytestmark = [needs_root, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K = 2
MESH_ROLE = "meshtest"
METRICS_PORT = 9273


# --- helpers ---------------------------------------------------------------------------------------


def wait_for(check, timeout: float = 60, step: float = 0.5, what: str = "condition"):
    """Poll until check() returns something truthy (returned); fail with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"{what} not reached after {timeout} s (last: {last!r})")


def scrape(address: str) -> list[tuple[str, dict, float]]:
    """The samples of an agent's /metrics: (name, labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(samples, name: str, **labels) -> float | None:
    for n, ls, v in samples:
        if n == name and all(ls.get(k) == w for k, w in labels.items()):
            return v
    return None


def mesh_peers(address: str) -> set[str] | None:
    try:
        return {ls["peer"] for n, ls, v in scrape(address) if n == "steth_mesh_peer" and v == 1}
    except OSError:
        return None


class ExtraNodes:
    """Namespaces on the lab's bridges, each with an agent started from a config written here."""

    def __init__(self, lab):
        from steth.lab.fleet import fabric_bridge, mgmt_bridge

        self.lab = lab
        self.bridges = (mgmt_bridge(), fabric_bridge())
        self.nodes: dict[str, dict] = {}

    def add(self, name: str, k: int, schedules: str = "", start: bool = True) -> dict:
        ns, mgmt, data = f"{TEST_LAB}-{name}", ipaddress.ip_network(TEST_MGMT), ipaddress.ip_network(TEST_DATA)
        node = {"name": name, "ns": ns, "links": [], "mgmt": str(mgmt[100 + k]), "data": str(data[100 + k])}
        node["metrics"] = f"{node['mgmt']}:{METRICS_PORT}"
        self.nodes[name] = node
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        for host_end, ns_end, bridge, addr, plen in (
            (f"{TEST_LAB}xm{k}", "mgmt0", self.bridges[0], node["mgmt"], mgmt.prefixlen),
            (f"{TEST_LAB}xf{k}", "data0", self.bridges[1], node["data"], data.prefixlen),
        ):
            node["links"].append(host_end)
            subprocess.run(
                ["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", ns], check=True
            )
            subprocess.run(["ip", "link", "set", host_end, "master", bridge, "up"], check=True)
            subprocess.run(
                ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{addr}/{plen}", "dev", ns_end], check=True
            )
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", ns_end, "up"], check=True)
        node["config"] = self.lab.dir / f"mesh-{name}.toml"
        top, tables = self.lab.agent_security(name, ["compute", MESH_ROLE])  # its own identity on a secure lab
        node["config"].write_text(
            f'{top}node = "{name}"\nroles = ["compute", "{MESH_ROLE}"]\ndata_plane = "{TEST_DATA}"\nheartbeat_s = 1\n'
            f'presence_ttl_s = 3\n[nats]\nservers = ["{self.lab.nats_url}"]\n{tables}[metrics]\nlisten = "{node["metrics"]}"\n'
            f'[mesh]\nenabled = true\nk = {K}\nroles = ["{MESH_ROLE}"]\ninterval_s = 2\njitter_s = 0.5\ncount = 3\n'
            f"packet_interval_s = 0.1\n{schedules}"
        )
        if start:
            self.start(name)
        return node

    def start(self, name: str) -> None:
        node = self.nodes[name]
        argv = [
            "ip",
            "netns",
            "exec",
            node["ns"],
            sys.executable,
            "-m",
            "steth.agent.main",
            "run",
            "--config",
            str(node["config"]),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
        log = open(self.lab.dir / f"mesh-{name}.log", "ab")
        node["proc"] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.nodes[name].get("proc")
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def remove(self, name: str) -> None:
        self.stop(name, signal.SIGKILL)
        node = self.nodes.pop(name)
        subprocess.run(["ip", "netns", "del", node["ns"]], check=False)
        for link in node["links"]:
            subprocess.run(["ip", "link", "del", link], check=False, capture_output=True)

    def in_ns(self, name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.nodes[name]["ns"], *argv], capture_output=True, text=True, check=check
        )

    def running(self) -> list[str]:
        return sorted(n for n, node in self.nodes.items() if node.get("proc") and node["proc"].poll() is None)

    def expected_peers(self, name: str) -> set[str]:
        from steth.agent.rendezvous import pick

        return set(pick(name, self.running(), K))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """Debian's prometheus on 127.0.0.1:<free port>, from a copy of deploy/prometheus (1 s intervals)."""

    def __init__(self, directory: Path, sd_file: Path):
        self.dir = directory
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules_dir = directory / "steth"
        rules_dir.mkdir(parents=True, exist_ok=True)
        # The real rules, with `for:` at 0 so an alert fires as soon as its expression holds.
        rules = (DEPLOY / "prometheus/steth/steth.rules.yml").read_text()
        (rules_dir / "steth.rules.yml").write_text(re.sub(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", rules))
        cfg = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
        cfg["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
        cfg.pop("alerting", None)  # no Alertmanager here: /api/v1/alerts shows what fires
        cfg["scrape_configs"][0]["file_sd_configs"][0] = {"files": [str(sd_file)], "refresh_interval": "1s"}
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.dir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ready, timeout=60, what="prometheus ready")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, (self.dir / "prometheus.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- fixtures --------------------------------------------------------------------------------------

# m1: a ping schedule mixing node:NAME and an address, a path-MTU schedule and a bandwidth schedule;
# m3: a schedule that cannot run (no such interface) and one that always outlives its timeout.
M1_SCHEDULES = """
[[schedule]]
name = "gw"
probe = "ping"
targets = ["node:compute-1", "{compute2}"]
interval_s = 1.5
params = {{ count = 2, interval_s = 0.1 }}

[[schedule]]
name = "pmtu"
probe = "mtu"
targets = ["node:m2"]
interval_s = 5
params = {{ max_bytes = 1500 }}

[[schedule]]
name = "iperf"
probe = "iperf-client"
targets = ["node:m4"]
interval_s = 6
params = {{ duration_s = 1, bitrate_bps = 10000000 }}
"""
M3_SCHEDULES = """
[[schedule]]
name = "broken"
probe = "ping"
targets = ["{compute2}"]
interval_s = 2
params = { interface = "nosuch0", count = 1 }

[[schedule]]
name = "slow"
probe = "ping"
targets = ["{compute2}"]
interval_s = 1
timeout_s = 1
params = { count = 40, interval_s = 0.1 }
"""


@pytest.fixture(scope="module")
def mesh(lab):
    """m1..m4 in the meshtest role (K=2), an iperf3 server on m4; removed at the end."""
    nodes = ExtraNodes(lab)
    iperf = None
    try:
        compute2 = lab.node("compute-2")["data_address"]
        nodes.add("m1", 1, M1_SCHEDULES.format(compute2=compute2))
        nodes.add("m2", 2)
        nodes.add("m3", 3, M3_SCHEDULES.replace("{compute2}", compute2))
        nodes.add("m4", 4)
        iperf = subprocess.Popen(
            ["ip", "netns", "exec", nodes.nodes["m4"]["ns"], "iperf3", "-s", "-B", nodes.nodes["m4"]["data"]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        lab.wait_present({"m1", "m2", "m3", "m4"}, timeout=60)
        yield nodes
    finally:
        if iperf is not None:
            os.killpg(iperf.pid, signal.SIGKILL)
            iperf.wait()
        for name in list(nodes.nodes):
            nodes.remove(name)


@pytest.fixture(scope="module")
def prometheus(lab, mesh, tmp_path_factory):
    directory = tmp_path_factory.mktemp("prometheus")
    sd_file = directory / "steth" / "agents.json"
    done = lab.cli("agents", "--write-sd", str(sd_file))
    assert done.returncode == 0, done.stderr
    server = Prometheus(directory, sd_file)
    check = subprocess.run(["promtool", "check", "config", str(server.config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- tests -----------------------------------------------------------------------------------------


def test_lab_agents_serve_metrics(lab):
    """Every lab agent serves /metrics on its management address and says so in presence."""
    code, doc = lab.cli_json("agents")
    by_node = {a["node"]: a for a in doc["agents"]}
    for name in lab.names():
        address = lab.node(name)["metrics_address"]
        assert by_node[name]["metrics_address"] == address
        samples = scrape(address)
        assert value(samples, "steth_agent_info", node=name) == 1
        assert value(samples, "steth_nats_connected") == 1
        assert value(samples, "process_resident_memory_bytes") > 10e6


def test_requests_are_counted_by_probe_and_status(lab):
    address = lab.node("compute-1")["metrics_address"]
    before = value(scrape(address), "steth_agent_requests_total", probe="hello", status="ok") or 0
    code, _ = lab.cli_json("hello", "--node", "compute-1")
    assert code == 0
    after = wait_for(
        lambda: (value(scrape(address), "steth_agent_requests_total", probe="hello", status="ok") or 0) > before,
        timeout=10,
        what="request counted",
    )
    assert after


def test_mesh_keeps_k_peers_and_follows_joins_and_leaves(lab, mesh):
    def settled():
        got = {n: mesh_peers(mesh.nodes[n]["metrics"]) for n in mesh.running()}
        return got if all(got[n] == mesh.expected_peers(n) for n in got) else None

    first = wait_for(settled, timeout=60, what="mesh peers = rendezvous picks")
    assert all(len(p) == K for p in first.values())

    # A node joins: each chooser swaps at most one peer, to the newcomer.
    mesh.add("m5", 5)
    after_join = wait_for(settled, timeout=60, what="mesh after m5 joined")
    for n in first:
        assert len(after_join[n] - first[n]) <= 1 and after_join[n] - first[n] <= {"m5"}
    pingers = [n for n, peers in after_join.items() if "m5" in peers]

    def pinged(target):
        return [
            n for n in mesh.running() if value(scrape(mesh.nodes[n]["metrics"]), "steth_ping_sent_total", target=target)
        ]

    if pingers:  # series exist for m5 before it leaves...
        wait_for(lambda: set(pinged("m5")) >= set(pingers), timeout=30, what="ping series for m5")
    # ...and are gone once it leaves cleanly (SIGTERM: it deletes its presence entry).
    mesh.stop("m5")
    wait_for(lambda: settled() and not pinged("m5"), timeout=30, what="m5's series removed")

    # A node that dies without a word (SIGKILL) is dropped once its heartbeat is stale.
    mesh.add("m6", 6)
    joined = wait_for(settled, timeout=60, what="mesh after m6 joined")
    if any("m6" in p for p in joined.values()):
        wait_for(lambda: pinged("m6"), timeout=30, what="ping series for m6")
    mesh.stop("m6", signal.SIGKILL)
    wait_for(lambda: settled() and not pinged("m6"), timeout=30, what="m6's series removed")
    final = settled()
    assert all(len(p) == K for p in final.values()) and final == first
    for n in mesh.running():
        assert value(scrape(mesh.nodes[n]["metrics"]), "steth_presence_peers") >= len(mesh.running()) - 1
    mesh.remove("m5")
    mesh.remove("m6")


def test_scheduled_results_reach_the_stream_and_history(lab, mesh):
    m1 = mesh.nodes["m1"]["metrics"]
    wait_for(lambda: (value(scrape(m1), "steth_schedule_successes_total", schedule="gw") or 0) >= 3, what="3 gw runs")
    code, doc = lab.cli_json("history", "--node", "m1", "--schedule", "gw", "--since", "10m")
    assert code == 0, doc
    results = doc["results"]
    assert len(results) >= 3 and doc["summary"]["ok"] == len(results)
    compute1, compute2 = lab.node("compute-1")["data_address"], lab.node("compute-2")["data_address"]
    for res in results:
        assert res["node"] == "m1" and res["schedule"] == "gw" and res["probe"] == "ping" and res["status"] == "ok"
        assert res["peers"] == {compute1: "compute-1"}
        assert sorted(t["target"] for t in res["result"]["targets"]) == sorted([compute1, compute2])
        assert all(t["sent"] == 2 and t["received"] == 2 for t in res["result"]["targets"])
    # Every run is counted in the metrics, and published: the stream holds as many as ran (one may be in flight).
    runs = value(scrape(m1), "steth_schedule_runs_total", schedule="gw")
    assert runs - 2 <= len(results) <= runs
    sent = value(scrape(m1), "steth_ping_sent_total", target="compute-1", plane="default")
    assert sent >= 2 * len(results) - 4
    # The table shows each target by node name, with the probe's columns.
    done = lab.cli("history", "--node", "m1", "--schedule", "gw", "--probe", "ping", "--since", "10m")
    assert done.returncode == 0 and "compute-1" in done.stdout and compute2 in done.stdout and "LOSS" in done.stdout
    # watch: live, JSON lines, until --duration.
    done = lab.cli("watch", "--node", "m1", "--schedule", "gw", "--duration", "6", "-o", "json")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and len(lines) >= 2, done.stderr
    assert {r["schedule"] for r in lines} == {"gw"} and all(r["finished"] > time.time() - 60 for r in lines)
    # A role selector sees the mesh of several nodes; --probe filters by subject.
    done = lab.cli("watch", "--role", MESH_ROLE, "--schedule", "mesh", "--duration", "6", "-o", "json")
    assert len({json.loads(line)["node"] for line in done.stdout.splitlines()}) >= 2


def test_path_mtu_and_bandwidth_gauges(lab, mesh):
    m1 = mesh.nodes["m1"]["metrics"]
    mtu = wait_for(
        lambda: value(scrape(m1), "steth_path_mtu_bytes", schedule="pmtu", target="m2"), what="path MTU gauge"
    )
    assert mtu == 1500  # the veth MTU; the search is capped at max_bytes 1500
    rate = wait_for(
        lambda: value(
            scrape(m1), "steth_bandwidth_bytes_per_second", schedule="iperf", target="m4", direction="received"
        ),
        timeout=60,
        what="bandwidth gauge",
    )
    assert 5e6 < rate * 8 < 1.5e7  # limited to 10 Mbit/s; the gauge is in bytes per second


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool missing (apt-get install prometheus)")
def test_promtool_finds_nothing_to_lint_in_a_real_scrape(lab, mesh):
    """m1 runs the mesh and ping, MTU and bandwidth schedules: every metric family the agent has is in it."""
    m1 = mesh.nodes["m1"]["metrics"]
    wait_for(lambda: value(scrape(m1), "steth_bandwidth_bytes_per_second", schedule="iperf"), what="bandwidth gauge")
    with urllib.request.urlopen(f"http://{m1}/metrics", timeout=5) as resp:
        text = resp.read()
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert done.returncode == 0 and not done.stdout.strip(), (done.stdout + done.stderr).decode()


def test_could_not_run_counts_as_failure_and_timeouts_hold(lab, mesh):
    m3 = mesh.nodes["m3"]["metrics"]
    wait_for(lambda: (value(scrape(m3), "steth_schedule_runs_total", schedule="broken") or 0) >= 2, what="broken runs")
    wait_for(lambda: (value(scrape(m3), "steth_schedule_runs_total", schedule="slow") or 0) >= 4, what="slow runs")
    samples = scrape(m3)
    # The successes series exists from the start, at 0 (StethScheduleFailing needs it).
    assert value(samples, "steth_schedule_successes_total", schedule="broken") == 0
    assert value(samples, "steth_schedule_successes_total", schedule="slow") == 0
    code, doc = lab.cli_json("history", "--node", "m3", "--schedule", "broken", "--since", "10m")
    assert code == 3 and {r["status"] for r in doc["results"]} == {"aborted"}
    code, doc = lab.cli_json("history", "--node", "m3", "--schedule", "slow", "--since", "10m")
    runs = sorted(doc["results"], key=lambda r: r["started"])
    # The probe's own tool is killed at the deadline (aborted), or the runtime ends the run (timeout).
    assert code == 3 and len(runs) >= 4 and {r["status"] for r in runs} <= {"timeout", "aborted"}
    assert all("deadline" in r["message"] for r in runs), {r["message"] for r in runs}
    for r in runs:
        assert 0.9 <= r["duration_s"] <= 2.5, r  # 40 packets would take 4 s: the 1 s timeout cut them
    for before, after in zip(runs, runs[1:]):
        assert after["started"] >= before["finished"] - 0.01  # never overlapping itself
    # The killed pings are gone (40 packets at 0.1 s would outlive their run).
    time.sleep(1)
    # pgrep sees the whole host (other labs too): count only the pings inside m3's namespace.
    pings = subprocess.run(["pgrep", "-f", "ping -n -q -c 40"], capture_output=True, text=True).stdout.split()
    left = {int(p) for p in pings} & ns_pids(mesh.nodes["m3"]["ns"])
    assert len(left) <= 1, left  # at most the run in progress


def test_prometheus_scrapes_the_lab_and_an_alert_fires_on_injected_loss(lab, mesh, prometheus):
    expected = set(lab.names()) | set(mesh.running())

    def up_nodes():
        return {r["metric"]["node"] for r in prometheus.query('up{job="steth"} == 1')} >= expected

    wait_for(up_nodes, timeout=60, what="prometheus scraping every agent")
    nodes = {r["metric"]["node"] for r in prometheus.query("steth_agent_info")}
    assert nodes >= expected
    assert {r["metric"]["instance"] for r in prometheus.query("steth_agent_info")} >= expected  # relabelled
    series = prometheus.api("series", **{"match[]": "steth_ping_sent_total"})
    assert {s["node"] for s in series} >= set(mesh.running())
    # No target label that changes on upgrade: version and roles live on steth_agent_info only.
    assert not [s for s in series if "version" in s or "roles" in s]
    info = prometheus.query("steth_agent_info")
    assert all(r["metric"]["version"] and "exported_version" not in r["metric"] for r in info)

    # StethScheduleFailing's expression holds for m3's schedule that never succeeds, not for m1's good one.
    rules = yaml.safe_load((DEPLOY / "prometheus/steth/steth.rules.yml").read_text())
    failing = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "StethScheduleFailing")
    hits = wait_for(
        lambda: (
            {(r["metric"]["node"], r["metric"]["schedule"]) for r in prometheus.query(failing["expr"])}
            >= {("m3", "broken")}
            and prometheus.query(failing["expr"])
        ),
        timeout=60,
        what="StethScheduleFailing's expression for m3/broken",
    )
    assert ("m1", "gw") not in {(r["metric"]["node"], r["metric"]["schedule"]) for r in hits}

    # Every metric the dashboard and the rules use is scraped (or is a recording rule's output).
    used = set()
    for text in (
        (DEPLOY / "grafana/steth-dashboard.json").read_text(),
        (DEPLOY / "prometheus/steth/steth.rules.yml").read_text(),
    ):
        used |= set(re.findall(r"\b(steth[:_][a-z0-9_:]+|process_[a-z_]+)\b", text))
    assert {"steth:ping_loss:ratio_5m", "steth_ping_rtt_seconds_bucket", "steth_bandwidth_bytes_per_second"} <= used

    def missing():
        names = set(prometheus.api("label/__name__/values"))
        return used - names or None

    assert wait_for(lambda: not missing(), timeout=60, what="every metric used is scraped"), missing()

    # Inject 50 % loss of echo requests into a node some other mesh node pings.
    from steth.agent.rendezvous import pick

    victim = next(n for n in mesh.running() if any(n in pick(o, mesh.running(), K) for o in mesh.running() if o != n))
    rule = [
        "INPUT",
        "-p",
        "icmp",
        "--icmp-type",
        "echo-request",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.5",
        "-j",
        "DROP",
    ]
    mesh.in_ns(victim, "iptables", "-A", *rule)
    try:

        def firing():
            alerts = prometheus.api("alerts")["alerts"]
            return [
                a
                for a in alerts
                if a["labels"]["alertname"] == "StethPacketLoss"
                and a["state"] == "firing"
                and a["labels"]["target"] == victim
            ]

        alerts = wait_for(firing, timeout=90, step=1, what=f"StethPacketLoss for {victim}")
        assert float(alerts[0]["value"]) > 0.02
        # Healthy pairs do not alert.
        others = [
            a
            for a in prometheus.api("alerts")["alerts"]
            if a["labels"]["alertname"] == "StethPacketLoss" and a["labels"]["target"] in set(mesh.running()) - {victim}
        ]
        assert not others, others
    finally:
        mesh.in_ns(victim, "iptables", "-D", *rule, check=False)


def test_departed_agent_stays_a_target_for_the_down_alert(lab, mesh, tmp_path):
    """--write-sd keeps an agent that left presence, so Prometheus sees it down instead of forgetting it."""
    sd = tmp_path / "agents.json"
    assert lab.cli("agents", "--write-sd", str(sd)).returncode == 0
    assert "m2" in {g["labels"]["node"] for g in json.loads(sd.read_text())}
    mesh.stop("m2")
    lab.wait_present({"m2"}, absent=True, timeout=30)
    done = lab.cli("agents", "--write-sd", str(sd))
    assert done.returncode == 0 and "1 gone from presence, kept" in done.stderr
    assert "m2" in {g["labels"]["node"] for g in json.loads(sd.read_text())}
    assert lab.cli("agents", "--write-sd", str(sd), "--sd-keep", "0").returncode == 0
    assert "m2" not in {g["labels"]["node"] for g in json.loads(sd.read_text())}
    mesh.start("m2")
    lab.wait_present({"m2"}, timeout=60)


def test_watch_and_history_usage_errors(lab, mesh):
    for args in (
        ("history", "--since", "yesterday"),
        ("history", "--probe", "nosuch"),
        ("watch", "--probe", "nosuch"),
        ("history", "--since", "400d"),
        ("watch", "--node", "-x", "--duration", "1"),
        ("history", "--stream", "a.>"),
    ):
        done = lab.cli(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    # Nothing published in the window: exit 3 with an empty list, not an error.
    code, doc = lab.cli_json("history", "--node", "nobody-here", "--since", "1m")
    assert code == 3 and doc["results"] == [] and doc["summary"]["results"] == 0
