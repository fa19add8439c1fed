"""The report of `steth validate`: a model, and renderers for the terminal, JSON, HTML and JUnit XML.

The orchestration fills a Report (one RequirementResult per Requirement, findings, and matrices per plane and
per physnet); everything here is pure rendering. HTML and XML use the standard library only; everything that
came from agents or from the plan is escaped, and the HTML page forbids scripts outright (Content-Security-Policy),
so that a hostile string in an agent message stays text.
"""

from __future__ import annotations

import html
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from steth.controller.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK
from steth.controller.validate_requirements import Requirement

Status = Literal["pass", "fail", "incomplete"]
CellStatus = Literal["pass", "fail", "incomplete", "none"]
STATUSES: tuple[str, ...] = ("pass", "fail", "incomplete")


class Finding(BaseModel):
    requirement: str  # the requirement's id
    status: Literal["fail", "incomplete"]
    message: str  # one line: what is wrong
    nodes: list[str] = []  # the nodes involved
    detail: str = ""  # more: an agent's message, the measured numbers


class RequirementResult(BaseModel):
    id: str
    kind: str
    title: str
    status: Status
    measured: str = ""  # for people: "1500 bytes", "941 Mbit/s (lowest pair)", "3/3 connected"
    value: float | None = None  # the measured number, for machines (in `unit`)
    unit: str = ""  # bytes, bps, ratio, ms, count
    nodes: list[str] = []  # the nodes involved (on failure: the ones that failed)
    source: str = ""  # where the plan says so: planes[1]
    duration_s: float | None = None
    findings: list[Finding] = []

    @classmethod
    def of(cls, req: Requirement, status: Status, **fields: Any) -> RequirementResult:
        """A result for a requirement: its id, kind, title, source and (unless given) its nodes."""
        fields.setdefault("nodes", list(req.nodes))
        return cls(id=req.id, kind=req.kind, title=req.title, source=req.source, status=status, **fields)


class Cell(BaseModel):
    row: str
    column: str
    text: str = ""
    status: CellStatus = "none"
    detail: str = ""  # shown on hover in HTML


class Matrix(BaseModel):
    section: str  # what it belongs to: "plane data", "physnet physnet1"
    title: str  # what the cells say: "path MTU (bytes), from row to column"
    rows: list[str]
    columns: list[str]
    cells: list[Cell] = []

    def at(self, row: str, column: str) -> Cell | None:
        return next((c for c in self.cells if c.row == row and c.column == column), None)


class Report(BaseModel):
    plan: str  # the plan file as given
    site: str | None = None
    started_at: float = Field(default_factory=time.time)  # epoch seconds
    elapsed_s: float = 0.0
    steth_version: str = ""
    requirements: list[RequirementResult] = []
    matrices: list[Matrix] = []
    phases: dict[str, float] = {}  # seconds per group of the schedule, in order: "mesh:data+mtu:data+..."
    # --from-openstack: {"cloud": where, "notes": [{"kind": filled|conflict|unused, "key", "message"}]}
    openstack: dict[str, Any] | None = None

    def findings(self) -> list[Finding]:
        """Every finding, failures first, in requirement order."""
        found = [f for r in self.requirements for f in r.findings]
        return [f for f in found if f.status == "fail"] + [f for f in found if f.status != "fail"]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.requirements if r.status == s) for s in STATUSES}

    def exit_code(self) -> int:
        return exit_code(r.status for r in self.requirements)


def exit_code(statuses: Iterable[str]) -> int:
    """The one place the exit code comes from: 1 if any requirement failed, else 3 if any is incomplete (or
    there is none), else 0. (2, usage, and 4, steth could not work, come from errors before any result.)"""
    seen = list(statuses)
    unknown = set(seen) - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown requirement status: {', '.join(sorted(unknown))}")
    if "fail" in seen:
        return EXIT_FINDINGS
    if "incomplete" in seen or not seen:
        return EXIT_INCOMPLETE
    return EXIT_OK


# --- matrix builders for the orchestration ---------------------------------------------------------------


