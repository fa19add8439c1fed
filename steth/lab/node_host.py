"""A lab node as a host of its own: its network namespace plus a mount namespace with a private /run/netns and
/run/openvswitch, as a real machine has (issue 10, item 2).

One long-lived process per node holds the mount namespace (`ip netns exec NODE unshare -m --propagation
private`, bind mounts, then `sleep infinity`); everything of the node (Open vSwitch, Neutron's agents, the
steth agent) starts with `nsenter -t <holder> -n -m`. qdhcp-/qrouter- namespaces Neutron makes on a node then
exist only in that node's view (`ip netns` inside it lists them), and its OVS sockets sit where OVS's tools
look by default. The folders behind the bind mounts are under the lab dir: <lab>/hosts/<node>/netns and
<lab>/ovs/<node>.

Processes the lab starts carry STETH_LAB_PROCESS=<lab name> in their environment, and their children inherit
it (dnsmasq, privsep daemons, ...): `sweep` stops every process left in a node's namespaces or so marked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from steth.lab.shell import LabError, alive, stop_pid
from steth.lab.state import lab_dir, lab_name, save_state

MARKER = "STETH_LAB_PROCESS"


def host_dir(node: str) -> Path:
    return lab_dir() / "hosts" / node


def ovs_dir(node: str) -> Path:
    return lab_dir() / "ovs" / node


def start(state: dict, node: str, ns: str) -> int:
    """The holder of `node`'s mount namespace; returns its pid once the bind mounts are in place."""
    netns_dir, ovs = host_dir(node) / "netns", ovs_dir(node)
    netns_dir.mkdir(parents=True, exist_ok=True)
    ovs.mkdir(parents=True, exist_ok=True)
    script = (
        f"mkdir -p /run/netns /run/openvswitch && mount --bind {netns_dir} /run/netns && "
        f"mount --bind {ovs} /run/openvswitch && exec sleep infinity"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(host_dir(node) / "holder.err", "ab"),
        env={**os.environ, MARKER: lab_name()},
        start_new_session=True,
    )
    state.setdefault("node_hosts", {})[node] = {"pid": proc.pid, "netns": ns, "dir": str(host_dir(node))}
    save_state(state)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the mount namespace of {node} did not start: see {host_dir(node) / 'holder.err'}")
        try:
            if Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"sleep"):
                return proc.pid
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise LabError(f"the mount namespace of {node} was not ready within 10 s")


def enter(state: dict, node: str) -> list[str]:
    """The argv prefix that runs a command on `node` (its network and mount namespaces)."""
    return ["nsenter", "-t", str(state["node_hosts"][node]["pid"]), "-n", "-m"]


def run(state: dict, node: str, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run([*enter(state, node), *argv], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise LabError(f"{node}: {' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


def namespaces(state: dict, node: str) -> list[str]:
    """The namespaces the node sees in its own /run/netns (qdhcp-..., qrouter-...)."""
    done = run(state, node, "ip", "netns", "list", check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def _marked(name: str) -> list[int]:
    wanted = f"{MARKER}={name}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return found


def sweep(state: dict, progress=lambda msg: None) -> None:
    """Stop what runs on the nodes: every marked process at once (Neutron's daemons and what they spawned:
    dnsmasq, privsep daemons), then whatever is left in each node's inner namespaces and the namespaces
    themselves (the holders still hold the nodes' views), the holders last."""
    holders = {record["pid"] for record in state.get("node_hosts", {}).values()}
    # The daemons the lab started, by pid too: Neutron's set their process title, which overwrites the
    # environment /proc shows (their children still inherit the marker). The steth agents are not among them:
    # fleet.down stops those one by one, so they leave presence while NATS is up.
    steth_agents = {node["name"] for node in state.get("nodes", [])} | {"nats-server"}
    started = {pid for key, pid in state.get("pids", {}).items() if key not in steth_agents}
    _stop_all(sorted((started | set(_marked(lab_name()))) - holders), grace=5)
    for node, record in state.get("node_hosts", {}).items():
        if not alive(record["pid"]):
            continue
        inner = namespaces(state, node)
        if inner:
            progress(f"removing {len(inner)} namespaces of {node}")
        for ns in inner:
            for pid in run(state, node, "ip", "netns", "pids", ns, check=False).stdout.split():
                stop_pid(int(pid), grace=2)
            run(state, node, "ip", "netns", "delete", ns, check=False)
    _stop_all(sorted(holders), grace=2)


def _stop_all(pids: list[int], grace: float) -> None:
    """SIGTERM to all at once, SIGKILL to what is left after `grace` (Neutron's OVS agent does not exit on
    SIGTERM within 15 s, LAB-NOTES; one by one, a lab's two dozen daemons took half a minute)."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        _reap(pids)
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        _reap(pids)
        time.sleep(0.05)


def _reap(pids: list[int]) -> None:
    """Collect the lab's own children (the daemons `steth lab up` started in this process, as in tests)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
