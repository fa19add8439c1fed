from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options, wire_args
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

    async def go():
        async with inv.session() as s:
            return await s.run("netns", inv.selection, inv.timeout_or(spec.timeout_for(params)), wire_args(params))

    gathered = run_async(go())
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
