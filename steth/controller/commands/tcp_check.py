from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options
from steth.schemas.probes.tcp_check import TcpCheckParams


@click.command("tcp-check")
@click.argument("targets", nargs=-1, required=True, metavar="HOST:PORT...")
@params_options(TcpCheckParams, exclude=("targets",))
@gathering_command
def command(inv: Invocation, targets: tuple[str, ...], **options) -> None:
    """Open a TCP connection from the selected nodes to each HOST:PORT: handshake time, or the error.

    For the control plane: the message queue, the database, the Neutron and Nova APIs, the metadata
    service. HOST is an IPv4 address, [IPv6] or a host name (resolved on the node). The connection is
    closed at once, no data is sent. Errors read `refused`, `timeout after N s`, `no route to host`,
    `cannot resolve: ...`. Any target not connected is a finding (exit 1). With --netns the connects run
    inside that namespace (a small helper started with `ip netns exec`).

    \b
    Examples:
      steth tcp-check 10.0.0.10:5672 10.0.0.10:3306 --role compute
      steth tcp-check keystone.example.org:5000 --connect-timeout 1 -o json
      steth tcp-check 169.254.169.254:80 --netns qdhcp-8a2f... --node network-1
    """
    from steth.schemas.probes import get

    spec = get("tcp-check")
    params = collect(TcpCheckParams, options, targets=list(targets))

    gathered = inv.gather("tcp-check", params)
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
