"""A hermetic Open vSwitch for the lab: the userspace datapath, its own database, sockets and logs in a
folder, its daemons inside one network namespace (this kernel has no OVS datapath, and one netdev
vswitchd per namespace is the rule).

The lab's fabric: a namespace `<lab>-fabric-sw` holding one OVS bridge, the "physical switch"; every node
gets a veth `trunk0` whose other end is a trunk port of that bridge (vlan_mode=trunk, trunks=the lab's
list). Tests use `start()` on its own for an OVS of their own inside a node's namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from steth.lab.shell import LabError, in_ns, sh, wait_for
from steth.lab.state import lab_name, namespace_for, save_state

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
FABRIC_BRIDGE = "fabric"  # lives in the switch namespace only: no clash with other labs
TRUNK_IFACE = "trunk0"  # the node end of its trunk
DEFAULT_TRUNKS = (0, 100, 101, 102)  # 0: untagged frames pass too


def switch_namespace() -> str:
    return namespace_for("fabric-sw")


def parse_trunks(text: str) -> list[int]:
    """'0,100,101-103' -> [0, 100, 101, 102, 103]; VLAN ids 0..4094."""
    out: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"trunks: {part!r} is not a VLAN id or range")
        first, last = int(lo), int(hi or lo)
        if not 0 <= first <= last <= 4094:
            raise ValueError(f"trunks: {part!r} is outside 0..4094")
        out.update(range(first, last + 1))
    if not out:
        raise ValueError("trunks: no VLAN given")
    return sorted(out)


# --- one hermetic instance -----------------------------------------------------------------------


def db_url(directory: str | Path) -> str:
    return f"unix:{Path(directory) / 'db.sock'}"


def vsctl(instance: dict[str, Any], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ovs-vsctl", f"--db={db_url(instance['dir'])}", "--timeout=10", *args, check=check)


def start(
    directory: str | Path, netns: str | None, on_pid=lambda name, pid: None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """ovsdb-server and ovs-vswitchd for `directory`, both in `netns`; returns the instance record.

    `on_pid(name, pid)` is called as soon as each daemon exists, so a caller can record it before anything
    else can fail (a crash then still leaves enough to stop it). `env` is added to the daemons' environment
    (OVS_RUNDIR: where vswitchd makes its bridges' OpenFlow sockets, <bridge>.mgmt, that ovn-controller finds).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not SCHEMA.exists():
        raise LabError(f"{SCHEMA} not found: install openvswitch-switch")
    instance: dict[str, Any] = {"dir": str(directory), "netns": netns, "pids": {}}
    db = directory / "conf.db"
    if not db.exists():
        sh("ovsdb-tool", "create", str(db), str(SCHEMA))
    prefix = ["ip", "netns", "exec", netns] if netns else []
    sock = directory / "db.sock"
    instance["pids"]["ovsdb-server"] = _spawn(
        prefix
        + [
            "ovsdb-server",
            str(db),
            f"--remote=punix:{sock}",
            f"--unixctl={directory / 'ovsdb.ctl'}",
            f"--pidfile={directory / 'ovsdb.pid'}",
            f"--log-file={directory / 'ovsdb.log'}",
        ],
        directory / "ovsdb.out",
        env,
    )
    on_pid("ovsdb-server", instance["pids"]["ovsdb-server"])
    wait_for(lambda: sock.exists(), 5, f"ovsdb-server did not create {sock}: see {directory / 'ovsdb.log'}")
    vsctl(instance, "--no-wait", "init")
    instance["pids"]["ovs-vswitchd"] = _spawn(
        prefix
        + [
            "ovs-vswitchd",
            db_url(directory),
            f"--unixctl={directory / 'vswitchd.ctl'}",
            f"--pidfile={directory / 'vswitchd.pid'}",
            f"--log-file={directory / 'vswitchd.log'}",
        ],
        directory / "vswitchd.out",
        env,
    )
    on_pid("ovs-vswitchd", instance["pids"]["ovs-vswitchd"])
    wait_for(
        lambda: (directory / "vswitchd.ctl").exists(),
        5,
        f"ovs-vswitchd did not start: see {directory / 'vswitchd.log'}",
    )
    return instance


def add_bridge(instance: dict[str, Any], name: str) -> None:
    vsctl(instance, "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")


def stop(instance: dict[str, Any] | None) -> None:
    """Stop both daemons (vswitchd first); safe after a crash and when they are already gone."""
    if not instance:
        return
    directory = Path(instance.get("dir", "/nonexistent"))
    pids = instance.get("pids", {})
    for name, pidfile in (("ovs-vswitchd", "vswitchd.pid"), ("ovsdb-server", "ovsdb.pid")):
        for pid in {pids.get(name, 0), _read_pid(directory / pidfile)}:
            _terminate(pid, name)


def _spawn(argv: list[str], out: Path, env: dict[str, str] | None = None) -> int:
    log = open(out, "ab")
    try:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        ).pid
    finally:
        log.close()


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _terminate(pid: int, name: str, grace: float = 3.0) -> None:
    # `ip netns exec` execs the daemon, so the recorded pid is the daemon itself; check its name so a
    # recycled pid is never signalled.
    if pid <= 0 or not _comm(pid).startswith(name[:15]):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:  # not our child: poll /proc instead
                if not _comm(pid) or _zombie(pid):
                    return
            time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


