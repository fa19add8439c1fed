"""Faults, for real: a frozen agent (SIGSTOP), a killed one (SIGKILL), one told to stop mid-request
(SIGTERM), an agent that answers without being in presence, and the NATS server itself restarting.

The shared lab's own agents are never harmed: the victims are extra agents started in the lab's
namespaces for this module, and the NATS restart happens on a small lab of its own (h1r).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
from conftest import Lab, lab_named, needs_root

pytestmark = [needs_root, pytest.mark.lab]

EXTRAS = {
    "h1stop": ("compute-1", ["compute"]),
    "h1kill": ("compute-2", ["compute"]),
    "h1drain": ("network-1", ["network"]),
}


def nodes_of(doc: dict) -> dict[str, dict]:
    return {n["node"]: n for n in doc["nodes"]}


async def _connect(lab: Lab, as_agent: str | None = None):
    """A connection to the lab with its controller identity, or with an agent's (`as_agent`): on a secure lab
    only an agent identity may subscribe to request subjects (its own node's, its roles' and `all`)."""
    from steth.lab.fleet import agent_seed
    from steth.natsconn import connect

    if as_agent and lab.secure:
        return await connect(lab.nats_options(nkey_seed=agent_seed(lab.state, as_agent)))
    return await connect(lab.nats_options())


async def _presence(nc) -> dict:
    from steth.presence import read_presence

    return await read_presence(nc, timeout=3) or {}


def presence(lab: Lab) -> dict:
    async def go():
        nc = await _connect(lab)
        try:
            return await _presence(nc)
        finally:
            await nc.close()

    return asyncio.run(go())


def wait_presence(lab: Lab, names: set[str], absent: bool = False, timeout: float = 15, step: float = 0.05) -> float:
    """Poll presence (fast, in-process) until every name is present and alive, or all are absent."""

    async def go() -> float:
        nc = await _connect(lab)
        started = time.monotonic()
        try:
            while time.monotonic() - started < timeout:
                present = await _presence(nc)
                if absent and not names & set(present):
                    return time.monotonic() - started
                if not absent and all(n in present and present[n].alive for n in names):
                    return time.monotonic() - started
                await asyncio.sleep(step)
        finally:
            await nc.close()
        raise AssertionError(f"{'still present' if absent else 'not present'} after {timeout} s: {names}")

    return asyncio.run(go())


def signal_agent(proc: subprocess.Popen, sig: int) -> None:
    os.killpg(proc.pid, sig)  # `ip netns exec` execs the agent: the pid is the agent, leader of its group


@pytest.fixture(scope="module")
def extras(lab):
    """Three extra agents in the lab's namespaces, started together; stopped gracefully at the end."""
    procs = {
        name: lab.spawn_agent(name, roles, netns=lab.node(node)["namespace"], heartbeat_s=1.0)
        for name, (node, roles) in EXTRAS.items()
    }
    wait_presence(lab, set(procs), timeout=30)
    # Extra agents of other modules' tests (killed, so present until their TTL runs out) must be gone:
    # a broadcast here would expect them.
    deadline = time.monotonic() + 10
    while set(presence(lab)) - set(procs) - set(lab.names()) and time.monotonic() < deadline:
        time.sleep(0.2)
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            signal_agent(proc, signal.SIGCONT)
            signal_agent(proc, signal.SIGTERM)  # leaves presence at once: later tests see a clean fleet
    for proc in procs.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            signal_agent(proc, signal.SIGKILL)
            proc.wait(timeout=10)
    wait_presence(lab, set(procs), absent=True, timeout=10)
    lab.extra = [p for p in lab.extra if p not in procs.values()]


def ttl_of_bucket(lab: Lab) -> float:
    async def go():
        from steth.schemas import subjects

        nc = await _connect(lab)
        try:
            kv = await nc.jetstream().key_value(subjects.PRESENCE_BUCKET)
            return (await kv.status()).ttl
        finally:
            await nc.close()

    return asyncio.run(go())


# --- SIGSTOP: expected, silent, named ---------------------------------------------------------------


