"""The wire contract: every probe declaration is complete and bounded; envelopes, subjects, agent info."""

from __future__ import annotations

import importlib
import inspect
import typing

import pytest
from pydantic import BaseModel, ValidationError

from steth.schemas import subjects
from steth.schemas.agent_info import AgentInfo, InterfaceAddresses
from steth.schemas.envelope import INCOMPLETE, Reply, Request, Status
from steth.schemas.probe import ProbeSpec
from steth.schemas.probes import get, registry
from steth.schemas.types import Params, Result, describe_validation_error

SPECS = sorted(registry().values(), key=lambda s: s.name)
IDS = [s.name for s in SPECS]
HUGE = 10**12


# --- the registry ---------------------------------------------------------------------------------


def test_registry_finds_the_core_probes():
    assert {"hello", "ping"} <= set(registry())
    assert get("ping") is registry()["ping"]
    assert get("no-such-probe") is None


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_declaration_is_complete(spec: ProbeSpec):
    assert subjects.PROBE_RE.match(spec.name), "a probe name is one subject token"
    module = importlib.import_module(f"steth.schemas.probes.{spec.name.replace('-', '_')}")
    assert module.SPEC is spec, "declared in the module named after the probe"
    assert issubclass(spec.params, Params) and issubclass(spec.result, Result)
    assert spec.params.model_config.get("extra") == "forbid", "unknown args must be an error"
    assert spec.summary and "\n" not in spec.summary
    assert 0 < spec.max_timeout_s <= 3600


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_agent_implements_every_declared_probe(spec: ProbeSpec):
    """The agent runs a probe from steth.agent.probes.<name>.run, a coroutine function."""
    module = f"steth.agent.probes.{spec.name.replace('-', '_')}"
    try:
        impl = importlib.import_module(module)
    except ModuleNotFoundError:
        pytest.fail(f"probe {spec.name!r} is declared but {module} does not exist: agents answer `error`")
    assert inspect.iscoroutinefunction(getattr(impl, "run", None)), f"{module}.run is not an async function"


def test_names_are_unique_across_modules(monkeypatch):
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    # A second declaration of one name is refused, not silently shadowed: feed the same module twice.
    import pkgutil

    import steth.schemas.probes as package

    real = pkgutil.iter_modules
    twice = lambda path: [m for m in real(path) if m.name == "hello"] * 2  # noqa: E731
    monkeypatch.setattr(package.pkgutil, "iter_modules", twice)
    registry.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="'hello' declared twice"):
            registry()
    finally:
        monkeypatch.undo()
        registry.cache_clear()
    assert set(registry()) == set(names)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_unknown_args_are_refused(spec: ProbeSpec):
    with pytest.raises(ValidationError) as exc:
        spec.params.model_validate({"no_such_arg_xyz": 1})
    assert any(e["type"] == "extra_forbidden" for e in exc.value.errors())


# --- every param is bounded -----------------------------------------------------------------------


def _resolve(schema: dict, defs: dict) -> dict:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _unbounded(schema: dict, defs: dict, where: str) -> tuple[list[str], list[str]]:
    """(problems, paths of free strings) in one field's JSON schema."""
    schema = _resolve(schema, defs)
    if "enum" in schema or "const" in schema:
        return [], []
    problems: list[str] = []
    strings: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            p, s = _unbounded(branch, defs, where)
            problems += p
            strings += s
    kind = schema.get("type")
    if kind in ("integer", "number"):
        if not ({"minimum", "exclusiveMinimum"} & set(schema) and {"maximum", "exclusiveMaximum"} & set(schema)):
            problems.append(f"{where}: a number needs a lower and an upper bound")
    elif kind == "array":
        if "maxItems" not in schema:
            problems.append(f"{where}: a list needs max_length")
        p, s = _unbounded(schema.get("items", {}), defs, f"{where}[]")
        problems += p
        strings += s
    elif kind == "object":
        if schema.get("additionalProperties") not in (None, False) and "maxProperties" not in schema:
            problems.append(f"{where}: a mapping needs max_length")
        for name, prop in schema.get("properties", {}).items():
            p, _ = _unbounded(prop, defs, f"{where}.{name}")
            problems += p
    elif kind == "string":
        strings.append(where)
    elif kind not in ("boolean", "null", None):
        problems.append(f"{where}: unexpected type {kind}")
    return problems, strings


