"""A real agent under deploy/systemd/steth-agent.service's own restrictions, and every probe family against it.

The restrictions are read from the shipped unit (unit_restrictions.py applies what can be applied without
systemd: capability bounding set, ambient capabilities, NoNewPrivileges, PrivateTmp, ProtectSystem=strict with
ReadWritePaths, ProtectHome, PrivateDevices, ProtectProc, ProtectKernelTunables, PrivateMounts, ProtectHostname,
UMask, the service environment). The agent runs in compute-1's namespace as node `restricted`; each probe must
answer ok or failed with real findings, never `aborted` for want of a privilege. docs/deployment.md lists what
needs systemd itself (the seccomp filters) and how that is checked instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import TEST_LAB, needs_root
from natsservers import comm

pytestmark = [needs_root, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy/systemd/steth-agent.service"
ENV_FILE = REPO / "deploy/systemd/steth-agent.env"
HELPER = Path(__file__).with_name("unit_restrictions.py")
NODE = "restricted"
DHCP_NET = "198.51.100"  # the side namespace's own network: a dnsmasq serves it, nothing leaves it
MAC = "fa:16:3e:00:00:42"
LINK = "rst0"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def env_file_lines() -> dict[str, str]:
    """The shipped EnvironmentFile's active lines (all commented out today)."""
    out = {}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip("'\"")
    return out


@pytest.fixture(scope="module")
def side():
    """A qdhcp- namespace whose dnsmasq drops to `nobody` (as Neutron's does): neutron-ns must still find it."""
    network = str(uuid.uuid4())
    ns = f"qdhcp-{network}"
    top = Path(f"/run/steth-lab-{TEST_LAB}-restricted")
    conf = top / network  # as Neutron's <dhcp_confs>/<network id>/: the command line names the network
    conf.mkdir(parents=True, exist_ok=True)
    hosts = conf / "host"
    hosts.write_text(f"{MAC},{DHCP_NET}.42\n")
    proc = None
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", "tapq0", "type", "veth", "peer", "name", "tapq1")
        sh("ip", "-n", ns, "link", "set", "tapq1", "up")
        sh("ip", "-n", ns, "addr", "add", f"{DHCP_NET}.1/24", "dev", "tapq0")
        sh("ip", "-n", ns, "link", "set", "tapq0", "up")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--user=nobody", "--port=0",
             "--no-resolv", "--no-hosts", "--bind-interfaces", "--interface=tapq0", f"--pid-file={conf / 'pid'}",
             f"--dhcp-range={DHCP_NET}.0,static", f"--dhcp-hostsfile={hosts}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not any(p for p in sh("ip", "netns", "pids", ns).stdout.split()):
            assert time.monotonic() < deadline and proc.poll() is None, "dnsmasq did not start"
            time.sleep(0.05)
        yield ns
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def ovsdb(lab):
    """An OVSDB of the test's own in compute-1's namespace: a bridge with a dead port."""
    from steth.lab import ovs

    inst = ovs.start(lab.dir / "ovs-restricted", lab.node("compute-1")["namespace"])
    try:
        ovs.add_bridge(inst, "br-int")
        ovs.vsctl(inst, "add-port", "br-int", "tapdead", "--", "set", "interface", "tapdead", "type=internal",
                  "--", "set", "port", "tapdead", "tag=4095")  # fmt: skip
        yield ovs.db_url(inst["dir"])
    finally:
        ovs.stop(inst)


