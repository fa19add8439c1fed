"""Scheduled results as `steth watch` and `steth history` show them: selection, decoding, rendering."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import click

from steth import codec
from steth.controller.errors import UsageError
from steth.controller.options import Invocation, selector_options
from steth.controller.output import fmt, format_options, result_rows
from steth.controller.session import Selection
from steth.schemas import subjects
from steth.schemas.envelope import INCOMPLETE, Status
from steth.schemas.results import ScheduledResult

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
MAX_SINCE_S = 366 * 86400

log = logging.getLogger("steth.controller")


def results_command(f: Callable) -> Callable:
    """--node/--role/--all and -o; the command gets an `inv: Invocation` first (like gathering commands)."""

    @functools.wraps(f)
    def wrapper(*args: Any, nodes=(), roles=(), select_all=False, **kwargs: Any):
        group = click.get_current_context().find_root().obj or {}
        selection = Selection(tuple(nodes), tuple(roles), select_all)
        selection.validate()
        inv = Invocation(group, selection, None, None, False)
        return f(inv, *args, **kwargs)

    wrapper = format_options(wrapper)
    return selector_options(wrapper)


def check_probe(probe: str | None) -> None:
    if probe is None:
        return
    from steth.schemas.probes import registry

    if probe not in registry():
        raise UsageError(f"unknown probe {probe!r} (known: {', '.join(registry())})")


def parse_since(text: str, now: float | None = None) -> float:
    """'90s', '15m', '1h', '2d', '1w' ago, or an ISO 8601 time: the start as seconds since the epoch."""
    now = time.time() if now is None else now
    m = _DURATION.match(text.strip().lower())
    if m:
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
        if not 0 < seconds <= MAX_SINCE_S:
            raise UsageError(f"--since {text!r}: between 1s and {MAX_SINCE_S // 86400} days")
        return now - seconds
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r}: a duration (30s, 15m, 1h, 2d) or an ISO time (2024-05-01T10:00)") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as people type it
    return when.timestamp()


def subject_filter(selection: Selection, probe: str | None) -> str:
    """One subject filter: a single node's results, or everyone's (roles and lists are filtered here)."""
    last = probe or "*"
    if len(selection.nodes) == 1 and not selection.roles and not selection.all:
        return f"{subjects.RESULTS}.{subjects.token(selection.nodes[0])}.{last}"
    return f"{subjects.RESULTS}.*.{last}"


def selected(res: ScheduledResult, selection: Selection, schedule: str | None) -> bool:
    if schedule and res.schedule != schedule:
        return False
    if selection.all or selection.empty:
        return True
    return res.node in selection.nodes or bool(set(selection.roles) & set(res.roles))


def decode(data: bytes, subject: str | None = None) -> ScheduledResult | None:
    """A result, attributed by its subject: an agent identity may publish only below its own node's subject
    (docs/security.md), so a payload naming another node is dropped (logged at debug level)."""
    try:
        res = ScheduledResult.model_validate(codec.decode(data))
    except (codec.DecodeError, ValueError):
        return None
    if subject is not None:
        node = subjects.results_node(subject)
        if node != res.node:
            log.debug(
                "a result on %s names node %r: dropped (a result speaks for its subject's node)", subject, res.node
            )
            return None
    return res


def when(ts: float, date: bool = True) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(ts))


def summary(res: ScheduledResult) -> str:
    """One line: per target "name loss rtt" for ping-like rows, the path MTU, or the message."""
    rows = (res.result or {}).get("targets") if res.result else None
    parts = []
    if isinstance(rows, list):
        for row in rows:
            name = res.peers.get(row.get("target"), row.get("target"))
            if row.get("error") and not row.get("sent"):
                parts.append(f"{name} error")
            else:
                rtt = row.get("rtt_avg_ms")
                parts.append(
                    f"{name} {fmt(row.get('loss'), 'ratio')}" + (f" {fmt(rtt, 'ms')}ms" if rtt is not None else "")
                )
    elif res.result and res.result.get("path_mtu_bytes") is not None:
        target = res.result.get("target", "")
        parts.append(f"{res.peers.get(target, target)} mtu {res.result['path_mtu_bytes']}")
    elif res.result:
        bps = {k: v for k, v in res.result.items() if k.endswith("_bps") and isinstance(v, (int, float))}
        parts += [f"{k[:-4]} {fmt(v, 'bps')}" for k, v in bps.items()]
    text = ", ".join(parts)
    if res.message:
        text = f"{text}  ({res.message})" if text else res.message
    return text or "-"


def line_cells(res: ScheduledResult, date: bool = True) -> list[str]:
    return [
        when(res.finished, date),
        res.node,
        res.schedule,
        res.probe,
        res.status.value,
        f"{res.duration_s:.2f}s",
        summary(res),
    ]


LINE_HEADERS = ["TIME", "NODE", "SCHEDULE", "PROBE", "STATUS", "DURATION", "SUMMARY"]


def probe_view(results: list[ScheduledResult], spec, **view: Any):
    """One row per result row with the probe's declared columns (targets shown by node name)."""
    from steth.controller.output import Column, View

    columns = [
        Column("TIME"),
        Column("NODE"),
        Column("SCHEDULE"),
        Column("STATUS"),
        *(Column(c.header, c.key, c.unit) for c in spec.columns),
        Column("MESSAGE"),
    ]
    lines, groups = [], []
    for n, res in enumerate(results):
        for row in result_rows(res.result, spec.rows_key) or [{}]:
            row = dict(row)
            for key in ("target", "server"):  # addresses that came from node:NAME show as the node
                if isinstance(row.get(key), str):
                    row[key] = res.peers.get(row[key], row[key])
            cells = [row.get(c.key) if row else "" for c in spec.columns]
            lines.append([when(res.finished), res.node, res.schedule, res.status.value, *cells, res.message])
            groups.append(n)
    return View(columns, lines, groups=groups, grouped=("time", "node", "schedule", "status", "message"), **view)


def as_dict(res: ScheduledResult) -> dict[str, Any]:
    doc = res.model_dump(mode="json")
    doc["duration_s"] = round(res.duration_s, 4)
    return doc


def counts(results: list[ScheduledResult]) -> dict[str, int]:
    out: dict[str, int] = {"results": len(results), "nodes": len({r.node for r in results})}
    for status in Status:
        n = sum(1 for r in results if r.status is status)
        if n:
            out[status.value] = n
    return out


def exit_code(results: list[ScheduledResult]) -> int:
    """1 when a result is failed (a finding), 3 when none came or one could not run, else 0."""
    from steth.controller.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK

    statuses = {r.status for r in results}
    if Status.FAILED in statuses:
        return EXIT_FINDINGS
    if not results or statuses & INCOMPLETE:
        return EXIT_INCOMPLETE
    return EXIT_OK


def footer(results: list[ScheduledResult], elapsed_s: float, what: str) -> str:
    c = counts(results)
    detail = ", ".join(f"{c[s.value]} {s.value}" for s in Status if s.value in c)
    return f"{c['results']} result(s) from {c['nodes']} node(s) {what}" + (f" ({detail})" if detail else "")