def test_a_frozen_agent_is_no_reply_and_named_while_the_others_answer(lab, extras):
    frozen = extras["h1stop"]
    signal_agent(frozen, signal.SIGSTOP)
    try:
        done = lab.cli("hello", "--timeout", "2", "-o", "json")
    finally:
        signal_agent(frozen, signal.SIGCONT)
    doc = json.loads(done.stdout)
    rows = nodes_of(doc)
    assert done.returncode == 3, done.stderr
    assert rows["h1stop"]["status"] == "no_reply" and rows["h1stop"]["message"] == "no reply by the deadline"
    answered = set(lab.names()) | {"h1kill", "h1drain"}
    assert all(rows[n]["status"] == "ok" for n in answered), rows
    s = doc["summary"]
    assert s["no_reply"] == 1 and s["replied"] == s["expected"] - 1 and s["ok"] == s["replied"]
    assert 1.8 < doc["elapsed_s"] < 2.6, "a silent expected node keeps the gather open until the deadline"
    footer = done.stderr.strip().splitlines()
    assert footer[0].startswith(f"{s['replied']}/{s['expected']} nodes replied in ")
    assert footer[1] == "no reply from: h1stop"
    # Resumed, it drops the stale request (past its deadline) and is back in presence.
    wait_presence(lab, {"h1stop"})
    assert "past its deadline" in (lab.dir / "extra-h1stop.log").read_text()


def test_an_agent_that_answers_without_being_in_presence_counts(lab, extras):
    """Freeze an agent until its presence entry expires, then thaw it once the CLI has read presence
    and sent the request: it answers a broadcast the CLI did not expect it to answer. Its answer counts
    (its own status), and the summary and footer name it as answered without a presence entry."""
    frozen = extras["h1stop"]
    wait_presence(lab, {"h1stop"})
    signal_agent(frozen, signal.SIGSTOP)
    try:
        gone = wait_presence(lab, {"h1stop"}, absent=True, timeout=10)

        async def go():
            nc = await _connect(lab, as_agent="h1stop")  # sees the broadcast as an agent does
            sent = asyncio.Event()

            async def on_request(msg):
                sent.set()

            await nc.subscribe("steth.v1.req.all.hello", cb=on_request)
            await nc.flush()
            # ghost-1 is expected and never answers: the gather stays open for the thawed agent's reply
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "steth.controller.cli",
                "hello",
                "--all",
                "--node",
                "ghost-1",
                "--timeout",
                "2",
                "-o",
                "json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=lab.env(),
            )
            await asyncio.wait_for(sent.wait(), timeout=20)
            signal_agent(frozen, signal.SIGCONT)
            out, err = await cli.communicate()
            await nc.close()
            return cli.returncode, json.loads(out), err.decode()

        code, doc, err = asyncio.run(go())
    finally:
        signal_agent(frozen, signal.SIGCONT)
    rows = nodes_of(doc)
    assert rows["h1stop"]["status"] == "ok", rows.get("h1stop")
    assert rows["ghost-1"]["status"] == "no_reply"
    assert all(rows[n]["status"] == "ok" for n in lab.names())
    assert doc["summary"]["answered_without_presence"] == 1 and doc["summary"]["expected"] == len(rows) - 1
    assert "answered without a presence entry (expired or not yet written): h1stop" in err.splitlines()
    assert code == 3  # from ghost-1's no_reply alone: an answer without presence does not make a run incomplete
    print(f"\nfrozen agent left presence {gone:.2f} s after SIGSTOP (bucket TTL {ttl_of_bucket(lab):g} s)")
    wait_presence(lab, {"h1stop"})


# --- SIGKILL: gone after the presence TTL -----------------------------------------------------------


