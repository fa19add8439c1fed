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
    watcher = await kv.watchall(ignore_deletes=True, inactive_threshold=5)
    try:
        async with asyncio.timeout(timeout):
            async for entry in watcher:
                if entry is None:  # the end of the initial values
                    break
                try:
                    info = AgentInfo.model_validate(codec.decode(entry.value))
                except ValueError:
                    continue  # an entry we cannot read is not an agent we can expect
                present[info.node] = Present(info, max(0.0, now - info.heartbeat))
    finally:
        await watcher.stop()
    return present
