"""Red team: the attacks of issue 12 sent over the wire to the secure lab, each refused with the status it
must get, and nothing changed on the host afterwards (no process left, no link made, the agent still
answers). Requests go straight onto NATS with the lab's controller identity, bypassing every check the CLI
makes, so only the agent judges them. The in-process fuzz (tests/unit/test_fuzz_agent.py, 10,503 payloads)
and the broker-side attacks (tests/integration/test_security.py: identities, permissions, presence
spoofing, rollups, stream rights, forged and replayed signatures) complete this list.
"""

from __future__ import annotations

import asyncio
import time

import msgpack
import pytest
from conftest import needs_root

from steth import codec
from steth.schemas import subjects
from steth.schemas.envelope import Request

pytestmark = [needs_root, pytest.mark.lab]

NODE = "compute-1"


def send(lab, probe: str, payload: bytes, timeout: float = 10.0) -> dict:
    """One raw payload to NODE's subject for `probe`; the decoded reply."""
    from steth.natsconn import connect

    async def go():
        nc = await connect(lab.nats_options("steth-redteam"))
        try:
            msg = await nc.request(subjects.req_node(NODE, probe), payload, timeout=timeout)
            return codec.decode(msg.data)
        finally:
            await nc.close()

    return asyncio.run(go())


def signed(lab, probe: str, args: dict, **fields) -> bytes:
    request = Request(probe=probe, args=args, deadline=time.time() + 8, sender="redteam@test", **fields)
    lab.signer().sign(request, subjects.req_node(NODE, probe))
    return codec.encode(request.model_dump(mode="json"))


def raw(probe: str, **fields) -> bytes:
    body = {"v": 1, "id": "redteam", "probe": probe, "args": {}, "deadline": time.time() + 8, **fields}
    return msgpack.packb(body, use_bin_type=True)


def host_links(lab) -> set[str]:
    return set(lab.in_ns(NODE, "ip", "-o", "link", "show").stdout.split("\n"))


def nested(depth: int):
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


ATTACKS = [
    # (what, probe, payload builder, status, words in the message)
    ("args nested 1,000 deep", "hello", lambda lab: raw("hello", args={"x": nested(1000)}), "invalid", "nested"),
    (
        "140,000 keys in 0.9 MB",
        "hello",
        lambda lab: raw("hello", args={f"{i:x}": 0 for i in range(140_000)}),
        "invalid",
        "more than 20000 values",
    ),
    ("a deadline of 1e306", "hello", lambda lab: raw("hello", deadline=1e306), "invalid", "deadline"),
    ("a protocol version it does not speak", "hello", lambda lab: raw("hello", v=99), "invalid", "speaks version(s) 1"),
    ("an unsigned request", "hello", lambda lab: raw("hello"), "invalid", "unsigned"),
    (
        "an OVSDB remote carrying a second, listening one",
        "ovs",
        lambda lab: signed(lab, "ovs", {"view": "ports", "db": "tcp:fe80::1%x,punix:db.sock,tcp:127.0.0.1:1"}),
        "invalid",
        "'%' and ','",
    ),
    (
        "an OVSDB remote outside the allow-list",
        "ovs",
        lambda lab: signed(lab, "ovs", {"view": "ports", "db": "tcp:127.0.0.1:6640"}),
        "aborted",
        "allowed_ovsdb",
    ),
    (
        "a mutating probe with mutating off",
        "link-setup",
        lambda lab: signed(lab, "link-setup", {"name": "strt0", "kind": "veth", "peer": "strt1"}),
        "aborted",
        "mutating",
    ),
    (
        "an option smuggled as an interface name",
        "ping",
        lambda lab: signed(lab, "ping", {"targets": ["127.0.0.1"], "interface": "-I"}),
        "invalid",
        "interface",
    ),
    (
        "a send time before the agent started (a replay across a restart)",
        "hello",
        lambda lab: signed(lab, "hello", {}, sent=time.time() - 3600),
        "invalid",
        "before this agent started",
    ),
]


def test_every_attack_is_refused_and_nothing_changes(lab):
    links_before = host_links(lab)
    for what, probe, build, status, words in ATTACKS:
        reply = send(lab, probe, build(lab))
        assert reply["status"] == status and words in reply["message"], (what, reply)
        assert reply["node"] == NODE, what
    # A signed request accepted once is refused the second time, byte for byte the same.
    once = signed(lab, "hello", {})
    assert send(lab, "hello", once)["status"] == "ok"
    again = send(lab, "hello", once)
    assert again["status"] == "invalid" and "replayed" in again["message"], again
    # Nothing changed: the same links, and the agent answers as before.
    assert host_links(lab) == links_before
    assert send(lab, "hello", signed(lab, "hello", {}))["status"] == "ok"
