"""Each node of the real-Neutron lab: its own Open vSwitch and Neutron's own agents, inside the node's network
and mount namespaces (steth.lab.node_host).

Per node: ovsdb-server (also on tcp:127.0.0.1:6640 of the node's own loopback, the ovsdb_connection kolla-
ansible gives the agents) and ovs-vswitchd with the userspace datapath, OVS's default file names under the
node's /run/openvswitch; br-phy holding the node's underlay veth data0 with the node's data address (the
userspace datapath sends VXLAN through a netdev bridge that owns the tunnel IP, LAB-NOTES); on network nodes
br-ex for physnet1 (bridge_mappings). Then neutron-openvswitch-agent everywhere, neutron-dhcp-agent and
neutron-l3-agent on network nodes; the OVS agent itself makes br-int, br-tun, the patch ports and the flows.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from steth.lab import neutron_conf, neutron_venv, node_host
from steth.lab.neutron_services import spawn, venv_env, wait_for
from steth.lab.shell import LabError, in_ns, sh
from steth.lab.state import lab_dir, namespace_for, save_state

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
UNDERLAY_BRIDGE = "br-phy"
UNDERLAY_IFACE = "data0"  # the node's end of the lab's data-plane fabric (steth.lab.fleet)
# The provider network physnet1 (kolla's br-ex): each network node's br-ex holds ext0, whose peer is a port of
# the Linux bridge `upstream` in the lab's namespace <lab>-ext, the "outside" router holding UPSTREAM_GATEWAY.
# devstack's public range (devstack lib/neutron PUBLIC_NETWORK_CIDR); it exists only inside the namespaces.
EXTERNAL_IFACE = "ext0"
UPSTREAM_BRIDGE = "upstream"
EXTERNAL_CIDR = "172.24.4.0/24"
UPSTREAM_GATEWAY = "172.24.4.1"


def ovs_env(node: str) -> dict[str, str]:
    """OVS's tools and daemons find the node's instance under these (inside the node they are /run/openvswitch)."""
    d = str(node_host.ovs_dir(node))
    return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d}


def vsctl(state: dict, node: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*node_host.enter(state, node), "ovs-vsctl", "--timeout=10", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **ovs_env(node)},
    )
    if done.returncode != 0:
        raise LabError(f"{node}: ovs-vsctl {' '.join(args)}: {done.stderr.strip()}")
    return done


def node_dir(node: str) -> Path:
    return lab_dir() / "neutron" / node


def start_ovs(state: dict, node: dict[str, Any]) -> None:
    name = node["name"]
    d = node_host.ovs_dir(name)
    if not (d / "conf.db").exists():
        subprocess.run(["ovsdb-tool", "create", str(d / "conf.db"), OVS_SCHEMA], check=True, capture_output=True)
    env = ovs_env(name)
    enter = node_host.enter(state, name)
    db = spawn(
        state,
        f"ovsdb-server@{name}",
        [
            *enter,
            "ovsdb-server",
            str(d / "conf.db"),
            f"--remote=punix:{d / 'db.sock'}",
            f"--remote=ptcp:{neutron_conf.OVSDB_PORT}:127.0.0.1",
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
            "--pidfile",
            "--log-file",
        ],
        d / "ovsdb-server.out",
        env,
    )
    wait_for(lambda: (d / "db.sock").exists(), 10, f"ovsdb-server on {name}", db, d / "ovsdb-server.log")
    vsctl(state, name, "--no-wait", "init")
    sw = spawn(
        state, f"ovs-vswitchd@{name}", [*enter, "ovs-vswitchd", "--pidfile", "--log-file"], d / "vswitchd.out", env
    )
    wait_for(lambda: (d / "ovs-vswitchd.pid").exists(), 10, f"ovs-vswitchd on {name}", sw, d / "ovs-vswitchd.log")
    # The underlay: data0 into br-phy, the node's data address moved onto br-phy (the kernel no longer
    # answers on the raw veth; vswitchd routes VXLAN by the kernel's route through br-phy).
    cidr = f"{node['data_address']}/{node['data_prefixlen']}"
    vsctl(
        state,
        name,
        "--may-exist",
        "add-br",
        UNDERLAY_BRIDGE,
        "--",
        "set",
        "bridge",
        UNDERLAY_BRIDGE,
        "datapath_type=netdev",
        "--",
        "--may-exist",
        "add-port",
        UNDERLAY_BRIDGE,
        UNDERLAY_IFACE,
    )
    node_host.run(state, name, "ip", "addr", "del", cidr, "dev", UNDERLAY_IFACE, check=False)
    node_host.run(state, name, "ip", "addr", "replace", cidr, "dev", UNDERLAY_BRIDGE)
    node_host.run(state, name, "ip", "link", "set", UNDERLAY_BRIDGE, "up")
    node_host.run(state, name, "ethtool", "-K", UNDERLAY_IFACE, "tx", "off", check=False)
    if "network" in node["roles"]:  # bridge_mappings physnet1:br-ex (the agent exits if the bridge is missing)
        upstream_port = f"ext-{name}"[:15]
        sh(
            "ip",
            "link",
            "add",
            upstream_port,
            "netns",
            upstream_namespace(),
            "type",
            "veth",
            "peer",
            "name",
            EXTERNAL_IFACE,
            "netns",
            node["namespace"],
        )
        in_ns(upstream_namespace(), "ip", "link", "set", upstream_port, "master", UPSTREAM_BRIDGE, "up")
        in_ns(upstream_namespace(), "ethtool", "-K", upstream_port, "tx", "off", check=False)
        node_host.run(state, name, "ethtool", "-K", EXTERNAL_IFACE, "tx", "off", check=False)
        node_host.run(state, name, "ip", "link", "set", EXTERNAL_IFACE, "up")
        vsctl(
            state,
            name,
            "--may-exist",
            "add-br",
            neutron_conf.EXTERNAL_BRIDGE,
            "--",
            "set",
            "bridge",
            neutron_conf.EXTERNAL_BRIDGE,
            "datapath_type=netdev",
            "--",
            "--may-exist",
            "add-port",
            neutron_conf.EXTERNAL_BRIDGE,
            EXTERNAL_IFACE,
        )


def upstream_namespace() -> str:
    return namespace_for("ext")


def start_upstream(state: dict) -> None:
    """The outside of the cloud: a namespace whose Linux bridge joins the network nodes' br-ex uplinks and
    holds the external network's gateway address."""
    ns = upstream_namespace()
    state["netns"].append(ns)
    save_state(state)
    sh("ip", "netns", "add", ns)
    in_ns(ns, "ip", "link", "set", "lo", "up")
    in_ns(ns, "ip", "link", "add", UPSTREAM_BRIDGE, "type", "bridge")
    prefix = EXTERNAL_CIDR.split("/")[1]
    in_ns(ns, "ip", "addr", "add", f"{UPSTREAM_GATEWAY}/{prefix}", "dev", UPSTREAM_BRIDGE)
    in_ns(ns, "ip", "link", "set", UPSTREAM_BRIDGE, "up")


