"""`steth lab up --openstack --neutron real`: the fleet with real Neutron and its agents (issue 10, items 1-2).

    fleet (namespaces, NATS, steth agents; each node a host of its own: steth.lab.node_host)
    -> MariaDB, RabbitMQ, neutron-db-manage, neutron-rpc-server, the API under uWSGI (steth.lab.neutron_services)
    -> per node Open vSwitch and Neutron's agents (steth.lab.neutron_nodes); wait until all are alive
    -> network, subnet, router, security group, VM ports through the API; VMs plugged as os-vif does; each
       VM's DHCP lease (steth.lab.neutron_cloud)
    -> the Nova stand-in describing the servers (steth.lab.openstack_api) and clouds.yaml, whose network
       endpoint is the real Neutron.

Returns only once every agent is alive, every port ACTIVE and every VM has its lease. Neutron runs with
auth_strategy = noauth (docs/lab.md says what that changes).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from steth.lab import (
    fleet,
    neutron_cloud,
    neutron_conf,
    neutron_ha,
    neutron_nodes,
    neutron_services,
    neutron_venv,
    nova_samples,
)
from steth.lab.neutron_client import NeutronClient
from steth.lab.shell import LabError
from steth.lab.state import lab_dir, lab_uuid, save_state

# What the lab runs from Debian (scripts/setup.sh installs them), by the command it looks for.
DEBIAN_TOOLS = {
    "mariadb-install-db": "mariadb-server",
    "mysqld": "mariadb-server",
    "epmd": "rabbitmq-server",
    "ovsdb-server": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch",
    "dnsmasq": "dnsmasq-base",
    "udhcpc": "udhcpc",
    "nsenter": "util-linux",
    "unshare": "util-linux",
}
HA_TOOLS = {"keepalived": "keepalived"}  # --routers ha: the L3 agents spawn it in each qrouter-
AGENTS_ALIVE_TIMEOUT = 120
HA_ACTIVE_TIMEOUT = 90
PORTS_ACTIVE_TIMEOUT = 90
LEASE_TIMEOUT = 60


def up(
    compute: int = 2,
    network: int = 1,
    mgmt_cidr: str = "10.99.0.0/24",
    data_cidr: str = "10.98.0.0/24",
    heartbeat_s: float = 1.0,
    allow_mutating: bool = True,
    progress=lambda msg: None,
    insecure: bool = False,
    routers: str = "legacy",
) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise LabError("the real-Neutron lab needs root (network and mount namespaces, Open vSwitch)")
    if compute < 1 or network < 1:
        raise LabError("the OpenStack lab needs at least one compute and one network node")
    ha = routers == "ha"
    if ha and network < 2:
        raise LabError("HA routers need two network nodes (--network 2): one active, one standby")
    tools = {**DEBIAN_TOOLS, **(HA_TOOLS if ha else {})}
    missing = sorted({pkg for tool, pkg in tools.items() if not shutil.which(tool)})
    if not Path(neutron_services.RABBIT_SERVER).exists():
        missing = sorted({*missing, "rabbitmq-server"})
    if missing:
        raise LabError(f"the real-Neutron lab needs {', '.join(missing)}: run scripts/setup.sh as root")
    neutron_venv.ensure(progress)
    started = time.monotonic()
    state = fleet.up(
        compute,
        network,
        mgmt_cidr,
        data_cidr,
        heartbeat_s,
        allow_mutating,
        progress=progress,
        agent_env=neutron_nodes.ovs_env,
        insecure=insecure,
        standins=False,
        private_mounts=True,
    )
    try:
        host = str(ipaddress.ip_network(mgmt_cidr)[1])
        prefixlen = ipaddress.ip_network(data_cidr).prefixlen
        for node in state["nodes"]:
            node["data_prefixlen"] = prefixlen
        state["neutron"] = {"mode": "real", "routers": routers}
        save_state(state)
        base = lab_dir() / "neutron"
        networks = [n for n in state["nodes"] if "network" in n["roles"]]
        backends = neutron_services.start_backends(state, base, host, progress)
        # kolla-ansible defaults/main.yml dhcp_agents_per_network: 2 (with two network nodes to hold them)
        dhcp_agents = 2 if len(networks) >= 2 else 1
        # The server before the agents: started together on two cores, the migration took 33 s instead of 14
        # and the agents' first RPC calls timed out (60 s) before the RPC server answered.
        url = neutron_services.start_server(state, base, host, backends, dhcp_agents, progress, l3_ha=ha)
        state["control_plane"] = {
            "mariadb": state["neutron"]["mariadb"]["address"],
            "rabbitmq": state["neutron"]["rabbitmq"]["address"],
            "neutron": f"{host}:{neutron_services.NEUTRON_PORT}",
        }
        save_state(state)
        neutron_nodes.bring_up(state, state["nodes"], backends["transport_url"], dhcp_agents, progress, l3_ha=ha)
        api = NeutronClient(url)
        agents = neutron_nodes.wait_agents_alive(api, state["nodes"], AGENTS_ALIVE_TIMEOUT, progress)
        progress(f"{len(agents)} Neutron agents alive after {time.monotonic() - started:.0f} s")
        computes = [n["name"] for n in state["nodes"] if "compute" in n["roles"]]
        cloud = neutron_cloud.create(api, computes, progress, ha=ha)
        state["neutron"]["cloud"] = cloud
        save_state(state)
        plugs = ", ".join(
            f"{vm['name']} on {vm['host']} ({'hybrid' if vm['hybrid'] else 'native'})" for vm in cloud["vms"]
        )
        progress(f"plugging with os-vif: {plugs}")
        neutron_cloud.os_vif_plug(state, cloud["vms"], cloud["network"]["id"], cloud["network"]["mtu"])
        for vm in cloud["vms"]:
            neutron_cloud.attach(state, vm, cloud["network"]["mtu"])
        neutron_cloud.wait_ports_active(api, cloud, PORTS_ACTIVE_TIMEOUT, progress)
        if ha:
            instances = min(len(networks), neutron_conf.MAX_L3_AGENTS_PER_ROUTER)
            progress(f"waiting for one active instance of the HA router and {instances - 1} standby")
            states = neutron_ha.wait_states(
                api, cloud["router"]["id"], neutron_ha.one_active(instances), HA_ACTIVE_TIMEOUT, "one active"
            )
            state["neutron"]["ha_active_seconds"] = round(time.monotonic() - started, 1)
            progress(f"HA router active on {neutron_ha.active_host(states)} after {time.monotonic() - started:.0f} s")
        leases = neutron_cloud.wait_leases(state, cloud["vms"], LEASE_TIMEOUT, progress)
        state["neutron"]["leases"] = leases
        progress("starting the Nova stand-in (servers, hypervisors) beside the real Neutron")
        _nova(state, cloud, url)
        state["neutron"]["up_seconds"] = round(time.monotonic() - started, 1)
        save_state(state)
        progress(f"real Neutron lab ready in {state['neutron']['up_seconds']:.0f} s")
        return state
    except BaseException:
        fleet.down(progress)
        raise


def nova_description(state: dict, cloud: dict[str, Any]) -> dict[str, Any]:
    """What the Nova stand-in answers (Nova's api-samples shapes, as steth.lab.ml2 does): the projects and
    users the token stand-in knows, a hypervisor per compute node, a server per VM with its real port."""
    admin, demo = neutron_cloud.project_id("admin"), cloud["project_id"]
    servers = [
        nova_samples.server(vm["id"], vm["name"], vm["host"], demo, cloud["network"]["name"], vm["ip"], vm["mac"])
        for vm in cloud["vms"]
    ]
    return {
        **nova_samples.identity(admin, demo),
        "hypervisors": nova_samples.hypervisors(state["nodes"], lab_uuid),
        "servers": servers,
    }


def _nova(state: dict, cloud: dict[str, Any], neutron_url: str) -> None:
    import yaml

    from steth.lab.openstack_api import clouds_yaml

    base = lab_dir() / "openstack"
    base.mkdir(parents=True, exist_ok=True)
    description = nova_description(state, cloud)
    (base / "cloud.json").write_text(json.dumps(description, indent=2))
    port_file = base / "api.port"
    port_file.unlink(missing_ok=True)
    proc = neutron_services.spawn(
        state,
        "openstack-api",
        [
            sys.executable,
            "-m",
            "steth.lab.openstack_api",
            "--cloud",
            str(base / "cloud.json"),
            "--port-file",
            str(port_file),
            "--log",
            str(base / "api.log"),
        ],
        base / "api.out",
    )
    neutron_services.wait_for(port_file.exists, 20, "the Nova stand-in", proc, base / "api.out")
    auth_url = f"http://127.0.0.1:{port_file.read_text().strip()}/identity/v3"
    clouds = yaml.safe_load(clouds_yaml(auth_url, description))
    for entry in clouds["clouds"].values():  # Neutron is the real one: past the stand-in's catalog
        entry["network_endpoint_override"] = neutron_url
    (base / "clouds.yaml").write_text(yaml.safe_dump(clouds, sort_keys=False))
    state["openstack"] = {
        "auth_url": auth_url,
        "clouds_yaml": str(base / "clouds.yaml"),
        "cloud_json": str(base / "cloud.json"),
        "cloud": "steth-lab",
        "neutron_url": neutron_url,
    }
    save_state(state)
