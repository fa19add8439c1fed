"""Signed requests: keys, the canonical bytes, verification, expiry, replay and the runtime's answers.

Real ed25519 keys (cryptography), real key files, the real AgentRuntime dispatch path in this process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import time

import pytest

from steth import codec
from steth.agent import auth
from steth.agent.config import AgentConfig, SecurityConfig, load
from steth.agent.errors import Busy, RequestRefused
from steth.agent.runtime import AgentRuntime
from steth.controller import signing
from steth.controller.errors import UsageError
from steth.schemas import subjects
from steth.schemas.envelope import Request, Status, signing_payload

SUBJECT = subjects.req_node("n1", "hello")


@pytest.fixture
def keypair(tmp_path):
    return signing.create(tmp_path / "ctl.key", "ops@test"), tmp_path / "ctl.key"


def verifier(pub_line: str, **kw) -> auth.Verifier:
    return auth.Verifier(SecurityConfig(trusted_keys=[pub_line], **kw))


def signed(signer, probe="hello", args=None, timeout=5.0, subject=SUBJECT, **kw) -> Request:
    req = Request(probe=probe, args=args or {}, deadline=time.time() + timeout, sender="ops@test", **kw)
    signer.sign(req, subject)
    return req


def test_key_files(keypair, tmp_path):
    signer, path = keypair
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    line = (tmp_path / "ctl.key.pub").read_text().strip()
    assert line.startswith("steth-ed25519 ") and line.endswith(" ops@test")
    raw = auth.parse_public_key(line)
    assert len(raw) == 32 and auth.key_id(raw) == signer.kid == signing.key_id(raw)
    again = signing.load(path)  # the same key read back
    assert again.kid == signer.kid
    with pytest.raises(UsageError, match="exists"):
        signing.create(path, "x")
    signing.create(path, "x", force=True)
    assert signing.load(path).kid != signer.kid


def test_bad_key_files(tmp_path):
    (tmp_path / "junk.key").write_text("not a key\n")
    with pytest.raises(UsageError, match="not an unencrypted PEM"):
        signing.load(tmp_path / "junk.key")
    with pytest.raises(UsageError, match="No such file"):
        signing.load(tmp_path / "missing.key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec.key").write_bytes(other)
    with pytest.raises(UsageError, match="not an ed25519 key"):
        signing.load(tmp_path / "ec.key")


def test_trusted_key_forms(keypair, tmp_path):
    signer, path = keypair
    bare = signer.public_line.split()[1]
    pub_file = str(tmp_path / "ctl.key.pub")
    for entry in (bare, signer.public_line, pub_file):
        assert list(auth.load_trusted_keys([entry])) == [signer.kid]
    # One random key in 64 starts with "/" in base64: it is still a key, not a path (a CI run drew one).
    slash_key = base64.b64encode(b"\xfc" + b"k" * 31).decode()
    assert slash_key.startswith("/")
    assert list(auth.load_trusted_keys([slash_key])) == [auth.key_id(b"\xfc" + b"k" * 31)]
    for bad, why in (
        ("@@@", "not base64"),
        (base64.b64encode(b"x" * 31).decode(), "31 bytes"),
        (str(tmp_path / "none.pub"), "No such file"),
    ):
        with pytest.raises(ValueError, match=why):
            auth.load_trusted_keys([bad])
    # The agent's config refuses a bad key at load time, naming it (check-config and start fail clearly).
    with pytest.raises(ValueError, match="trusted_keys"):
        load(None, {"STETH_NODE": "n1", "STETH_SECURITY_TRUSTED_KEYS": "@@@"})
    cfg = load(
        None,
        {
            "STETH_NODE": "n1",
            "STETH_SECURITY_TRUSTED_KEYS": f"{bare},{pub_file}",
            "STETH_SECURITY_REQUIRE_SIGNED": "true",
        },
    )
    assert cfg.security.require_signed and len(cfg.security.trusted_keys) == 2


def test_payload_is_canonical(keypair):
    """Key order and the float repr of args do not matter; every signed field does."""
    req = Request(
        id="abc",
        probe="ping",
        args={"targets": ["10.0.0.1"], "count": 3},
        deadline=1700000000.1234,
        sender="me",
        kid="k",
        sent=1699999999.0,
    )
    same = Request(
        id="abc",
        probe="ping",
        args={"count": 3, "targets": ["10.0.0.1"]},
        deadline=1700000000.1234,
        sender="me",
        kid="k",
        sent=1699999999.0001,
    )
    assert signing_payload(req, SUBJECT) == signing_payload(same, SUBJECT)
    assert signing_payload(req, SUBJECT).startswith(b"steth-request-v2\n{")
    assert b'"deadline_ms":1700000000123' in signing_payload(req, SUBJECT)
    for change in (
        {"id": "abd"},
        {"probe": "hello"},
        {"args": {"count": 4, "targets": ["10.0.0.1"]}},
        {"deadline": 1700000001.0},
        {"sender": "you"},
        {"kid": "j"},
        {"sent": 1699999998.0},
    ):
        other = req.model_copy(update=change)
        assert signing_payload(other, SUBJECT) != signing_payload(req, SUBJECT), change
    assert signing_payload(req, subjects.req_all("ping")) != signing_payload(req, SUBJECT)


def test_verify_accepts_and_refuses(keypair):
    signer, _ = keypair
    v = verifier(signer.public_line)
    req = signed(signer)
    assert v.check(req, SUBJECT).kid == signer.kid

    tampered = signed(signer, args={})
    tampered.args = {"x": 1}
    with pytest.raises(RequestRefused, match="bad signature"):
        v.check(tampered, SUBJECT)
    retargeted = signed(signer)
    with pytest.raises(RequestRefused, match="bad signature"):  # signed for one node, sent to all
        v.check(retargeted, subjects.req_all("hello"))
    garbled = signed(signer)
    garbled.sig = "!!!"
    with pytest.raises(RequestRefused, match="bad signature"):
        v.check(garbled, SUBJECT)
    stranger = signing.Signer(*_other_key())
    with pytest.raises(RequestRefused, match="untrusted key"):
        v.check(signed(stranger), SUBJECT)


def _other_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return key, "0123456789abcdef", "steth-ed25519 x"


def test_unsigned_depends_on_policy(keypair):
    signer, _ = keypair
    unsigned = Request(probe="hello", deadline=time.time() + 5)
    assert verifier(signer.public_line).check(unsigned, SUBJECT).signed is False
    with pytest.raises(RequestRefused, match="unsigned"):
        verifier(signer.public_line, require_signed=True).check(unsigned, SUBJECT)


def test_expiry_window_and_replay(keypair):
    signer, _ = keypair
    v = verifier(signer.public_line, replay_window_s=60, clock_skew_s=1)
    with pytest.raises(RequestRefused, match="expired"):
        v.check(signed(signer, timeout=-5), SUBJECT)
    with pytest.raises(RequestRefused, match="beyond the replay window"):
        v.check(signed(signer, timeout=300), SUBJECT)
    req = signed(signer, timeout=2)
    v.check(req, SUBJECT)
    with pytest.raises(RequestRefused, match="replayed"):
        v.check(req, SUBJECT)
    # The same id on another subject is another signed message (an agent matched by --node and --role).
    other_subject = subjects.req_role("compute", "hello")
    twin = Request(**{**req.model_dump(), "sig": ""})
    signer.sign(twin, other_subject)
    v.check(twin, other_subject)
    # Once the deadline (plus skew) has passed the entry is forgotten and the request is simply expired.
    later = req.deadline + 1.5
    with pytest.raises(RequestRefused, match="expired"):
        v.check(req, SUBJECT, now=later)
    v.check(signed(signer, timeout=10), SUBJECT, now=later)
    assert len(v) == 1  # both earlier entries were dropped: memory is bounded by the deadline window


def test_replay_cache_bound(keypair):
    signer, _ = keypair
    v = verifier(signer.public_line, replay_cache_size=100)
    for _ in range(100):
        v.check(signed(signer, timeout=30), SUBJECT)
    with pytest.raises(Busy, match="replay cache full"):
        v.check(signed(signer, timeout=30), SUBJECT)


def _runtime(pub_line: str, **security) -> AgentRuntime:
    cfg = AgentConfig(node="n1", roles=["compute"], security=SecurityConfig(trusted_keys=[pub_line], **security))
    return AgentRuntime(cfg, gather_interfaces=False)


def dispatch(rt: AgentRuntime, req: Request, subject: str = SUBJECT, audit: dict | None = None):
    data = codec.encode(req.model_dump(mode="json"))
    return asyncio.run(rt._dispatch(req.probe, data, time.time(), subject, audit))


def test_runtime_answers(keypair):
    signer, _ = keypair
    rt = _runtime(signer.public_line, require_signed=True)
    audit: dict = {}
    req = signed(signer)
    reply = dispatch(rt, req, audit=audit)
    assert reply.status is Status.OK and audit["kid"] == signer.kid and audit["sender"] == "ops@test"
    again = dispatch(rt, req)
    assert again.status is Status.INVALID and "replayed" in again.message
    unsigned = dispatch(rt, Request(probe="hello", deadline=time.time() + 5))
    assert (
        unsigned.status is Status.INVALID
        and unsigned.message == "refused: unsigned request: this agent requires signed requests"
    )
    forged = signed(signer)
    forged.sender = "someone-else"
    assert "bad signature" in dispatch(rt, forged).message
    expired = signed(signer, timeout=-30)
    bad = dispatch(rt, expired)
    assert bad.status is Status.INVALID and "expired" in bad.message


def test_audit_line(keypair, caplog):
    """One line per request: who (sender, key), probe, args (JSON, truncated), status, duration."""
    import logging

    signer, _ = keypair
    rt = _runtime(signer.public_line)

    class Msg:
        def __init__(self, req):
            self.subject, self.reply = SUBJECT, "_INBOX.gather1"
            self.data = codec.encode(req.model_dump(mode="json"))

    class NC:  # the reply goes nowhere
        max_payload = 1 << 20

        async def publish(self, subject, data):
            pass

    rt.nc = NC()
    req = signed(signer)
    req_evil = Request(
        probe="hello", args={"x": "a\nrequest id=forged " + "y" * 500}, deadline=time.time() + 5, sender="evil\nline"
    )
    with caplog.at_level(logging.INFO, logger="steth.agent"):
        asyncio.run(rt._handle(Msg(req)))
        asyncio.run(rt._handle(Msg(req_evil)))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request id=")]
    assert len(lines) == 2
    good, evil = lines
    assert f"key={signer.kid}(verified)" in good and 'sender="ops@test"' in good and 'probe="hello"' in good
    assert "status=ok" in good and "duration=" in good
    # The NATS side of who asked: the subject it came on and the reply inbox (whose prefix says which
    # identity reads the answer: `_INBOX.` is the controllers').
    assert f"subject={json.dumps(SUBJECT)}" in good and 'inbox="_INBOX.gather1"' in good
    assert "\n" not in evil and 'sender="evil\\nline"' in evil and "key=unsigned" in evil
    assert "status=invalid" in evil and evil.count("...") == 1 and len(evil) < 600


def test_no_replay_across_a_restart_and_no_send_time_from_the_future(keypair):
    """The send time is signed: what was sent before the agent started (whose replay cache is then empty)
    is refused, and so is a send time ahead of the agent's clock."""
    signer, _ = keypair
    v = verifier(signer.public_line, clock_skew_s=1)
    before = Request(probe="hello", deadline=time.time() + 30, sent=v.started - 5)
    signer.sign(before, SUBJECT)
    with pytest.raises(RequestRefused, match="before this agent started"):
        v.check(before, SUBJECT)
    ahead = Request(probe="hello", deadline=time.time() + 30, sent=time.time() + 20)
    signer.sign(ahead, SUBJECT)
    with pytest.raises(RequestRefused, match="in the future"):
        v.check(ahead, SUBJECT)
    v.check(signed(signer), SUBJECT)  # sent now: fine


def test_replay_window_is_no_longer_than_the_longest_probe(keypair):
    from steth.schemas.probes import registry

    signer, _ = keypair
    longest = max(spec.max_timeout_s for spec in registry().values())
    assert verifier(signer.public_line).window_s == longest  # the default
    assert verifier(signer.public_line, replay_window_s=86400).window_s == longest  # capped
    assert verifier(signer.public_line, replay_window_s=60).window_s == 60


def test_require_signed_without_trusted_keys_is_a_config_error():
    with pytest.raises(ValueError, match="require_signed = true needs trusted_keys"):
        load(None, environ={"STETH_NODE": "n1", "STETH_SECURITY_REQUIRE_SIGNED": "true"})
