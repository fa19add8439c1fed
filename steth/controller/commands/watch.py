from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
import time

import click

from steth.controller import completion
from steth.controller.errors import UsageError
from steth.controller.options import Invocation, run_async
from steth.controller.output import View, note, safe
from steth.controller.results_view import (
    LINE_HEADERS,
    as_dict,
    check_probe,
    decode,
    exit_code,
    footer,
    line_cells,
    results_command,
    selected,
    subject_filter,
)


@click.command("watch")
@click.option("--probe", metavar="NAME", shell_complete=completion.probes, help="Only results of this probe.")
@click.option("--schedule", metavar="NAME", help='Only results of this schedule ("mesh" for the mesh).')
@click.option(
    "--duration", type=click.FloatRange(0.1, 86400), metavar="S", help="Stop after S seconds (default: until Ctrl-C)."
)
@results_command
def command(inv: Invocation, probe: str | None, schedule: str | None, duration: float | None) -> None:
    """Show scheduled results live, as the agents publish them.

    Agents publish each run of a [[schedule]] entry and of the mesh on steth.v1.results.<node>.<probe>;
    this prints one line per result (JSON/YAML: one document per result, one per line for JSON) until
    Ctrl-C or --duration. Exit 1 if a result was failed, 3 if none arrived or one could not run.

    \b
    Examples:
      steth watch
      steth watch --role compute --probe ping
      steth watch --node compute-1 --duration 60 -o json
    """
    check_probe(probe)
    subject = subject_filter(inv.selection, probe)
    seen = []
    f = inv.fmt
    if f.sort_columns:
        raise UsageError("--sort-column: a live stream cannot be sorted (steth history can)")
    shape = View(LINE_HEADERS, [])
    picked = shape.pick(f.columns) if f.columns else list(range(len(LINE_HEADERS)))
    columns = [shape.columns[i] for i in picked]

    def show(cells: list[str], header: bool = False) -> None:
        cells = [safe(str(cells[i])) for i in picked]  # what agents sent: no terminal escapes
        if f.format == "table":
            click.echo(_line(cells) if not f.columns else "  ".join(cells))
        elif f.format == "csv":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(cells)
            click.echo(buf.getvalue())
        elif not header:
            click.echo(" ".join(cells))

    async def go() -> float:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        started = time.monotonic()
        if f.format in ("table", "csv"):
            show(LINE_HEADERS, header=True)  # the header once; results follow as they come

        async def on_result(msg) -> None:
            res = decode(msg.data, msg.subject)
            if res is None or not selected(res, inv.selection, schedule):
                return
            seen.append(res)
            cells = line_cells(res, date=f.format != "table")
            if f.format in ("table", "csv", "value"):
                show(cells)
                return
            doc = {c.key: cells[i] for c, i in zip(columns, picked)} if f.columns else as_dict(res)
            if f.format == "json":
                click.echo(json.dumps(doc))
            else:
                import yaml

                click.echo("---\n" + yaml.safe_dump(doc, sort_keys=False).rstrip())

        async with inv.session() as s:
            sub = await s.nc.subscribe(subject, cb=on_result)
            try:
                await asyncio.wait_for(stop.wait(), timeout=duration)
            except TimeoutError:
                pass
            finally:
                await sub.unsubscribe()
        return time.monotonic() - started

    elapsed = run_async(go())
    note(footer(seen, elapsed, f"in {elapsed:.1f} s"))
    click.get_current_context().exit(exit_code(seen))


# Lines are printed as results arrive, so columns have fixed widths (long names just push the rest right).
WIDTHS = (8, 16, 12, 8, 8, 8)


def _line(cells: list[str]) -> str:
    return "  ".join([*(c.ljust(w) for c, w in zip(cells, WIDTHS)), *cells[len(WIDTHS) :]]).rstrip()
