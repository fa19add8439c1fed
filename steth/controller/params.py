"""CLI options derived from a probe's params model: one declaration, no hand-written copies."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import click
from pydantic import ValidationError

from steth.controller.errors import UsageError
from steth.schemas.types import Params

# Field names carry units; the option drops the suffix and shows the unit as its metavar.
UNIT_SUFFIXES = {"_s": "S", "_ms": "MS", "_bytes": "BYTES", "_bps": "BPS"}
# One name per idea across commands (docs/cli.md): a field whose option is named otherwise, and the old spelling
# that stays accepted, hidden from --help.
RENAMED = {"vlan_id": ("--vlan", "--vlan-id")}


class AliasedOption(click.Option):
    """An option whose old spellings still parse but are not shown in --help (`--vlan-id` for `--vlan`)."""

    def __init__(self, *args: Any, aliases: tuple[str, ...] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.aliases = aliases

    def get_help_record(self, ctx: click.Context):
        shown, self.opts = self.opts, [o for o in self.opts if o not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def option_name(field: str) -> tuple[str, str | None]:
    if field in RENAMED:
        return RENAMED[field][0], None
    for suffix, metavar in UNIT_SUFFIXES.items():
        if field.endswith(suffix):
            return "--" + field[: -len(suffix)].replace("_", "-"), metavar
    return "--" + field.replace("_", "-"), None


def _bounds(field) -> str:
    lo = hi = None
    for meta in field.metadata:
        lo = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else lo
        hi = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else hi
    return f"{lo:g}..{hi:g}" if lo is not None and hi is not None else ""


def _base_type(annotation: Any) -> Any:
    """`int | None` -> int; `list[X]` stays a list."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def params_options(model: type[Params], exclude: tuple[str, ...] = ()) -> Callable:
    """A decorator adding one option per params field (in declaration order)."""

    def decorate(f: Callable) -> Callable:
        for name, field in reversed(list(model.model_fields.items())):
            if name in exclude:
                continue
            flag, metavar = option_name(name)
            base = _base_type(field.annotation)
            help_parts = [field.description or ""]
            # Identity, not equality: a default of 0 or 0.0 is shown; required fields have none to show.
            has_default = not field.is_required() and field.default_factory is None
            if has_default and field.default is not None and field.default is not False:
                help_parts.append(f"[default: {field.default}]")
            bounds = _bounds(field)
            if bounds:
                help_parts.append(f"[{bounds}]")
            kwargs: dict[str, Any] = dict(default=None, help=" ".join(p for p in help_parts if p))

            if base is bool:
                kwargs.update(is_flag=True, default=None)
            elif typing.get_origin(base) is typing.Literal:
                kwargs["type"] = click.Choice([str(v) for v in typing.get_args(base)])
            elif typing.get_origin(base) is list:
                kwargs["multiple"] = True
                kwargs["default"] = ()
            elif base in (int, float):
                kwargs["type"] = base
            if metavar and "type" in kwargs and kwargs["type"] in (int, float):
                kwargs["metavar"] = metavar
            if field.is_required() and base is not bool and not kwargs.get("multiple"):
                # Click names it (`Missing option '--interface'`) and --help marks it [required]. No default at
                # all: Click 8.3 takes an explicit default=None for a value.
                kwargs["required"] = True
                kwargs.pop("default", None)
            aliases = RENAMED[name][1:] if name in RENAMED else ()
            f = click.option(flag, *aliases, name, cls=AliasedOption, aliases=aliases, **kwargs)(f)
        return f

    return decorate


def collect(model: type[Params], options: dict[str, Any], labels: dict[str, str] | None = None, **fixed: Any) -> Params:
    """Validate the given options (and fixed values) with the model; a bad value is a usage error that names
    the option or argument the operator typed (`labels` for fixed fields set from an option of another name)."""
    args = {k: v for k, v in options.items() if k in model.model_fields and v not in (None, ())}
    args.update(fixed)
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise UsageError(describe_for_cli(exc, labels or {})) from None


def field_label(field: str, names: dict[str, str] | None = None) -> tuple[str, str]:
    """("option" or "argument", "--count" or "TARGET"): how the operator gives a params field."""
    if names and field in names:
        label = names[field]
        return ("option" if label.startswith("-") else "argument"), label
    ctx = click.get_current_context(silent=True)
    for param in ctx.command.params if ctx is not None else []:
        if param.name != field:
            continue
        if isinstance(param, click.Argument):
            return "argument", (param.metavar or param.name.upper()).strip("[].")
        longs = [o for o in param.opts if o.startswith("--")]
        return "option", (longs or param.opts)[0]
    return "option", option_name(field)[0]


def describe_for_cli(exc: ValidationError, names: dict[str, str], limit: int = 3) -> str:
    """A pydantic error as one line in the operator's words: `--max-pcap: ...`, `--vlan 5000: ...`."""
    from steth.schemas.types import PATTERN_MEANING

    parts = []
    for err in exc.errors()[:limit]:
        loc = [p for p in err["loc"]]
        if not loc:  # a check across fields
            parts.append(err["msg"].removeprefix("Value error, "))
            continue
        kind, label = field_label(str(loc[0]), names)
        if err["type"] == "missing":
            parts.append(f"missing {kind} '{label}'")
            continue
        meaning = PATTERN_MEANING.get((err.get("ctx") or {}).get("pattern", ""))
        text = f"{err['input']!r} is not {meaning}" if meaning else err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if len(loc) > 1 and isinstance(value, (int, float, str)) and repr(value) not in text:
            label = f"{label} {value}"  # one item of a list: say which (`--vlan 5000`)
        parts.append(f"{label}: {text}")
    more = f" (+{exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more


def wire_args(params: Params) -> dict[str, Any]:
    """What goes on the wire: only what differs from the defaults, so agents apply their own."""
    return params.model_dump(mode="json", exclude_defaults=True)