def test_a_killed_agent_leaves_presence_after_its_ttl(lab, extras):
    victim = extras["h1kill"]
    ttl = ttl_of_bucket(lab)

    async def go():
        nc = await _connect(lab)
        try:
            # kill right after a heartbeat, so that the entry's age at the kill is known (about 0)
            first = (await _presence(nc))["h1kill"].info.heartbeat
            while True:
                entry = (await _presence(nc))["h1kill"]
                if entry.info.heartbeat > first:
                    break
                await asyncio.sleep(0.02)
            signal_agent(victim, signal.SIGKILL)
            killed = time.time()
            stale_seen = False
            while time.time() - killed < 15:
                present = await _presence(nc)
                if "h1kill" not in present:
                    return killed, entry.info.heartbeat, time.time(), stale_seen
                stale_seen |= not present["h1kill"].alive
                await asyncio.sleep(0.05)
            raise AssertionError("still present 15 s after SIGKILL")
        finally:
            await nc.close()

    killed, last_beat, gone, stale_seen = asyncio.run(go())
    victim.wait(timeout=5)
    since_kill, since_beat = gone - killed, gone - last_beat
    print(
        f"\nSIGKILL: gone from presence {since_kill:.2f} s after the kill, {since_beat:.2f} s after its last "
        f"heartbeat (TTL {ttl:g} s); marked stale before: {stale_seen}"
    )
    assert ttl == 3.0  # the lab's heartbeat (1 s) times three
    # not before the TTL (JetStream expires by max_age), and not much later (expiry runs on a timer)
    assert ttl - 0.2 <= since_beat <= ttl + 1.5, since_beat
    assert stale_seen, "between 2.5 heartbeats and the TTL the entry shows as stale"


# --- SIGTERM: drain, then leave at once -------------------------------------------------------------


def test_sigterm_drains_an_in_flight_request_and_leaves_presence_at_once(lab, extras):
    from steth.schemas.envelope import Request

    agent = extras["h1drain"]
    wait_presence(lab, {"h1drain"})

    async def go():
        nc = await _connect(lab)
        watch = await _connect(lab, as_agent="h1drain")  # sees the request as the agent does
        seen = asyncio.Event()

        async def on_request(msg):
            seen.set()

        await watch.subscribe("steth.v1.req.node.h1drain.ping", cb=on_request)
        await watch.flush()
        late_replies: list[dict] = []

        async def on_late_reply(msg):
            late_replies.append(msgpack.unpackb(msg.data))

        late_inbox = nc.new_inbox()
        await nc.subscribe(late_inbox, cb=on_late_reply)
        await nc.flush()
        # 10 echoes 0.2 s apart: about 1.8 s of work on the agent
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "steth.controller.cli",
            "ping",
            "127.0.0.1",
            "--node",
            "h1drain",
            "--count",
            "10",
            "--interval",
            "0.2",
            "-o",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=lab.env(),
        )
        await asyncio.wait_for(seen.wait(), timeout=20)
        await asyncio.sleep(0.5)
        signal_agent(agent, signal.SIGTERM)
        term = time.time()
        await asyncio.sleep(0.2)
        # a request arriving during the drain is not taken (signed with the lab's key: one it would answer)
        late = Request(probe="hello", id="during-drain", args={}, deadline=time.time() + 5)
        late_subject = "steth.v1.req.node.h1drain.hello"
        if lab.signer() is not None:
            lab.signer().sign(late, late_subject)
        await nc.publish(late_subject, msgpack.packb(late.model_dump(mode="json")), reply=late_inbox)
        exited = gone = None
        while (exited is None or gone is None) and time.time() - term < 15:
            if gone is None and "h1drain" not in await _presence(nc):
                gone = time.time()
            if exited is None and agent.poll() is not None:
                exited = time.time()
            await asyncio.sleep(0.02)
        out, err = await cli.communicate()
        await watch.close()
        await nc.close()
        return term, exited, gone, cli.returncode, json.loads(out), late_replies

    term, exited, gone, code, doc, late_replies = asyncio.run(go())
    row = nodes_of(doc)["h1drain"]
    assert code == 0 and row["status"] == "ok", doc
    (target,) = row["result"]["targets"]
    assert (target["sent"], target["received"]) == (10, 10), "the in-flight ping ran to its end"
    assert row["duration_s"] > 1.5
    assert late_replies == [], "no new request is taken while draining"
    assert agent.returncode == 0 and exited is not None and gone is not None
    # The entry is deleted on the way out (the KV delete), not left to expire: the last heartbeat was at
    # most 1 s before the drain ended, so expiry by TTL would come 2 s or more after it.
    assert gone - term < 2.5, gone - term
    assert gone <= exited + 0.1, (gone, exited)
    log = (lab.dir / "extra-h1drain.log").read_text()
    assert "draining 1 in-flight request(s)" in log and "stopped after" in log
    print(
        f"\nSIGTERM mid-ping: agent exited {exited - term:.2f} s later, gone from presence "
        f"{gone - term:.2f} s after the signal (reply ok, {target['received']}/10 echoes)"
    )


