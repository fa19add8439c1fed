"""Who is out there: the agents' heartbeat entries in the JetStream key-value bucket."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from steth import codec
from steth.schemas import subjects
from steth.schemas.agent_info import AgentInfo

# An entry not rewritten for this many heartbeat intervals is stale (the bucket's TTL removes it later).
STALE_AFTER_HEARTBEATS = 2.5


@dataclass
class Present:
    info: AgentInfo
    age_s: float

    @property
    def alive(self) -> bool:
        return self.age_s <= self.info.heartbeat_s * STALE_AFTER_HEARTBEATS


async def read_presence(nc, timeout: float = 5.0) -> dict[str, Present] | None:
    """Every agent's latest entry by node name; None when no agent has ever created the bucket."""
    from nats.js.errors import BucketNotFoundError

    js = nc.jetstream(timeout=timeout)
    try:
        kv = await js.key_value(subjects.PRESENCE_BUCKET)
    except BucketNotFoundError:
        return None
    now = time.time()
    present: dict[str, Present] = {}
    # Read the snapshot to its real end, not to nats-py's end-of-values marker (None): that marker races the
    # deliveries and can come before any value (reads came back empty about 1 in 800 times with three agents
    # up). The last message of the snapshot has nothing pending after it (delta 0); even then, a key rewritten
    # while the snapshot was being sent can be missing (about 1 read in 3000), so the keys seen are checked
    # against the bucket's count (one message per key: history 1) and its new revision is awaited briefly.
    # Deletes are read (and skipped) too, since the last message may be a delete marker.
    watcher = await kv.watchall(inactive_threshold=5)
    keys: set[str] = set()
    grace = False
    try:
        async with asyncio.timeout(timeout) as window:
            async for entry in watcher:
                if entry is None:
                    if keys or not (await kv.status()).values:
                        break  # the marker after the values, or a bucket that really is empty
                    continue
                keys.add(entry.key)
                if entry.operation is None and entry.value:
                    try:
                        info = AgentInfo.model_validate(codec.decode(entry.value))
                        present[info.node] = Present(info, max(0.0, now - info.heartbeat))
                    except ValueError:
                        pass  # an entry we cannot read is not an agent we can expect
                if entry.delta == 0:
                    if len(keys) >= (await kv.status()).values:
                        break
                    grace = True
                    window.reschedule(min(window.when(), asyncio.get_running_loop().time() + 1.0))
    except TimeoutError:
        if not grace:
            raise
    finally:
        await watcher.stop()
    return present
