"""Rendering, as python-openstackclient does it: one renderer for every command.

`-f/--format table|json|yaml|value|csv` (`-o/--output` is its old, hidden spelling), `-c/--column NAME`
(repeatable), `--sort-column NAME` (repeatable) with `--sort-ascending/--sort-descending`, `--noindent`.
Given before or after the command; after wins. A command describes what it prints as a `View`: the table's
columns and rows, the JSON/YAML document, and optionally its own text for people (a matrix, packet lines).

- table: the command's own text, or the plain table once -c or --sort-column is given;
- value: the rows' cells separated by spaces, no header (`steth agents -f value -c node`);
- csv: a header line, then the rows (quoted where needed);
- json/yaml: the command's document; with -c or --sort-column, the rows as a list of objects instead.

Lines around the table (the footer, a verdict, notes) go to stdout for a table and to stderr for every
other format, so that stdout is exactly what a script asked for.

Everything an agent sends is untrusted text: before it reaches a terminal, control characters (C0, DEL, C1)
and Unicode bidi overrides/isolates (U+202A-U+202E, U+2066-U+2069) are shown escaped (`\\x1b`, `\\u202e`), in
every cell of table/value/csv output (newlines and tabs too: a cell is one line) and in the lines around it
and a command's own text (newlines kept: the command puts them there). JSON and YAML escape them already.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # `steth --help` imports this module for the options: nothing heavy at import time
    from steth.controller.gather import Gathered


# C0 (all of it), DEL, C1, and the bidi embeddings/overrides/isolates that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str, newlines: bool = False) -> str:
    """`text` with control characters and bidi overrides shown as escapes; `newlines`: keep line breaks."""
    return (_UNSAFE_KEEP_NL if newlines else _UNSAFE).sub(_escape, text)


def safe_lines(text: str) -> str:
    """A block of lines for the terminal (a footer, a command's own text): escapes, line breaks kept."""
    return safe(text, newlines=True)


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


def dump(doc: Any, output: str) -> str:
    """One JSON or YAML document (`--noindent`: JSON on one line)."""
    if output == "yaml":
        import yaml

        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).rstrip()
    return json.dumps(doc, indent=None if current_format().noindent else 2)


def emit_document(doc: dict[str, Any], output: str | None = None) -> None:
    """A command whose output is only a document: the document in json/yaml; rows of it need a View."""
    f = current_format()
    output = output if output in DOCUMENT_FORMATS else f.format
    if output not in DOCUMENT_FORMATS:
        output = "json"
    click.echo(dump(doc, output))


def footer(gathered: Gathered) -> str:
    from steth.schemas.envelope import Status

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


def emit_footer(gathered: Gathered, output: str | None = None) -> None:
    # JSON, YAML, value and CSV stay clean on stdout; the footer goes to stderr.
    note(footer(gathered))


def result_rows(result: dict[str, Any] | None, rows_key: str | None) -> list[dict[str, Any]]:
    if not result:
        return []
    if rows_key:
        return list(result.get(rows_key) or [])
    return [result]


def gathered_view(gathered: Gathered, spec, text: str | None = None, **extra: Any) -> View:
    """NODE and STATUS, then the probe's declared columns, one row per result row, then MESSAGE."""
    columns = [
        Column("NODE", "node"),
        Column("STATUS", "status"),
        *(Column(c.header, c.key, c.unit) for c in spec.columns),
        Column("MESSAGE", "message"),
    ]
    rows, groups = [], []
    for node in gathered.nodes:
        for row in result_rows(node.result, spec.rows_key) or [{}]:
            cells = [row.get(c.key) if row else "" for c in spec.columns]
            rows.append([node.node, node.status.value, *cells, node.message])
            groups.append(node.node)
    if not spec.columns:
        groups = []
    return View(
        columns,
        rows,
        doc=document(gathered, **extra),
        text=text,
        groups=groups,
        grouped=("node", "status", "message"),
        after=[footer(gathered)],
    )


