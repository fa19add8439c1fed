from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options
from steth.schemas.probes.arping import ArpingParams


@click.command("arping")
@click.argument("address", metavar="ADDRESS")
@params_options(ArpingParams, exclude=("target",))
@gathering_command
def command(inv: Invocation, address: str, **options) -> None:
    """Send ARP requests for ADDRESS on --interface from the selected nodes: who answers, with which MAC.

    Works with either arping a distribution ships (iputils, or Thomas Habets'); one request a second.
    No reply is a finding, and so are replies from two different MACs (an address conflict): exit 1.
    A missing interface or namespace is `aborted` (exit 3).

    \b
    Examples:
      steth arping 10.0.0.1 --interface br-ex --role network
      steth arping 192.168.0.1 --interface qr-3b1a0c2e-4f --netns qrouter-5f1c... --count 5
    """
    from steth.schemas.probes import get

    spec = get("arping")
    params = collect(ArpingParams, options, target=address)

    gathered = inv.gather("arping", params)
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
