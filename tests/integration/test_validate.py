"""steth validate PLAN against a real lab with an Open vSwitch fabric: a healthy run, then one run with five
injected problems, each of which must be named at its requirement and its nodes; the HTML report of that run
rendered in headless chromium.

One lab for the module (the OVS lab's name and CIDRs: test_probes_ovs_vlan.py's lab is down by then), trunks
0,100-299 so the plan's 200 VLANs pass. The endpoints are TCP listeners of this test on the management bridge's
address, plus the lab's nats-server.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser import NO_CHROMIUM, chromium, png_stats, render
from conftest import Lab, lab_named
from test_probes_ovs_vlan import OVS_DATA, OVS_LAB, OVS_MGMT, require_ovs_lab

from steth.controller.validate_plan import load_plan
from steth.controller.validate_requirements import requirements

pytestmark = pytest.mark.lab

TRUNKS = [0, *range(100, 300)]
UNTRUNKED = 150  # taken off network-1's trunk port
MTU_NODE, RATE_NODE, CLOSED_NODE, VLAN_NODE, ABSENT_NODE = (
    "compute-2",
    "compute-1",
    "compute-2",
    "network-1",
    "compute-3",
)
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "site.yaml"
MIN_BPS = "200M"  # the lab's veths carry several Gbit/s; the rate limit is 50 Mbit/s


def plan_text(mgmt_host: str, nats_port: int, ports: dict[str, int], extra_node: bool = False) -> str:
    absent = f"  - name: {ABSENT_NODE}\n    roles: [compute]\n" if extra_node else ""
    return f"""\
version: 1
site: lab
nodes:
  - name: compute-1
    roles: [compute]
  - name: compute-2
    roles: [compute]
{absent}  - name: network-1
    roles: [network]
planes:
  - name: mgmt
    interface: mgmt0
  - name: data
    cidr: {OVS_DATA}
    mtu: 1500
    mtu_pairs: all
    bandwidth:
      min_bps: {MIN_BPS}
      pairs: ring
      duration_s: 2
physnets:
  - name: physnet1
    bridge: br-provider
    uplink: trunk0
    vlans: "100-299"
tunnel:
  plane: data
  overlay: vxlan
  tenant_mtu: 1450
endpoints:
  - name: keystone
    address: {mgmt_host}:{ports["keystone"]}
    from: [compute, network]
  - name: rabbitmq
    address: {mgmt_host}:{ports["rabbitmq"]}
    from: [compute, network]
  - name: mariadb
    address: {mgmt_host}:{ports["mariadb"]}
    from: [network]
  - name: nats
    address: {mgmt_host}:{nats_port}
    from: [compute, network]
