from __future__ import annotations

import click

from steth.controller.errors import EXIT_INCOMPLETE, EXIT_OK
from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import emit_document, fmt, table


def _addresses(info) -> str:
    return " ".join(f"{i.name}={a}" for i in info.interfaces if i.name != "lo" for a in i.addresses if ":" not in a)


@click.command("agents")
@gathering_command
def command(inv: Invocation) -> None:
    """List the agents in presence: roles, version, addresses, probes, heartbeat age, alive or stale.

    Reads the heartbeat entries agents keep in NATS JetStream (no request is sent). An agent whose
    heartbeat is older than 2.5 intervals is stale; it disappears when its entry's TTL runs out.
    Exit 3 when an agent is stale or a --node named is not present.
    """

    async def go():
        async with inv.session() as s:
            return await s.presence()

    present = run_async(go()) or {}
    chosen = sorted((p for p in present.values() if inv.selection.matches(p.info)), key=lambda p: p.info.node)
    missing = [n for n in inv.selection.nodes if n not in present]
    stale = [p.info.node for p in chosen if not p.alive]
    if inv.output == "table":
        rows = [[p.info.node, fmt(p.info.roles), p.info.version, "alive" if p.alive else "STALE", f"{p.age_s:.1f}s",
                 p.info.data_plane or "-", len(p.info.probes), _addresses(p.info)] for p in chosen]  # fmt: skip
        rows += [[n, "-", "-", "MISSING", "-", "-", "-", "-"] for n in missing]
        click.echo(table(["NODE", "ROLES", "VERSION", "STATE", "HEARTBEAT", "DATA PLANE", "PROBES", "ADDRESSES"], rows))
        click.echo(f"{len(chosen) - len(stale)} alive, {len(stale)} stale" + (f", missing: {', '.join(missing)}" if missing else ""))
    else:
        agents = [{**p.info.model_dump(mode="json"), "heartbeat_age_s": round(p.age_s, 3), "alive": p.alive} for p in chosen]
        summary = {"present": len(chosen), "alive": len(chosen) - len(stale), "stale": len(stale), "missing": missing}
        emit_document({"summary": summary, "agents": agents}, inv.output)
    click.get_current_context().exit(EXIT_INCOMPLETE if stale or missing or not chosen else EXIT_OK)
