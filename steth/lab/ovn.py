"""An OVN deployment of real daemons on top of the local fleet.

    steth lab up --ovn

- OVN central in a namespace of its own (`<lab>-ovn-central`, on the management bridge): the NB and SB
  `ovsdb-server`s (schemas from /usr/share/ovn) listening on tcp:<central>:6641 / 6642, and `ovn-northd`.
- Every node (its own namespace): an Open vSwitch of its own (steth.lab.ovs, userspace datapath, files under
  <lab dir>/ovn/<node>, OVS_RUNDIR = OVN_RUNDIR = that folder), the Geneve underlay on a netdev bridge
  `br-phy` holding the node's data0 veth and its data address, and `ovn-controller` with the chassis settings
  in Open_vSwitch external_ids. Network nodes are gateway chassis (ovn-cms-options=enable-chassis-as-gw).
- A logical switch with native DHCP, one VM (namespace `<lab>-vm-N`) per compute node plugged into br-int
  natively with the external_ids os-vif sets, and a logical router whose gateway port is on the network
  nodes' chassis (which also turns BFD on for the tunnels between them).

Every process goes into the state's "pids", every namespace and link into "netns"/"links", so fleet.down
removes all of it. Lab names and addresses are derived from the lab, so labs run side by side.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from steth.lab import fleet
from steth.lab import ovs as lab_ovs
from steth.lab.ml2 import mac_for
from steth.lab.shell import LabError, in_ns, sh, wait_for
from steth.lab.state import lab_dir, lab_name, namespace_for, save_state

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
NB_PORT, SB_PORT = 6641, 6642  # OVN's registered ports (ovn-nb(5), ovn-sb(5))
UNDERLAY_BRIDGE = "br-phy"
INTEGRATION_BRIDGE = "br-int"
SWITCH = "private"
ROUTER = "router-1"
TENANT_CIDR = "10.30.0.0/24"  # lives only in the VM namespaces and OVN's logical network
EXTERNAL_CIDR = "10.31.0.0/24"  # the router's gateway port (no external switch is needed for BFD)
# Neutron's MTU for a Geneve network on a 1500 underlay: neutron/plugins/ml2/drivers/type_geneve.py
# GeneveTypeDriver.get_mtu takes [ml2_type_geneve] max_header_size (38) off what the tunnel driver leaves after
# the IPv4 header (20): 58 in all, the overhead LAB-NOTES measured.
GENEVE_OVERHEAD = 58
NETWORK_MTU = 1500 - GENEVE_OVERHEAD
# neutron/common/ovn/constants.py: OVN_CMS_OPTIONS = 'ovn-cms-options', CMS_OPT_CHASSIS_AS_GW =
# 'enable-chassis-as-gw': the chassis Neutron's OVN driver schedules router gateway ports on.
GATEWAY_CMS_OPTIONS = "enable-chassis-as-gw"


def lab_uuid(kind: str, name: str) -> str:
    """Ids derived from the lab's name: a lab describes itself the same way each time."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"steth-lab-ovn:{lab_name()}:{kind}:{name}"))


def node_dir(node: str) -> Path:
    return lab_dir() / "ovn" / node


def node_env(node: str) -> dict[str, str]:
    """Where ovs-vsctl, ovs-appctl, ovn-controller and ovn-appctl look for this node's sockets and pidfiles;
    the node's agent gets the same, as it would find /var/run/openvswitch and /var/run/ovn on a host."""
    d = str(node_dir(node))
    return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d, "OVN_RUNDIR": d, "OVN_DBDIR": d, "OVN_LOGDIR": d}


def central_dir() -> Path:
    return lab_dir() / "ovn" / "central"


def nb_local() -> str:
    return f"unix:{central_dir() / 'nb.sock'}"


def sb_local() -> str:
    return f"unix:{central_dir() / 'sb.sock'}"


def nbctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ovn-nbctl", f"--db={nb_local()}", "--timeout=10", *args, check=check)


def sbctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ovn-sbctl", f"--db={sb_local()}", "--timeout=10", *args, check=check)