"""


@contextlib.contextmanager
def listeners(host: str, names: list[str]):
    """A TCP listener per name on host (any free port), accepting and closing; name -> port."""
    socks, stop = [], threading.Event()
    for _ in names:
        s = socket.socket()
        s.bind((host, 0))
        s.listen(64)
        s.settimeout(0.2)
        socks.append(s)

    def serve(s: socket.socket) -> None:
        while not stop.is_set():
            try:
                conn, _ = s.accept()
                conn.close()
            except OSError:
                continue

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in socks]
    for t in threads:
        t.start()
    try:
        yield {name: s.getsockname()[1] for name, s in zip(names, socks)}
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=2)
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def vlab(tmp_path_factory):
    require_ovs_lab()
    with lab_named(OVS_LAB):
        from steth.lab import fleet

        fleet.down()
        state = fleet.up(compute=2, network=1, mgmt_cidr=OVS_MGMT, data_cidr=OVS_DATA, ovs=True, trunks=TRUNKS)
        the_lab = Lab(state, name=OVS_LAB)
        mgmt_host = str(ipaddress.ip_network(OVS_MGMT)[1])
        try:
            with listeners(mgmt_host, ["keystone", "rabbitmq", "mariadb"]) as ports:
                folder = tmp_path_factory.mktemp("validate")
                nats_port = urlparse(state["nats_url"]).port
                (folder / "site.yaml").write_text(plan_text(mgmt_host, nats_port, ports))
                (folder / "faults.yaml").write_text(plan_text(mgmt_host, nats_port, ports, extra_node=True))
                the_lab.folder, the_lab.mgmt_host, the_lab.ports = folder, mgmt_host, ports
                yield the_lab
        finally:
            with lab_named(OVS_LAB):
                fleet.down()


def validate(lab: Lab, plan: str, name: str) -> tuple[int, dict, subprocess.CompletedProcess]:
    html, junit = lab.folder / f"{name}.html", lab.folder / f"{name}.xml"
    done = lab.cli("validate", str(lab.folder / plan), "--report", str(html), "--junit", str(junit), "-o", "json")
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {done.returncode}): {done.stdout!r} {done.stderr!r}") from None
    return done.returncode, doc, done


def test_a_healthy_site_passes_every_requirement(vlab):
    code, doc, done = validate(vlab, "site.yaml", "healthy")
    statuses = {r["id"]: r["status"] for r in doc["requirements"]}
    assert code == 0, (statuses, doc["findings"])
    planned = requirements(load_plan(vlab.folder / "site.yaml"))
    assert list(statuses) == [r.id for r in planned] and len(statuses) == 10
    assert set(statuses.values()) == {"pass"} and doc["findings"] == []
    by_id = {r["id"]: r for r in doc["requirements"]}
    assert by_id["vlan:physnet1"]["value"] == 200 and by_id["mtu:data"]["measured"] == ">= 1500 bytes on 6 pairs"
    assert by_id["bandwidth:data"]["value"] > 200e6
    # progress on stderr: every requirement started and finished, in the schedule's order of groups
    lines = done.stderr.splitlines()
    assert sum(": PASS" in line for line in lines) == 10
    assert max(i for i, line in enumerate(lines) if "vlan:physnet1: batch 1/1" in line) < min(
        i for i, line in enumerate(lines) if "bandwidth:data: pair 1/3" in line
    )
    assert list(doc["phases"]) == [
        "presence",
        "mesh:mgmt+mesh:data+mtu:data+endpoint:keystone+endpoint:rabbitmq+endpoint:mariadb+endpoint:nats",
        "vlan:physnet1",
        "bandwidth:data",
    ]
    suite = ET.parse(vlab.folder / "healthy.xml").getroot().find("testsuite")
    assert suite.get("tests") == "10" and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert "No findings: every requirement passed." in (vlab.folder / "healthy.html").read_text()
    # the table: one line per requirement and the footer
    table = vlab.cli("validate", str(vlab.folder / "site.yaml"), "--progress", "none")
    assert table.returncode == 0 and table.stderr == "", table.stderr
    assert "10 requirements: 10 pass, 0 fail, 0 incomplete" in table.stdout
    assert len(table.stdout.splitlines()) == 12


@pytest.fixture(scope="module")
def faulty(vlab):
    """One run with five problems injected; they touch different requirements and do not disturb each other."""
    with lab_named(OVS_LAB):
        from steth.lab import ovs
        from steth.lab.state import namespace_for

    record = vlab.state["ovs"]
    port = record["ports"][namespace_for(VLAN_NODE)]
    keep = ",".join(str(v) for v in TRUNKS if v != UNTRUNKED)
    keystone = str(vlab.ports["keystone"])
    block = ["OUTPUT", "-p", "tcp", "-d", vlab.mgmt_host, "--dport", keystone, "-j", "REJECT", "--reject-with"]
    block.append("tcp-reset")
    try:
        ovs.vsctl(record["instance"], "set", "port", port, f"trunks={keep}")
        vlab.in_ns(MTU_NODE, "ip", "link", "set", "data0", "mtu", "1400")
        tbf = ["tbf", "rate", "50mbit", "burst", "64kb", "latency", "50ms"]
        vlab.in_ns(RATE_NODE, "tc", "qdisc", "add", "dev", "data0", "root", *tbf)
        vlab.in_ns(CLOSED_NODE, "iptables", "-A", *block)
        yield validate(vlab, "faults.yaml", "faults")
    finally:
        ovs.vsctl(record["instance"], "set", "port", port, "trunks=" + ",".join(map(str, TRUNKS)), check=False)
        vlab.in_ns(MTU_NODE, "ip", "link", "set", "data0", "mtu", "1500", check=False)
        vlab.in_ns(RATE_NODE, "tc", "qdisc", "del", "dev", "data0", "root", check=False)
        vlab.in_ns(CLOSED_NODE, "iptables", "-D", *block, check=False)


def test_injected_faults_are_named_at_their_requirement_and_nodes(faulty):
    code, doc, _ = faulty
    assert code == 1
    status = {r["id"]: r["status"] for r in doc["requirements"]}
    fails = {f["requirement"]: f for f in doc["findings"] if f["status"] == "fail"}
    assert set(fails) == {"presence", "mtu:data", "endpoint:keystone", "vlan:physnet1", "bandwidth:data"}, fails
    # a node of the plan without an agent
    assert fails["presence"]["nodes"] == [ABSENT_NODE] and "missing: compute-3" in fails["presence"]["message"]
    # an MTU lowered on one node's data interface: every pair from or to it, and only those
    assert fails["mtu:data"]["nodes"] == [MTU_NODE] and "path MTU below 1500 on 4 pairs" in fails["mtu:data"]["message"]
    # a control-plane port closed on one node
    assert fails["endpoint:keystone"]["nodes"] == [CLOSED_NODE] and "refused" in fails["endpoint:keystone"]["message"]
    # a VLAN of the range not trunked to one node
    assert fails["vlan:physnet1"]["nodes"] == [VLAN_NODE]
    assert fails["vlan:physnet1"]["message"].startswith(f"VLAN {UNTRUNKED} lost on 4 pairs")
    # a rate limit on one node: its pair of the ring (it sends to the next node)
    assert fails["bandwidth:data"]["nodes"] == [RATE_NODE, "compute-2"]
    assert f"{RATE_NODE} -> compute-2" in fails["bandwidth:data"]["message"]
    # what the absent node belongs to is incomplete for it, not failed; the rest passed
    assert status["mesh:mgmt"] == status["mesh:data"] == status["endpoint:nats"] == "incomplete"
    assert status["endpoint:mariadb"] == "pass"
    others = [f for f in doc["findings"] if f["status"] == "incomplete"]
    assert others and all(f["nodes"] == [ABSENT_NODE] for f in others)
    suite = ET.parse(doc["plan"].replace("faults.yaml", "faults.xml")).getroot().find("testsuite")
    failed = {c.get("name").split(": ")[0] for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed == set(fails) and suite.get("failures") == "5" and suite.get("errors") == "4"


@pytest.mark.skipif(chromium() is None, reason=NO_CHROMIUM)
def test_the_html_report_renders_the_findings_in_chromium(faulty, vlab, tmp_path):
    _, doc, _ = faulty
    page = vlab.folder / "faults.html"
    shot = tmp_path / "faults.png"
    dom, done = render(page, tmp_path, screenshot=shot)
    assert f"Findings ({len(doc['findings'])})" in dom
    for f in doc["findings"]:
        if f["status"] == "fail":
            assert f["message"].replace(">", "&gt;") in dom, f["message"]
    assert 'class="matrix compact"' in dom  # pairs x 200 VLANs
    assert "physnet physnet1" in dom and "plane data" in dom and "plane mgmt" in dom
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, height, distinct_rows = png_stats(shot.read_bytes())
    assert (width, height) == (1280, 1600) and distinct_rows > 50


# --- the example plan, as it is, against the shared lab -----------------------------------------------------


def test_the_example_plan_passes_against_the_lab_and_writes_three_reports(lab, tmp_path):
    """`steth validate docs/examples/site.yaml` exactly as docs/validate.md shows it: the lab (`steth lab up`)
    holds what the plan names (mgmt0, data0, VLANs through the data fabric, controller:5000/5672/3306/4222)."""
    html, junit = tmp_path / "site.html", tmp_path / "site.xml"
    started = time.monotonic()
    done = lab.cli("validate", str(EXAMPLE), "--report", str(html), "--junit", str(junit), "-o", "json")
    took = time.monotonic() - started
    print(f"\n[steth validate docs/examples/site.yaml] exit {done.returncode} in {took:.2f} s")
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {done.returncode}): {done.stdout!r} {done.stderr!r}") from None
    statuses = {r["id"]: r["status"] for r in doc["requirements"]}
    assert done.returncode == 0, (statuses, doc["findings"])
    assert list(statuses) == [r.id for r in requirements(load_plan(EXAMPLE))] and set(statuses.values()) == {"pass"}
    by_id = {r["id"]: r for r in doc["requirements"]}
    assert by_id["vlan:physnet1"]["value"] == 200 and by_id["endpoint:nats"]["value"] == 3
    assert doc["summary"] == {"requirements": 10, "pass": 10, "fail": 0, "incomplete": 0, "exit_code": 0}
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "10" and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert "No findings: every requirement passed." in html.read_text()
    assert "10/10" in done.stderr.split("\n")[-2]  # progress on stderr up to the last requirement
