from __future__ import annotations

import click

from steth.controller import completion
from steth.controller.errors import UsageError
from steth.controller.output import Column, View, emit, format_options, table

BOUND_KEYS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
)


def _bounds(prop: dict) -> dict:
    """Limits from the JSON schema (for `X | None`, from the non-null branch)."""
    for branch in prop.get("anyOf", [prop]):
        found = {k: branch[k] for k in BOUND_KEYS if k in branch}
        if branch.get("type") == "array":
            found.update({f"items.{k}": v for k, v in _bounds(branch.get("items", {})).items()})
        if found:
            return found
    return {}


SELECTORS = ("nodes", "roles", "select_all")  # --node/--role/--all choose the agents, not a probe's params
# Params fields a command fills from an option of another name (the command's own parsing comes first).
SET_FROM = {
    ("vlan-check", "vlans"): "--vlan",
    ("mtu", "target"): "TARGET",
    ("bandwidth", "bitrate_bps"): "--bitrate",
    ("bandwidth", "min_bps"): "--min-bps",
    ("capture", "write"): "-w",
    ("send", "dst"): "TARGET",
}


def _commands_for(probe: str) -> list[tuple[str, click.Command]]:
    """The CLI commands that send this probe: its own, or its recipe's (subcommands of a group included)."""
    from steth.controller.cli import INTERNAL, cli, commands

    name = probe if probe in commands() else INTERNAL.get(probe)
    if name is None:
        return []
    ctx = click.Context(cli)
    cmd = cli.get_command(ctx, name)
    if isinstance(cmd, click.Group):
        subs = [(f"{name} {n}", c) for n, c in sorted(cmd.commands.items())]
        own = [(p, c) for p, c in subs if probe.endswith(p.split()[-1])]  # link-add-vlan -> link add-vlan
        return own or subs
    return [(name, cmd)] if cmd is not None else []


def cli_names(probe: str) -> dict[str, str]:
    """params field -> how the operator gives it: `--count`, `TARGET`, or `-` (steth sets it)."""
    out: dict[str, str] = {}
    for path, cmd in _commands_for(probe):
        for param in cmd.params:
            if param.name in out or param.name in SELECTORS or getattr(param, "hidden", False):
                continue
            if isinstance(param, click.Argument):
                out[param.name] = (param.metavar or param.name.upper()).strip("[].")
            else:
                longs = [o for o in param.opts if o.startswith("--")]
                out[param.name] = (longs or param.opts)[0]
        for (command, field), label in SET_FROM.items():
            if path.split()[0] == command:
                out.setdefault(field, label)
    return out


def readable(value) -> str:
    """A default as an operator reads it: -, yes/no, 1,2,3, 0.2 (not None, False, [1, 2, 3], 0.2000)."""
    if value is None or value == [] or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(spec) -> dict:
    params = []
    schema = spec.params.model_json_schema().get("properties", {})
    names = cli_names(spec.name)
    for name, field in spec.params.model_fields.items():
        bounds = _bounds(schema.get(name, {}))
        params.append(
            {
                "name": name,
                "option": names.get(name, "-"),
                "type": _type_name(schema.get(name, {})),
                "required": field.is_required(),
                "default": None if field.is_required() else field.get_default(call_default_factory=True),
                "bounds": bounds,
                "description": field.description or "",
            }
        )
    return {
        "name": spec.name,
        "summary": spec.summary,
        "mutating": spec.mutating,
        "max_timeout_s": spec.max_timeout_s,
        "tools": list(spec.tools),
        "params": params,
        "result": spec.result.model_json_schema(),
    }


def _type_name(prop: dict) -> str:
    """A JSON-schema property as a short type: integer, string, array[string], string|null, a|b (enum)."""
    if "enum" in prop:
        return "|".join(map(str, prop["enum"]))
    if "anyOf" in prop:
        return "|".join(_type_name(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"array[{_type_name(prop.get('items', {}))}]"
    return prop.get("type", "any")


@click.group("probes", invoke_without_command=True)
@format_options
@click.pass_context
def command(ctx: click.Context) -> None:
    """The probe types agents offer, from their declarations (`steth probes show NAME` for one)."""
    if ctx.invoked_subcommand:
        return
    from steth.schemas.probes import registry

    specs = registry().values()
    emit(
        View(
            [Column("PROBE", "name"), Column("MUTATING"), Column("SUMMARY")],
            [[s.name, "yes" if s.mutating else "no", s.summary] for s in specs],
            doc={"probes": [describe(s) for s in specs]},
        )
    )


@command.command("show")
@click.argument("name", metavar="PROBE", shell_complete=completion.probes)
@format_options
def show(name: str) -> None:
    """One probe's parameters (with bounds and defaults), result fields and limits."""
    from steth.schemas.probes import get, registry

    spec = get(name)
    if spec is None:
        raise UsageError(f"no probe {name!r}; known: {', '.join(registry())}")
    doc = describe(spec)
    rows = []
    for p in doc["params"]:
        bounds = " ".join(f"{k}={v}" for k, v in p["bounds"].items())
        default = "required" if p["required"] else readable(p["default"])
        rows.append([p["option"], p["type"], default, bounds or "-", p["description"]])
    params = View([Column("OPTION"), Column("TYPE"), Column("DEFAULT"), Column("BOUNDS"), Column("DESCRIPTION")], rows)
    schema = doc["result"]
    fields = schema.get("properties", {})
    text = "\n".join(
        [
            f"{spec.name}: {spec.summary}",
            f"mutating: {'yes (needs policy.allow_mutating on the agent)' if spec.mutating else 'no'}; "
            f"longest deadline: {spec.max_timeout_s:g} s" + (f"; runs: {', '.join(spec.tools)}" if spec.tools else ""),
            "\nparameters:",
            params.table(),
            "\nresult fields:",
            table(
                ["FIELD", "TYPE"],
                [[k, v.get("type", v.get("$ref", "object").rsplit("/", 1)[-1])] for k, v in fields.items()],
            ),
        ]
    )
    params.doc, params.text = doc, text  # -c/-f value/csv: the parameters table's rows
    emit(params)
