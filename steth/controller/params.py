"""CLI options derived from a probe's params model: one declaration, no hand-written copies."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import click
from pydantic import ValidationError

from steth.controller.errors import UsageError
from steth.schemas.types import Params, describe_validation_error

# Field names carry units; the option drops the suffix and shows the unit as its metavar.
UNIT_SUFFIXES = {"_s": "S", "_ms": "MS", "_bytes": "BYTES", "_bps": "BPS"}


def option_name(field: str) -> tuple[str, str | None]:
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
            f = click.option(flag, name, **kwargs)(f)
        return f

    return decorate


def collect(model: type[Params], options: dict[str, Any], **fixed: Any) -> Params:
    """Validate the given options (and fixed values) with the model; a bad value is a usage error."""
    args = {k: v for k, v in options.items() if k in model.model_fields and v not in (None, ())}
    args.update(fixed)
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise UsageError(describe_validation_error(exc)) from None


def wire_args(params: Params) -> dict[str, Any]:
    """What goes on the wire: only what differs from the defaults, so agents apply their own."""
    return params.model_dump(mode="json", exclude_defaults=True)