def _field_errors(model: type[BaseModel], name: str, value) -> list[dict]:
    try:
        model.model_validate({name: value})
    except ValidationError as exc:
        return [e for e in exc.errors() if e["loc"] and e["loc"][0] == name]
    return []


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_param_is_bounded(spec: ProbeSpec):
    schema = spec.params.model_json_schema()
    defs = schema.get("$defs", {})
    problems: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        p, strings = _unbounded(prop, defs, name)
        problems += p
        for where in strings:
            # A free string must refuse what could become a tool option, and huge values.
            wrap = (lambda v: [v]) if where.endswith("[]") else (lambda v: v)
            for bad in ("-rf", "--help", "x" * 100_000):
                if not _field_errors(spec.params, name, wrap(bad)):
                    problems.append(f"{where}: accepts {bad[:12]!r}")
    assert not problems, f"{spec.name}: " + "; ".join(problems)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_numbers_out_of_range_are_refused(spec: ProbeSpec):
    props = spec.params.model_json_schema().get("properties", {})
    for name, prop in props.items():
        if prop.get("type") in ("integer", "number"):
            assert _field_errors(spec.params, name, HUGE), f"{name} accepts {HUGE}"
            assert _field_errors(spec.params, name, -HUGE), f"{name} accepts {-HUGE}"