@pytest.fixture(scope="module")
def restricted(lab, ovsdb, side):
    """The agent, started the way unit_restrictions.py applies the unit; ready when it says READY=1."""
    config = lab.dir / "restricted.toml"
    # On a secure lab: an identity of its own (TLS with the lab's CA, its nkey seed, the lab's signing key
    # trusted, signed requests required), files it reads through the unit's read-only view of /run.
    top, tables = lab.agent_security(NODE, ["restricted"])
    config.write_text(
        f'{top}node = "{NODE}"\nroles = ["restricted"]\nheartbeat_s = 1\npresence_ttl_s = 3\n'
        f'[nats]\nservers = ["{lab.nats_url}"]\n{tables}'
        f'[policy]\nallow_mutating = true\nallowed_ovsdb = ["{ovsdb}"]\n'
    )
    notify = lab.dir / "restricted.notify"
    notify.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(30)
    setenv = {**env_file_lines(), "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "30000000"}
    argv = [
        *("ip", "netns", "exec", lab.node("compute-1")["namespace"]),
        *("unshare", "--mount", "--uts", "--propagation", "slave", "--"),
        sys.executable,
        str(HELPER),
        str(UNIT),
        *(a for k, v in setenv.items() for a in ("--setenv", f"{k}={v}")),
        "--",
    ]
    log_path = lab.dir / "restricted.log"
    log = open(log_path, "wb")
    # What the agent sees: its capabilities, read-only paths, /dev, /tmp (checked once, by the same wrapper).
    probe = subprocess.run([*argv, sys.executable, "-c", INSPECT], capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0 and not probe.stderr, probe.stderr
    seen = json.loads(probe.stdout)
    agent = subprocess.Popen(
        [*argv, sys.executable, "-m", "steth.agent.main", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        messages: list[bytes] = []
        while not any(m.startswith(b"READY=1") for m in messages):
            try:
                messages.append(sock.recv(4096))
            except TimeoutError:
                raise AssertionError(f"no READY=1: {messages} {log_path.read_text()[-2000:]}") from None
        yield {"seen": seen, "log": log_path, "agent": agent}
    finally:
        sock.close()
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
        notify.unlink(missing_ok=True)


INSPECT = r"""
import json, os
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
paths = ("/", "/etc", "/usr", "/var/lib", "/run", "/run/netns", "/tmp", "/var/tmp", "/proc/sys/net", "/sys/class")
print(json.dumps({
    "caps": {k: int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "no_new_privs": status["NoNewPrivs"].strip() == "1",
    "writable": {p: os.access(p, os.W_OK) for p in paths},
    "dev": sorted(os.listdir("/dev")),
    "tmp": os.listdir("/tmp"),
    "umask": os.umask(0),
    "env": sorted(os.environ),
}))
"""

CAP_NUMBERS = {"CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_PTRACE": 19}
CAP_NUMBERS["CAP_SYS_ADMIN"] = 21


def unit_caps() -> int:
    text = UNIT.read_text()
    names = re.search(r"(?m)^CapabilityBoundingSet=(.*)$", text).group(1).split()
    return sum(1 << CAP_NUMBERS[n] for n in names)


def test_the_agent_runs_with_exactly_the_units_restrictions(restricted):
    seen = restricted["seen"]
    assert seen["caps"]["CapBnd"] == seen["caps"]["CapEff"] == seen["caps"]["CapPrm"] == unit_caps()
    assert seen["caps"]["CapAmb"] == seen["caps"]["CapInh"] == 0 and seen["no_new_privs"]
    writable = seen["writable"]
    assert {p for p, ok in writable.items() if ok} == {"/run/netns", "/tmp", "/var/tmp"}, writable
    assert "sda" not in seen["dev"] and set(seen["dev"]) >= {"null", "zero", "urandom", "pts"}
    assert seen["tmp"] == [] and seen["umask"] == 0o077
    assert set(seen["env"]) <= {"PATH", "NOTIFY_SOCKET", "WATCHDOG_USEC", "LC_CTYPE"}  # Python adds LC_CTYPE


def cli(lab, *args: str, timeout: float = 60) -> tuple[int, dict]:
    return lab.cli_json(*args, timeout=timeout)


def one(doc: dict) -> dict:
    (node,) = [n for n in doc["nodes"] if n["node"] == NODE]
    return node


def test_every_probe_family_works_under_the_restrictions(lab, restricted, side, ovsdb):
    c1, c2 = lab.node("compute-1"), lab.node("compute-2")
    c2_ip = c2["data_address"]

    code, doc = cli(lab, "hello", "--node", NODE)
    assert code == 0 and one(doc)["status"] == "ok", doc

    code, doc = cli(lab, "interface", "--node", NODE)
    assert code == 0 and "data0" in {i["name"] for i in one(doc)["result"]["interfaces"]}, doc

    code, doc = cli(lab, "netns", "--node", NODE, "--prefix", side)
    rows = one(doc)["result"]["namespaces"]
    assert code == 0 and rows[0]["name"] == side and "tapq0" in rows[0]["interface_names"], json.dumps(rows[0])

    code, doc = cli(lab, "ping", "node:compute-2", "--node", NODE, "--count", "3", "--interval", "0.05")
    assert code == 0 and one(doc)["result"]["targets"][0]["received"] == 3, doc
    code, doc = cli(lab, "ping", f"{DHCP_NET}.1", "--netns", side, "--node", NODE, "--count", "1")  # nsenter --net
    assert code == 0, doc

    code, doc = cli(lab, "address-check", c2_ip, "--node", NODE)
    assert code == 0, doc

    with listener(c2["namespace"], 18090):
        code, doc = cli(lab, "tcp-check", f"{c2_ip}:18090", f"{c2_ip}:18091", "--node", NODE)
    rows = {r["target"]: r for r in one(doc)["result"]["targets"]}
    assert code == 1 and one(doc)["status"] == "failed", doc  # a real finding: 18091 refused
    assert rows[f"{c2_ip}:18090"]["connected"] and rows[f"{c2_ip}:18091"]["error"] == "refused"
    code, doc = cli(lab, "tcp-check", f"{DHCP_NET}.1:22", "--netns", side, "--node", NODE)
    assert one(doc)["result"]["targets"][0]["error"] == "refused", doc  # the helper ran inside the namespace

    mac = lab.in_ns("compute-2", "cat", "/sys/class/net/data0/address").stdout.strip()
    code, doc = cli(lab, "arping", c2_ip, "--interface", "data0", "--count", "1", "--node", NODE)
    assert code == 0 and one(doc)["result"]["macs"] == [mac], doc

    code, doc = cli(lab, "mtu", "--to", c2_ip, "--node", NODE, "--expect", "1500", "--wait", "0.3")
    assert code == 0 and one(doc)["result"]["path_mtu_bytes"] == 1500, doc

    for packet, kind in (("icmp-echo", "echo-reply"), ("arp-request", "arp-reply")):
        code, doc = cli(lab, "send", "--interface", "data0", "--packet", packet, "--dst", c2_ip, "--node", NODE)
        assert code == 0 and one(doc)["result"]["replies"][0]["kind"] == kind, doc

    code, doc = cli(lab, "bandwidth", "--server", NODE, "--client", "compute-2", "--duration", "1")
    assert code == 0 and doc["pairs"][0]["result"]["received_bps"] > 1e6, doc
    code, doc = cli(lab, "bandwidth", "--server", "compute-2", "--client", NODE, "--duration", "1")
    assert code == 0 and doc["pairs"][0]["result"]["received_bps"] > 1e6, doc

    code, doc = cli(lab, "ovs", "ports", "--db", ovsdb, "--node", NODE)
    assert code == 1 and one(doc)["status"] == "failed", doc  # ovs-vsctl read the database: a dead port
    ports = {p["name"]: p for p in one(doc)["result"]["ports"]}
    assert ports["tapdead"]["findings"] == ["dead port (tag 4095)"], ports

    code, doc = cli(lab, "link", "setup", "--node", NODE, "--name", LINK, "--cidr", "192.0.2.10/24")
    assert code == 0, doc
    assert lab.in_ns("compute-1", "ip", "link", "show", LINK, check=False).returncode == 0
    code, doc = cli(lab, "link", "teardown", "--node", NODE, LINK)
    assert code == 0 and lab.in_ns("compute-1", "ip", "link", "show", LINK, check=False).returncode != 0, doc

    # neutron-ns: dnsmasq runs as nobody; found by its command line, as Neutron does, without CAP_SYS_PTRACE.
    reply = neutron_ns(lab, side)
    assert reply["status"] == "ok", reply
    checks = {c["check"]: c for c in reply["result"]["checks"]}
    assert checks["dnsmasq"]["ok"] and checks["host-entry"]["ok"], reply

    # capture last: tcpdump -Z root (CAP_SETUID/SETGID), its pcap in the private /tmp, fetched over NATS.
    pcap = lab.dir / f"capture-{NODE}.pcap"
    pcap.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "steth.controller.cli", "capture", "--node", NODE, "--interface", "data0",
         "--filter", f"icmp and src host {c2_ip}", "--duration", "3", "--write-to", str(lab.dir / "capture-{node}.pcap"), "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=lab.env(),
    )  # fmt: skip
    wait_for_tcpdump(c1["namespace"])
    lab.in_ns("compute-2", "ping", "-c", "5", "-i", "0.05", "-q", c1["data_address"])
    out, err = proc.communicate(timeout=30)
    doc = json.loads(out)
    assert proc.returncode == 0 and one(doc)["result"]["packets"] == 5, (out, err)
    assert pcap.stat().st_size > 24 * 5  # the file came over NATS from the agent's private /tmp

    assert b"Traceback" not in restricted["log"].read_bytes()


def neutron_ns(lab, ns: str) -> dict:
    from steth.controller.session import Selection, Session

    args = {"netns": ns, "dnsmasq": True, "host_entries": [{"mac": MAC, "ip": f"{DHCP_NET}.42"}]}

    async def go():
        async with Session(lab.nats_options(), signer=lab.signer()) as s:
            return await s.run("neutron-ns", Selection(nodes=(NODE,)), 10, per_node_args={NODE: args})

    (node,) = asyncio.run(go()).nodes
    return node.as_dict()


def wait_for_tcpdump(ns: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in sh("ip", "netns", "pids", ns).stdout.split():
            if comm(int(pid)) == "tcpdump":  # "" for a process that was listed, then gone before we looked
                time.sleep(0.3)  # running; let it open its socket
                return
        time.sleep(0.05)
    raise AssertionError(f"tcpdump never started in {ns}")


class listener:
    """A TCP listener inside a namespace for the duration of a block."""

    def __init__(self, ns: str, port: int):
        self.argv = ["ip", "netns", "exec", ns, sys.executable, "-c", LISTEN.format(port=port)]

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(timeout=5)


LISTEN = (
    "import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', {port})); s.listen(16); print('ready', flush=True)\n"
    "while True:\n    c, _ = s.accept(); c.close()\n"
)


# --- each capability the unit keeps is needed: without it, the tool behind a probe fails -------------------

NEEDS = {
    # capability: (argv in compute-1's namespace, text that shows it worked, text that shows it did not)
    "CAP_NET_ADMIN": (["ip", "link", "add", "rstcap0", "type", "veth"], None, "Operation not permitted"),
    "CAP_NET_RAW": (["ping", "-c", "1", "-W", "1", "127.0.0.1"], "1 received", "Operation not permitted"),
    "CAP_SYS_ADMIN": (["nsenter", "--net=/run/netns/{side}", "true"], None, "Operation not permitted"),
    "CAP_SETUID CAP_SETGID": (
        ["timeout", "1", "tcpdump", "-i", "lo", "-Z", "root", "-c", "1", "-w", "/tmp/x.pcap"],
        "listening on lo",
        "Couldn't change to 'root'",
    ),
}


def under_unit(lab, unit: Path, argv: list[str]) -> str:
    """argv in compute-1's namespace under unit's restrictions: what it printed (stdout and stderr)."""
    ns = lab.node("compute-1")["namespace"]
    wrap = ["ip", "netns", "exec", ns, "unshare", "--mount", "--uts", "--propagation", "slave", "--"]
    done = subprocess.run([*wrap, sys.executable, str(HELPER), str(unit), "--", *argv], capture_output=True)
    sh("ip", "-n", ns, "link", "del", "rstcap0", check=False)
    return (done.stdout + done.stderr).decode(errors="replace").strip()


@pytest.mark.parametrize("dropped", sorted(NEEDS))
def test_each_capability_of_the_unit_is_needed(lab, side, dropped, tmp_path):
    """The capability bounding set is minimal: the same wrapper with one capability less breaks a probe's tool
    (ip link for links, ping/arping/tcpdump/scapy's sockets, nsenter --net, tcpdump -Z root)."""
    argv, works, fails = NEEDS[dropped]
    argv = [a.format(side=side) for a in argv]
    text = UNIT.read_text()
    line = re.search(r"(?m)^CapabilityBoundingSet=(.*)$", text)
    kept = [c for c in line.group(1).split() if c not in dropped.split()]
    weaker = tmp_path / "steth-agent.service"
    weaker.write_text(text.replace(line.group(0), "CapabilityBoundingSet=" + " ".join(kept)))
    full, weak = under_unit(lab, UNIT, argv), under_unit(lab, weaker, argv)
    assert (works in full) if works else fails not in full, full
    assert fails in weak and (works is None or works not in weak or works == "1" and weak == "0"), weak


def test_the_unit_refuses_mount_namespaces_and_the_agent_needs_none(lab, side):
    """RestrictNamespaces=net and no @mount hold under the wrapper's seccomp filter: `ip netns exec` and `ip -n`
    (which unshare a mount namespace and remount /sys) are refused, nsenter --net (what the agent runs) is not."""
    for argv in (["ip", "netns", "exec", side, "true"], ["ip", "-n", side, "link", "show", "lo"]):
        assert "unshare failed: Operation not permitted" in under_unit(lab, UNIT, argv), argv
    out = under_unit(lab, UNIT, ["nsenter", f"--net=/run/netns/{side}", "ip", "-brief", "link", "show", "tapq0"])
    assert out.startswith("tapq0") and "Operation not permitted" not in out, out
