"""Rendering: tables for people, one JSON or YAML document for scripts, and the footer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

from steth.controller.gather import Gathered
from steth.schemas.envelope import Status


def fmt(value: Any, unit: str = "") -> str:
    if value is None or value == "":
        return "-"
    if unit == "ms":
        return f"{value:.3f}"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "bps":
        return _scaled(value, 1000, ["bit/s", "Kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"])
    if unit == "bytes":
        return _scaled(value, 1024, ["B", "KiB", "MiB", "GiB", "TiB"])
    if unit == "s":
        return f"{value:.1f}s"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _scaled(value: float, base: int, names: list[str]) -> str:
    for name in names:
        if abs(value) < base or name == names[-1]:
            return f"{value:.1f} {name}" if name != names[0] else f"{value:.0f} {name}"
        value /= base
    return str(value)


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    rows = [list(map(str, r)) for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), *(line(r) for r in rows)])


def document(gathered: Gathered, **extra: Any) -> dict[str, Any]:
    """The JSON shape of every gathered command."""
    doc = {
        "probe": gathered.probe,
        "request_id": gathered.request_id,
        "elapsed_s": round(gathered.elapsed_s, 3),
        "summary": gathered.summary(),
        **extra,
        "nodes": [n.as_dict() for n in gathered.nodes],
    }
    return doc


def emit_document(doc: dict[str, Any], output: str) -> None:
    if output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).rstrip())
    else:
        click.echo(json.dumps(doc, indent=2))


def footer(gathered: Gathered) -> str:
    s = gathered.summary()
    outside = gathered.without_presence()
    # Nodes that answered without a presence entry count as answers: "6/6", not "6/5".
    total = s["expected"] + len(outside) if s["expected"] is not None else s["replied"]
    text = f"{s['replied']}/{total} nodes replied in {gathered.elapsed_s:.2f} s"
    counts = [f"{s[st.value]} {st.value}" for st in Status if s[st.value] and st is not Status.NO_REPLY]
    if counts:
        text += " (" + ", ".join(counts) + ")"
    silent = gathered.silent()
    if silent:
        text += "\nno reply from: " + ", ".join(silent)
    if outside:
        text += "\nanswered without a presence entry (expired or not yet written): " + ", ".join(outside)
    if s["expected"] is None:
        text += "\n(no presence bucket: nodes that never answered cannot be named)"
    elif s["expected"] == 0:
        text += "\n(no agent in presence matches the selection: `steth agents` lists them)"
    return text


def emit_footer(gathered: Gathered, output: str) -> None:
    # JSON and YAML stay one clean document on stdout; the footer goes to stderr.
    click.echo(footer(gathered), err=output != "table")


def result_rows(result: dict[str, Any] | None, rows_key: str | None) -> list[dict[str, Any]]:
    if not result:
        return []
    if rows_key:
        return list(result.get(rows_key) or [])
    return [result]


def gathered_table(gathered: Gathered, spec) -> str:
    """NODE and STATUS, then the probe's declared columns, one line per result row, then MESSAGE."""
    headers = ["NODE", "STATUS", *(c.header for c in spec.columns), "MESSAGE"]
    lines = []
    for node in gathered.nodes:
        rows = result_rows(node.result, spec.rows_key) or [{}]
        for i, row in enumerate(rows):
            cells = [fmt(row.get(c.key), c.unit) if row else "" for c in spec.columns]
            first = i == 0
            lines.append(
                [node.node if first else "", node.status.value if first else "", *cells, node.message if first else ""]
            )
    return table(headers, lines)


def emit_gathered(gathered: Gathered, spec, output: str, **extra: Any) -> None:
    if output == "table":
        click.echo(gathered_table(gathered, spec))
    else:
        emit_document(document(gathered, **extra), output)
    emit_footer(gathered, output)
