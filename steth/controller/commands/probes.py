from __future__ import annotations

import click

from steth.controller.errors import UsageError
from steth.controller.output import Column, View, emit, format_options, table
from steth.controller.params import option_name

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


def describe(spec) -> dict:
    params = []
    schema = spec.params.model_json_schema().get("properties", {})
    for name, field in spec.params.model_fields.items():
        bounds = _bounds(schema.get(name, {}))
        params.append(
            {
                "name": name,
                "option": option_name(name)[0],
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
@click.argument("name", metavar="PROBE")
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
        default = "required" if p["required"] else repr(p["default"])
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