# --- the lab fabric ------------------------------------------------------------------------------


def fabric_up(state: dict[str, Any], trunks: list[int]) -> None:
    """The switch namespace, its OVS and the fabric bridge; recorded in the state before each step."""
    ns = switch_namespace()
    record: dict[str, Any] = {"netns": ns, "bridge": FABRIC_BRIDGE, "trunks": trunks, "ports": {}, "instance": None}
    state["ovs"] = record
    state["netns"].append(ns)
    save_state(state)
    sh("ip", "netns", "add", ns)
    in_ns(ns, "ip", "link", "set", "lo", "up")

    def remember(name: str, pid: int) -> None:
        record.setdefault("pids", {})[name] = pid
        save_state(state)

    record["instance"] = start(Path(state["dir"]) / "ovs-fabric", ns, on_pid=remember)
    save_state(state)
    add_bridge(record["instance"], FABRIC_BRIDGE)


def attach_node(state: dict[str, Any], node_ns: str, k: int) -> str:
    """A veth from the node (trunk0) to a trunk port of the fabric bridge; returns the switch port name."""
    record = state["ovs"]
    port = f"{lab_name()}t{k}"
    record["ports"][node_ns] = port
    save_state(state)
    # Both ends are created straight in their namespaces: nothing of it is left in the root namespace.
    sh(
        "ip",
        "link",
        "add",
        port,
        "netns",
        record["netns"],
        "type",
        "veth",
        "peer",
        "name",
        TRUNK_IFACE,
        "netns",
        node_ns,
    )
    # The userspace datapath forwards frames as they are: checksums left to offload would arrive broken.
    for ns, iface in ((record["netns"], port), (node_ns, TRUNK_IFACE)):
        in_ns(ns, "ethtool", "-K", iface, "tx", "off", check=False)
        in_ns(ns, "ip", "link", "set", iface, "up")
    trunks = ",".join(str(v) for v in record["trunks"])
    vsctl(
        record["instance"],
        "add-port",
        FABRIC_BRIDGE,
        port,
        "--",
        "set",
        "port",
        port,
        "vlan_mode=trunk",
        f"trunks={trunks}",
    )
    return port


def fabric_down(state: dict[str, Any]) -> None:
    record = state.get("ovs") or {}
    # After a crash inside start() there is no instance record yet: the pids and the pidfiles still are.
    stop(
        record.get("instance")
        or {"dir": str(Path(state.get("dir", "")) / "ovs-fabric"), "pids": record.get("pids", {})}
    )


def fabric_status(state: dict[str, Any]) -> dict[str, Any] | None:
    record = state.get("ovs")
    if not record:
        return None
    instance = record.get("instance") or {}
    pids = instance.get("pids") or record.get("pids", {})  # the latter: recorded before start() returned
    return {
        "netns": record["netns"],
        "bridge": record["bridge"],
        "trunks": record["trunks"],
        "db": db_url(instance["dir"]) if instance.get("dir") else None,
        "ports": record["ports"],
        "running": all(_comm(p) and not _zombie(p) for p in pids.values()) if pids else False,
    }


def access_port(state: dict[str, Any], name: str, vlan: int, cidr: str | None = None) -> str:
    """An internal port of the fabric bridge in the switch namespace, access port of `vlan`, optionally
    with an address: a host "on" that VLAN (a DHCP server for tests, say). Gone with the lab."""
    record = state["ovs"]
    vsctl(
        record["instance"],
        "add-port",
        FABRIC_BRIDGE,
        name,
        f"tag={vlan}",
        "--",
        "set",
        "interface",
        name,
        "type=internal",
    )
    ns = record["netns"]
    if cidr:
        in_ns(ns, "ip", "addr", "add", cidr, "dev", name)
    in_ns(ns, "ip", "link", "set", name, "up")
    return name
