"""Security in the lab: broker-enforced identities, signed requests, allow-lists, the audit line.

A real nats-server with the authorization block `steth nats-config` writes (on the lab's management
bridge, so agents in the node namespaces reach it), real agents in the lab namespaces with their own
identities, the real CLI. That server has passwords but no TLS (what is tested here is the broker's
permissions and the agents' checks), so its agents say `insecure = true` (spawn_agent does that for a test's
own server); the lab's own nats-server, secure by default, stays untouched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import stat
import sys
import time

import pytest
from conftest import TEST_DATA, needs_root
from natsservers import NatsServer, host_of, read_env, wait_present

pytestmark = [needs_root, pytest.mark.lab]


class Secure:
    def __init__(self, lab, directory):
        self.lab, self.dir = lab, directory
        self.server: NatsServer | None = None

    def creds(self, user_file: str) -> dict[str, str]:
        return read_env(self.dir / "auth" / f"{user_file}.env")

    def auth(self, user_file: str = "controller-ops") -> dict[str, str]:
        c = self.creds(user_file)
        return {"user": c["STETH_NATS_USER"], "password": c["STETH_NATS_PASSWORD"]}

    def env(self, signed: bool = True, **extra: str) -> dict[str, str]:
        env = self.lab.env()
        env.update(STETH_NATS_URL=self.server.url, **self.creds("controller-ops"))
        if signed:
            env["STETH_SIGNING_KEY"] = str(self.dir / "ctl.key")
        env.update(extra)
        return env

    def cli_json(self, *args: str, signed: bool = True, **extra: str):
        return self.lab.cli_json(*args, env=self.env(signed, **extra))

    def agent_log(self, name: str) -> str:
        return (self.lab.dir / f"extra-{name}.log").read_text()


@pytest.fixture(scope="module")
def secure(lab):
    s = Secure(lab, lab.dir / "sec")
    done = lab.cli(
        "nats-config",
        "--agent",
        "sec-a=compute",
        "--agent",
        "sec-b=network",
        "--controller",
        "ops",
        "--admin",
        "ops",
        "--out",
        str(s.dir / "auth"),
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr
    done = lab.cli("keys", "create", "--out", str(s.dir / "ctl.key"), "--comment", "ops@test", "-o", "json")
    assert done.returncode == 0, done.stderr
    s.key = json.loads(done.stdout)
    # sec-a signs its replies with its own key (the controller knows it from s.dir/agents/sec-a.pub)
    done = lab.cli("keys", "create", "--out", str(s.dir / "agents" / "sec-a"), "--comment", "sec-a")
    assert done.returncode == 0, done.stderr
    s.server = NatsServer(s.dir / "nats", host_of(lab.nats_url), auth_conf=s.dir / "auth" / "auth.conf").start()
    common = {"STETH_NATS_SERVERS": s.server.url, "STETH_SECURITY_TRUSTED_KEYS": str(s.dir / "ctl.key.pub")}
    s.procs = {
        # sec-a: signatures required, allow-lists on (the data fabric, its data0 and lo only)
        "sec-a": lab.spawn_agent(
            "sec-a",
            ["compute"],
            netns=lab.node("compute-1")["namespace"],
            **common,
            **s.creds("agent-sec-a"),
            STETH_SECURITY_REQUIRE_SIGNED="true",
            STETH_POLICY_ALLOWED_TARGET_CIDRS=TEST_DATA,
            STETH_POLICY_ALLOWED_INTERFACES="data0,lo",
            STETH_POLICY_ALLOWED_VLANS="100-102",
            STETH_POLICY_ALLOW_CAPTURE="false",
            STETH_SECURITY_SIGNING_KEY=str(s.dir / "agents" / "sec-a"),
        ),
        # sec-b: verifies signatures when present, accepts unsigned ones, no allow-lists
        "sec-b": lab.spawn_agent(
            "sec-b", ["network"], netns=lab.node("network-1")["namespace"], **common, **s.creds("agent-sec-b")
        ),
    }
    try:
        # No presence bucket yet, and agent identities may not create one: each says so and keeps trying...
        deadline = time.time() + 40
        while time.time() < deadline and not all("steth setup" in s.agent_log(n) for n in s.procs):
            time.sleep(0.3)
        for name in s.procs:
            assert "the presence bucket KV_steth_presence does not exist" in s.agent_log(name), s.agent_log(name)
            assert "may not publish to $JS.API.STREAM.CREATE.KV_steth_presence" in s.agent_log(name)
        # ...until the admin identity runs `steth setup`.
        done = lab.cli("setup", "--presence-ttl", "3", "-f", "json", env=s.env(signed=False, **s.creds("admin-ops")))
        assert done.returncode == 0, done.stderr
        s.setup = json.loads(done.stdout)
        wait_present([s.server.url], {"sec-a", "sec-b"}, timeout=60, **s.auth())
        yield s
    finally:
        for proc in s.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        s.server.stop()


def test_nats_config_files(secure, lab):
    auth_dir = secure.dir / "auth"
    for path in [auth_dir / "auth.conf", *auth_dir.glob("*.env")]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(auth_dir).st_mode) == 0o700
    before = secure.creds("agent-sec-a")
    # Re-running (say, to add a node) keeps the passwords everyone already has.
    done = lab.cli(
        "nats-config",
        "--agent",
        "sec-a=compute",
        "--agent",
        "sec-b=network",
        "--agent",
        "sec-c",
        "--controller",
        "ops",
        "--out",
        str(lab.dir / "sec" / "auth2"),
        "-o",
        "json",
    )
    assert done.returncode == 0
    assert {i["user"] for i in json.loads(done.stdout)["identities"]} == {
        "agent-sec-a",
        "agent-sec-b",
        "agent-sec-c",
        "controller-ops",
    }
    done = lab.cli(
        "nats-config",
        "--agent",
        "sec-a=compute",
        "--agent",
        "sec-b=network",
        "--controller",
        "ops",
        "--admin",
        "ops",
        "--out",
        str(auth_dir),
    )
    assert done.returncode == 0 and secure.creds("agent-sec-a") == before
    bad = lab.cli("nats-config", "--agent", "-x=compute", "--out", str(lab.dir / "sec" / "bad"))
    assert bad.returncode == 2 and "invalid node name '-x'" in bad.stderr
    conf = (auth_dir / "auth.conf").read_text()
    assert '"steth.v1.req.node.sec-a.*"' in conf and '"$KV.steth_presence.sec-a"' in conf


def test_signed_requests_through_the_cli(secure):
    code, doc = secure.cli_json("hello", "--node", "sec-a", "--node", "sec-b", "--timeout", "15")
    assert code == 0, doc
    assert {n["node"]: n["status"] for n in doc["nodes"]} == {"sec-a": "ok", "sec-b": "ok"}
    code, doc = secure.cli_json("hello", "--node", "sec-a", "--node", "sec-b", "--timeout", "15", signed=False)
    rows = {n["node"]: n for n in doc["nodes"]}
    assert code == 3 and rows["sec-b"]["status"] == "ok"
    assert rows["sec-a"]["status"] == "invalid" and "unsigned request" in rows["sec-a"]["message"]
    other = secure.dir / "other.key"
    secure.lab.cli("keys", "create", "--out", str(other))
    code, doc = secure.cli_json(
        "hello", "--node", "sec-a", "--node", "sec-b", "--timeout", "15", STETH_SIGNING_KEY=str(other)
    )
    assert code == 3
    for row in doc["nodes"]:  # both agents trust only ctl.key: a signature by another key is refused
        assert row["status"] == "invalid" and "untrusted key" in row["message"], row


def test_unauthorised_client_cannot_connect(secure, lab):
    env = secure.env()
    del env["STETH_NATS_USER"], env["STETH_NATS_PASSWORD"]
    started = time.monotonic()
    done = lab.cli("hello", env=env)
    assert done.returncode == 4 and "refused the login (authorization violation)" in done.stderr, done.stderr
    assert time.monotonic() - started < 30
    done = lab.cli("hello", env={**env, "STETH_NATS_USER": "controller-ops", "STETH_NATS_PASSWORD": "wrong"})
    assert done.returncode == 4 and "refused the login" in done.stderr
    # An agent without credentials never gets in: it says why and keeps retrying.
    proc = lab.spawn_agent(
        "sec-x", ["compute"], netns=lab.node("compute-2")["namespace"], STETH_NATS_SERVERS=secure.server.url
    )
    try:
        deadline = time.time() + 40
        while "refused the login" not in secure.agent_log("sec-x") and time.time() < deadline:
            time.sleep(0.5)
        assert "refused the login" in secure.agent_log("sec-x")
        assert proc.poll() is None  # alive, retrying
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def _client(url: str, auth: dict, errors: list[str], inbox_prefix: str = "_INBOX"):
    import nats

    async def on_error(exc):
        errors.append(str(exc))

    return await nats.connect(
        url, error_cb=on_error, inbox_prefix=inbox_prefix, connect_timeout=5, max_reconnect_attempts=1, **auth
    )


async def _ask(nc, subject: str, payload: bytes, wait: float = 3.0) -> list[dict]:
    from steth import codec

    replies: list[dict] = []

    async def on_reply(msg):
        replies.append(codec.decode(msg.data))

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_reply)
    await nc.publish(subject, payload, reply=inbox)
    await nc.flush()
    await asyncio.sleep(wait)
    await sub.unsubscribe()
    return replies


def test_agent_identity_cannot_ask_or_eavesdrop(secure):
    """An agent's credentials cannot send requests (even with a valid signature), read other inboxes,
    subscribe to another node's subjects or write another node's presence; a controller cannot write presence."""
    from steth import codec
    from steth.controller.signing import load
    from steth.natsauth import agent_inbox_prefix
    from steth.schemas import subjects
    from steth.schemas.envelope import Request

    async def go():
        errors: list[str] = []
        nc = await _client(secure.server.url, secure.auth("agent-sec-a"), errors, agent_inbox_prefix("sec-a"))
        ctl = await _client(secure.server.url, secure.auth(), errors)
        try:
            req = Request(probe="hello", deadline=time.time() + 5, sender="intruder")
            load(secure.dir / "ctl.key").sign(req, subjects.req_all("hello"))
            replies = await _ask(nc, subjects.req_all("hello"), codec.encode(req.model_dump(mode="json")))
            for subject in ("_INBOX.>", "steth.v1.req.node.sec-b.*", ">"):
                await nc.subscribe(subject)
            await nc.publish("$KV.steth_presence.sec-b", b"forged")
            await ctl.publish("$KV.steth_presence.sec-a", b"forged")
            await nc.flush()
            await ctl.flush()
            await asyncio.sleep(1)
            return replies, errors
        finally:
            await nc.close()
            await ctl.close()

    replies, errors = asyncio.run(go())
    assert replies == []
    text = "\n".join(errors)
    for denied in (
        'publish to "steth.v1.req.all.hello"',
        'subscription to "_inbox.>"',
        'subscription to "steth.v1.req.node.sec-b.*"',
        'subscription to ">"',
        'publish to "$kv.steth_presence.sec-b"',
        'publish to "$kv.steth_presence.sec-a"',
    ):
        assert f"permissions violation for {denied}" in text, (denied, text)
    # Presence was not touched: both entries are still the agents' own.
    wait_present([secure.server.url], {"sec-a", "sec-b"}, timeout=20, **secure.auth())


def test_forged_and_replayed_requests_are_refused(secure):
    from steth import codec
    from steth.controller.signing import Signer, load
    from steth.schemas import subjects
    from steth.schemas.envelope import Request

    signer = load(secure.dir / "ctl.key")
    subject = subjects.req_node("sec-a", "hello")

    def signed(deadline_in: float = 10.0, for_subject: str = subject, by: Signer = signer) -> Request:
        req = Request(probe="hello", deadline=time.time() + deadline_in, sender="ops@test")
        by.sign(req, for_subject)
        return req

    async def go():
        errors: list[str] = []
        nc = await _client(secure.server.url, secure.auth(), errors)
        out = {}
        try:
            good = codec.encode(signed().model_dump(mode="json"))
            out["first"] = await _ask(nc, subject, good, wait=2)
            out["replay"] = await _ask(nc, subject, good, wait=2)
            tampered = signed()
            tampered.sender = "root@elsewhere"
            out["tampered"] = await _ask(nc, subject, codec.encode(tampered.model_dump(mode="json")), wait=2)
            # Signed for sec-a alone, re-published to every node: the subject is part of what is signed.
            out["retargeted"] = await _ask(
                nc, subjects.req_all("hello"), codec.encode(signed().model_dump(mode="json")), wait=2
            )
            out["expired"] = await _ask(nc, subject, codec.encode(signed(-30).model_dump(mode="json")), wait=2)
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            stranger = Signer(Ed25519PrivateKey.generate(), "feedfacefeedface", "")
            out["stranger"] = await _ask(nc, subject, codec.encode(signed(by=stranger).model_dump(mode="json")), wait=2)
            junk = signed()
            junk.sig = base64.b64encode(b"\0" * 64).decode()
            out["zero_sig"] = await _ask(nc, subject, codec.encode(junk.model_dump(mode="json")), wait=2)
            return out
        finally:
            await nc.close()

    out = asyncio.run(go())
    status = {k: [(r["node"], r["status"], r["message"]) for r in v] for k, v in out.items()}
    assert status["first"] == [("sec-a", "ok", "")], status
    assert status["replay"] == [("sec-a", "invalid", "refused: replayed request " + repr(out["replay"][0]["id"]))]
    assert status["tampered"] == [("sec-a", "invalid", "refused: bad signature")]
    assert sorted(status["retargeted"]) == [
        ("sec-a", "invalid", "refused: bad signature"),
        ("sec-b", "invalid", "refused: bad signature"),
    ]
    assert status["expired"][0][:2] == ("sec-a", "invalid") and "expired" in status["expired"][0][2]
    assert status["stranger"] == [("sec-a", "invalid", "refused: signed by an untrusted key 'feedfacefeedface'")]
    assert status["zero_sig"] == [("sec-a", "invalid", "refused: bad signature")]


def test_policy_allow_lists(secure, lab):
    peer = lab.node("compute-2")["data_address"]
    mgmt_host = host_of(lab.nats_url)  # the management bridge: outside sec-a's allowed_target_cidrs
    code, doc = secure.cli_json("ping", peer, "--node", "sec-a", "--count", "1", "--timeout", "15")
    assert code == 0 and doc["nodes"][0]["status"] == "ok", doc
    code, doc = secure.cli_json(
        "ping", mgmt_host, "--node", "sec-a", "--node", "sec-b", "--count", "1", "--timeout", "15"
    )
    rows = {n["node"]: n for n in doc["nodes"]}
    assert code == 3 and rows["sec-b"]["status"] == "ok"
    assert rows["sec-a"]["status"] == "aborted"
    assert (
        rows["sec-a"]["message"]
        == f"refused by policy: targets: address {mgmt_host} is not in this agent's allowed_target_cidrs"
    )
    code, doc = secure.cli_json(
        "ping", peer, "--interface", "mgmt0", "--node", "sec-a", "--count", "1", "--timeout", "15"
    )
    assert code == 3 and "interface 'mgmt0' is not in this agent's allowed_interfaces" in doc["nodes"][0]["message"]
    done = secure.lab.cli("ping", peer, "--interface", "-I", "--node", "sec-a", env=secure.env())
    assert done.returncode == 2 and "'-I' is not an interface name" in done.stderr  # refused before anything is sent


RESOLVE_LOCALHOST = "import socket; print(socket.getaddrinfo('localhost', {port}, type=socket.SOCK_STREAM)[0][4][0])"


def test_policy_covers_every_effect(secure, lab):
    """Host names are checked once resolved, IP:PORT targets up front, VLAN ids and capture have their own
    switches (issue 12): all refused on sec-a before anything is sent, allowed on sec-b."""
    mgmt_host = host_of(lab.nats_url)
    port = lab.nats_url.rsplit(":", 1)[1]
    # What `localhost` is where sec-a runs: the node's /etc/netns/<ns>/hosts (`ip netns exec` mounts it over
    # /etc/hosts) names 127.0.0.1 and ::1; tcp-check takes the first address the resolver gives, as here.
    local = lab.in_ns("compute-1", sys.executable, "-c", RESOLVE_LOCALHOST.format(port=port)).stdout.strip()
    assert local in ("127.0.0.1", "::1"), local
    cases = [
        (("tcp-check", f"{mgmt_host}:{port}"), f"address {mgmt_host} is not in this agent's allowed_target_cidrs"),
        (("tcp-check", f"localhost:{port}"), f"{local} is not in this agent's allowed_target_cidrs"),
        (("tcp-check", f"127.1:{port}"), "127.0.0.1 is not in this agent's allowed_target_cidrs"),
        (
            (
                "send",
                "--interface",
                "data0",
                "--packet",
                "icmp-echo",
                "--dst",
                lab.node("compute-2")["data_address"],
                "--vlan",
                "300",
            ),
            "VLAN 300 is not in this agent's allowed_vlans",
        ),
        (("capture", "--interface", "data0", "--duration", "1"), "allow_capture is off in this agent's policy"),
    ]
    for args, reason in cases:
        code, doc = secure.cli_json(*args, "--node", "sec-a", "--timeout", "15")
        node = doc["nodes"][0]
        assert code == 3 and node["status"] == "aborted", (args, doc)
        assert node["message"].startswith("refused by policy") and reason in node["message"], (args, node)
        if args[1].startswith("localhost"):
            assert "127.0.0.1 is not" in node["message"] or "::1 is not" in node["message"], node
    code, doc = secure.cli_json("tcp-check", f"localhost:{port}", "--node", "sec-b", "--timeout", "15")
    assert doc["nodes"][0]["status"] in ("ok", "failed"), doc  # no allow-list on sec-b: it ran


def test_audit_line_names_who_and_what(secure, lab):
    peer = lab.node("compute-2")["data_address"]
    code, _ = secure.cli_json("ping", peer, "--node", "sec-a", "--count", "2", "--timeout", "15")
    assert code == 0
    kid = secure.key["key_id"]
    lines = [ln for ln in secure.agent_log("sec-a").splitlines() if 'probe="ping"' in ln and "status=ok" in ln]
    assert lines, secure.agent_log("sec-a")[-2000:]
    line = lines[-1]
    assert f"key={kid}(verified)" in line and "sender=" in line and "duration=" in line
    assert f'args={{"count":2,"targets":["{peer}"]}}' in line, line


def test_setup_made_the_bucket_and_stream_and_is_idempotent(secure, lab):
    assert [(d["stream"], d["action"]) for d in secure.setup["streams"]] == [
        ("KV_steth_presence", "created"),
        ("STETH_RESULTS", "created"),
    ]
    admin = secure.env(signed=False, **secure.creds("admin-ops"))
    done = lab.cli("setup", "--presence-ttl", "3", "-f", "json", env=admin)
    assert done.returncode == 0, done.stderr
    assert {d["action"] for d in json.loads(done.stdout)["streams"]} == {"unchanged"}
    # A controller identity may look (nothing to change: exit 0) but not change anything: one line, exit 4.
    done = lab.cli("setup", "--presence-ttl", "3", env=secure.env(signed=False))
    assert done.returncode == 0, done.stderr
    done = lab.cli("setup", "--presence-ttl", "4", env=secure.env(signed=False))
    assert done.returncode == 4 and "permissions violation" in done.stderr and "--admin" in done.stderr, done.stderr


def test_rollups_and_message_ttls_cannot_touch_presence(secure):
    """`Nats-Rollup: all` on an agent's own key would purge every other node's entry (nats-py's KV allows it);
    `Nats-TTL: never` would keep an entry forever. The bucket `steth setup` makes refuses both."""
    from nats.js.errors import APIError

    from steth import codec
    from steth.natsauth import agent_inbox_prefix
    from steth.schemas.agent_info import AgentInfo

    async def go():
        errors: list[str] = []
        nc = await _client(secure.server.url, secure.auth("agent-sec-a"), errors, agent_inbox_prefix("sec-a"))
        refused = {}
        try:
            js = nc.jetstream(timeout=5)
            entry = codec.encode(AgentInfo(node="sec-a", heartbeat=time.time()).model_dump(mode="json"))
            for name, headers in {
                "rollup-all": {"Nats-Rollup": "all"},
                "rollup-sub": {"Nats-Rollup": "sub"},
                "ttl-never": {"Nats-TTL": "never"},
            }.items():
                try:
                    await js.publish("$KV.steth_presence.sec-a", entry, headers=headers)
                    refused[name] = None
                except APIError as exc:
                    refused[name] = exc.description
            # Without waiting for the ack, too: nothing is stored either way.
            await nc.publish("$KV.steth_presence.sec-a", entry, headers={"Nats-Rollup": "all"})
            await nc.flush()
            kv = await js.key_value("steth_presence")
            keys = set(await kv.keys())
            return refused, keys
        finally:
            await nc.close()

    refused, keys = asyncio.run(go())
    assert refused["rollup-all"] == "rollup not permitted", refused
    assert refused["rollup-sub"] == "rollup not permitted", refused
    assert refused["ttl-never"] and "ttl" in refused["ttl-never"].lower(), refused
    assert {"sec-a", "sec-b"} <= keys
    wait_present([secure.server.url], {"sec-a", "sec-b"}, timeout=20, **secure.auth())


def test_agent_identity_cannot_administer_streams(secure):
    """The issue's attack: an agent re-points the results stream at `_INBOX.>` (every reply republished into a
    stream it can read) or creates one of its own. Agent identities may only look the streams up."""
    import nats.errors
    from nats.js.api import StreamConfig

    from steth.natsauth import agent_inbox_prefix

    async def go():
        errors: list[str] = []
        nc = await _client(secure.server.url, secure.auth("agent-sec-a"), errors, agent_inbox_prefix("sec-a"))
        admin = await _client(secure.server.url, secure.auth("admin-ops"), errors)
        outcome = {}
        try:
            js = nc.jetstream(timeout=2)
            info = await js.stream_info("STETH_RESULTS")  # looking up is allowed
            hijack = info.config
            hijack.subjects = ["steth.v1.results.>", "_INBOX.>"]
            for name, call in {
                "update": lambda: js.update_stream(hijack),
                "create": lambda: js.add_stream(StreamConfig(name="STEAL", subjects=["_INBOX.>"])),
                "create-results": lambda: js.add_stream(StreamConfig(name="STETH_RESULTS", subjects=["_INBOX.>"])),
                "delete-presence": lambda: js.delete_stream("KV_steth_presence"),
            }.items():
                try:
                    await call()
                    outcome[name] = "done"
                except (TimeoutError, nats.errors.TimeoutError):
                    outcome[name] = "no answer"
            await asyncio.sleep(0.5)
            outcome["subjects"] = (await admin.jetstream().stream_info("STETH_RESULTS")).config.subjects
            return outcome, errors
        finally:
            await nc.close()
            await admin.close()

    outcome, errors = asyncio.run(go())
    assert outcome.pop("subjects") == ["steth.v1.results.>"]
    assert set(outcome.values()) == {"no answer"}, outcome
    text = "\n".join(errors)
    for subject in (
        "$js.api.stream.update.steth_results",
        "$js.api.stream.create.steal",
        "$js.api.stream.create.steth_results",
        "$js.api.stream.delete.kv_steth_presence",
    ):
        assert f'permissions violation for publish to "{subject}"' in text, (subject, text)


def test_signed_replies_through_the_cli(secure, lab):
    """sec-a signs its replies; a controller that knows its key marks them verified, sec-b's (no key known)
    unverified; told a wrong key for sec-b, it does not take sec-b's reply as sec-b's answer."""
    agents = secure.dir / "agents"
    code, doc = secure.cli_json(
        "hello", "--node", "sec-a", "--node", "sec-b", "--timeout", "10", STETH_AGENT_KEYS=str(agents)
    )
    assert code == 0, doc
    assert {n["node"]: n["signature"] for n in doc["nodes"]} == {"sec-a": "verified", "sec-b": "unverified"}
    wrong = secure.dir / "wrong-keys"
    wrong.write_text(f"sec-a {(agents / 'sec-a.pub').read_text().strip()}\nsec-b {secure.key['public_key']}\n")
    code, doc = secure.cli_json(
        "hello", "--node", "sec-a", "--node", "sec-b", "--timeout", "3", STETH_AGENT_KEYS=str(wrong)
    )
    rows = {n["node"]: n for n in doc["nodes"]}
    assert code == 3 and rows["sec-a"]["signature"] == "verified"
    assert rows["sec-b"]["status"] == "error" and rows["sec-b"]["signature"] == "bad"
    assert (
        rows["sec-b"]["message"]
        == "reply signature does not verify (reply is not signed, but this node's key is known)"
    )
    code, doc = secure.cli_json("hello", "--node", "sec-a", "--timeout", "10")  # no keys: no field, as before
    assert code == 0 and "signature" not in doc["nodes"][0]
