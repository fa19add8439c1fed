from __future__ import annotations

import click

from steth.controller.errors import UsageError
from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options, wire_args
from steth.schemas import subjects
from steth.schemas.probes.mtu import MtuParams


def _check_to(to: str) -> None:
    if to.startswith("node:") and not subjects.NODE_NAME_RE.match(to[5:]):
        raise UsageError(f"TARGET {to!r}: not a node name")


async def _senders(s, inv: Invocation, exclude: str) -> list[str]:
    """The selected, live nodes except the target itself (its own path MTU would be the loopback's)."""
    present = await s.presence() or {}
    chosen = {n for n, p in present.items() if inv.selection.matches(p.info) and p.alive and n != exclude}
    chosen |= set(inv.selection.nodes)  # named nodes are expected even when silent (or the target)
    if not chosen:
        raise UsageError(f"no selected node to measure from (the target node {exclude} is left out)")
    return sorted(chosen)


@click.command("mtu")
@click.argument("target", required=False, metavar="TARGET")
@click.option("--to", "to", hidden=True)  # the old spelling of TARGET
@click.option("--plane", metavar="CIDR|IFACE", help="Resolve node:NAME on this plane (default: its data plane).")
@params_options(MtuParams, exclude=("target",))
@gathering_command
def command(inv: Invocation, target: str | None, to: str | None, plane: str | None, **options) -> None:
    """Path MTU from the selected nodes to a target: the largest don't-fragment ping that is answered.

    Each node pings with don't-fragment set (`ping -M do`), several sizes per round, and narrows the
    range between the largest size answered and the smallest lost until they meet. PATH MTU counts the
    whole IP packet (ICMP payload + 28 bytes for IPv4, + 48 for IPv6). A path MTU below --expect is a
    finding (exit 1); a target that answers no ping at all is a finding too. With node:NAME as TARGET that
    node is left out of the senders unless named with --node.

    \b
    Examples:
      steth mtu node:network-1 --role compute --expect 1500
      steth mtu 10.0.0.1 --node compute-1 --max 1600 -f json
      steth mtu 192.168.0.10 --netns qrouter-5f1c... --node network-1
    """
    from steth.schemas.probes import get

    spec = get("mtu")
    to = target or to
    if not to:
        raise click.UsageError("Missing argument 'TARGET' (an address, or node:NAME).")
    _check_to(to)
    collect(
        MtuParams, options, {"target": "TARGET"}, target="127.0.0.1" if to.startswith("node:") else to
    )  # bad input: exit 2 first

    async def go():
        async with inv.session() as s:
            if not to.startswith("node:"):
                params = collect(MtuParams, options, {"target": "TARGET"}, target=to)
                return await s.run("mtu", inv.selection, inv.timeout_or(spec.timeout_for(params)), wire_args(params))
            params = collect(MtuParams, options, {"target": "TARGET"}, target=await s.node_address(to[5:], plane))
            per_node = {n: wire_args(params) for n in await _senders(s, inv, to[5:])}
            return await s.run("mtu", inv.selection, inv.timeout_or(spec.timeout_for(params)), per_node_args=per_node)

    gathered = run_async(go())
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
