from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import View, document, emit, fmt, footer, gathered_view, table
from steth.controller.params import collect
from steth.schemas.probes.ovs import SPEC as OVS
from steth.schemas.probes.ovs import OvsParams

db_option = click.option(
    "--db",
    default=None,
    metavar="SOCKET",
    help="OVSDB to read: unix:/path or tcp:IP:PORT [default: the agent's $OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock].",
)


def _gather(inv: Invocation, **fields):
    """Validate (exit 2 on bad input, before any network), send the ovs probe, gather."""
    from steth.schemas.probes import get

    spec = get("ovs")
    params = collect(OvsParams, {k: v for k, v in fields.items() if v is not None})

    return spec, inv.gather("ovs", params)


def _findings_lines(gathered) -> list[str]:
    lines = []
    for node in gathered.nodes:
        result = node.parsed(OVS)
        for finding in result.findings[1:] if result else []:  # the first one is the node's message
            lines.append(f"{node.node}: {finding}")
    return lines


def _emit_with_findings(inv: Invocation, gathered, spec) -> None:
    view = gathered_view(gathered, spec)
    view.after[:0] = _findings_lines(gathered) if inv.fmt.is_table else []
    emit(view)


@click.group("ovs")
def command() -> None:
    """Open vSwitch on the selected nodes, read from OVSDB (ovs-vsctl --format=json).

    Findings: a dead port (tag 4095), an interface with ofport -1, a patch port whose peer is missing or
    does not point back, a requested bridge or port that is absent. Exit 1 when a node has findings.

    \b
    Examples:
      steth ovs bridges --role compute
      steth ovs ports --bridge br-int --node compute-1
      steth ovs port tap1b2c3d4e-5f
      steth ovs check --bridge br-int --port patch-tun --port int-br-ex --role compute
      steth ovs ports --db tcp:127.0.0.1:6640
    """


@command.command("bridges")
@db_option
@gathering_command
def bridges_cmd(inv: Invocation, db: str | None) -> None:
    """Bridges: datapath type, fail mode, number of ports, controllers."""
    spec, gathered = _gather(inv, view="bridges", db=db)
    rows, groups = [], []
    for node in gathered.nodes:
        result = node.parsed(OVS)
        for b in (result and result.bridges) or [None]:
            cells = ("name", "datapath_type", "fail_mode", "ports", "controllers")
            rows.append([node.node, node.status.value, *(getattr(b, c, None) for c in cells), node.message])
            groups.append(node.node)
    columns = ["NODE", "STATUS", "BRIDGE", "DATAPATH", "FAIL-MODE", "PORTS", "CONTROLLERS", "MESSAGE"]
    emit(
        View(
            columns,
            rows,
            doc=document(gathered),
            groups=groups,
            grouped=("node", "status", "message"),
            after=[footer(gathered)],
        )
    )
    click.get_current_context().exit(gathered.exit_code())


@command.command("ports")
@click.option("--bridge", default=None, metavar="NAME", help="Only the ports of this bridge.")
@db_option
@gathering_command
def ports_cmd(inv: Invocation, bridge: str | None, db: str | None) -> None:
    """Ports: ofport, tag, trunks, type, link state, Neutron's iface-id and attached-mac, patch peer."""
    spec, gathered = _gather(inv, view="ports", bridge=bridge, db=db)
    _emit_with_findings(inv, gathered, spec)
    click.get_current_context().exit(gathered.exit_code())


DETAIL = (
    "bridge",
    "type",
    "ofport",
    "tag",
    "trunks",
    "vlan_mode",
    "interfaces",
    "mac_in_use",
    "link_state",
    "admin_state",
    "error",
    "iface_id",
    "attached_mac",
    "vm_uuid",
    "iface_status",
    "net_uuid",
    "segmentation_id",
    "network_type",
    "physical_network",
    "peer",
    "peer_ok",
    "findings",
)


@command.command("port")
@click.argument("name")
@db_option
@gathering_command
def port_cmd(inv: Invocation, name: str, db: str | None) -> None:
    """One port in full, on the nodes that have it (a port found on no node is a finding)."""
    spec, gathered = _gather(inv, view="port", ports=[name], db=db)
    found = {n.node: n.parsed(OVS) for n in gathered.nodes}
    holders = [node for node, result in found.items() if result and result.ports]
    text, rows = [], []
    for node in gathered.nodes:
        for port in found[node.node].ports if found[node.node] else []:
            text.append(
                f"{node.node}: port {port.name} ({node.status.value}{': ' + node.message if node.message else ''})"
            )
            fields = [[key, getattr(port, key)] for key in DETAIL]
            for mapping in ("external_ids", "other_config", "options"):
                fields += [[f"{mapping}:{k}", v] for k, v in sorted(getattr(port, mapping).items())]
            text.append(table(["FIELD", "VALUE"], [[f"  {k}", fmt(v)] for k, v in fields]))
            rows += [[node.node, port.name, k, v] for k, v in fields]
    problems = [
        f"{n.node}: {n.status.value}: {n.message}" for n in gathered.nodes if n.status.value not in ("ok", "failed")
    ]
    where = f"port {name} found on: {', '.join(holders)}" if holders else f"port {name} found on no node"
    emit(
        View(
            ["NODE", "PORT", "FIELD", "VALUE"],
            rows,
            doc=document(gathered, port=name, found_on=holders),
            text="\n".join(text),
            after=[*problems, where, footer(gathered)] if inv.fmt.is_table else [footer(gathered)],
        )
    )
    code = gathered.exit_code()
    if code == 0 and not holders:
        code = 1
    click.get_current_context().exit(code)


@command.command("check")
@click.option("--bridge", default=None, metavar="NAME", help="This bridge must exist; only its ports are checked.")
@click.option(
    "--port", "ports", multiple=True, metavar="NAME", help="This port must exist (repeatable); only these are checked."
)
@db_option
@gathering_command
def check_cmd(inv: Invocation, bridge: str | None, ports: tuple[str, ...], db: str | None) -> None:
    """Check a bridge and ports: absent, dead (tag 4095), ofport -1, broken patch peers are findings."""
    spec, gathered = _gather(inv, view="check", bridge=bridge, ports=list(ports) or None, db=db)
    _emit_with_findings(inv, gathered, spec)
    click.get_current_context().exit(gathered.exit_code())