def firewall_for(index: int) -> str:
    """Odd compute nodes keep kolla's iptables_hybrid (ports plugged the hybrid way, qbr/qvb/qvo); even ones run
    the openvswitch firewall, for which Neutron answers ovs_hybrid_plug False (native plugging): the lab has
    both kinds of VM port, each plugged as the port's vif_details say."""
    return "iptables_hybrid" if index % 2 == 1 else "openvswitch"


def write_configs(
    state: dict, node: dict[str, Any], transport_url: str, dhcp_agents: int, firewall: str, l3_ha: bool = False
) -> dict:
    name = node["name"]
    d = node_dir(name)
    (d / "lock").mkdir(parents=True, exist_ok=True)
    common = neutron_conf.common(
        host=name,
        state_path=d,
        transport_url=transport_url,
        dhcp_agents_per_network=dhcp_agents,
        log_file=d / "neutron.log",
        l3_ha=l3_ha,
    )
    files = {"neutron.conf": neutron_conf.neutron_conf(d / "neutron.conf", common, {})}
    files["openvswitch_agent.ini"] = neutron_conf.openvswitch_agent_ini(
        d / "openvswitch_agent.ini",
        local_ip=node["data_address"],
        network_node="network" in node["roles"],
        firewall=firewall,
    )
    if "network" in node["roles"]:
        files["dhcp_agent.ini"] = neutron_conf.dhcp_agent_ini(
            d / "dhcp_agent.ini", d / "dnsmasq.conf", d / "dnsmasq.log"
        )
        files["l3_agent.ini"] = neutron_conf.l3_agent_ini(d / "l3_agent.ini")
    return files