def gathered_table(gathered: Gathered, spec) -> str:
    return gathered_view(gathered, spec).table()


def emit_gathered(gathered: Gathered, spec, output: str | None = None, **extra: Any) -> None:
    emit(gathered_view(gathered, spec, **extra))


# --- the one renderer --------------------------------------------------------------------------------

FORMATS = ("table", "json", "yaml", "value", "csv")
DOCUMENT_FORMATS = ("json", "yaml")
_META = "steth.format"


@dataclass
class Format:
    """The output options of one invocation (stored on the root context by the options' callbacks)."""

    format: str = "table"
    columns: list[str] = field(default_factory=list)
    sort_columns: list[str] = field(default_factory=list)
    descending: bool = False
    noindent: bool = False

    @property
    def reshaped(self) -> bool:
        """-c or --sort-column: the output is the table's rows, not the command's own text or document."""
        return bool(self.columns or self.sort_columns)

    @property
    def is_table(self) -> bool:
        return self.format == "table"


def current_format() -> Format:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Format()
    return ctx.find_root().meta.setdefault(_META, Format())


def _store(attr: str) -> Callable:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value == () or value is False:
            return value
        f = ctx.find_root().meta.setdefault(_META, Format())
        if attr in ("columns", "sort_columns"):
            getattr(f, attr).extend(v for v in value if v not in getattr(f, attr))
        else:
            setattr(f, attr, value)
        return value

    return callback


