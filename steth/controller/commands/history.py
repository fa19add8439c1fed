from __future__ import annotations

import datetime as dt
import re
import time

import click

from steth.controller import completion
from steth.controller.errors import StethError, UsageError
from steth.controller.options import Invocation, run_async
from steth.controller.output import View, emit
from steth.controller.results_view import (
    LINE_HEADERS,
    as_dict,
    check_probe,
    counts,
    decode,
    exit_code,
    footer,
    line_cells,
    parse_since,
    probe_view,
    results_command,
    selected,
    subject_filter,
)
from steth.schemas.results import RESULTS_STREAM

# Messages read at most, whatever the window: the stream's own limits bound it too.
MAX_READ = 200_000


async def read_results(nc, stream: str, subject: str, since: float, idle_s: float = 2.0) -> list[tuple[str, bytes]]:
    """Every message on `subject` in the stream from `since` on, oldest first (an ordered consumer): (subject,
    payload) pairs, since a result is attributed to the node of its subject."""
    import nats.errors
    from nats.js.api import ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    js = nc.jetstream(timeout=5)
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        raise StethError(
            f"no results stream {stream!r} in JetStream: no agent has published a scheduled result yet"
        ) from None
    if info.state.messages == 0:
        return []
    start = dt.datetime.fromtimestamp(since, dt.UTC).isoformat().replace("+00:00", "Z")
    sub = await js.subscribe(
        subject,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.BY_START_TIME,
        config=ConsumerConfig(opt_start_time=start),
        inactive_threshold=30,
    )
    out = []
    try:
        if (await sub.consumer_info()).num_pending == 0 and sub.delivered == 0:
            return []
        while len(out) < MAX_READ:
            try:
                msg = await sub.next_msg(timeout=idle_s)
            except (TimeoutError, nats.errors.TimeoutError):
                break  # nothing more came: we have read up to the end
            out.append((msg.subject, msg.data))
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out


@click.command("history")
@click.option(
    "--probe",
    metavar="NAME",
    shell_complete=completion.probes,
    help="Only results of this probe (the table then shows its columns).",
)
@click.option("--schedule", metavar="NAME", help='Only results of this schedule ("mesh" for the mesh).')
@click.option(
    "--since", default="1h", show_default=True, metavar="WHEN", help="How far back: 30s, 15m, 1h, 2d, or an ISO time."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Show at most the newest N results.",
)
@click.option("--stream", default=RESULTS_STREAM, show_default=True, help="The JetStream stream agents publish to.")
@results_command
def command(inv: Invocation, probe: str | None, schedule: str | None, since: str, limit: int, stream: str) -> None:
    """Read scheduled results back from the results stream.

    Agents keep each scheduled run's result in a JetStream stream (bounded by age and size, see the
    agent's [results] section). Table: one line per result, or with --probe one line per result row
    with the probe's columns; JSON/YAML: one document. Exit 1 if a result in the window was failed,
    3 if there is none or one could not run.

    \b
    Examples:
      steth history --probe ping --since 1h
      steth history --schedule mesh --node compute-1 --since 15m -o json
    """
    check_probe(probe)
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", stream):  # it becomes a token of a JetStream API subject
        raise UsageError(f"--stream {stream!r}: letters, digits, '_' and '-' only")
    start = parse_since(since)
    subject = subject_filter(inv.selection, probe)
    began = time.monotonic()

    async def go() -> list[tuple[str, bytes]]:
        async with inv.session() as s:
            return await read_results(s.nc, stream, subject, start)

    raw = run_async(go())
    results = [
        r for r in (decode(d, subj) for subj, d in raw) if r is not None and selected(r, inv.selection, schedule)
    ]
    results = [r for r in results if r.finished >= start][-limit:]
    elapsed = time.monotonic() - began
    doc = {
        "probe": probe,
        "schedule": schedule,
        "since": dt.datetime.fromtimestamp(start).astimezone().isoformat(),
        "summary": counts(results),
        "results": [as_dict(r) for r in results],
    }
    after = [footer(results, elapsed, f"since {dt.datetime.fromtimestamp(start):%Y-%m-%d %H:%M:%S}")]
    if probe:
        from steth.schemas.probes import registry

        emit(probe_view(results, registry()[probe], doc=doc, after=after))
    else:
        emit(View(LINE_HEADERS, [line_cells(r) for r in results], doc=doc, after=after))
    click.get_current_context().exit(exit_code(results))
