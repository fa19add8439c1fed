from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options
from steth.schemas.probes.netns import NetnsParams


@click.command("netns")
@params_options(NetnsParams)
@gathering_command
def command(inv: Invocation, **options) -> None:
    """List the network namespaces on the selected nodes, with their interfaces and addresses.

    KIND follows Neutron's naming: qdhcp-<network id> (DHCP agent), qrouter-<router id> (L3 agent),
    snat-<router id> (DVR SNAT), fip-<external network id> (DVR floating IPs), ovnmeta-<network id>
    (OVN metadata); anything else is `other`. JSON adds the id after the prefix (neutron_id) and every
    interface with its state. Use the names with --netns on ping, tcp-check, arping, mtu and interface.

    \b
    Examples:
      steth netns --role network
      steth netns --kind qrouter -o json
      steth netns --prefix qdhcp-8a2f --node network-1
    """
    from steth.schemas.probes import get

    spec = get("netns")
    params = collect(NetnsParams, options)

    gathered = inv.gather("netns", params)
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