class _Lasting:
    """Stands for params of a given expected duration (timeout_for only asks for that)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def expected_duration_s(self) -> float:
        return self.seconds


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_timeout_for_is_capped_by_the_declaration(spec: ProbeSpec):
    assert spec.timeout_for(_Lasting(10**9)) == spec.max_timeout_s
    assert 0 < spec.timeout_for(_Lasting(0.0)) <= spec.max_timeout_s
    assert spec.timeout_for(_Lasting(1.0)) >= min(1.0, spec.max_timeout_s), "a margin over the duration"


def test_ping_timeout_follows_its_params():
    spec = get("ping")
    p = spec.params(targets=["10.0.0.1"], count=200, interval_s=0.01)
    assert p.expected_duration_s() == pytest.approx(3.0)
    assert spec.timeout_for(p) == pytest.approx(3.0 * 1.2 + 2.0)
    longest = spec.params(targets=["10.0.0.1"], count=480, interval_s=1.0)  # the longest run allowed
    assert spec.timeout_for(longest) <= spec.max_timeout_s
    with pytest.raises(ValueError, match="at most 480 s per run"):  # would outlive the longest deadline
        spec.params(targets=["10.0.0.1"], count=1000, interval_s=10)


# --- columns --------------------------------------------------------------------------------------


def _row_model(spec: ProbeSpec) -> type[BaseModel]:
    if spec.rows_key is None:
        return spec.result
    field = spec.result.model_fields.get(spec.rows_key)
    assert field is not None, f"rows_key {spec.rows_key!r} is not a result field"
    assert typing.get_origin(field.annotation) is list, f"rows_key {spec.rows_key!r} is not a list"
    (item,) = typing.get_args(field.annotation)
    assert isinstance(item, type) and issubclass(item, BaseModel), f"rows of {spec.rows_key!r} are not models"
    return item


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_columns_name_real_result_fields(spec: ProbeSpec):
    row = _row_model(spec)
    fields = set(row.model_fields) | set(row.model_computed_fields)
    for col in spec.columns:
        assert col.key in fields, f"column {col.header} -> {col.key!r}: not a field of {row.__name__}"
        assert col.unit in ("", "ms", "ratio", "bps", "bytes", "s"), f"column {col.header}: unit {col.unit!r}"
        assert col.header == col.header.upper()
    headers = [c.header for c in spec.columns]
    assert len(headers) == len(set(headers))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_unit_suffixes_match_column_units(spec: ProbeSpec):
    """Field names carry units: a column over `*_ms` renders as ms, over `loss` as a ratio."""
    for col in spec.columns:
        if col.key.endswith("_ms"):
            assert col.unit == "ms", col
        if col.key.endswith("_bps"):
            assert col.unit == "bps", col
        if col.key.endswith("_bytes"):
            assert col.unit in ("bytes", ""), col
        if col.key == "loss" or col.key.endswith("_loss"):
            assert col.unit == "ratio", col


# --- envelope and statuses ------------------------------------------------------------------------


def test_controller_statuses_are_incomplete_or_findings():
    assert Status.FAILED not in INCOMPLETE and Status.OK not in INCOMPLETE
    assert "unexpected" not in {s.value for s in Status}  # an answer from outside presence keeps its own status
    assert {
        Status.NO_REPLY,
        Status.TIMEOUT,
        Status.ABORTED,
        Status.INVALID,
        Status.ERROR,
        Status.UNKNOWN_PROBE,
    } == INCOMPLETE


def test_request_bounds_and_defaults():
    req = Request(probe="ping", deadline=5.0)
    assert len(req.id) == 16 and req.args == {} and req.v == 1
    assert Request(probe="ping", deadline=5.0).id != req.id
    for bad in (
        {"probe": "x" * 65, "deadline": 1},
        {"probe": "ping"},
        {"probe": "ping", "deadline": "soon"},
        {"probe": "ping", "deadline": 1, "id": "i" * 65},
        {"probe": "ping", "deadline": 1, "args": [1]},
    ):
        with pytest.raises(ValidationError):
            Request.model_validate(bad)


def test_reply_refuses_an_unknown_status():
    with pytest.raises(ValidationError):
        Reply.model_validate({"node": "n", "status": "great"})
    assert Reply.model_validate({"node": "n", "status": "ok"}).status is Status.OK
    assert Reply(node="n", status=Status.OK, started=5, finished=4).duration_s == 0.0


def test_describe_validation_error_is_one_line_and_limited():
    class M(Params):
        a: int
        b: int
        c: int
        d: int

    with pytest.raises(ValidationError) as exc:
        M.model_validate({"a": "x", "b": "y", "c": "z", "d": "w"})
    text = describe_validation_error(exc.value)
    assert "\n" not in text
    assert text.startswith("a: ") and "; b: " in text and text.endswith("(+1 more)")


# --- subjects -------------------------------------------------------------------------------------


def test_subjects_spell_the_design():
    assert subjects.req_all("ping") == "steth.v1.req.all.ping"
    assert subjects.req_role("compute", "ping") == "steth.v1.req.role.compute.ping"
    assert subjects.req_node("compute-1", "ping") == "steth.v1.req.node.compute-1.ping"
    assert subjects.presence_event("up", "compute-1") == "steth.v1.presence.up.compute-1"
    assert subjects.results("compute-1", "ping") == "steth.v1.results.compute-1.ping"


def test_dotted_node_names_stay_one_token_reversibly():
    node = "cmp-1.rack2.example.org"
    subject = subjects.req_node(node, "ping")
    assert subject.split(".")[4] == "cmp-1%2Erack2%2Eexample%2Eorg" and len(subject.split(".")) == 6
    assert subjects.token("a%2Eb") != subjects.token("a.b")  # escaping '%' first keeps it reversible


@pytest.mark.parametrize(
    "name, ok",
    [
        ("compute-1", True),
        ("node.example.org", True),
        ("-x", False),
        ("a b", False),
        ("a*", False),
        ("a>", False),
        ("", False),
        ("x" * 254, False),
    ],
)
def test_node_names(name, ok):
    assert bool(subjects.NODE_NAME_RE.match(name)) is ok


@pytest.mark.parametrize(
    "role, ok",
    [
        ("compute", True),
        ("l3-agent", True),
        ("Compute", False),
        ("a.b", False),
        ("*", False),
        (">", False),
        ("-x", False),
    ],
)
def test_role_names(role, ok):
    assert bool(subjects.ROLE_RE.match(role)) is ok


# --- agent info -----------------------------------------------------------------------------------


def test_address_on_a_plane():
    info = AgentInfo(
        node="n",
        data_plane="10.98.0.11",
        interfaces=[
            InterfaceAddresses(name="lo", addresses=["127.0.0.1/8", "::1/128"]),
            InterfaceAddresses(name="mgmt0", addresses=["10.99.0.11/24", "fe80::1/64"]),
            InterfaceAddresses(name="data0", addresses=["fe80::2/64", "10.98.0.11/24"]),
        ],
    )
    assert info.address_on(None) == "10.98.0.11"
    assert info.address_on("10.99.0.0/24") == "10.99.0.11"
    assert info.address_on("10.99.0.0/16") == "10.99.0.11"
    assert info.address_on("mgmt0") == "10.99.0.11"
    assert info.address_on("data0") == "10.98.0.11"  # the IPv4 address, not the link-local one first
    assert info.address_on("fe80::/64") == "fe80::1"
    assert info.address_on("192.0.2.0/24") is None
    assert info.address_on("nosuch0") is None
    assert AgentInfo(node="n").address_on(None) is None


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_address_fields_refuse_zone_ids_and_commas(spec: ProbeSpec):
    """`%zone` and `,` let one address carry more (an interface, a second OVSDB remote): every address-like
    field refuses them, whichever probe declares it (issue 12, the `db` hole)."""
    from steth.agent.policy import ADDRESS, OVSDB, plan

    for name, kind, _ in plan(spec.params):
        if kind not in (ADDRESS, OVSDB):
            continue
        sample = "fe80::1%eth0" if kind == ADDRESS else "tcp:[fe80::1%x,punix:db.sock]:6640"
        annotation = typing.get_origin(spec.params.model_fields[name].annotation)
        value = [sample] if annotation is list else sample
        with pytest.raises(ValidationError) as caught:
            spec.params.model_validate({name: value})
        assert any(e["loc"][0] == name for e in caught.value.errors()), (spec.name, name, caught.value)


@pytest.mark.parametrize("target", ["[fe80::1%eth0]:22", "[fe80::1%x,y]:22", "a,b:22"])
def test_tcp_targets_refuse_zone_ids_and_commas(target):
    with pytest.raises(ValidationError):
        get("tcp-check").params(targets=[target])
    assert get("tcp-check").params(targets=["[0:0::1]:22"]).targets == ["[::1]:22"]  # rebuilt