AGENTS = {  # binary -> its own ini file (with neutron.conf)
    "neutron-openvswitch-agent": "openvswitch_agent.ini",
    "neutron-dhcp-agent": "dhcp_agent.ini",
    "neutron-l3-agent": "l3_agent.ini",
}


def start_agents(state: dict, node: dict[str, Any], files: dict[str, Path]) -> list[str]:
    name = node["name"]
    d = node_dir(name)
    started = []
    for binary, ini in AGENTS.items():
        if ini not in files:
            continue
        argv = [
            *node_host.enter(state, name),
            neutron_venv.binary(binary),
            "--config-file",
            str(files["neutron.conf"]),
            "--config-file",
            str(files[ini]),
            "--log-file",
            str(d / f"{binary}.log"),
        ]
        spawn(state, f"{binary}@{name}", argv, d / f"{binary}.out", {**venv_env(), **ovs_env(name)})
        started.append(binary)
    state["neutron"].setdefault("agents", {})[name] = started
    save_state(state)
    return started


def bring_up(
    state: dict, nodes: list[dict[str, Any]], transport_url: str, dhcp_agents: int, progress, l3_ha: bool = False
) -> None:
    progress(f"the external network's upstream ({UPSTREAM_GATEWAY} in {upstream_namespace()})")
    start_upstream(state)
    computes = 0
    for node in nodes:
        firewall = "iptables_hybrid"
        if "compute" in node["roles"]:
            computes += 1
            firewall = firewall_for(computes)
        node["firewall"] = firewall
        progress(f"Open vSwitch on {node['name']}")
        start_ovs(state, node)
        files = write_configs(state, node, transport_url, dhcp_agents, firewall, l3_ha)
        started = start_agents(state, node, files)
        progress(f"{', '.join(started)} on {node['name']} ({firewall} firewall)")
    save_state(state)


def wait_agents_alive(api, nodes: list[dict[str, Any]], timeout: float, progress) -> list[dict]:
    """Until Neutron lists every agent the lab started as alive (GET /v2.0/agents)."""
    wanted = set()
    for node in nodes:
        wanted.add(("Open vSwitch agent", node["name"]))
        if "network" in node["roles"]:
            wanted |= {("DHCP agent", node["name"]), ("L3 agent", node["name"])}
    progress(f"waiting for {len(wanted)} Neutron agents to report alive")
    deadline = time.monotonic() + timeout
    missing = wanted
    while time.monotonic() < deadline:
        agents = api.get("/v2.0/agents")["agents"]
        alive = {(a["agent_type"], a["host"]) for a in agents if a["alive"]}
        missing = wanted - alive
        if not missing:
            return agents
        time.sleep(1)
    first = sorted(missing)[0]
    log = node_dir(first[1]) / f"{_binary(first[0])}.log"
    raise LabError(
        f"Neutron agents not alive after {timeout:.0f} s: "
        + ", ".join(f"{kind} on {host}" for kind, host in sorted(missing))
        + f" (see {log})"
    )


def _binary(agent_type: str) -> str:
    return {"Open vSwitch agent": "neutron-openvswitch-agent", "DHCP agent": "neutron-dhcp-agent"}.get(
        agent_type, "neutron-l3-agent"
    )
