"""Fuzzing the agent's request path: more than 10,000 random, malformed and hostile requests.

Everything goes through the real AgentRuntime._dispatch (decode, envelope validation, signature and
policy checks, params validation): the agent must never raise, every request gets a structured reply
(a well-formed request past its deadline is dropped by design, and nothing else is), and no value can
reach a tool: interface, namespace and address values that start with '-' or carry shell metacharacters
are refused by the types before any process starts. A spy on procs.run counts processes started.
The over-the-wire sample against a real agent process is in tests/integration/test_reliability.py.

Each test runs one batch of BATCHES and checks, once its examples are done, that every one of them was
dispatched and answered; the batches add up to more than 10,000 requests. No test reads another's counts,
so any one of them can run alone or in any order.
"""

from __future__ import annotations

import asyncio
import re
import time

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from steth import codec
from steth.agent import procs
from steth.agent.config import AgentConfig, PolicyConfig
from steth.agent.runtime import AgentRuntime
from steth.schemas.envelope import Reply, Request, Status
from steth.schemas.probes import registry
from steth.schemas.types import InterfaceName, IPAddress, NetnsName

FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


# Requests each batch dispatches (hypothesis examples); test_policy_refuses_before_running sends 3 more.
BATCHES = {
    "random_bytes": 2500,
    "random_msgpack": 2000,
    "malformed_envelopes": 2500,
    "schema_violating_args": 2000,
    "hostile_values": 1500,
}
POLICY_REQUESTS = 3


def fuzz(batch: str) -> settings:
    return settings(FUZZ, max_examples=BATCHES[batch])


# This test's counts: reset before every test (the autouse fixture `count`), so none depends on another.
COUNT = {"dispatched": 0, "replied": 0, "dropped": 0, "processes": 0}
AGENT_STATUSES = {Status.OK, Status.FAILED, Status.INVALID, Status.ABORTED, Status.UNKNOWN_PROBE, Status.TIMEOUT}

# Values that would change a tool's behaviour if they ever reached its argv, or a shell's.
EVIL = [
    "-h",
    "--help",
    "-oProxyCommand=sh",
    "-I",
    "-w/tmp/x",
    "--",
    "-",
    "a;reboot",
    "a|sh",
    "a&&b",
    "$(id)",
    "`id`",
    "a b",
    "a\tb",
    "a\nb",
    "a\x00b",
    "../../etc",
    "a/b",
    "*",
    "?",
    "[a]",
    "{a,b}",
    "a>b",
    "a<b",
    "'a'",
    '"a"',
    "a\\b",
    "~root",
    "!a",
    "é",
    "\u202e",
    "",
    " ",
    ".",
    "..",
    "lo\n",
    "eth0\n",
    "\nlo",
]
evil_text = st.one_of(
    st.sampled_from(EVIL),
    st.builds(lambda e, t: e + t, st.sampled_from(["-", "--", ";", "|", "$(", "`", " ", "\n"]), st.text(max_size=12)),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
        lambda s: not re.match(r"[A-Za-z0-9_]", s[:1])
    ),
)


@pytest.fixture(scope="module")
def agent():
    """One runtime, no NATS needed for dispatch; the policy keeps anything that did run on loopback."""
    cfg = AgentConfig(
        node="fz",
        roles=["compute"],
        policy=PolicyConfig(allowed_interfaces=["lo"], allowed_target_cidrs=["127.0.0.0/8"]),
    )
    rt = AgentRuntime(cfg, gather_interfaces=False)
    loop = asyncio.new_event_loop()
    real_run = procs.run

    async def spy(argv, timeout, **kw):
        COUNT["processes"] += 1
        return await real_run(argv, timeout, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(procs, "run", spy)
    yield rt, loop
    mp.undo()
    loop.close()


@pytest.fixture(autouse=True)
def count():
    COUNT.update(dispatched=0, replied=0, dropped=0, processes=0)
    yield COUNT


def batch_done(batch: str) -> None:
    """Every example of the batch was dispatched, and every request answered (or dropped past its deadline)."""
    assert COUNT["dispatched"] == BATCHES[batch], (batch, COUNT)
    assert COUNT["replied"] + COUNT["dropped"] == COUNT["dispatched"], COUNT
    print(f"\nfuzz {batch}: {COUNT}")


def dispatch(agent, probe: str, payload: bytes, past_deadline_ok: bool = False) -> Reply | None:
    rt, loop = agent
    COUNT["dispatched"] += 1
    subject = f"steth.v1.req.all.{probe}"
    reply = loop.run_until_complete(rt._dispatch(probe, payload, time.time(), subject, {}))
    if reply is None:
        assert past_deadline_ok, f"no reply to {payload[:80]!r}"
        COUNT["dropped"] += 1
        return None
    COUNT["replied"] += 1
    assert isinstance(reply, Reply) and reply.status in AGENT_STATUSES and reply.node == "fz"
    Reply.model_validate(codec.decode(codec.encode(reply.model_dump(mode="json"))))  # it can be sent and read
    return reply


def request_bytes(probe: str, args, deadline=None, **fields) -> bytes:
    body = {
        "v": 1,
        "id": "f" * 16,
        "probe": probe,
        "args": args,
        "deadline": time.time() + 5 if deadline is None else deadline,
        "sender": "fuzz",
        **fields,
    }
    return msgpack.packb(body, use_bin_type=True)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=12), inner, max_size=6)),
    max_leaves=20,
)
probe_names = st.one_of(st.sampled_from(["hello", "ping"]), st.text(max_size=20).filter(lambda s: "." not in s))


