"""Who is out there: the agents' heartbeat entries in the JetStream key-value bucket, read.

Shared by the controller (the expected set of a gather, `steth agents`) and the lab (waiting for its agents):
it imports neither side, only the schemas and the codec (tests/unit/test_layering.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from steth import codec
from steth.schemas import subjects
from steth.schemas.agent_info import AgentInfo

# An entry not rewritten for this many heartbeat intervals is stale (the bucket's TTL removes it later).
STALE_AFTER_HEARTBEATS = 2.5

log = logging.getLogger("steth.presence")


@dataclass
class Present:
    info: AgentInfo
    age_s: float

    @property
    def alive(self) -> bool:
        return self.age_s <= self.info.heartbeat_s * STALE_AFTER_HEARTBEATS


async def read_presence(nc, timeout: float = 5.0) -> dict[str, Present] | None:
    """Every agent's latest entry by node name; None when no agent has ever created the bucket."""
    from nats.js.errors import BucketNotFoundError, NotFoundError

    js = nc.jetstream(timeout=timeout)
    try:
        kv = await js.key_value(subjects.PRESENCE_BUCKET)
    except BucketNotFoundError:
        return None
    now = time.time()
    present: dict[str, Present] = {}

    def add(key: str, value: bytes | None, stored: float | None = None) -> None:
        entry = entry_of(key, value, now, stored)
        if entry is not None:
            present[key] = entry

    # nats-py's end-of-values marker (None) races the deliveries and can come before any value (reads came
    # back empty about 1 in 800 times with three agents up): read to the message with nothing pending after
    # it (delta 0) instead, deletes included since the last message may be a delete marker.
    watcher = await kv.watchall(inactive_threshold=5)
    keys: set[str] = set()
    try:
        async with asyncio.timeout(timeout):
            async for entry in watcher:
                if entry is None:
                    if keys or not (await kv.status()).values:
                        break  # the marker after the values, or a bucket that really is empty
                    continue
                keys.add(entry.key)
                if entry.operation is None:
                    add(entry.key, entry.value, entry.created.timestamp() if entry.created else None)
                if entry.delta == 0:
                    break
            # A key rewritten while the watch was being set up can still be skipped (about 1 read in 3000).
            # One message per key (history 1): if the bucket holds more than the watch delivered, ask the
            # stream which keys it has and fetch the missing ones.
            if len(keys) < (await kv.status()).values:
                prefix = f"$KV.{subjects.PRESENCE_BUCKET}."
                info = await js.stream_info(f"KV_{subjects.PRESENCE_BUCKET}", subjects_filter=f"{prefix}>")
                for subject in info.state.subjects or {}:
                    key = subject[len(prefix) :]
                    if key not in keys:
                        try:
                            add(key, (await kv.get(key)).value)
                        except NotFoundError:  # deleted or expired meanwhile
                            pass
    finally:
        await watcher.stop()
        await _drop_consumer(js, watcher)
    return present


# How far the NATS server's clock may lag the controller's before honest heartbeats look older than they are.
STORED_CLOCK_SLACK_S = 30.0


def entry_of(key: str, value: bytes | None, now: float, stored: float | None = None) -> Present | None:
    """One presence entry as the broker authorised it, or None.

    The key is what the broker let its writer publish to (`$KV.steth_presence.<node>`: an agent identity may
    write its own key only, docs/security.md), so an entry naming another node is dropped: agent A cannot
    claim to be B. The heartbeat counts from the earliest of the time written in it, now, and the time the
    server stored it (when known) plus STORED_CLOCK_SLACK_S: a heartbeat dated in the future does not keep an
    entry alive, and a NATS server whose clock is somewhat behind the controller's does not make every agent
    look stale.
    """
    try:
        info = AgentInfo.model_validate(codec.decode(value or b""))
    except ValueError:
        return None  # an entry we cannot read (or a delete marker) is not an agent we can expect
    if info.node != key:
        log.debug("presence entry %r names node %r: dropped (an entry speaks for its own key only)", key, info.node)
        return None
    if not math.isfinite(info.heartbeat) or not math.isfinite(info.heartbeat_s):
        log.debug("presence entry %r has a heartbeat that is not a number: dropped", key)
        return None
    info.heartbeat = min(info.heartbeat, now, stored + STORED_CLOCK_SLACK_S if stored is not None else now)
    return Present(info, now - info.heartbeat)


async def _drop_consumer(js, watcher) -> None:
    """Delete the watch's ephemeral consumer now rather than after its inactivity threshold: a burst of
    commands (a script polling `steth agents`) would otherwise reach the server's consumer limit."""
    consumer = getattr(watcher._sub, "_consumer", None)
    if not consumer:
        return
    try:
        await asyncio.wait_for(js.delete_consumer(f"KV_{subjects.PRESENCE_BUCKET}", consumer), timeout=1)
    except Exception:  # already gone, or not allowed: the threshold removes it anyway
        pass
