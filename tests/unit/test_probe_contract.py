"""One shape for every probe: findings come back as an Outcome with the result model, everything else is raised
as a steth.agent.errors class, and the runtime alone turns either into a status (steth.agent.runtime.settle).

Over the registry, like test_schemas.py: every probe module keeps to the shape, every exception class in the
family maps to the status it declares, and a few probes run for real return their own result model.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import pkgutil
import shutil
import time
from pathlib import Path

import pytest

import steth.agent
from steth import codec
from steth.agent import errors
from steth.agent.config import AgentConfig
from steth.agent.errors import CouldNotRun, ProbeError, RequestRefused
from steth.agent.probes import Outcome
from steth.agent.runtime import AgentRuntime, settle
from steth.schemas.envelope import PROTOCOL_VERSIONS, Reply, Request, Status
from steth.schemas.probes import registry
from steth.schemas.probes.ping import PingResult, PingTarget

SPECS = sorted(registry().values(), key=lambda s: s.name)
IDS = [s.name for s in SPECS]
AGENT = Path(steth.agent.__file__).parent
# Where probe code lives: the probe modules, the helpers they share, and the subinterface mode of vlan-check.
PROBE_FILES = sorted(AGENT.glob("probes/*.py")) + [AGENT / "vlan_subif.py"]
NOT_FINDINGS = {"ABORTED", "TIMEOUT", "ERROR", "INVALID", "UNKNOWN_PROBE", "NO_REPLY"}


def _agent_modules() -> list:
    mods = []
    for info in pkgutil.walk_packages([str(AGENT)], "steth.agent."):
        if info.name.endswith("__main__"):
            continue
        mods.append(importlib.import_module(info.name))
    return mods


def _family() -> list[type[ProbeError]]:
    _agent_modules()
    found, todo = [], [ProbeError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(set(found), key=lambda c: c.__name__)


# --- the shape of probe code ----------------------------------------------------------------------


@pytest.mark.parametrize("path", PROBE_FILES, ids=[p.name for p in PROBE_FILES])
def test_probe_code_decides_no_status_but_findings(path: Path):
    """No probe names a status other than ok/failed, or catches a could-not-run exception to map it itself."""
    tree = ast.parse(path.read_text())
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Status":
            if node.attr in NOT_FINDINGS:
                problems.append(f"line {node.lineno}: Status.{node.attr}: raise a steth.agent.errors class")
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = [n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "") for n in ast.walk(node.type)]
            for name in {"ToolMissing", "ProbeError", "CouldNotRun", "OvsdbUnavailable", "TooManyJobs", "HelperFailed"}:
                if name in names:
                    problems.append(f"line {node.lineno}: catches {name}: the runtime maps it")
    assert not problems, problems


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_probe_run_is_typed_to_return_an_outcome(spec):
    module = importlib.import_module(f"steth.agent.probes.{spec.name.replace('-', '_')}")
    hints = inspect.get_annotations(module.run)
    assert hints.get("return") in ("Outcome", Outcome), f"{module.__name__}.run -> Outcome"
    params = list(inspect.signature(module.run).parameters)
    assert params == ["params", "ctx"]
    assert hints.get(params[0]) in (spec.params.__name__, spec.params), "run takes the probe's own params model"


def test_outcome_holds_only_findings_and_a_result_model():
    assert Outcome(Status.OK).result is None
    Outcome(Status.FAILED, "loss", PingResult(targets=[]))
    for status in (Status.ABORTED, Status.TIMEOUT, Status.ERROR, Status.INVALID, Status.UNKNOWN_PROBE):
        with pytest.raises(TypeError, match="raise a steth.agent.errors class"):
            Outcome(status, "x")
    with pytest.raises(TypeError, match="result model"):
        Outcome(Status.OK, "", {"targets": []})


# --- the exception family and the one mapping -------------------------------------------------------


def test_every_exception_class_of_the_agent_is_in_the_family():
    """One root: an exception class defined anywhere in steth.agent derives from ProbeError."""
    strays = [
        f"{mod.__name__}.{name}"
        for mod in _agent_modules()
        for name, obj in vars(mod).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == mod.__name__
        and not issubclass(obj, ProbeError)
    ]
    assert not strays, strays
    assert {c.__module__ for c in _family()} == {"steth.agent.errors"}, "the family is declared in one module"


@pytest.mark.parametrize("cls", _family(), ids=lambda c: c.__name__)
def test_each_exception_maps_to_the_status_it_declares(cls):
    assert cls.status not in (Status.OK, Status.FAILED), "findings are returned, never raised"
    assert cls.__doc__, "say when it is raised"
    exc = cls("the reason")
    settled = settle(exc)
    assert settled.status is cls.status
    assert settled.message.endswith("the reason") and settled.result is None
    if cls is not RequestRefused:
        assert settled.message == "the reason"


def test_could_not_run_is_aborted_and_the_rest_as_declared():
    assert {c.__name__ for c in _family() if c.status is Status.ABORTED} >= {
        "CouldNotRun",
        "ToolMissing",
        "NoSuchDevice",
        "NotAllowed",
        "Busy",
        "TooManyJobs",
        "OvsdbUnavailable",
        "HelperFailed",
        "IpError",
    }
    assert all(issubclass(c, CouldNotRun) for c in _family() if c.status is Status.ABORTED)
    assert errors.Invalid.status is Status.INVALID and errors.DeadlineReached.status is Status.TIMEOUT
    assert settle(RequestRefused("bad signature")).message == "refused: bad signature"


def test_settle_dumps_the_result_once_as_the_wire_always_had_it():
    result = PingResult(targets=[PingTarget(target="10.0.0.1", sent=3, received=3, loss=0.0, rtt_avg_ms=0.5)])
    ok = settle(Outcome(Status.OK, "", result))
    assert ok.status is Status.OK and ok.result == result.model_dump()
    # Byte for byte what an agent sent when probes dumped their own results.
    before = Reply(node="n", status=Status.OK, result=result.model_dump(), started=1.0, finished=2.0)
    after = Reply(node="n", status=ok.status, result=ok.result, started=1.0, finished=2.0)
    assert codec.encode(after.model_dump(mode="json")) == codec.encode(before.model_dump(mode="json"))
    # A partial result travels with the status an exception declares.
    partial = settle(errors.DeadlineReached("stopped at the deadline", result))
    assert partial.status is Status.TIMEOUT and partial.result == result.model_dump()


def test_an_unexpected_exception_is_error():
    settled = settle(ZeroDivisionError("division by zero"), "ping")
    assert settled.status is Status.ERROR and settled.message == "agent error: division by zero"


# --- through the runtime ------------------------------------------------------------------------------


def _runtime(**kw) -> AgentRuntime:
    return AgentRuntime(AgentConfig(node="n1", roles=["compute"], **kw), gather_interfaces=False)


def _execute(rt: AgentRuntime, probe: str, args: dict, seconds: float = 5.0):
    params = registry()[probe].params.model_validate(args)
    return asyncio.run(rt.execute(probe, params, time.time() + seconds))


def test_execute_maps_what_a_probe_raises(monkeypatch):
    import steth.agent.probes.hello as hello

    rt = _runtime()
    for exc, status in [
        (errors.ToolMissing("frob is not installed"), Status.ABORTED),
        (errors.Invalid("bad filter"), Status.INVALID),
        (errors.DeadlineReached("stopped"), Status.TIMEOUT),
        (RuntimeError("boom"), Status.ERROR),
    ]:

        async def raising(params, ctx, exc=exc):
            raise exc

        monkeypatch.setattr(hello, "run", raising)
        settled, _ = _execute(rt, "hello", {})
        assert settled.status is status, exc
        assert str(exc) in settled.message


def test_execute_past_the_deadline_is_timeout(monkeypatch):
    import steth.agent.probes.tcp_check as tcp_check

    async def slow(params, ctx):
        await asyncio.sleep(5)

    monkeypatch.setattr(tcp_check, "run", slow)
    settled, started = _execute(_runtime(), "tcp-check", {"targets": ["127.0.0.1:1"]}, seconds=0.3)
    assert settled.status is Status.TIMEOUT and "did not finish within the deadline" in settled.message
    assert started is not None


def _run_real(probe: str, args: dict) -> Outcome:
    rt = _runtime()
    module = importlib.import_module(f"steth.agent.probes.{probe.replace('-', '_')}")
    params = registry()[probe].params.model_validate(args)
    return asyncio.run(module.run(params, rt._context(time.time() + 5, "t1")))


REAL = [
    ("hello", {}),
    ("tcp-check", {"targets": ["127.0.0.1:1"]}),
    ("iperf-stop", {"job_id": "0123456789abcdef"}),
    pytest.param(
        "interface",
        {"interface": "lo"},
        marks=pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 not installed"),
    ),
    pytest.param(
        "address",
        {"addresses": ["127.0.0.1"]},
        marks=pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 not installed"),
    ),
    pytest.param(
        "ping",
        {"targets": ["127.0.0.1"], "count": 1},
        marks=pytest.mark.skipif(shutil.which("ping") is None, reason="iputils ping not installed"),
    ),
]


@pytest.mark.parametrize("probe,args", REAL, ids=lambda v: v if isinstance(v, str) else "")
def test_a_real_run_returns_its_own_result_model(probe, args):
    outcome = _run_real(probe, args)
    assert isinstance(outcome, Outcome) and outcome.status in (Status.OK, Status.FAILED), outcome
    assert type(outcome.result) is registry()[probe].result


# --- protocol versions --------------------------------------------------------------------------------


def _dispatch(rt: AgentRuntime, raw: dict, probe: str = "hello") -> Reply:
    return asyncio.run(rt._dispatch(probe, codec.encode(raw), time.time(), f"steth.v1.req.node.n1.{probe}"))


def _raw(**fields) -> dict:
    req = Request(probe="hello", deadline=time.time() + 5, id="r1").model_dump(mode="json")
    return {**req, **fields}


def test_a_version_the_agent_does_not_speak_is_invalid_and_names_the_spoken_ones():
    rt = _runtime()
    reply = _dispatch(rt, _raw(v=99))
    assert reply.status is Status.INVALID and reply.id == "r1"
    assert "99" in reply.message and all(str(v) in reply.message for v in PROTOCOL_VERSIONS)
    assert reply.message == "protocol version 99 is not spoken here: this agent speaks version(s) 1"
    assert reply.v in PROTOCOL_VERSIONS  # the reply itself is in a version the controller reads
    # Another version may have another shape: the version is what the answer is about, not the shape.
    other = _dispatch(rt, {"v": 2, "id": "r2", "kind": "hello", "until": "soon"})
    assert other.status is Status.INVALID and other.message.startswith("protocol version 2 ") and other.id == "r2"
    for v in PROTOCOL_VERSIONS:
        assert _dispatch(rt, _raw(v=v)).status is Status.OK
    assert _dispatch(rt, {k: v for k, v in _raw().items() if k != "v"}).status is Status.OK  # v defaults to 1
