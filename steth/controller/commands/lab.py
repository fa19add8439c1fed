from __future__ import annotations

import click

from steth.controller.errors import StethError
from steth.controller.output import Column, View, current_format, emit, format_options


@click.group("lab")
def command() -> None:
    """A real local fleet for demos, tests and benchmarks.

    As root, each node is a network namespace (compute-1, ..., network-1) with a management and a
    data-plane interface; nats-server with JetStream runs on the management bridge and one steth-agent
    runs in each namespace. While a lab is up, `steth` finds its NATS server with no flags.
    """


@command.command("up")
@click.option("--compute", type=click.IntRange(0, 64), default=2, show_default=True, help="Compute nodes.")
@click.option("--network", type=click.IntRange(0, 16), default=1, show_default=True, help="Network nodes.")
@click.option("--mgmt-cidr", default="10.99.0.0/24", show_default=True, help="Management network (NATS).")
@click.option("--data-cidr", default="10.98.0.0/24", show_default=True, help="Data-plane fabric.")
@click.option(
    "--heartbeat",
    type=click.FloatRange(0.2, 60),
    default=1.0,
    show_default=True,
    metavar="S",
    help="Agents' heartbeat interval (presence TTL is three of them).",
)
@click.option("--allow-mutating", is_flag=True, help="Let the agents run probes that change the host.")
@click.option(
    "--ovs", is_flag=True, help="Add an Open vSwitch fabric: each node's trunk0 is a trunk port of one OVS bridge."
)
@click.option(
    "--trunks",
    default="0,100,101,102",
    show_default=True,
    metavar="VLANS",
    help="VLANs the --ovs trunk ports carry (0: untagged), e.g. 0,100-110.",
)
@click.option(
    "--openstack",
    is_flag=True,
    help="A miniature ML2/OVS deployment on an --ovs fabric (br-int, br-phys, VMs, "
    "qdhcp with dnsmasq, qrouter) and an OpenStack API describing it; writes clouds.yaml (see `steth lab env`).",
)
@click.option(
    "--neutron",
    type=click.Choice(["standin", "real"]),
    default="standin",
    show_default=True,
    help="With --openstack: `real` runs Neutron itself (API under uWSGI, RPC server, MariaDB, RabbitMQ) and its "
    "OVS, DHCP and L3 agents on the nodes, each node a host of its own; `standin` the hand-written miniature.",
)
@click.option(
    "--routers",
    type=click.Choice(["legacy", "ha"]),
    default="legacy",
    show_default=True,
    help="With --neutron real: `ha` makes the router HA (l3_ha = True, keepalived in a qrouter- on every network "
    "node, one active); needs --network 2.",
)
@click.option(
    "--ovs-use-veth",
    is_flag=True,
    help="With --openstack --neutron standin: wire the DHCP port as Neutron's ovs_use_veth = True does (a veth, "
    "tap<port> on br-int, ns-<port> in qdhcp). Default: Neutron's default, an OVS internal port moved into qdhcp.",
)
@click.option(
    "--ovn",
    is_flag=True,
    help="OVN of real daemons: NB, SB and ovn-northd in a central namespace; on every node its own Open vSwitch "
    "and ovn-controller with Geneve over the data network (network nodes are gateway chassis); a logical "
    "switch with OVN's DHCP, a VM per compute node and a router. Agents get an [ovn] table.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="An open lab: NATS without TLS or identities, agents accepting unsigned requests (insecure = true). "
    "Default: the lab's own CA, an nkey identity per node and for the controller, signed requests.",
)
def up_cmd(
    compute: int,
    network: int,
    mgmt_cidr: str,
    data_cidr: str,
    heartbeat: float,
    allow_mutating: bool,
    ovs: bool,
    trunks: str,
    openstack: bool = False,
    neutron: str = "standin",
    routers: str = "legacy",
    ovs_use_veth: bool = False,
    ovn: bool = False,
    insecure: bool = False,
) -> None:
    """Build the fleet; returns once every agent is present."""
    from steth.lab import fleet
    from steth.lab.ovs import parse_trunks
    from steth.lab.shell import LabError

    if compute + network == 0:
        raise click.UsageError("a lab needs at least one node")
    try:
        vlans = parse_trunks(trunks)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if neutron == "real" and not openstack:
        raise click.UsageError("--neutron real needs --openstack")
    if routers == "ha" and neutron != "real":
        raise click.UsageError("--routers ha goes with --openstack --neutron real")
    if routers == "ha" and network < 2:
        raise click.UsageError("--routers ha needs two network nodes (--network 2)")
    if ovs_use_veth and (neutron == "real" or not openstack):
        raise click.UsageError("--ovs-use-veth goes with --openstack and the stand-in Neutron (--neutron standin)")
    if ovn and (openstack or ovs):
        raise click.UsageError("--ovn builds its own Open vSwitch per node: not with --openstack or --ovs")
    # What every kind of lab takes; each adds its own below.
    common = dict(
        compute=compute,
        network=network,
        mgmt_cidr=mgmt_cidr,
        data_cidr=data_cidr,
        heartbeat_s=heartbeat,
        allow_mutating=allow_mutating,
        progress=lambda m: click.echo(f"lab: {m}", err=True),
        insecure=insecure,
    )
    try:
        if ovn:  # steth.lab.ovn (issue 11): the fleet, then OVN central, a chassis per node and the VMs
            from steth.lab import ovn as lab_ovn

            state = lab_ovn.up(**common)
        elif openstack and neutron == "real":  # steth.lab.neutron_lab (issue 10): Neutron itself and its agents
            from steth.lab import neutron_lab

            state = neutron_lab.up(**common, routers=routers)
        elif openstack:  # steth.lab.ml2 (issue 4): the fleet with ovs=True, then the ML2 pieces and the API
            from steth.lab import ml2

            state = ml2.up(**common, trunks=vlans, dhcp_wiring="veth" if ovs_use_veth else "internal")
        else:
            state = fleet.up(**common, ovs=ovs, trunks=vlans)
    except LabError as exc:
        raise StethError(f"lab up failed: {exc}") from None
    names = ", ".join(n["name"] for n in state["nodes"])
    click.echo(f"lab up: {len(state['nodes'])} nodes ({names}), NATS at {state['nats_url']}")
    if fleet.is_secure(state):
        sec = state["security"]
        click.echo(
            f"lab secure: TLS (CA {sec['ca']}), an nkey identity per node, signed requests (key {sec['key_id']}); "
            "`steth` finds them with no flags, `steth lab env` prints them"
        )
    else:
        click.echo("lab INSECURE (--insecure): anyone who reaches NATS steers the agents")
    if state.get("ovn"):
        o = state["ovn"]
        click.echo(
            f"lab OVN: NB {o['design']['nb_connection']}, SB {o['design']['sb_connection']}, "
            f"up in {o['timings']['total_s']} s"
        )
    if state.get("openstack", {}).get("auth_url"):
        click.echo(
            f"lab OpenStack API at {state['openstack']['auth_url']}, clouds.yaml {state['openstack']['clouds_yaml']}"
        )


