"""dhcp-watch's child against a real dnsmasq, without a lab: a "node" namespace and a "qdhcp" namespace joined
by a veth, the server end of it only inside qdhcp (as Neutron's DHCP port is with ovs_use_veth = False). The
child runs in the node namespace, injects a DISCOVER, and must find the server end inside qdhcp, see the
exchange at both ends, and stop early; with no server it listens out the window and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, TEST_LAB

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root (network namespaces)")

NODE, QDHCP = f"{TEST_LAB}-dwnode", f"{TEST_LAB}-dwqdhcp"
MAC = "fa:16:3e:12:34:56"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pair():
    for ns in (NODE, QDHCP):
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "netns", "add", ns)
    folder = Path(tempfile.mkdtemp(prefix="steth-dhcp-watch-"))
    dnsmasq = None
    try:
        sh("ip", "link", "add", "dw-a", "netns", NODE, "type", "veth", "peer", "name", "dw-q", "netns", QDHCP)
        sh("ip", "-n", NODE, "link", "set", "dw-a", "up")
        sh("ip", "-n", QDHCP, "link", "set", "dw-q", "up")
        sh("ip", "-n", QDHCP, "addr", "add", "10.77.0.2/24", "dev", "dw-q")
        sh("ip", "-n", NODE, "link", "add", "dw-down", "type", "veth", "peer", "name", "dw-down-peer")
        sh("ip", "-n", NODE, "link", "set", "dw-down", "netns", QDHCP)  # stays down, inside qdhcp
        dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", QDHCP, "dnsmasq", "--keep-in-foreground", "--no-hosts", "--no-resolv"]
            + ["--port=0", "--bind-interfaces", "--interface=dw-q", "--except-interface=lo", "--conf-file=/dev/null"]
            + [f"--dhcp-leasefile={folder / 'leases'}", f"--pid-file={folder / 'pid'}", "--user=root", "--group=root"]
            + ["--dhcp-range=10.77.0.10,10.77.0.20,1h", "--no-ping"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: ":67 " in sh("ip", "netns", "exec", QDHCP, "ss", "-lnu").stdout, "dnsmasq on UDP 67")
        yield dnsmasq
    finally:
        if dnsmasq is not None and dnsmasq.poll() is None:
            dnsmasq.kill()
            dnsmasq.wait()
        for ns in (NODE, QDHCP):
            sh("ip", "netns", "del", ns, check=False)


def child(listen: list[str], inject: bool = True, listen_s: float = 4.0) -> dict:
    job = {
        "mac": MAC,
        "listen": [[i, ""] for i in listen],
        "netns": QDHCP,
        "listen_s": listen_s,
        "finish_early": True,
        "offer_only": [],
        "inject": "send" if inject else "none",
        "inject_port": "dw-a",
        "bridge": "br-int",
        "in_port": None,
        "inject_delay_s": 0.1,
        "inject_count": 3,
        "xid": 0x5E7E,
        "match_xid": 0x5E7E,
    }
    argv = ["ip", "netns", "exec", NODE, sys.executable, "-m", "steth.agent.dhcp_sniff", json.dumps(job)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={**os.environ})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def by_name(out: dict) -> dict[str, dict]:
    return {h["interface"]: h for h in out["hops"]}


def test_the_server_end_is_watched_inside_qdhcp_and_the_watch_ends_with_the_exchange(pair):
    out = child(["dw-a", "dw-q"])
    hops = by_name(out)
    assert hops["dw-a"]["netns"] == "" and hops["dw-q"]["netns"] == QDHCP
    assert all(h["discover"] >= 1 and h["offer"] >= 1 and not h["error"] for h in hops.values()), hops
    assert out["complete"] and out["finished_at"] is not None
    assert 1 <= out["injected"] <= 3
    assert {o["server_ip"] for o in out["offers"]} == {"10.77.0.2"}
    assert all(o["offered_ip"].startswith("10.77.0.") for o in out["offers"])


def test_without_an_answer_the_window_bounds_the_watch(pair):
    pair.send_signal(19)  # SIGSTOP: dnsmasq holds its socket but answers nothing
    try:
        out = child(["dw-a", "dw-q"], listen_s=1.5)
    finally:
        pair.send_signal(18)  # SIGCONT
    hops = by_name(out)
    assert not out["complete"] and out["finished_at"] is None
    assert out["injected"] == 3 and hops["dw-q"]["discover"] == 3 and hops["dw-q"]["offer"] == 0


def test_an_interface_nowhere_or_down_is_said_so(pair):
    out = child(["dw-a", "dw-nowhere", "dw-down"], inject=False, listen_s=0.5)
    hops = by_name(out)
    assert not hops["dw-nowhere"]["exists"] and hops["dw-nowhere"]["error"] == f"no such interface (here or in {QDHCP})"
    assert hops["dw-down"]["exists"] and hops["dw-down"]["error"] == "interface is down"
    assert hops["dw-down"]["netns"] == QDHCP
    assert not out["complete"]  # nothing was sent: never complete
