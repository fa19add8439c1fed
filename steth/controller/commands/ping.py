from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options, wire_args
from steth.schemas.probes.ping import PingParams


async def resolve_targets(session, targets: tuple[str, ...], plane: str | None) -> list[str]:
    """`node:NAME` becomes that agent's address on the plane; addresses pass through."""
    resolved = []
    for target in targets:
        if target.startswith("node:"):
            resolved.append(await session.node_address(target[5:], plane))
        else:
            resolved.append(target)
    return resolved


@click.command("ping")
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option(
    "--plane", metavar="CIDR|IFACE", help="Resolve node:NAME on this plane (default: each agent's data plane)."
)
@params_options(PingParams, exclude=("targets",))
@gathering_command
def command(inv: Invocation, targets: tuple[str, ...], plane: str | None, **options) -> None:
    """Ping TARGETs from the selected nodes, all targets of a node at once.

    A TARGET is an IP address or node:NAME (that agent's address on --plane). Each node reports sent,
    received, loss and RTT per target; a node whose loss to any target exceeds --max-loss is failed.

    \b
    Examples:
      steth ping 10.98.0.1 --role compute
      steth ping node:compute-2 --node compute-1 --count 10 --interval 0.1 -o json
      steth ping 192.0.2.10 --size 8972 --dont-fragment --max-loss 0.1
    """
    from steth.schemas.probes import get

    spec = get("ping")
    # Check every option before touching the network: bad input changes nothing and exits 2.
    addresses = [t for t in targets if not t.startswith("node:")]
    collect(PingParams, options, targets=addresses or ["127.0.0.1"])

    async def go():
        async with inv.session() as s:
            params = collect(PingParams, options, targets=await resolve_targets(s, targets, plane))
            return await s.run("ping", inv.selection, inv.timeout_or(spec.timeout_for(params)), wire_args(params))

    gathered = run_async(go())
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
