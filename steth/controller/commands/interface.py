from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options
from steth.schemas.probes.interface import InterfaceParams


@click.command("interface")
@click.argument("iface", required=False, metavar="[IFACE]")
@params_options(InterfaceParams, exclude=("interface",))
@gathering_command
def command(inv: Invocation, iface: str | None, **options) -> None:
    """Show the links of the selected nodes (or only IFACE): state, carrier, MTU, MAC, addresses, counters.

    From `ip -j -s -d addr show` on each node (any distribution with iproute2). ADMIN is the up flag,
    OPER the kernel's operational state, CARRIER the lower layer; MASTER is the bridge or bond a link is
    enslaved to; VLAN the 802.1Q id of a VLAN link. JSON adds bytes, the parent link and the VLAN protocol.
    A named IFACE that is admin up without carrier is a finding (exit 1); a missing one is `aborted`.

    \b
    Examples:
      steth interface --role network
      steth interface data0 --node compute-1 -o json
      steth interface --netns qrouter-5f1c... --node network-1
    """
    from steth.schemas.probes import get

    spec = get("interface")
    params = collect(InterfaceParams, options, **({"interface": iface} if iface is not None else {}))

    gathered = inv.gather("interface", params)
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
