from __future__ import annotations

import click

from steth.controller.errors import UsageError
from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import Column, View, document, emit, fmt, footer, table
from steth.controller.params import collect, params_options, wire_args
from steth.schemas.envelope import Status
from steth.schemas.probes.ping import SPEC as PING
from steth.schemas.probes.ping import PingParams


def mesh_pairs(gathered, addresses: dict[str, str]) -> list[dict]:
    """One entry per (from, to): the ping row of `from` for `to`'s address, or why there is none."""
    pairs = []
    for node in gathered.nodes:
        result = node.parsed(PING)
        rows = {r.target: r for r in result.targets} if result else {}
        for peer, address in sorted(addresses.items()):
            if peer == node.node:
                continue
            row = rows.get(address)
            pair = {"from": node.node, "to": peer, "address": address, "status": node.status.value}
            if row:
                pair.update(
                    {
                        k: getattr(row, k)
                        for k in ("sent", "received", "loss", "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "error")
                    }
                )
            else:
                pair.update({"loss": None, "rtt_avg_ms": None, "error": node.message or node.status.value})
            pairs.append(pair)
    return pairs


def matrix(nodes: list[str], pairs: list[dict]) -> str:
    cell = {(p["from"], p["to"]): p for p in pairs}
    rows = []
    for src in nodes:
        line = [src]
        for dst in nodes:
            p = cell.get((src, dst))
            if src == dst:
                line.append("-")
            elif p is None or p.get("loss") is None:
                line.append("?")
            else:
                line.append(f"{fmt(p['loss'], 'ratio')} {fmt(p['rtt_avg_ms'], 'ms')}ms")
        rows.append(line)
    return table(["FROM \\ TO", *nodes], rows)


@click.command("mesh")
@click.option(
    "--plane", metavar="CIDR|IFACE", help="Ping each agent's address on this plane (default: its data plane)."
)
@params_options(PingParams, exclude=("targets", "interface", "netns"))
@gathering_command
def command(inv: Invocation, plane: str | None, **options) -> None:
    """Every selected node pings every other: a matrix of loss and average RTT.

    Rows are the sending node, columns the target; a cell reads "loss avg-rtt". JSON lists the pairs.
    A node whose loss to any peer exceeds --max-loss is failed (exit 1).

    \b
    Examples:
      steth mesh
      steth mesh --role compute --plane 10.98.0.0/24 --count 5 -o json
    """
    collect(PingParams, options, targets=["127.0.0.1"])  # bad options: exit 2 before any network

    async def go():
        async with inv.session() as s:
            present = await s.presence() or {}
            chosen = sorted(n for n, p in present.items() if inv.selection.matches(p.info))
            chosen = [n for n in chosen if n in inv.selection.nodes or present[n].alive]
            addresses = {n: present[n].info.address_on(plane) for n in chosen}
            missing = [n for n in inv.selection.nodes if n not in present]
            if missing:
                raise UsageError(f"not in presence: {', '.join(missing)}")
            no_address = [n for n, a in addresses.items() if not a]
            if no_address:
                raise UsageError(f"no address on {plane or 'the data plane'} for: {', '.join(no_address)}")
            if len(chosen) < 2:
                raise UsageError(f"a mesh needs at least two present nodes; selected: {', '.join(chosen) or 'none'}")
            per_node = {}
            for node in chosen:
                params = collect(PingParams, options, targets=[a for n, a in addresses.items() if n != node])
                per_node[node] = wire_args(params)
            timeout = inv.timeout_or(
                PingParams(
                    targets=["127.0.0.1"], **{k: v for k, v in options.items() if v is not None}
                ).expected_duration_s()
                * 1.2
                + 2
            )
            return await s.run("ping", inv.selection, timeout, per_node_args=per_node), addresses

    gathered, addresses = run_async(go())
    gathered.probe = "mesh"
    pairs = mesh_pairs(gathered, addresses)
    problems = [f"{n.node}: {n.status.value}: {n.message}" for n in gathered.nodes if n.status is not Status.OK]
    columns = [
        Column("FROM"),
        Column("TO"),
        Column("ADDRESS"),
        Column("STATUS"),
        Column("LOSS", "loss", "ratio"),
        Column("AVG", "rtt_avg_ms", "ms"),
        Column("ERROR"),
    ]
    rows = [[p.get(c.key) for c in columns] for p in pairs]
    emit(
        View(
            columns,
            rows,
            doc=document(gathered, pairs=pairs),
            text=matrix(sorted(addresses), pairs),
            after=[*(problems if inv.fmt.is_table else []), footer(gathered)],
        )
    )
    click.get_current_context().exit(gathered.exit_code())
