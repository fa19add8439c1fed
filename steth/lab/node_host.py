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
    """Stop what still runs on the nodes: processes in each node's inner namespaces (dnsmasq in qdhcp-...),
    then those namespaces, then every marked process, the holders last."""
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
    holders = {record["pid"] for record in state.get("node_hosts", {}).values()}
    for pid in _marked(lab_name()):
        if pid not in holders:
            _kill(pid)
    for pid in holders:
        stop_pid(pid, grace=2)


def _kill(pid: int) -> None:
    """SIGKILL: what is left at this point is a daemon its parent did not take down (Neutron's OVS agent
    does not exit on SIGTERM within 15 s, LAB-NOTES)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
