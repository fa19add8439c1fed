"""The contract between the probe declarations and the CLI: every probe has a command and a section in the docs.

A probe gets its command generated from its spec (spec.command), or is run by a hand-written command of its
name (steth.controller.cli.HANDWRITTEN), or is sent by a recipe (cli.INTERNAL names which).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from steth.controller import catalog
from steth.controller.cli import HANDWRITTEN, INTERNAL, cli, commands
from steth.controller.generated import command_for
from steth.controller.params import option_name
from steth.schemas.probe import ProbeSpec
from steth.schemas.probes import registry

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(registry().values(), key=lambda s: s.name)
IDS = [s.name for s in SPECS]
GENERATED = [s for s in SPECS if s.command is not None]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_probe_has_a_command(spec: ProbeSpec):
    ways = [spec.command is not None, spec.name in HANDWRITTEN, spec.name in INTERNAL]
    assert sum(ways) == 1, f"{spec.name}: generated, hand-written or internal, exactly one of them ({ways})"
    if spec.name in INTERNAL:
        assert INTERNAL[spec.name] in HANDWRITTEN, f"{spec.name} is sent by {INTERNAL[spec.name]}, not a command"
    ctx = click.Context(cli)
    name = INTERNAL.get(spec.name, spec.name)
    assert name in commands() and isinstance(cli.get_command(ctx, name), click.Command)


def test_lists_name_only_known_probes_and_commands():
    assert set(INTERNAL) <= set(registry())
    assert not set(HANDWRITTEN) & {s.name for s in GENERATED}, "a probe with a generated command is not hand-written"
    for name, (_, summary) in HANDWRITTEN.items():
        assert summary or name in registry(), f"{name}: no summary and no probe of that name to take it from"
        assert summary is None or name not in registry(), f"{name}: one summary per probe, the declaration's"


@pytest.mark.parametrize("spec", GENERATED, ids=[s.name for s in GENERATED])
def test_generated_options_are_the_params_fields(spec: ProbeSpec):
    command = command_for(spec)
    common = {"nodes", "roles", "select_all", "timeout", "_debug"}
    common |= {"_format", "_output", "_columns", "_sort_columns", "_ascending", "_noindent"}  # output options
    names = {p.name for p in command.params} - common
    assert names == set(spec.params.model_fields)
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    assert [a.name for a in arguments] == ([spec.command.argument] if spec.command.argument else [])
    for p in command.params:
        if isinstance(p, click.Option) and p.name in spec.params.model_fields:
            assert p.opts == [option_name(p.name)[0]]
    text = command.get_help(click.Context(command, info_name=spec.name))
    assert spec.summary[:40] in " ".join(text.split())
    for example in spec.command.examples:
        assert example.startswith(f"steth {spec.name}") and example in text


def test_the_catalog_reads_the_declarations_as_the_registry_has_them():
    catalog.declared.cache_clear()
    read = catalog.declared()
    assert set(read) == set(registry())
    for name, spec in registry().items():
        assert (read[name].summary, read[name].generated) == (spec.summary, spec.command is not None)


def test_listing_the_commands_imports_no_probe():
    code = (
        "import sys; from steth.controller.cli import commands; commands(); "
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'steth.schemas'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_docs_have_a_section_for_every_probe():
    text = (ROOT / "docs" / "probes.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    missing = []
    for spec in SPECS:
        pattern = re.compile(rf"(?<![\w-]){re.escape(spec.name)}(?![\w-])")
        if not any(pattern.search(h) for h in headings):
            missing.append(spec.name)
    assert not missing, f"docs/probes.md has no heading naming these probes: {missing}"