def vsctl(node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ovs-vsctl", "--timeout=10", *args, check=check, env=node_env(node))


# --- the design -------------------------------------------------------------------------------------


def design(nodes: list[dict[str, Any]], central_address: str) -> dict[str, Any]:
    computes = [n["name"] for n in nodes if "compute" in n["roles"]]
    gateways = [n["name"] for n in nodes if "network" in n["roles"]]
    if len(computes) < 1:
        raise LabError("the OVN lab needs at least one compute node")
    net = ipaddress.ip_network(TENANT_CIDR)
    vms = []
    for i, host in enumerate(computes, start=1):
        port_id = lab_uuid("port", f"vm-{i}")
        vms.append(
            {
                "name": f"vm-{i}",
                "host": host,
                "port_id": port_id,
                "mac": mac_for(port_id),
                "ip": str(net[10 + i]),
                "vm_uuid": lab_uuid("server", f"vm-{i}"),
                "netns": namespace_for(f"vm-{i}"),
                "tap": f"tap{port_id[:11]}",  # os-vif's device name: prefix and 11 characters of the port id
            }
        )
    return {
        "central": central_address,
        "nb_connection": f"tcp:{central_address}:{NB_PORT}",
        "sb_connection": f"tcp:{central_address}:{SB_PORT}",
        "switch": SWITCH,
        "router": ROUTER,
        "cidr": TENANT_CIDR,
        "gateway_ip": str(net[1]),
        "prefixlen": net.prefixlen,
        "mtu": NETWORK_MTU,
        "computes": computes,
        "gateways": gateways,
        "vms": vms,
    }


def agent_config(d: dict[str, Any]) -> str:
    """The agents' [ovn] table: where this node reaches the NB and SB (what Neutron's ml2_conf.ini [ovn] names)."""
    return f'[ovn]\nnb_connection = "{d["nb_connection"]}"\nsb_connection = "{d["sb_connection"]}"\n'


# --- building -------------------------------------------------------------------------------------


def up(
    compute: int = 2,
    network: int = 1,
    mgmt_cidr: str = "10.99.0.0/24",
    data_cidr: str = "10.98.0.0/24",
    heartbeat_s: float = 1.0,
    allow_mutating: bool = False,
    progress=lambda msg: None,
    insecure: bool = False,
) -> dict[str, Any]:
    """The fleet, OVN central, a chassis per node, the logical network and its VMs; returns the state
    (state["ovn"]["timings"] holds how long each phase took)."""
    if os.geteuid() != 0:
        raise LabError("the OVN lab needs root (network namespaces, Open vSwitch)")
    for path in (NB_SCHEMA, SB_SCHEMA):
        if not path.exists():
            raise LabError(f"{path} not found: install ovn-central and ovn-host")
    started = time.monotonic()
    mgmt = ipaddress.ip_network(mgmt_cidr)
    central_address = str(mgmt[5])
    preview = design([{"name": n, "roles": r} for n, r in fleet.node_names(compute, network)], central_address)
    state = fleet.up(
        compute,
        network,
        mgmt_cidr,
        data_cidr,
        heartbeat_s,
        allow_mutating,
        progress=progress,
        agent_env=node_env,
        extra_config=lambda node: agent_config(preview),
        insecure=insecure,
    )
    timings = {"fleet_s": round(time.monotonic() - started, 2)}
    try:
        d = design(state["nodes"], central_address)
        d["data_prefixlen"] = ipaddress.ip_network(data_cidr).prefixlen
        state["ovn"] = {"design": d, "chassis": {}, "timings": timings}
        save_state(state)
        mark = time.monotonic()
        progress("starting OVN central (NB, SB, ovn-northd)")
        _central(state, d, mgmt.prefixlen)
        for node in state["nodes"]:
            progress(f"chassis {node['name']}: Open vSwitch, br-phy underlay, ovn-controller")
            _chassis(state, d, node)
        progress("logical switch with DHCP, router with a gateway chassis")
        _logical(d)
        for vm in d["vms"]:
            progress(f"plugging {vm['name']} on {vm['host']}")
            _plug(state, d, vm)
        timings["ovn_s"] = round(time.monotonic() - mark, 2)
        mark = time.monotonic()
        progress("waiting for the chassis, the bindings and the VMs' DHCP leases")
        wait_for(lambda: _chassis_count() >= len(state["nodes"]), 30, "not every chassis registered in the SB")
        for vm in d["vms"]:
            wait_for(lambda vm=vm: port_up(vm["port_id"]), 30, f"{vm['name']}'s port did not go up in the NB")
            dhcp_lease(vm)
        # Every chassis current: ovn-controller writes SB_Global's nb_cfg back (Chassis_Private.nb_cfg, and
        # br-int's external_ids:ovn-nb-cfg), which the ovn-chassis probe compares.
        nbctl("--wait=hv", "sync")
        wait_for(lambda: not bfd_not_up(state), 30, "BFD did not come up on every tunnel", interval=0.2)
        timings["ready_s"] = round(time.monotonic() - mark, 2)
        timings["total_s"] = round(time.monotonic() - started, 2)
        save_state(state)
        return state
    except BaseException:
        fleet.down(progress)
        raise


def _record(state: dict, name: str, pid: int) -> None:
    state["pids"][name] = pid  # fleet.down stops every recorded pid (their process groups)
    save_state(state)


def _spawn(state: dict, name: str, netns: str, argv: list[str], env: dict[str, str], log: Path) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    _record(state, name, proc.pid)
    return proc.pid


def _central(state: dict, d: dict, prefixlen: int) -> None:
    """A namespace on the management bridge holding NB, SB and northd (its own ports: no clash with other labs)."""
    ns = namespace_for("ovn-central")
    state["netns"].append(ns)
    host_end = f"{lab_name()}oc"
    state["links"].append(host_end)
    save_state(state)
    sh("ip", "netns", "add", ns)
    in_ns(ns, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "mgmt0", "netns", ns)
    sh("ip", "link", "set", host_end, "master", fleet.mgmt_bridge(), "up")
    in_ns(ns, "ip", "addr", "add", f"{d['central']}/{prefixlen}", "dev", "mgmt0")
    in_ns(ns, "ip", "link", "set", "mgmt0", "up")
    folder = central_dir()
    folder.mkdir(parents=True, exist_ok=True)
    env = {"OVN_RUNDIR": str(folder), "OVS_RUNDIR": str(folder)}
    for db, schema, port in (("nb", NB_SCHEMA, NB_PORT), ("sb", SB_SCHEMA, SB_PORT)):
        sh("ovsdb-tool", "create", str(folder / f"{db}.db"), str(schema))
        _spawn(
            state,
            f"ovsdb-server-{db}@central",
            ns,
            [
                "ovsdb-server",
                str(folder / f"{db}.db"),
                f"--remote=punix:{folder / f'{db}.sock'}",
                f"--remote=ptcp:{port}:{d['central']}",
                f"--unixctl={folder / f'{db}.ctl'}",
                f"--pidfile={folder / f'{db}.pid'}",
                f"--log-file={folder / f'{db}.log'}",
            ],
            env,
            folder / f"{db}.out",
        )
    wait_for(lambda: (folder / "nb.sock").exists() and (folder / "sb.sock").exists(), 10, "NB/SB did not start")
    _spawn(
        state,
        "ovn-northd@central",
        ns,
        [
            "ovn-northd",
            f"--ovnnb-db={nb_local()}",
            f"--ovnsb-db={sb_local()}",
            f"--unixctl={folder / 'northd.ctl'}",
            f"--pidfile={folder / 'northd.pid'}",
            f"--log-file={folder / 'northd.log'}",
        ],
        env,
        folder / "northd.out",
    )
    nbctl("init")


def _chassis(state: dict, d: dict, node: dict) -> None:
    name, ns = node["name"], node["namespace"]
    folder = node_dir(name)
    env = node_env(name)
    record = state["ovn"]["chassis"].setdefault(name, {"dir": str(folder)})
    instance = lab_ovs.start(folder, ns, on_pid=lambda daemon, pid: _record(state, f"{daemon}@{name}", pid), env=env)
    record["ovs"] = instance
    save_state(state)
    # The underlay: data0 becomes a port of the netdev bridge br-phy, which takes its address (the userspace
    # datapath sends Geneve out of a bridge it owns; the kernel must no longer answer on the raw veth).
    lab_ovs.vsctl(instance, "add-br", UNDERLAY_BRIDGE, "--", "set", "bridge", UNDERLAY_BRIDGE, "datapath_type=netdev")
    lab_ovs.vsctl(instance, "add-port", UNDERLAY_BRIDGE, "data0")
    k = state["nodes"].index(node) + 1
    sh("ethtool", "-K", f"{lab_name()}f{k}", "tx", "off", check=False)
    in_ns(ns, "ethtool", "-K", "data0", "tx", "off", check=False)
    prefix = d["data_prefixlen"]
    in_ns(ns, "ip", "addr", "del", f"{node['data_address']}/{prefix}", "dev", "data0")
    in_ns(ns, "ip", "addr", "add", f"{node['data_address']}/{prefix}", "dev", UNDERLAY_BRIDGE)
    in_ns(ns, "ip", "link", "set", UNDERLAY_BRIDGE, "up")
    # The chassis settings ovn-controller reads (ovn-controller(8), "Configuration"); hostname is what
    # Neutron's OVN driver matches binding:host_id against (Chassis.hostname).
    settings = [
        f"external_ids:system-id={name}",
        f"external_ids:hostname={name}",
        f"external_ids:ovn-remote={d['sb_connection']}",
        "external_ids:ovn-encap-type=geneve",
        f"external_ids:ovn-encap-ip={node['data_address']}",
        "external_ids:ovn-bridge-datapath-type=netdev",
    ]
    if "network" in node["roles"]:
        settings.append(f"external_ids:ovn-cms-options={GATEWAY_CMS_OPTIONS}")
    lab_ovs.vsctl(instance, "set", "Open_vSwitch", ".", *settings)
    start_controller(state, node)


def start_controller(state: dict, node: dict) -> int:
    """ovn-controller of a chassis (again, after a test stopped it): pidfile and control socket in OVN_RUNDIR."""
    folder = node_dir(node["name"])
    return _spawn(
        state,
        f"ovn-controller@{node['name']}",
        node["namespace"],
        ["ovn-controller", f"unix:{folder / 'db.sock'}", "--pidfile", "--log-file"],
        node_env(node["name"]),
        folder / "ovn-controller.out",
    )


def _logical(d: dict) -> None:
    """The logical switch with DHCP options, and a router whose gateway port has the gateway chassis."""
    dhcp_mac = "fa:16:3e:00:00:01"
    nbctl("ls-add", d["switch"], "--", "set", "logical_switch", d["switch"], "other_config:mcast_snoop=false")
    options = nbctl(
        "create",
        "DHCP_Options",
        f"cidr={d['cidr']}",
        f'options="lease_time"="3600" "router"="{d["gateway_ip"]}" "server_id"="{d["gateway_ip"]}" '
        f'"server_mac"="{dhcp_mac}" "mtu"="{d["mtu"]}"',
    ).stdout.strip()
    d["dhcp_options"] = options
    router_mac = mac_for(lab_uuid("port", "router-1"))
    nbctl(
        "lr-add",
        d["router"],
        "--",
        "lrp-add",
        d["router"],
        "lrp-private",
        router_mac,
        f"{d['gateway_ip']}/{d['prefixlen']}",
        "--",
        "lsp-add",
        d["switch"],
        "private-router",
        "--",
        "lsp-set-type",
        "private-router",
        "router",
        "--",
        "lsp-set-addresses",
        "private-router",
        "router",
        "--",
        "lsp-set-options",
        "private-router",
        "router-port=lrp-private",
    )
    if d["gateways"]:
        ext = ipaddress.ip_network(EXTERNAL_CIDR)
        nbctl(
            "lrp-add",
            d["router"],
            "lrp-gateway",
            mac_for(lab_uuid("port", "router-gw")),
            f"{ext[2]}/{ext.prefixlen}",
        )
        for priority, chassis in enumerate(reversed(d["gateways"]), start=1):
            nbctl("lrp-set-gateway-chassis", "lrp-gateway", chassis, str(priority))
    for vm in d["vms"]:
        lsp = vm["port_id"]
        # As Neutron's OVN driver writes a port (neutron/plugins/ml2/drivers/ovn/mech_driver/ovsdb/
        # ovn_client.py: addresses and port_security "MAC IP"; _configure_requested_chassis_options sets
        # options:requested-chassis to the binding host, neutron/common/ovn/constants.py
        # LSP_OPTIONS_REQUESTED_CHASSIS_KEY).
        nbctl(
            "lsp-add",
            d["switch"],
            lsp,
            "--",
            "lsp-set-addresses",
            lsp,
            f"{vm['mac']} {vm['ip']}",
            "--",
            "lsp-set-port-security",
            lsp,
            f"{vm['mac']} {vm['ip']}",
            "--",
            "lsp-set-dhcpv4-options",
            lsp,
            options,
            "--",
            "lsp-set-options",
            lsp,
            f"requested-chassis={vm['host']}",
        )


def _plug(state: dict, d: dict, vm: dict) -> None:
    node = next(n for n in state["nodes"] if n["name"] == vm["host"])
    state["netns"].append(vm["netns"])
    save_state(state)
    sh("ip", "netns", "add", vm["netns"])
    in_ns(vm["netns"], "ip", "link", "set", "lo", "up")
    sh(
        "ip",
        "link",
        "add",
        vm["tap"],
        "netns",
        node["namespace"],
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        vm["netns"],
    )
    in_ns(vm["netns"], "ip", "link", "set", "eth0", "address", vm["mac"])
    for ns, dev in ((node["namespace"], vm["tap"]), (vm["netns"], "eth0")):
        in_ns(ns, "ethtool", "-K", dev, "tx", "off", check=False)
        in_ns(ns, "ip", "link", "set", dev, "mtu", str(d["mtu"]), "up")
    # ovn-controller creates br-int itself (ovn-bridge-datapath-type); wait for it before plugging.
    wait_for(
        lambda: vsctl(vm["host"], "br-exists", INTEGRATION_BRIDGE, check=False).returncode == 0,
        20,
        f"ovn-controller on {vm['host']} did not create {INTEGRATION_BRIDGE}",
    )
    # os-vif vif_plug_ovs/ovsdb/ovsdb_lib.py (BaseOVS.create_ovs_vif_port): the external_ids Nova's
    # os-vif sets on a VM's port: iface-id (the Neutron port id, which OVN binds), iface-status,
    # attached-mac, vm-uuid.
    vsctl(
        vm["host"],
        "--may-exist",
        "add-port",
        INTEGRATION_BRIDGE,
        vm["tap"],
        "--",
        "set",
        "Interface",
        vm["tap"],
        f"external_ids:iface-id={vm['port_id']}",
        "external_ids:iface-status=active",
        f"external_ids:attached-mac={vm['mac']}",
        f"external_ids:vm-uuid={vm['vm_uuid']}",
    )


def bfd_not_up(state: dict) -> list[str]:
    """Tunnels whose BFD is enabled (ovn-controller turns it on towards gateway chassis) but not up."""
    out = []
    for node in state["nodes"]:
        listing = vsctl(node["name"], "--format=json", "--columns=name,type,bfd,bfd_status", "list", "Interface")
        doc = json.loads(listing.stdout)
        for name, kind, bfd, status in doc["data"]:
            if kind == "geneve" and dict(bfd[1]).get("enable") == "true" and dict(status[1]).get("state") != "up":
                out.append(f"{node['name']}:{name}")
    return out


def _chassis_count() -> int:
    out = sbctl("--bare", "--columns=name", "list", "Chassis", check=False).stdout
    return len([line for line in out.splitlines() if line.strip()])


def port_up(port_id: str) -> bool:
    return nbctl("get", "Logical_Switch_Port", port_id, "up", check=False).stdout.strip() == "true"


def dhcp_lease(vm: dict, timeout: float = 20) -> None:
    """busybox udhcpc in the VM: OVN's native DHCP (pinctrl in ovn-controller) answers; the script sets the
    address. Retries are udhcpc's own (-t/-T)."""
    script = lab_dir() / "ovn" / "udhcpc.sh"
    if not script.exists():
        script.write_text(
            "#!/bin/sh\n"
            'if [ "$1" = bound ] || [ "$1" = renew ]; then\n'
            '  ip addr flush dev "$interface"\n'
            '  ip addr add "$ip/$mask" dev "$interface"\n'
            '  [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"\n'
            "fi\nexit 0\n"
        )
        script.chmod(0o755)
    done = subprocess.run(
        ["ip", "netns", "exec", vm["netns"], "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f"]
        + ["-t", str(int(timeout)), "-T", "1", "-s", str(script)],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    if done.returncode != 0:
        raise LabError(f"{vm['name']} got no DHCP lease from OVN: {(done.stderr or done.stdout).strip()[-200:]}")


def ping(vm: dict, address: str, count: int = 3) -> bool:
    return (
        subprocess.run(
            ["ip", "netns", "exec", vm["netns"], "ping", "-c", str(count), "-i", "0.2", "-W", "1", address],
            capture_output=True,
        ).returncode
        == 0
    )


def controller_pid(node: str) -> int:
    try:
        return int((node_dir(node) / "ovn-controller.pid").read_text().strip())
    except (OSError, ValueError):
        return 0


def status(state: dict) -> dict[str, Any] | None:
    """What `steth lab status` says of the OVN part: the databases and which of its daemons run."""
    from steth.lab.shell import alive

    record = state.get("ovn")
    if not record:
        return None
    daemons = {
        name: alive(pid)
        for name, pid in state.get("pids", {}).items()
        if name.startswith(("ovsdb-server", "ovs-vswitchd", "ovn-")) and "@" in name
    }
    return {
        "nb_connection": record["design"]["nb_connection"],
        "sb_connection": record["design"]["sb_connection"],
        "gateways": record["design"]["gateways"],
        "vms": {vm["name"]: vm["host"] for vm in record["design"]["vms"]},
        "timings": record.get("timings", {}),
        "daemons_running": sorted(n for n, up in daemons.items() if up),
        "daemons_stopped": sorted(n for n, up in daemons.items() if not up),
    }