# --- NATS restart: a lab of its own -----------------------------------------------------------------

RESTART_LAB = "h1r"


@pytest.fixture(scope="module")
def restart_lab():
    from steth.lab import fleet

    with lab_named(RESTART_LAB):
        fleet.down()
        state = fleet.up(compute=1, network=1, mgmt_cidr="10.83.0.0/24", data_cidr="10.82.0.0/24", heartbeat_s=1.0)
    the_lab = Lab(state, name=RESTART_LAB)
    try:
        yield the_lab
    finally:
        with lab_named(RESTART_LAB):
            fleet.down()


def nats_argv(the_lab: Lab) -> tuple[int, list[str]]:
    """The lab's nats-server: its pid and argv, to start it again the same way (same JetStream dir)."""
    pid = the_lab.state["pids"]["nats-server"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    return pid, [a.decode() for a in argv]


def test_agents_answer_again_after_the_nats_server_restarts(restart_lab):
    from steth.lab import state as lab_state

    the_lab = restart_lab
    names = {"compute-1", "network-1"}
    code, doc = the_lab.cli_json("hello")
    assert code == 0 and set(nodes_of(doc)) == names

    old, argv = nats_argv(the_lab)
    port = the_lab.nats_url.rsplit(":", 1)[1]
    argv[argv.index("-p") + 1] = port  # the lab asked for a random port; now it must be the same one
    os.killpg(old, signal.SIGKILL)
    try:
        os.waitpid(old, 0)  # started by this process (the fixture): reap it
    except ChildProcessError:
        pass
    down = the_lab.cli("hello", "--timeout", "1")
    assert down.returncode == 4 and len(down.stderr.strip().splitlines()) == 1 and the_lab.nats_url in down.stderr

    log = open(the_lab.dir / "nats-server.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    restarted = time.monotonic()
    with lab_named(RESTART_LAB):  # record the new pid so that `lab down` stops this one
        st = lab_state.load_state()
        st["pids"]["nats-server"] = proc.pid
        lab_state.save_state(st)
    the_lab.state["pids"]["nats-server"] = proc.pid

    # every agent reconnects on its own (nats-py, reconnecting for good) and answers again
    async def poll():
        from steth.controller.session import Selection, Session
        from steth.natsconn import NatsUnavailable

        while time.monotonic() - restarted < 30:
            try:
                async with Session(the_lab.nats_options(connect_timeout_s=1), signer=the_lab.signer()) as s:
                    g = await s.run("hello", Selection(), 1.0)
                    if {n.node for n in g.nodes if n.status.value == "ok"} >= names:
                        return time.monotonic() - restarted
            except (NatsUnavailable, Exception):
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("the agents did not answer within 30 s of the restart")

    answering = asyncio.run(poll())
    code, doc = the_lab.cli_json("hello")
    assert code == 0 and {n: r["status"] for n, r in nodes_of(doc).items()} == {n: "ok" for n in names}
    # presence survived in the JetStream store and heartbeats resumed
    back = wait_presence(the_lab, names, timeout=10)
    code, doc = the_lab.cli_json("agents")
    assert code == 0 and {a["node"] for a in doc["agents"]} == names and all(a["alive"] for a in doc["agents"])
    print(
        f"\nNATS restart: agents answered {answering:.2f} s after the server came back (presence alive "
        f"{back:.2f} s later)"
    )
