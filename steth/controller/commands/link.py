"""steth link setup|add-vlan|teardown: mutating plumbing, refused unless the agents' policy allows it.

Everything created carries the alias `steth:<request-id>:<expires>`; teardown removes only such links.
"""

from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options
from steth.schemas.probes.link_add_vlan import LinkAddVlanParams
from steth.schemas.probes.link_setup import LinkSetupParams
from steth.schemas.probes.link_teardown import LinkTeardownParams


def confirm_broadcast(inv: Invocation, what: str) -> None:
    """A mutating probe sent to every node asks first (design: CLI conventions)."""
    if inv.selection.empty and not inv.yes:
        click.confirm(f"{what} on EVERY node (no --node/--role given)?", abort=True, err=True)


def send(inv: Invocation, probe: str, params) -> None:
    from steth.schemas.probes import get

    spec = get(probe)

    gathered = inv.gather(probe, params)
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())


@click.group("link")
def command() -> None:
    """Create and remove links for tests, only where the agent's policy allows mutating probes.

    What steth creates is marked with the interface alias steth:<request-id>:<expires>, removed by
    `steth link teardown`, at its --ttl, or when the agent stops. Existing interfaces are never changed,
    and their addresses are never touched. A request that does not finish undoes what it created.
    """


@command.command("setup")
@click.option("--yes", is_flag=True, help="Do not ask before a broadcast to every node.")
@params_options(LinkSetupParams)
@gathering_command
def setup(inv: Invocation, **options) -> None:
    """Create a veth pair, macvlan or bridge with an address, and bring it up.

    \b
    Examples:
      steth link setup --node compute-1 --name st0 --cidr 192.0.2.10/24
      steth link setup --node compute-1 --name stm0 --kind macvlan --parent data0 --cidr 10.98.0.200/24 --check 10.98.0.12
    """
    params = collect(LinkSetupParams, options)
    confirm_broadcast(inv, f"create {params.kind} {params.name}")
    send(inv, "link-setup", params)


@command.command("add-vlan")
@click.option("--yes", is_flag=True, help="Do not ask before a broadcast to every node.")
@params_options(LinkAddVlanParams)
@gathering_command
def add_vlan(inv: Invocation, **options) -> None:
    """Create an 802.1Q subinterface PARENT.VLAN with an address (aborted where the kernel lacks 802.1Q).

    \b
    Example:
      steth link add-vlan --node compute-1 --parent eth1 --vlan 100 --cidr 192.0.2.10/24
    """
    params = collect(LinkAddVlanParams, options)
    confirm_broadcast(inv, f"create VLAN {params.vlan_id} on {params.parent}")
    send(inv, "link-add-vlan", params)


@command.command("teardown")
@click.option("--yes", is_flag=True, help="Do not ask before a broadcast to every node.")
@params_options(LinkTeardownParams, exclude=("names",))
@click.argument("names", nargs=-1, metavar="[NAME...]")
@gathering_command
def teardown(inv: Invocation, names: tuple[str, ...], **options) -> None:
    """Remove links steth created, by NAME or --all-marked; an interface without the steth mark is refused.

    \b
    Examples:
      steth link teardown st0 --node compute-1
      steth link teardown --all-marked --role compute
    """
    params = collect(LinkTeardownParams, options, names=list(names))
    confirm_broadcast(inv, "remove " + (", ".join(params.names) or "every steth-marked link"))
    send(inv, "link-teardown", params)
