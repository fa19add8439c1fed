"""The two JetStream objects steth keeps: the presence bucket and the results stream.

Their configuration is spelled here once, for `steth setup` (an administrative identity creates and updates
them) and for agents on an open server (the lab, development), which may still create a missing one
themselves. An agent identity from `steth nats-config` holds no STREAM.CREATE/UPDATE right (docs/security.md):
it finds the object missing, cannot create it and says `steth setup` is needed (SetupNeeded), then retries.

The presence bucket is a KV-compatible stream created here rather than with nats-py's `create_key_value`,
because that one sets two switches an agent could abuse (nats-py js/client.py create_key_value):

- `allow_rollup_hdrs`: a message with `Nats-Rollup: all` purges every other message of the stream
  ("all replaces all messages in the stream", docs.nats.io reference, JetStream headers, "Message Rollup"):
  any agent allowed to write its own key could wipe every other node's entry. Off here, so the server refuses
  any rollup with "rollup not permitted" (nats-server server/stream.go, processJetStreamMsg:
  `if !allowRollup || denyPurge`). steth never uses `kv.purge` (the only KV operation that rolls up).
- `allow_msg_ttl`: a per-message `Nats-TTL: never` would keep an entry past the bucket's TTL, so a node that
  died could stay listed. Off here: entries live at most the bucket's TTL after their last write. The server
  refuses to turn it off on an existing stream ("message TTL status can not be disabled"), so `steth setup`
  re-creates a bucket that has it on (its entries are rewritten within one heartbeat).

Imports nothing from the agent or the controller (tests/unit/test_layering.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from steth.schemas import subjects
from steth.schemas.results import RESULTS_STREAM

PRESENCE_STREAM = f"KV_{subjects.PRESENCE_BUCKET}"
PRESENCE_TTL_S = 15.0  # the agent's default presence_ttl_s
# The results stream's defaults: the agent's [results] section (steth/agent/schedule_config.py) has the same.
RESULTS_MAX_AGE_S = 86400.0
RESULTS_MAX_MSGS = 1_000_000
RESULTS_MAX_BYTES = 1 << 30
SETUP_HINT = "run `steth setup` with an administrative identity (docs/security.md)"


class SetupNeeded(Exception):
    """The bucket or stream is missing and this identity may not create it."""


def presence_replicas(configured: int | None, server_info: dict[str, Any]) -> int:
    """Replicas for the presence bucket: as configured; else 3 when the server is part of a cluster of at least
    3 servers (the INFO of a clustered server names its cluster and advertises every server's client URL),
    1 otherwise. A cluster that advertises no URLs gets 3 tried, then 1."""
    if configured is not None:
        return configured
    if not server_info.get("cluster"):
        return 1
    urls = set(server_info.get("connect_urls") or ())
    return 3 if not urls or len(urls) >= 3 else 1


def presence_config(ttl_s: float = PRESENCE_TTL_S, replicas: int = 1):
    """The presence bucket's stream: what nats-py's create_key_value makes for history 1 and a TTL, except
    no rollups and no per-message TTLs (module docstring)."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig

    return StreamConfig(
        name=PRESENCE_STREAM,
        description="steth agents: one entry per node, rewritten every heartbeat",
        subjects=[f"$KV.{subjects.PRESENCE_BUCKET}.>"],
        allow_direct=True,
        allow_rollup_hdrs=False,  # no Nats-Rollup: an agent cannot purge other nodes' keys
        allow_msg_ttl=False,  # no Nats-TTL: an entry expires with the bucket's TTL
        deny_delete=True,
        deny_purge=False,
        discard=DiscardPolicy.NEW,
        duplicate_window=min(120.0, ttl_s),
        max_age=ttl_s,
        max_bytes=-1,
        max_consumers=-1,
        max_msg_size=-1,
        max_msgs=-1,
        max_msgs_per_subject=1,  # history 1
        num_replicas=replicas,
        storage=StorageType.FILE,
    )


def results_config(
    name: str = RESULTS_STREAM,
    max_age_s: float = RESULTS_MAX_AGE_S,
    max_msgs: int = RESULTS_MAX_MSGS,
    max_bytes: int = RESULTS_MAX_BYTES,
    replicas: int = 1,
):
    """The results stream: every node's scheduled results, bounded by age, count and bytes."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig

    return StreamConfig(
        name=name,
        subjects=[f"{subjects.RESULTS}.>"],
        description="steth: results of scheduled probes",
        max_age=max_age_s,
        max_msgs=max_msgs,
        max_bytes=max_bytes,
        discard=DiscardPolicy.OLD,
        duplicate_window=120.0,  # the server's default, spelled out so that `steth setup` compares like with like
        storage=StorageType.FILE,
        num_replicas=replicas,
        allow_rollup_hdrs=False,
    )


# Fields `steth setup` owns: an existing stream that differs in one of these is updated (or re-created).
OWNED = (
    "subjects",
    "description",
    "allow_direct",
    "allow_rollup_hdrs",
    "allow_msg_ttl",
    "deny_delete",
    "discard",
    "duplicate_window",
    "max_age",
    "max_bytes",
    "max_msgs",
    "max_msgs_per_subject",
    "num_replicas",
)
# Fields the server will not change on an existing stream: a difference means re-creating it.
IMMUTABLE_CHANGES = {"allow_msg_ttl": (True, False), "storage": None}


def _norm(name: str, value: Any) -> Any:
    if value is None:
        return {"allow_direct": False, "allow_msg_ttl": False, "max_msgs": -1, "max_bytes": -1}.get(name, value)
    if hasattr(value, "value"):  # enums
        return value.value
    if isinstance(value, float):
        return round(value, 3)
    return value


def differences(current, wanted) -> dict[str, tuple[Any, Any]]:
    """{field: (current, wanted)} for the owned fields that differ."""
    out = {}
    for name in OWNED:
        have, want = _norm(name, getattr(current, name, None)), _norm(name, getattr(wanted, name, None))
        if want is not None and have != want:
            out[name] = (have, want)
    return out


@dataclass
class Outcome:
    stream: str
    action: str  # created, updated, recreated, unchanged
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "action": self.action,
            "changes": {k: {"was": a, "now": b} for k, (a, b) in self.changes.items()},
        }


async def apply(js, wanted, *, recreate_ok: bool = False) -> Outcome:
    """Create `wanted`, or bring an existing stream's owned fields to it (`steth setup`). A difference the
    server cannot update (per-message TTLs on) re-creates the stream when `recreate_ok`, else ValueError."""
    from nats.js.errors import NotFoundError

    try:
        info = await js.stream_info(wanted.name)
    except NotFoundError:
        await js.add_stream(wanted)
        return Outcome(wanted.name, "created")
    changes = differences(info.config, wanted)
    if not changes:
        return Outcome(wanted.name, "unchanged")
    if changes.get("allow_msg_ttl") == (True, False):
        if not recreate_ok:
            raise ValueError(f"{wanted.name} allows per-message TTLs, which the server cannot turn off: re-create it")
        await js.delete_stream(wanted.name)
        await js.add_stream(wanted)
        return Outcome(wanted.name, "recreated", changes)
    updated = dataclasses.replace(info.config, **{name: getattr(wanted, name) for name in changes})
    await js.update_stream(updated)
    return Outcome(wanted.name, "updated", changes)


async def create_missing(js, wanted, what: str, denied: Any = None, timeout: float = 5.0) -> None:
    """An agent on an open server: create the missing `wanted` (another agent may win the race: fine).
    SetupNeeded when it cannot, with the reason: `denied(subject)` says whether the server reported a
    permissions violation for that subject (an agent identity of `steth nats-config` has no CREATE right)."""
    from nats.js.errors import NotFoundError

    subject = f"$JS.API.STREAM.CREATE.{wanted.name}"
    error: Exception | None = None
    # The server answers a refused publish with a permissions error at once, and the request itself never:
    # watch for that error rather than wait out the timeout.
    task = asyncio.ensure_future(js.add_stream(wanted))
    deadline = asyncio.get_running_loop().time() + timeout
    while not task.done() and asyncio.get_running_loop().time() < deadline:
        if denied is not None and denied(subject):
            break
        await asyncio.wait({task}, timeout=0.05)
    if task.done():
        error = task.exception()
        if error is None:
            return
    else:
        task.cancel()
        error = error or TimeoutError(f"no answer within {timeout:g} s")
    try:  # another agent created it at the same moment
        await js.stream_info(wanted.name)
        return
    except NotFoundError:
        pass
    except Exception:
        pass
    if denied is not None and denied(subject):
        reason = f"this identity may not publish to {subject}"
    else:
        reason = f"{error.__class__.__name__}: {error}".rstrip(": ")
    raise SetupNeeded(f"{what} {wanted.name} does not exist and this agent cannot create it ({reason}): {SETUP_HINT}")