def format_options(f: Callable) -> Callable:
    """-f/--format, -c/--column, --sort-column, --sort-ascending/--sort-descending, --noindent (-o hidden)."""
    opts = [
        click.option(
            "-f",
            "--format",
            "_format",
            type=click.Choice(FORMATS),
            default=None,
            expose_value=False,
            callback=_store("format"),
            help="Output format: table (default), json or yaml (one document), value (cells only), csv.",
        ),
        click.option(
            "-o",
            "--output",
            "_output",
            type=click.Choice(FORMATS),
            default=None,
            expose_value=False,
            callback=_store("format"),
            hidden=True,
        ),
        click.option(
            "-c",
            "--column",
            "_columns",
            multiple=True,
            metavar="COLUMN",
            expose_value=False,
            callback=_store("columns"),
            help="Only this column (repeatable; a header like LOSS or its field name like loss).",
        ),
        click.option(
            "--sort-column",
            "_sort_columns",
            multiple=True,
            metavar="COLUMN",
            expose_value=False,
            callback=_store("sort_columns"),
            help="Sort the rows by this column (repeatable).",
        ),
        click.option(
            "--sort-ascending/--sort-descending",
            "_ascending",
            default=None,
            expose_value=False,
            callback=lambda ctx, p, v: _store("descending")(ctx, p, None if v is None else not v),
            help="Sort order with --sort-column (ascending by default).",
        ),
        click.option(
            "--noindent",
            "_noindent",
            is_flag=True,
            default=None,
            expose_value=False,
            callback=_store("noindent"),
            help="JSON on one line.",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def note(text: str) -> None:
    """A line around the output (footer, verdict, summary): stdout for a table, stderr otherwise."""
    click.echo(safe_lines(text), err=not current_format().is_table)


@dataclass
class Column:
    header: str  # as the table shows it: "LOSS", "DATA PLANE"
    key: str = ""  # the field name: "loss", "data_plane" (JSON rows, -c)
    unit: str = ""  # fmt()'s unit for the text formats

    def __post_init__(self) -> None:
        self.key = self.key or re.sub(r"[^a-z0-9]+", "_", self.header.lower()).strip("_")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _sort_key(value: Any) -> tuple:
    if value is None or value == "" or value == "-":
        return (2, "")
    if isinstance(value, bool):
        return (0, float(value))
    if isinstance(value, (int, float)):
        return (0, float(value))
    return (1, str(value))


def _text(value: Any, unit: str = "") -> str:
    """A cell as the text formats show it: one line, with nothing an agent sent able to drive the terminal."""
    if value == "" or (isinstance(value, str) and not unit):
        return safe(value)
    return safe(fmt(value, unit))


@dataclass
class View:
    """What a command prints, in every format."""

    columns: list[Column | str]
    rows: list[list[Any]]  # raw values; the text formats show them with fmt(value, column.unit)
    doc: Any = None  # the json/yaml document (None: the rows as a list of objects)
    text: str | None = None  # the table format's own text for people (None: the plain table)
    groups: list[Any] = field(default_factory=list)  # per row: rows of one group show `grouped` cells once
    grouped: tuple[str, ...] = ()
    before: list[str] = field(default_factory=list)  # lines before the table (stderr unless table)
    after: list[str] = field(default_factory=list)  # lines after it: footer, verdict (stderr unless table)

    def __post_init__(self) -> None:
        self.columns = [c if isinstance(c, Column) else Column(c) for c in self.columns]

    def pick(self, names: list[str]) -> list[int]:
        """Indexes of the named columns; a name matches a header or a field name, case and - _ ' ' aside."""
        found = []
        for name in names:
            wanted = _norm(name)
            index = next(
                (i for i, c in enumerate(self.columns) if wanted in (_norm(c.header), _norm(c.key))),
                None,
            )
            if index is None:
                from steth.controller.errors import UsageError

                known = ", ".join(c.header for c in self.columns)
                raise UsageError(f"-c/--column {name!r}: no such column; columns: {known}")
            found.append(index)
        return found

    def shaped(self, f: Format) -> tuple[list[Column], list[list[Any]], list[Any]]:
        rows, groups = list(self.rows), list(self.groups) or [None] * len(self.rows)
        if f.sort_columns:
            keys = self.pick(f.sort_columns)
            order = sorted(range(len(rows)), key=lambda i: [_sort_key(rows[i][k]) for k in keys], reverse=f.descending)
            rows, groups = [rows[i] for i in order], [None] * len(rows)  # sorted rows stand alone
        index = self.pick(f.columns) if f.columns else list(range(len(self.columns)))
        return [self.columns[i] for i in index], [[r[i] for i in index] for r in rows], groups

    def table(self, f: Format | None = None) -> str:
        columns, rows, groups = self.shaped(f or Format())
        lines, last = [], object()
        for row, group in zip(rows, groups):
            same = group is not None and group == last
            last = group
            lines.append(["" if same and c.key in self.grouped else _text(v, c.unit) for c, v in zip(columns, row)])
        return table([safe(c.header) for c in columns], lines)

    def render(self, f: Format) -> str:
        if f.format in DOCUMENT_FORMATS:
            if self.doc is not None and not f.reshaped:
                return dump(self.doc, f.format)
            columns, rows, _ = self.shaped(f)
            return dump([{c.key: v for c, v in zip(columns, row)} for row in rows], f.format)
        if f.format == "table":
            if self.text is not None and not f.reshaped:
                return safe_lines(self.text)
            return self.table(f)
        columns, rows, _ = self.shaped(f)
        if f.format == "value":
            return "\n".join(" ".join(_text(v, c.unit) for c, v in zip(columns, row)) for row in rows)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([safe(c.header) for c in columns])
        writer.writerows([[_text(v, c.unit) for c, v in zip(columns, row)] for row in rows])
        return buf.getvalue().rstrip("\n")


def record(doc: dict[str, Any], **kw: Any) -> View:
    """A `show` command's one object: its fields are the columns of one row (`-f value -c key_id`)."""
    flat = {k: v for k, v in doc.items() if not isinstance(v, (dict, list))}
    return View([Column(k.upper().replace("_", " "), k) for k in flat], [list(flat.values())], doc=doc, **kw)


def emit(view: View, f: Format | None = None) -> None:
    """Print a view in the invocation's format: lines before, the output itself, lines after."""
    f = f or current_format()
    out = view.render(f)
    for line in view.before:
        click.echo(safe_lines(line), err=not f.is_table)
    if out:
        click.echo(out)
    for line in view.after:
        click.echo(safe_lines(line), err=not f.is_table)
