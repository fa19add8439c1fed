"""A probe's CLI command generated from its declaration: params -> one gather -> a table of its columns."""

from __future__ import annotations

import typing

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import emit_gathered
from steth.controller.params import collect, params_options
from steth.schemas.probe import ProbeSpec


def help_text(spec: ProbeSpec) -> str:
    """The summary line, the command's paragraphs, the examples (kept as written: click's \\b)."""
    assert spec.command is not None
    parts = [spec.summary, *spec.command.help.split("\n\n")]
    if spec.command.examples:
        parts.append("\b\nExamples:\n" + "\n".join(f"  {e}" for e in spec.command.examples))
    return "\n\n".join(parts)


def _argument(spec: ProbeSpec) -> click.Argument | None:
    name = spec.command.argument
    if name is None:
        return None
    field = spec.params.model_fields[name]
    many = typing.get_origin(field.annotation) is list
    metavar = spec.command.metavar or name.upper()
    metavar = f"{metavar}..." if many else metavar if field.is_required() else f"[{metavar}]"
    return click.Argument([name], nargs=-1 if many else 1, required=field.is_required(), metavar=metavar)


def command_for(spec: ProbeSpec) -> click.Command:
    """The `steth NAME` command of a spec that declares one (spec.command)."""
    if spec.command is None:
        raise ValueError(f"probe {spec.name!r} declares no command")
    argument = spec.command.argument

    def run(inv: Invocation, **options) -> None:
        params = collect(spec.params, options)  # bad input: exit 2 before any network
        gathered = inv.gather(spec.name, params)
        emit_gathered(gathered, spec, inv.output)
        click.get_current_context().exit(gathered.exit_code())

    callback = params_options(spec.params, exclude=(argument,) if argument else ())(gathering_command(run))
    command = click.command(spec.name, help=help_text(spec))(callback)
    if argument:
        command.params.insert(0, _argument(spec))
    return command
