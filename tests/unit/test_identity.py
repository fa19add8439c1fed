"""Identity bound to the connection (issue 12, item 3): presence keyed by what the broker authorised, heartbeats
that cannot stay alive forever, results attributed by subject, JetStream objects an agent cannot administer.
Over the wire in tests/integration/test_security.py."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest

from steth import codec, natsauth, streams
from steth.presence import STORED_CLOCK_SLACK_S, entry_of
from steth.schemas import subjects
from steth.schemas.agent_info import AgentInfo
from steth.schemas.results import ScheduledResult


def _entry(node: str, heartbeat: float, **extra) -> bytes:
    return codec.encode(AgentInfo(node=node, heartbeat=heartbeat, heartbeat_s=1.0, **extra).model_dump(mode="json"))


def test_presence_entry_naming_another_node_is_dropped(caplog):
    now = time.time()
    assert entry_of("compute-1", _entry("compute-1", now), now).info.node == "compute-1"
    with caplog.at_level(logging.DEBUG, logger="steth.presence"):
        assert entry_of("compute-1", _entry("compute-2", now), now) is None
    assert "presence entry 'compute-1' names node 'compute-2': dropped" in caplog.text
    assert entry_of("compute-1", b"\xc1junk", now) is None
    assert entry_of("compute-1", None, now) is None  # a delete marker


def test_future_heartbeats_are_capped():
    now = time.time()
    far = entry_of("c1", _entry("c1", now + 10 * 365 * 86400), now)
    assert far.info.heartbeat == now and far.age_s == 0
    # With the server's stored time known, a future heartbeat counts from then (plus the clock slack): it ages.
    stored = entry_of("c1", _entry("c1", now + 1e9), now, stored=now - 30 - STORED_CLOCK_SLACK_S)
    assert stored.age_s == pytest.approx(30) and not stored.alive
    honest = entry_of("c1", _entry("c1", now - 1), now, stored=now - 0.9)
    assert honest.age_s == pytest.approx(1) and honest.alive
    # A NATS server whose clock lags the controller's by 20 s does not make an honest agent look stale.
    lagging = entry_of("c1", _entry("c1", now - 1), now, stored=now - 21)
    assert lagging.age_s == pytest.approx(1) and lagging.alive
    for bad in (float("nan"), float("inf")):
        assert entry_of("c1", _entry("c1", bad), now) is None


def test_agent_presence_watch_caps_future_heartbeats():
    from steth.agent.presence_watch import PresenceWatch

    watch = PresenceWatch(lambda: None, "me", 1.0, lambda joined, departed: None)
    now = time.time()
    for key, node in (("peer", "peer"), ("other", "peer")):
        raw = {"node": node, "heartbeat": now + 1e9, "heartbeat_s": 1.0}
        watch._apply(SimpleNamespace(key=key, value=codec.encode(raw), operation=None, created=None))
    assert set(watch._raw) == {"peer"}  # the entry under another key is not taken
    assert watch._raw["peer"]["heartbeat"] <= time.time()
    assert not watch._is_alive(watch._raw["peer"], time.time() + 5)  # it ages: not alive forever


def test_untoken_inverts_token():
    for name in ("compute-1", "compute-1.example.org", "a%2Eb", "x%y.z"):
        assert subjects.untoken(subjects.token(name)) == name
    assert subjects.results_node(subjects.results("c1.example.org", "ping")) == "c1.example.org"
    assert subjects.results_node("steth.v1.results.c1") is None
    assert subjects.results_node("steth.v1.req.all.ping") is None


def test_results_are_attributed_by_subject(caplog):
    from steth.controller.results_view import decode

    def payload(node: str) -> bytes:
        res = ScheduledResult(node=node, probe="ping", status="ok", schedule="mesh", started=1.0, finished=2.0)
        return codec.encode(res.model_dump(mode="json"))

    subject = subjects.results("compute-1.example.org", "ping")
    assert decode(payload("compute-1.example.org"), subject).node == "compute-1.example.org"
    with caplog.at_level(logging.DEBUG, logger="steth.controller"):
        assert decode(payload("compute-2"), subject) is None
    assert "names node 'compute-2': dropped" in caplog.text
    assert decode(payload("compute-2")).node == "compute-2"  # no subject: as before (tests, tools)


def test_agents_may_not_create_or_update_streams():
    perms = natsauth.agent_permissions("c1", ["compute"])["publish"]["allow"]
    assert not [p for p in perms if ".STREAM.CREATE." in p or ".STREAM.UPDATE." in p or ".STREAM.DELETE." in p]
    assert "$JS.API.STREAM.INFO.KV_steth_presence" in perms and "$JS.API.STREAM.INFO.STETH_RESULTS" in perms
    ctl = natsauth.controller_permissions()["publish"]["allow"]
    assert not [p for p in ctl if ".STREAM.CREATE." in p or ".STREAM.UPDATE." in p]
    admin = natsauth.admin_permissions()
    assert sorted(admin["publish"]["allow"]) == sorted(
        [
            f"$JS.API.STREAM.{op}.{s}"
            for s in ("KV_steth_presence", "STETH_RESULTS")
            for op in ("INFO", "CREATE", "UPDATE")
        ]
        + ["$JS.API.STREAM.DELETE.KV_steth_presence"]
    )
    assert "steth.v1.req.>" not in admin["publish"]["allow"]


def test_nats_config_writes_an_admin_identity(tmp_path):
    from steth.controller.natsconf import parse_admin, parse_agent, write

    conf = write([parse_agent("c1=compute"), parse_admin("ops")], tmp_path).read_text()
    assert '"user": "admin-ops"' in conf and '"$JS.API.STREAM.CREATE.STETH_RESULTS"' in conf
    with pytest.raises(ValueError, match="invalid admin name"):
        parse_admin("-x")


def test_presence_bucket_is_nats_py_kv_without_rollups_or_message_ttls():
    """The bucket steth makes is what nats-py's create_key_value makes (so js.key_value binds to it), but for
    the switches an agent could abuse."""
    from nats.js.api import KeyValueConfig
    from nats.js.client import JetStreamContext

    made = {}

    class Capture(JetStreamContext):
        def __init__(self):
            pass

        async def add_stream(self, config=None, **params):
            made["config"] = config
            raise RuntimeError("captured")

    cfg = KeyValueConfig(bucket=subjects.PRESENCE_BUCKET, history=1, ttl=15.0, replicas=3, direct=True)
    with pytest.raises(RuntimeError):
        asyncio.run(Capture().create_key_value(cfg))
    theirs, ours = made["config"].as_dict(), streams.presence_config(15.0, 3).as_dict()
    # None (left out: the server's default) and -1 (no limit, the same default spelled out) are alike
    differs = {k for k in set(theirs) | set(ours) if theirs.get(k, -1) != ours.get(k, -1)}
    assert differs == {"allow_rollup_hdrs", "allow_msg_ttl", "description", "storage"}, differs
    assert ours["allow_rollup_hdrs"] is False and ours["allow_msg_ttl"] is False
    assert ours["max_msgs_per_subject"] == 1 and ours["deny_delete"] is True and ours["discard"] == "new"


def test_differences_and_what_setup_changes():
    current = streams.presence_config(15.0, 1)
    current.allow_rollup_hdrs, current.allow_msg_ttl = True, True
    changes = streams.differences(current, streams.presence_config(15.0, 1))
    assert changes == {"allow_rollup_hdrs": (True, False), "allow_msg_ttl": (True, False)}
    assert streams.differences(streams.results_config(), streams.results_config()) == {}


def test_an_agent_that_may_not_create_says_run_setup():
    """The server answers a refused CREATE with a permissions error and never a reply: SetupNeeded at once."""

    class NoRights:
        async def add_stream(self, config):
            await asyncio.sleep(30)

        async def stream_info(self, name):
            from nats.js.errors import NotFoundError

            raise NotFoundError

    started = time.monotonic()
    with pytest.raises(
        streams.SetupNeeded, match=r"may not publish to \$JS.API.STREAM.CREATE.KV_steth_presence.*steth setup"
    ):
        asyncio.run(
            streams.create_missing(NoRights(), streams.presence_config(), "the presence bucket", lambda s: True)
        )
    assert time.monotonic() - started < 1
    with pytest.raises(streams.SetupNeeded, match=r"TimeoutError: no answer within 0.2 s.*steth setup"):
        asyncio.run(streams.create_missing(NoRights(), streams.results_config(), "the results stream", timeout=0.2))