@command.command("down")
def down_cmd() -> None:
    """Remove everything the lab made (namespaces, links, processes, files). Idempotent."""
    from steth.lab import fleet

    click.echo("lab down: removed" if fleet.down() else "lab down: nothing to remove")


@command.command("status")
@format_options
def status_cmd() -> None:
    """Each node's name, roles, namespace, agent pid, management and data-plane addresses."""
    from steth.lab import fleet

    st = fleet.status()
    doc = st or {"up": False, "nodes": []}
    rows = [
        [
            n["name"],
            ",".join(n["roles"]),
            n["namespace"] or "-",
            n["agent_pid"] or "-",
            "running" if n["agent_running"] else "stopped",
            n["mgmt_address"],
            n["data_address"],
        ]
        for n in doc["nodes"]
    ]
    before, after = [], []
    if st:
        before.append(
            f"lab {'up' if st['up'] else 'NOT up (incomplete)'}; NATS {st['nats_url']} "
            f"({'running' if st['nats_running'] else 'not running'}; {'secure' if st['secure'] else 'INSECURE'})"
        )
    if st and st.get("control_plane"):
        services = ", ".join(f"{name} {addr}" for name, addr in st["control_plane"].items())
        kind = "control plane (real Neutron)" if st.get("neutron") == "real" else "control-plane stand-ins"
        after.append(f"{kind} (nodes resolve the address as `controller`): {services}")
    if st and st.get("ovs"):
        o = st["ovs"]
        after.append(
            f"OVS fabric: bridge {o['bridge']} in namespace {o['netns']} ({'running' if o['running'] else 'NOT running'}), "
            f"db {o['db']}, trunk0 of each node carries VLANs {','.join(map(str, o['trunks']))}"
        )
    if st:
        from steth.lab import ovn as lab_ovn
        from steth.lab.state import load_state

        ovn = lab_ovn.status(load_state() or {})
        if ovn:
            doc["ovn"] = ovn
            after.append(
                f"OVN: NB {ovn['nb_connection']}, SB {ovn['sb_connection']}, gateway chassis "
                f"{', '.join(ovn['gateways']) or 'none'}; {len(ovn['daemons_running'])} daemons running"
                + (f", NOT running: {', '.join(ovn['daemons_stopped'])}" if ovn["daemons_stopped"] else "")
            )
    columns = [
        Column("NODE", "name"),
        Column("ROLES"),
        Column("NAMESPACE"),
        Column("PID", "agent_pid"),
        Column("AGENT", "agent"),
        Column("MGMT", "mgmt_address"),
        Column("DATA", "data_address"),
    ]
    table_only = current_format().is_table
    emit(
        View(
            columns,
            rows,
            doc=doc,
            text=None if st else "no lab",
            before=before if table_only else [],
            after=after if table_only else [],
        )
    )
    click.get_current_context().exit(0 if st and st["up"] else 3)


@command.command("env")
def env_cmd() -> None:
    """Print the shell variables that point steth at the lab: eval "$(steth lab env)"."""
    from steth.lab.state import load_state

    state = load_state()
    if not state or not state.get("up"):
        raise StethError("no lab is up (steth lab up)", 3)
    from steth.lab.fleet import client_env

    for key, value in client_env(state).items():
        click.echo(f"export {key}={value}")
    if state.get("openstack", {}).get("clouds_yaml"):
        click.echo(f"export OS_CLIENT_CONFIG_FILE={state['openstack']['clouds_yaml']}")
        click.echo(f"export OS_CLOUD={state['openstack']['cloud']}")