def pair_matrix(
    section: str, title: str, nodes: Sequence[str], cells: Mapping[tuple[str, str], tuple[str, CellStatus, str]]
) -> Matrix:
    """A node x node matrix (rows send, columns receive) from {(from, to): (text, status, detail)}."""
    nodes = list(nodes)
    out = [Cell(row=a, column=b, text=t, status=s, detail=d) for (a, b), (t, s, d) in cells.items()]
    return Matrix(section=section, title=title, rows=nodes, columns=nodes, cells=out)


def vlan_matrix(
    physnet: str, vlans: Sequence[int], results: Mapping[tuple[str, str], Mapping[int, tuple[CellStatus, str]]]
) -> Matrix:
    """Pairs x VLANs from {(from, to): {vlan: (status, detail)}}: a row per pair, a column per VLAN."""
    rows = [f"{a} -> {b}" for a, b in results]
    cells = [
        Cell(row=f"{a} -> {b}", column=str(v), text=_MARK[st], status=st, detail=detail)
        for (a, b), per_vlan in results.items()
        for v, (st, detail) in per_vlan.items()
    ]
    title = "VLANs passed per pair (from -> to)"
    return Matrix(section=f"physnet {physnet}", title=title, rows=rows, columns=[str(v) for v in vlans], cells=cells)


_MARK = {"pass": "ok", "fail": "X", "incomplete": "?", "none": ""}


# --- progress --------------------------------------------------------------------------------------------


class Progress(BaseModel):
    """One event while validate runs: printed as a line on the terminal, or as a JSON line for machines."""

    event: Literal["start", "step", "done"]
    requirement: str
    title: str = ""
    step: str = ""
    index: int = 0  # 1-based position of the requirement
    total: int = 0  # requirements in the run
    status: Status | None = None  # done: the requirement's status
    measured: str = ""
    elapsed_s: float = 0.0  # since the run started


def progress_line(p: Progress) -> str:
    width = len(str(p.total or 1))
    head = f"[{p.index:>{width}}/{p.total}] {p.elapsed_s:6.1f}s"
    if p.event == "start":
        return f"{head} {p.requirement}: {p.title}"
    if p.event == "step":
        return f"{head} {p.requirement}: {p.step}"
    return f"{head} {p.requirement}: {(p.status or '').upper()}" + (f" {p.measured}" if p.measured else "")


def progress_json(p: Progress) -> str:
    return json.dumps(p.model_dump(mode="json"), separators=(",", ":"))


# --- terminal ----------------------------------------------------------------------------------------------

_WORD = {"pass": "PASS", "fail": "FAIL", "incomplete": "INCOMPLETE"}


def _nodes_text(nodes: Sequence[str], limit: int = 4) -> str:
    if not nodes:
        return "-"
    shown = ", ".join(nodes[:limit])
    return shown + (f" +{len(nodes) - limit} more" if len(nodes) > limit else "")