def test_random_bytes(agent):
    @fuzz("random_bytes")
    @given(payload=st.binary(max_size=2048))
    def one(payload):
        reply = dispatch(agent, "ping", payload)
        assert reply.status is Status.INVALID and reply.message.startswith("malformed request")

    one()
    batch_done("random_bytes")


def test_random_msgpack(agent):
    @fuzz("random_msgpack")
    @given(obj=values)
    def one(obj):
        reply = dispatch(agent, "hello", msgpack.packb(obj, use_bin_type=True))
        assert reply.status is Status.INVALID

    one()
    batch_done("random_msgpack")


def test_malformed_envelopes(agent):
    """Envelopes with wrong types in every field, wrong probe names, odd deadlines, unknown keys."""

    @fuzz("malformed_envelopes")
    @given(
        probe=probe_names,
        args=values,
        deadline=st.one_of(st.floats(min_value=2, max_value=30), values),
        extra=st.dictionaries(st.sampled_from(["v", "id", "sender", "sent", "sig", "kid", "zz"]), values, max_size=3),
    )
    def one(probe, args, deadline, extra):
        if isinstance(deadline, float):
            deadline = time.time() + deadline
        payload = msgpack.packb(
            {"v": 1, "id": "x", "probe": probe, "args": args, "deadline": deadline, **extra}, use_bin_type=True
        )
        subject_probe = probe if probe and all(c.isalnum() or c in "-_" for c in probe) else "hello"
        try:  # a well-formed request whose deadline has passed is dropped (nobody waits for it): allowed
            late = Request.model_validate(codec.decode(payload)).deadline < time.time() + 1
        except (ValueError, TypeError):
            late = False
        reply = dispatch(agent, subject_probe, payload, past_deadline_ok=late)
        if reply is not None and reply.status is Status.OK:
            assert subject_probe == "hello" and args == {}  # the only request here that may legitimately run

    one()
    batch_done("malformed_envelopes")


params_probes = sorted(registry())


def test_schema_violating_args_every_probe(agent):
    """Random args for every probe, always with one unknown key: refused as `invalid`, nothing runs."""

    @fuzz("schema_violating_args")
    @given(
        probe=st.sampled_from(params_probes),
        args=st.dictionaries(st.text(max_size=16), values, max_size=5),
        unknown=st.text(min_size=1, max_size=16),
    )
    def one(probe, args, unknown):
        spec = registry()[probe]
        if unknown in spec.params.model_fields:
            unknown = "_" + unknown + "_unknown"
        reply = dispatch(agent, probe, request_bytes(probe, {**args, unknown: 1}))
        assert reply.status is Status.INVALID and reply.message.startswith("bad args"), reply.message

    one()
    batch_done("schema_violating_args")
    assert COUNT["processes"] == 0


def test_hostile_values_never_reach_a_tool(agent):
    """Valid ping args but one hostile interface, namespace or target: `invalid` names the field, no process."""

    @fuzz("hostile_values")
    @given(field=st.sampled_from(["interface", "netns", "targets"]), value=evil_text)
    def one(field, value):
        args = {"targets": ["127.0.0.1"], "count": 1, "interval_s": 0.01}
        args[field] = [value] if field == "targets" else value
        reply = dispatch(agent, "ping", request_bytes("ping", args))
        assert reply.status is Status.INVALID and field in reply.message, (value, reply.message)

    one()
    batch_done("hostile_values")
    assert COUNT["processes"] == 0


@settings(FUZZ, max_examples=500)
@given(value=evil_text)
def test_types_refuse_hostile_values(value):
    for kind in (InterfaceName, NetnsName, IPAddress):
        with pytest.raises(ValidationError):
            TypeAdapter(kind).validate_python(value)


def test_policy_refuses_before_running(agent):
    """Valid args outside the allow-lists: `aborted` (refused by policy), no process; inside: it runs."""
    before = COUNT["processes"]
    off_net = dispatch(agent, "ping", request_bytes("ping", {"targets": ["192.0.2.1"], "count": 1}))
    assert off_net.status is Status.ABORTED and "allowed_target_cidrs" in off_net.message
    off_if = dispatch(agent, "ping", request_bytes("ping", {"targets": ["127.0.0.1"], "interface": "eth0"}))
    assert off_if.status is Status.ABORTED and "allowed_interfaces" in off_if.message
    assert COUNT["processes"] == before
    ok = dispatch(agent, "ping", request_bytes("ping", {"targets": ["127.0.0.1"], "count": 1, "interface": "lo"}))
    assert ok.status in (Status.OK, Status.ABORTED) and COUNT["processes"] == before + 1  # ABORTED: no ping here
    assert COUNT["dispatched"] == COUNT["replied"] == POLICY_REQUESTS


def test_total_inputs():
    """At least 10,000 fuzzed requests in all. Each batch's test checks that it dispatched all of its own
    (batch_done), so this holds for every run in which they pass, whatever their order: nothing is summed
    across tests."""
    assert sum(BATCHES.values()) + POLICY_REQUESTS >= 10_000, BATCHES
