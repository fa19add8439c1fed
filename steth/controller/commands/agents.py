from __future__ import annotations

import click

from steth.controller.errors import EXIT_INCOMPLETE, EXIT_OK
from steth.controller.inventory import inventory_report, os_options
from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import Column, View, emit, fmt


def _addresses(info) -> str:
    return " ".join(f"{i.name}={a}" for i in info.interfaces if i.name != "lo" for a in i.addresses if ":" not in a)


@click.command("agents")
@click.option(
    "--inventory",
    is_flag=True,
    help="Compare with OpenStack: hosts with Neutron agents or a hypervisor but "
    "no steth agent, steth agents OpenStack does not know, Neutron agents down (exit 1 on a finding).",
)
@os_options
@click.option(
    "--write-sd",
    "write_sd",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write a Prometheus file_sd target list (agents with a metrics address) to FILE and exit.",
)
@click.option(
    "--sd-keep",
    type=click.FloatRange(0, 30 * 86400),
    default=86400,
    show_default=True,
    metavar="S",
    help="With --write-sd: keep agents gone from presence this long, so their `up` turns 0.",
)
@gathering_command
def command(
    inv: Invocation,
    inventory: bool = False,
    write_sd: str | None = None,
    sd_keep: float = 86400,
) -> None:
    """List the agents in presence: roles, version, addresses, probes, heartbeat age, alive or stale.

    Reads the heartbeat entries agents keep in NATS JetStream (no request is sent). An agent whose
    heartbeat is older than 2.5 intervals is stale; it disappears when its entry's TTL runs out.
    Exit 3 when an agent is stale or a --node named is not present.
    """

    async def go():
        async with inv.session() as s:
            return await s.presence()

    present = run_async(go()) or {}
    if write_sd:  # steth.controller.prometheus_sd (issue 5): scrape targets for Prometheus
        click.get_current_context().exit(_write_sd(write_sd, present, inv, sd_keep))
    if inventory:  # steth.controller.inventory (issue 4): the OpenStack view beside presence
        click.get_current_context().exit(inventory_report(present))
    chosen = sorted((p for p in present.values() if inv.selection.matches(p.info)), key=lambda p: p.info.node)
    missing = [n for n in inv.selection.nodes if n not in present]
    stale = [p.info.node for p in chosen if not p.alive]
    columns = [
        Column("NODE"),
        Column("ROLES"),
        Column("VERSION"),
        Column("STATE"),
        Column("HEARTBEAT", "heartbeat_age_s", "s"),
        Column("DATA PLANE"),
        Column("PROBES"),
        Column("ADDRESSES"),
    ]
    rows = [
        [
            p.info.node,
            fmt(p.info.roles),
            p.info.version,
            "alive" if p.alive else "STALE",
            p.age_s,
            p.info.data_plane or "-",
            len(p.info.probes),
            _addresses(p.info),
        ]
        for p in chosen
    ]
    rows += [[n, "-", "-", "MISSING", None, "-", "-", "-"] for n in missing]
    agents = [
        {**p.info.model_dump(mode="json"), "heartbeat_age_s": round(p.age_s, 3), "alive": p.alive} for p in chosen
    ]
    summary = {"present": len(chosen), "alive": len(chosen) - len(stale), "stale": len(stale), "missing": missing}
    line = f"{len(chosen) - len(stale)} alive, {len(stale)} stale" + (
        f", missing: {', '.join(missing)}" if missing else ""
    )
    # The summary line is part of the table; JSON/YAML carry it as "summary".
    emit(View(columns, rows, doc={"summary": summary, "agents": agents}, after=[line] if inv.fmt.is_table else []))
    click.get_current_context().exit(EXIT_INCOMPLETE if stale or missing or not chosen else EXIT_OK)


def _write_sd(path: str, present: dict, inv: Invocation, keep_s: float) -> int:
    from pathlib import Path

    from steth.controller.errors import StethError
    from steth.controller.prometheus_sd import read_previous, target_groups, write_atomically

    groups, kept = target_groups(present, inv.selection, read_previous(Path(path)), keep_s)
    try:
        write_atomically(Path(path), groups)
    except OSError as exc:
        raise StethError(f"cannot write {path}: {exc}") from None
    click.echo(
        f"wrote {len(groups)} target(s) to {path}" + (f" ({kept} gone from presence, kept)" if kept else ""), err=True
    )
    return EXIT_OK
