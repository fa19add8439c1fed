"""Load a site plan (YAML) for `steth validate`, with every error naming its file, line and key.

    plan = load_plan("site.yaml")          # a steth.schemas.validate_plan.Plan
    # or PlanError, whose str() is one line per problem, in file order:
    #   site.yaml:12: planes[1].mtu: 99999 is above 9216
    #   site.yaml:20: physnets[0].vlna: unknown key (did you mean vlans?); known: bridge, name, roles, uplink, vlans

YAML is composed once into nodes (which carry their line numbers) and constructed from them, so a pydantic
error's location ('planes', 1, 'mtu') maps back to the line the operator wrote. Checks across the plan
(Plan.problems) are mapped the same way. PyYAML keeps the last of two equal keys silently; here they are an error.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from steth.schemas import validate_plan as schema
from steth.schemas.types import PATTERN_MEANING
from steth.schemas.validate_plan import Plan, dotted

MAX_PLAN_BYTES = 1024 * 1024

# What each pattern means, in the operator's words (the plan's own patterns added to the probes' ones).
_MEANING = {
    **PATTERN_MEANING,
    schema.NAME_PATTERN: "a name: 1-63 letters, digits, '_', '.', '-', starting with a letter or digit",
    schema.ROLE_RE.pattern: "a role: 1-63 lower-case letters, digits, '_', '-', starting with a letter or digit",
    schema.NODE_NAME_RE.pattern: "a node name: letters, digits, '_', '.', '-', starting with a letter or digit",
}
# pydantic errors that only say "this union branch did not match": dropped when another error explains more.
_TYPE_ONLY = {"dict_type", "list_type", "string_type", "model_type", "model_attributes_type", "int_type", "float_type"}


@dataclass(frozen=True)
class PlanIssue:
    source: str  # the file name as given
    line: int | None  # 1-based
    path: str  # 'planes[1].mtu' ('' for the plan as a whole)
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PlanError(ValueError):
    """The plan cannot be used: one or more issues, each naming its line. The CLI shows it as a usage error (2)."""

    def __init__(self, issues: list[PlanIssue]):
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.path))
        super().__init__("\n".join(str(i) for i in self.issues))


def load_plan(path: str | Path, partial: bool = False) -> Plan:
    """Read and validate a plan file; PlanError (one issue per problem, with line numbers) if it is not usable.

    partial: the plan will be completed from OpenStack (--from-openstack), see Plan.problems."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PlanError([PlanIssue(source, None, "", f"cannot read the plan: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanError([PlanIssue(source, None, "", f"the plan is larger than {MAX_PLAN_BYTES // 1024} KiB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError([PlanIssue(source, None, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return parse_plan(text, source, partial)


def parse_plan(text: str, source: str = "<plan>", partial: bool = False) -> Plan:
    """Validate plan text (YAML); `source` names it in errors."""
    root, data = _compose(text, source)
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else None
        raise PlanError([PlanIssue(source, line, "", "a plan is a YAML mapping (keys like nodes:, planes:)")])
    index = _LineIndex(root)
    issues = list(index.duplicates(source))
    if issues:
        raise PlanError(issues)
    try:
        plan = Plan.model_validate(data, context={"defer_cross_checks": True})
    except ValidationError as exc:
        raise PlanError(_issues_from(exc, index, source)) from None
    problems = plan.problems(partial)
    if problems:
        issues = []
        for loc, message in problems:
            path, line = index.locate(loc, missing=True)
            issues.append(PlanIssue(source, line, dotted(path), message))
        raise PlanError(issues)
    return plan


# --- YAML with lines ---------------------------------------------------------------------------------


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise PlanError([PlanIssue(source, line, "", f"YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise PlanError([PlanIssue(source, None, "", f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if root is None:
        raise PlanError([PlanIssue(source, None, "", "the plan is empty")])
    return root, data


class _LineIndex:
    """Lines of the YAML nodes by their path: keys of mappings and indexes of sequences."""

    def __init__(self, root: yaml.Node):
        self.root = root

    @staticmethod
    def _children(node: yaml.Node) -> list[tuple[Any, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping or (index, item, item) of a sequence."""
        if isinstance(node, yaml.MappingNode):
            return [(k.value if isinstance(k, yaml.ScalarNode) else None, k, v) for k, v in node.value]
        if isinstance(node, yaml.SequenceNode):
            return [(i, item, item) for i, item in enumerate(node.value)]
        return []

    def locate(self, loc: tuple, missing: bool = False) -> tuple[tuple, int]:
        """The part of a pydantic location that exists in the YAML, and the line of its deepest node.

        Location parts that are no key or index here (union branch tags such as 'str', validator names) are
        skipped; with `missing`, the last part is a key that is absent: named, at its parent mapping's line."""
        node, path, line = self.root, [], self.root.start_mark.line + 1
        for n, part in enumerate(loc):
            match = None
            for key, key_node, value in self._children(node):
                if (isinstance(node, yaml.SequenceNode) and part == key) or (
                    isinstance(node, yaml.MappingNode) and key is not None and str(key) == str(part)
                ):
                    match = (key_node, value)
                    break
            if match is None:
                if missing and n == len(loc) - 1:
                    path.append(part)
                continue
            key_node, node = match
            path.append(part)
            line = key_node.start_mark.line + 1
        return tuple(path), line

    def duplicates(self, source: str) -> list[PlanIssue]:
        issues: list[PlanIssue] = []

        def walk(node: yaml.Node, path: tuple) -> None:
            seen: set[str] = set()
            for key, key_node, value in self._children(node):
                if isinstance(node, yaml.MappingNode) and key is not None:
                    if key in seen:
                        issues.append(
                            PlanIssue(
                                source, key_node.start_mark.line + 1, dotted((*path, key)), "the key is given twice"
                            )
                        )
                    seen.add(key)
                walk(value, (*path, key))

        walk(self.root, ())
        return issues


# --- pydantic errors in the operator's words ---------------------------------------------------------------


def _issues_from(exc: ValidationError, index: _LineIndex, source: str) -> list[PlanIssue]:
    located = []
    for err in exc.errors():
        path, line = index.locate(err["loc"], missing=err["type"] == "missing")
        located.append((path, line, err))
    # A value that matched no branch of a union gets one error per branch: keep the ones that say why.
    by_path: dict[tuple, list] = {}
    for item in located:
        by_path.setdefault(item[0], []).append(item)
    explained = {p for p, items in by_path.items() if any(i[2]["type"] not in _TYPE_ONLY for i in items)}
    issues = []
    for path, items in by_path.items():
        telling = [i for i in items if i[2]["type"] not in _TYPE_ONLY]
        if not telling:
            if any(len(p) > len(path) and p[: len(path)] == path for p in explained):
                continue  # the other branch of the union went deeper and says why
            telling = items[:1]
        seen = set()
        for _, line, err in telling:
            message = _message(err, path)
            if message not in seen:
                seen.add(message)
                issues.append(PlanIssue(source, line, dotted(path[:-1] if err["type"] == "missing" else path), message))
    return issues


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return str(value)


def _message(err: dict, path: tuple) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        known = _known_keys(path[:-1])
        text = "unknown key"
        if known:
            close = difflib.get_close_matches(str(path[-1]), known, n=1)
            text += f" (did you mean {close[0]}?)" if close else ""
            text += f"; known: {', '.join(known)}"
        return text
    if kind == "missing":
        return f"missing required key {path[-1]!r}" if path else "missing required key"
    if kind in ("less_than_equal", "less_than"):
        return f"{_show(value)} is above {ctx.get('le', ctx.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{_show(value)} is below {ctx.get('ge', ctx.get('gt'))}"
    if kind == "too_long":
        return f"too many: at most {ctx.get('max_length')}"
    if kind == "too_short":
        return f"too few: at least {ctx.get('min_length')}"
    if kind == "literal_error":
        return f"{_show(value)} is not one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        meaning = _MEANING.get(ctx.get("pattern", ""))
        return f"{_show(value)} is not {meaning}" if meaning else err["msg"]
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{_show(value)} is not a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{_show(value)} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{_show(value)} is not true or false"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (key: value), not {_show(value)}"
    if kind == "list_type":
        return f"expected a list, not {_show(value)}"
    if kind == "string_type":
        return f"expected text, not {_show(value)}"
    return err["msg"].removeprefix("Value error, ")


def _known_keys(path: tuple) -> list[str]:
    """The keys the model at this YAML path accepts (aliases as written in YAML)."""
    model: type[BaseModel] | None = Plan
    for part in path:
        if model is None:
            return []
        if isinstance(part, int):
            continue  # a list item: the list's model was already found from its field
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        model = _inner_model(field.annotation) if field else None
    if model is None:
        return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is dict:
        return None
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
