"""The presence bucket, watched live: which agents are alive now, and who joined or left.

A KV watcher delivers every heartbeat entry as it is written and a delete when an agent leaves cleanly. An
agent that dies silently only stops writing, and a TTL expiry makes no event, so entries whose heartbeat is
older than 2.5 intervals count as gone (the controller uses the same rule).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from steth import codec
from steth.schemas import subjects
from steth.schemas.agent_info import AgentInfo

log = logging.getLogger("steth.agent.presence")

STALE_AFTER_HEARTBEATS = 2.5
SWEEP_S = 1.0


class PresenceWatch:
    def __init__(
        self, nc_of: Callable[[], Any], node: str, heartbeat_s: float, on_change: Callable[[set[str], set[str]], None]
    ):
        self._nc_of = nc_of
        self.node = node
        self._on_change = on_change  # (joined, departed), called from the watch loop
        # Without any update for this long (our own heartbeat is an update), the watch is re-opened.
        self._silence_s = max(10.0, 5 * heartbeat_s)
        self._raw: dict[str, dict] = {}
        self._parsed: dict[str, tuple[int, AgentInfo]] = {}
        self._alive: set[str] = set()
        self.ready = asyncio.Event()  # set once the bucket's current entries are in

    # --- what the scheduler asks ---------------------------------------------------------------

    def peers(self) -> set[str]:
        """Other agents alive now."""
        return set(self._alive)

    def info(self, node: str) -> AgentInfo | None:
        """The latest entry of an alive agent (this one included), parsed once per heartbeat."""
        raw = self._raw.get(node)
        if raw is None or not self._is_alive(raw, time.time()):
            return None
        cached = self._parsed.get(node)
        if cached is None or cached[0] != id(raw):
            try:
                cached = (id(raw), AgentInfo.model_validate(raw))
            except ValueError:
                return None
            self._parsed[node] = cached
        return cached[1]

    # --- the watch ---------------------------------------------------------------------------

    @staticmethod
    def _is_alive(raw: dict, now: float) -> bool:
        try:
            return now - float(raw["heartbeat"]) <= float(raw.get("heartbeat_s", 5.0)) * STALE_AFTER_HEARTBEATS
        except (KeyError, TypeError, ValueError):
            return False

    def _apply(self, entry: Any) -> None:
        if entry.operation in ("DEL", "PURGE"):
            self._raw.pop(entry.key, None)
            self._parsed.pop(entry.key, None)
            return
        try:
            raw = codec.decode(entry.value)
        except codec.DecodeError:
            return
        if isinstance(raw, dict) and raw.get("node") == entry.key:  # an entry speaks for its own key only
            # A heartbeat dated in the future counts from when it was stored (or seen), or it would never age.
            try:
                stored = entry.created.timestamp() if getattr(entry, "created", None) else time.time()
                raw["heartbeat"] = min(float(raw["heartbeat"]), stored, time.time())
            except (KeyError, TypeError, ValueError):
                return
            self._raw[entry.key] = raw

    def sweep(self) -> None:
        now = time.time()
        alive = {n for n, raw in self._raw.items() if n != self.node and self._is_alive(raw, now)}
        joined, departed = alive - self._alive, self._alive - alive
        self._alive = alive
        for node in departed:
            self._parsed.pop(node, None)
        if joined or departed:
            if departed:
                log.info("presence: %s left", ", ".join(sorted(departed)))
            self._on_change(joined, departed)

    async def run(self) -> None:
        """Watch until cancelled; re-open the watch when it fails or falls silent."""
        import nats.errors

        while True:
            watcher = None
            try:
                js = self._nc_of().jetstream(timeout=5)
                kv = await js.key_value(subjects.PRESENCE_BUCKET)
                watcher = await kv.watchall()
                last_update = time.monotonic()
                last_sweep = 0.0
                while True:
                    try:
                        entry = await watcher.updates(timeout=SWEEP_S)
                    except nats.errors.TimeoutError:
                        entry = None
                        self.ready.set()  # nothing pending: what we have is the current state
                    else:
                        last_update = time.monotonic()
                        if entry is None:  # the end of the current values
                            self.ready.set()
                        else:
                            self._apply(entry)
                    if time.monotonic() - last_sweep >= SWEEP_S:
                        last_sweep = time.monotonic()
                        self.sweep()
                    if time.monotonic() - last_update > self._silence_s:
                        raise TimeoutError(f"no presence update for {self._silence_s:.0f} s")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("presence watch: %s: %s; re-opening", exc.__class__.__name__, exc)
                self.sweep()  # entries keep ageing while NATS is away
                await asyncio.sleep(2)
            finally:
                if watcher is not None:
                    try:
                        await asyncio.wait_for(watcher.stop(), timeout=2)
                    except Exception:
                        pass
