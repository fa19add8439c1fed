"""steth validate PLAN: every requirement of a site plan, checked against the fleet, in one report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from steth.controller.errors import UsageError
from steth.controller.inventory import os_options
from steth.controller.options import Invocation, run_async
from steth.controller.output import Column, View, format_options, safe_lines
from steth.controller.output import emit as show
from steth.controller.session import Selection


@click.command("validate")
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option(
    "--report", "html_path", type=click.Path(dir_okay=False), metavar="FILE.html", help="Write the HTML report here."
)
@click.option(
    "--junit", "junit_path", type=click.Path(dir_okay=False), metavar="FILE.xml", help="Write JUnit XML here (CI)."
)
@click.option(
    "--progress",
    type=click.Choice(["lines", "json", "none"]),
    default="lines",
    show_default=True,
    help="Progress on stderr while it runs: a line per event, a JSON object per line, or nothing.",
)
@click.option(
    "--from-openstack",
    is_flag=True,
    help="Fill what Neutron knows (nodes, bridge mappings, tunnel endpoints, network MTUs and VLAN segments); "
    "the plan wins where both say something, and disagreements are reported. Needs admin credentials.",
)
@os_options
@format_options
@click.option("--debug", "_debug", is_flag=True, hidden=True)
def command(
    plan_path: str,
    html_path: str | None,
    junit_path: str | None,
    progress: str,
    from_openstack: bool = False,
    _debug: bool = False,
) -> None:
    """Check a site against its plan before it carries VMs: one line per requirement.

    PLAN is YAML (docs/validate.md documents every key; a plan error names its line and exits 2). steth checks
    presence against the plan, then runs the mesh, path MTU and endpoint checks of every plane at once, then
    each physnet's VLANs in batches, then bandwidth one pair at a time. Progress goes to stderr, the report
    to stdout; --report and --junit write the HTML page and the JUnit XML as well. Exit 0 when every
    requirement passed, 1 when one failed, 3 when one could not be checked.

    \b
    Examples:
      steth validate site.yaml
      steth validate site.yaml --report site.html --junit site.xml
      steth validate site.yaml -o json --progress json > site.json
      steth validate site.yaml --from-openstack --os-cloud admin
    """
    from steth import __version__
    from steth.controller.validate_plan import PlanError, load_plan
    from steth.controller.validate_report import progress_json, progress_line, render_json, render_terminal

    try:
        plan = load_plan(plan_path, partial=from_openstack)
    except PlanError as exc:
        raise UsageError(f"the plan has {len(exc.issues)} problem(s):\n{exc}") from None
    openstack = None
    if from_openstack:
        plan, openstack = _from_openstack(plan, plan_path, progress)
    group = click.get_current_context().find_root().obj or {}
    inv = Invocation(group, Selection(), None, group.get("timeout"), False)
    for path in (html_path, junit_path):
        if path and not Path(path).resolve().parent.is_dir():
            raise UsageError(f"cannot write {path}: no such folder")

    def emit(p) -> None:
        if progress == "lines":
            click.echo(safe_lines(progress_line(p)), err=True)
        elif progress == "json":
            click.echo(progress_json(p), err=True)
        sys.stderr.flush()

    async def go():
        from steth.controller.validate_run import validate

        async with inv.session() as s:
            return await validate(s, plan, plan_path, emit, steth_version=__version__)

    report = run_async(go())
    report.openstack = openstack
    _write(html_path, junit_path, report)
    columns = [Column("ID"), Column("STATUS"), Column("REQUIREMENT", "title"), Column("MEASURED"), Column("NODES")]
    rows = [[r.id, r.status, r.title, r.measured or "-", ",".join(r.nodes)] for r in report.requirements]
    show(View(columns, rows, doc=render_json(report), text=render_terminal(report)))
    click.get_current_context().exit(report.exit_code())


def _from_openstack(plan, plan_path: str, progress: str):
    """The plan completed from OpenStack, and the notes for the report; notes on stderr as progress."""
    import json

    from pydantic import ValidationError

    from steth.controller.inventory import Inventory
    from steth.controller.validate_openstack import gather, merge

    inv = Inventory.from_options()  # --os-cloud and the rest, before or after the command
    facts = gather(inv)
    try:
        merged, notes = merge(plan, facts)
    except (ValidationError, ValueError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else [{"msg": str(exc)}]
        lines = [e["msg"].removeprefix("Value error, ") for e in errors]
        raise UsageError(
            f"{plan_path} with what OpenStack ({facts.where}) knows is not usable:\n" + "\n".join(lines)
        ) from None
    for n in notes:
        if progress == "lines":
            click.echo(safe_lines(f"openstack: {n}"), err=True)
        elif progress == "json":
            click.echo(json.dumps({"event": "openstack", "kind": n.kind, "key": n.key, "message": n.message}), err=True)
    doc = {"cloud": facts.where, "notes": [{"kind": n.kind, "key": n.key, "message": n.message} for n in notes]}
    return merged, doc


def _write(html_path: str | None, junit_path: str | None, report) -> None:
    from steth.controller.errors import StethError
    from steth.controller.validate_report import render_html, render_junit

    for path, render in ((html_path, render_html), (junit_path, render_junit)):
        if not path:
            continue
        try:
            Path(path).write_text(render(report), encoding="utf-8")
        except OSError as exc:
            raise StethError(f"cannot write {path}: {exc.strerror or exc}") from None