def render_terminal(report: Report) -> str:
    """One line per requirement (status, requirement, measured value, nodes involved), then a footer."""
    rows = [[_WORD[r.status], r.title, r.measured or "-", _nodes_text(r.nodes)] for r in report.requirements]
    headers = ["STATUS", "REQUIREMENT", "MEASURED", "NODES"]
    widths = [max([len(h)] + [len(_one_line(row[i])) for row in rows]) for i, h in enumerate(headers)]
    widths[1] = min(widths[1], 90)

    def line(cells: list[str]) -> str:
        out = []
        for cell, w in zip(cells, widths):
            text = _one_line(cell)
            out.append(text.ljust(w) if len(text) <= w else text[: w - 3] + "...")
        return "  ".join(out).rstrip()

    lines = [line(headers), *(line(r) for r in rows)]
    c = report.counts()
    total = len(report.requirements)
    lines.append(
        f"{total} requirement{'s' if total != 1 else ''}: {c['pass']} pass, {c['fail']} fail, "
        f"{c['incomplete']} incomplete in {report.elapsed_s:.1f} s"
    )
    for f in report.findings():
        who = f" [{_nodes_text(f.nodes)}]" if f.nodes else ""
        lines.append(f"  {f.status}: {f.requirement}: {_one_line(f.message)}{who}")
    for n in (report.openstack or {}).get("notes", []):
        if n["kind"] == "conflict":  # what was filled is in the JSON and the HTML; a disagreement is shown here too
            lines.append(f"  openstack conflict: {n['key']}: {_one_line(n['message'])}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --- JSON ----------------------------------------------------------------------------------------------


def render_json(report: Report) -> dict[str, Any]:
    """The JSON document: summary first (with the exit code), then findings, requirements, matrices."""
    return {
        "command": "validate",
        "plan": report.plan,
        "site": report.site,
        "started_at": report.started_at,
        "elapsed_s": round(report.elapsed_s, 3),
        "steth_version": report.steth_version,
        "summary": {"requirements": len(report.requirements), **report.counts(), "exit_code": report.exit_code()},
        "findings": [f.model_dump(mode="json") for f in report.findings()],
        "requirements": [r.model_dump(mode="json") for r in report.requirements],
        "matrices": [m.model_dump(mode="json") for m in report.matrices],
        "phases": dict(report.phases),
        **({"openstack": report.openstack} if report.openstack is not None else {}),
    }


# --- HTML ----------------------------------------------------------------------------------------------

# Characters XML 1.0 cannot carry at all (agents may send anything): replaced, in HTML too.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: Any) -> str:
    return _NOT_XML.sub("\ufffd", "" if text is None else str(text))


def _h(text: Any) -> str:
    return html.escape(_clean(text), quote=True)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1d1d1f;background:#fff}
h1{font-size:1.6em;margin:0 0 .2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555;margin:.2em 0}.badge{display:inline-block;padding:.15em .6em;border-radius:1em;margin-right:.4em;
font-weight:600}.pass{background:#e3f5e1;color:#1b5e20}.fail{background:#fde2e1;color:#b71c1c}
.incomplete{background:#fff3cd;color:#7a5b00}.none{background:#f4f4f4;color:#777}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#fafafa}.findings li{margin:.3em 0}.findings .detail{color:#555;white-space:pre-wrap;
font-family:ui-monospace,monospace;font-size:.9em}.scroll{overflow-x:auto;max-width:100%}
table.matrix td,table.matrix th{text-align:center;white-space:nowrap}table.compact td,table.compact th.col{padding:0;width:9px;
min-width:9px;height:14px;font-size:0}table.compact th.col{writing-mode:vertical-rl;font-size:9px;height:auto}
td.status{font-weight:700;white-space:nowrap}code{font-family:ui-monospace,monospace}
"""
COMPACT_COLUMNS = 24  # wider matrices (VLANs) draw coloured cells without text; hover shows it


def render_html(report: Report) -> str:
    """A self-contained page: findings at the top, the requirements, then a matrix per plane and per physnet."""
    c = report.counts()
    findings = report.findings()
    site = report.site or report.plan
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(report.started_at))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No script, no external fetch: the page is data, even if a string slipped through unescaped.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>steth validate: {_h(site)}: {len(findings)} finding{'s' if len(findings) != 1 else ''}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>steth validate: {_h(site)}</h1>",
        f'<p class="meta">plan <code>{_h(report.plan)}</code>, started {_h(started)}, '
        f"{report.elapsed_s:.1f} s, exit code {report.exit_code()}"
        + (f", steth {_h(report.steth_version)}" if report.steth_version else "")
        + "</p>",
        '<p class="summary">'
        + "".join(f'<span class="badge {s}">{c[s]} {s}</span>' for s in STATUSES)
        + "</p></header>",
        f'<section id="findings"><h2>Findings ({len(findings)})</h2>',
    ]
    if findings:
        out.append('<ul class="findings">')
        for f in findings:
            nodes = f' <span class="meta">[{_h(", ".join(f.nodes))}]</span>' if f.nodes else ""
            detail = f'<div class="detail">{_h(f.detail)}</div>' if f.detail else ""
            out.append(
                f'<li class="finding"><span class="badge {f.status}">{f.status}</span>'
                f"<code>{_h(f.requirement)}</code>: {_h(f.message)}{nodes}{detail}</li>"
            )
        out.append("</ul>")
    else:
        out.append('<p class="pass">No findings: every requirement passed.</p>')
    out.append("</section>")
    if report.openstack is not None:
        notes = report.openstack.get("notes", [])
        out.append(f'<section id="openstack"><h2>From OpenStack ({_h(report.openstack.get("cloud", ""))})</h2>')
        out.append("<table><thead><tr><th>note</th><th>plan key</th><th>what</th></tr></thead><tbody>")
        for n in notes:
            kind = "fail" if n["kind"] == "conflict" else "none"
            out.append(
                f'<tr><td class="status {kind}">{_h(n["kind"])}</td><td><code>{_h(n["key"])}</code></td>'
                f"<td>{_h(n['message'])}</td></tr>"
            )
        out.append("</tbody></table></section>")
    out.append('<section id="requirements"><h2>Requirements</h2><table><thead><tr>')
    out.append("<th>status</th><th>requirement</th><th>measured</th><th>nodes</th><th>plan</th></tr></thead><tbody>")
    for r in report.requirements:
        out.append(
            f'<tr id="req-{_h(r.id)}"><td class="status {r.status}">{_h(r.status)}</td>'
            f"<td><code>{_h(r.id)}</code><br>{_h(r.title)}</td><td>{_h(r.measured or '-')}</td>"
            f"<td>{_h(', '.join(r.nodes) or '-')}</td><td><code>{_h(r.source)}</code></td></tr>"
        )
    out.append("</tbody></table></section>")
    sections: dict[str, list[Matrix]] = {}
    for m in report.matrices:
        sections.setdefault(m.section, []).append(m)
    if sections:
        out.append('<section id="matrices">')
        for section, matrices in sections.items():
            out.append(f"<h2>{_h(section)}</h2>")
            out.extend(_matrix_html(m) for m in matrices)
        out.append("</section>")
    out.append('<footer class="meta"><p>Generated by steth validate.</p></footer></body></html>')
    return "\n".join(out) + "\n"


def _matrix_html(m: Matrix) -> str:
    compact = len(m.columns) > COMPACT_COLUMNS
    cells = {(c.row, c.column): c for c in m.cells}
    head = "".join(f'<th class="col" scope="col">{_h(col)}</th>' for col in m.columns)
    rows = []
    for row in m.rows:
        tds = []
        for col in m.columns:
            cell = cells.get((row, col))
            if cell is None:
                tds.append('<td class="none"></td>')
                continue
            tip = " ".join(p for p in (f"{row} / {col}:", cell.text, cell.detail) if p)
            text = "" if compact else _h(cell.text)
            tds.append(f'<td class="{cell.status}" title="{_h(tip)}">{text}</td>')
        rows.append(f'<tr><th scope="row">{_h(row)}</th>{"".join(tds)}</tr>')
    klass = "matrix compact" if compact else "matrix"
    return (
        f'<h3>{_h(m.title)}</h3><div class="scroll"><table class="{klass}"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


# --- JUnit XML -------------------------------------------------------------------------------------------


def render_junit(report: Report) -> str:
    """One <testcase> per requirement: fail -> <failure>, incomplete -> <error>, in one <testsuite>."""
    c = report.counts()
    total = str(len(report.requirements))
    elapsed = f"{report.elapsed_s:.3f}"
    suites = ET.Element(
        "testsuites",
        name="steth validate",
        tests=total,
        failures=str(c["fail"]),
        errors=str(c["incomplete"]),
        time=elapsed,
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=_clean(f"steth validate {report.site or report.plan}"),
        tests=total,
        failures=str(c["fail"]),
        errors=str(c["incomplete"]),
        skipped="0",
        time=elapsed,
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report.started_at)),
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="plan", value=_clean(report.plan))
    if report.steth_version:
        ET.SubElement(props, "property", name="steth_version", value=_clean(report.steth_version))
    for r in report.requirements:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"steth.validate.{r.kind}",
            name=_clean(f"{r.id}: {r.title}"),
            time=f"{r.duration_s or 0.0:.3f}",
        )
        if r.status != "pass":
            tag = "failure" if r.status == "fail" else "error"
            own = [f for f in r.findings if f.status == r.status] or r.findings
            message = "; ".join(f.message for f in own) or r.status
            body = "\n".join(
                f"{f.status}: {f.message}"
                + (f" [{', '.join(f.nodes)}]" if f.nodes else "")
                + (f"\n  {f.detail}" if f.detail else "")
                for f in r.findings
            )
            el = ET.SubElement(case, tag, message=_clean(_one_line(message)[:1000]), type=r.status)
            el.text = _clean(body or message)
        out = f"measured: {r.measured or '-'}\nnodes: {', '.join(r.nodes) or '-'}\nplan: {r.source}"
        ET.SubElement(case, "system-out").text = _clean(out)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
