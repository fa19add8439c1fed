"""Scatter-gather: publish once, collect replies on one inbox until the deadline or everyone answered."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from steth import codec
from steth.schemas.envelope import INCOMPLETE, Reply, Request, Status

# With no expected set, stop once replies have stopped coming for this long.
STALL_WINDOW_S = 1.0


@dataclass
class NodeResult:
    node: str
    status: Status
    message: str = ""
    duration_s: float | None = None
    result: dict[str, Any] | None = None
    # False for a node that answered although it was not in the expected set: no presence entry (expired during
    # a NATS failover, or not written yet). Its reply counts like any other; the footer and summary name it.
    expected: bool = True
    # With agent keys configured (steth/controller/replysig.py): "verified", "unverified" or "bad"; else None.
    signature: str | None = None

    def as_dict(self) -> dict[str, Any]:
        doc = {
            "node": self.node,
            "status": self.status.value,
            "message": self.message,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 4),
            "result": self.result,
        }
        if self.signature is not None:
            doc["signature"] = self.signature
        return doc

    def parsed(self, spec) -> Any:
        """The result read with the probe's result model (spec.result), so callers read attributes, not keys.

        None when the node sent no result, or one this controller cannot read (another version's shape).
        """
        if self.result is None:
            return None
        try:
            return spec.result.model_validate(self.result)
        except ValueError:  # pydantic's ValidationError
            return None


@dataclass
class Gathered:
    probe: str
    request_id: str
    elapsed_s: float
    expected: set[str] | None
    nodes: list[NodeResult] = field(default_factory=list)
    undecodable: int = 0

    def by_node(self) -> dict[str, NodeResult]:
        return {n.node: n for n in self.nodes}

    def summary(self) -> dict[str, int]:
        counts = {"expected": len(self.expected) if self.expected is not None else None}
        counts["replied"] = sum(1 for n in self.nodes if n.status is not Status.NO_REPLY)
        for status in Status:
            counts[status.value] = sum(1 for n in self.nodes if n.status is status)
        counts["answered_without_presence"] = len(self.without_presence())
        return counts

    def silent(self) -> list[str]:
        return [n.node for n in self.nodes if n.status is Status.NO_REPLY]

    def without_presence(self) -> list[str]:
        """Nodes that answered but were not expected (no presence entry when the request was sent)."""
        return [n.node for n in self.nodes if not n.expected]

    def exit_code(self) -> int:
        """0 all ok, 1 findings, 3 incomplete: from every node's own status.

        A node that answered without a presence entry is judged by its reply like any other: its answer proves
        it is there, so being absent from presence neither makes the gather incomplete nor is a finding.
        """
        from steth.controller.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK

        statuses = {n.status for n in self.nodes}
        if Status.FAILED in statuses:
            return EXIT_FINDINGS
        if statuses & INCOMPLETE or not self.nodes:
            return EXIT_INCOMPLETE
        return EXIT_OK


async def gather(
    nc,
    messages: list[tuple[str, Request]],
    deadline: float,
    expected: set[str] | None,
    *,
    expected_reasons: dict[str, str] | None = None,
    stall_window_s: float = STALL_WINDOW_S,
    verifier: Any = None,
) -> Gathered:
    """Send every (subject, request) with one reply inbox; collect one reply per node.

    Only the node name is read while replies arrive (to finish early); replies are validated afterwards.
    With a `verifier` (agent keys configured), each reply's signature is checked as it arrives: a bad one is
    not that node's answer (the gather goes on waiting for it), and is reported only if no good one comes.
    """
    started = time.monotonic()
    raw: dict[str, dict] = {}
    verdicts: dict[str, str] = {}
    bad: dict[str, str] = {}
    request_id = messages[0][1].id if messages else ""
    sent_on = {subject for subject, _ in messages}
    undecodable = 0
    last_reply = [0.0]
    everyone = asyncio.Event()
    # Counted down per expected node: checking expected <= raw on every reply would be O(N^2).
    awaited = len(expected) if expected is not None else -1

    async def on_reply(msg) -> None:
        nonlocal undecodable, awaited
        try:
            data = codec.decode(msg.data, limit=nc.max_payload)
        except codec.DecodeError:
            undecodable += 1
            return
        node = data.get("node")
        if not isinstance(node, str) or node in raw:
            return  # an agent matched by two selectors answers twice: the first reply counts
        if verifier is not None:
            verdict, why = verifier.check(node, msg.data, msg.headers, request_id, sent_on)
            if verdict == "bad":
                bad.setdefault(node, why)
                return
            verdicts[node] = verdict
        raw[node] = data
        last_reply[0] = time.monotonic()
        if expected is not None:
            awaited -= node in expected
            if awaited <= 0:
                everyone.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        for subject, request in messages:
            await nc.publish(subject, codec.encode(request.model_dump(mode="json"), limit=nc.max_payload), reply=inbox)
        try:
            await nc.flush(timeout=max(0.5, deadline - time.time()))
        except Exception:  # NATS went away mid-send: nats-py resends after a reconnect, or we say so below
            if nc.is_closed:
                from steth.controller.errors import StethError

                raise StethError("lost the connection to NATS while sending the request") from None
        if expected is not None and not expected:
            # Nothing in presence matches the selection: catch a quick answer from an agent outside presence,
            # but do not sit out the whole deadline (a long ping's) waiting for nobody.
            last_reply[0] = last_reply[0] or time.monotonic()
        await _wait(everyone, deadline, last_reply, stall_window_s if not expected else None, nc)
    finally:
        try:
            await sub.unsubscribe()
        except Exception:  # the connection is closed: nothing to unsubscribe from
            pass
    if not nc.is_connected:  # the server went away and did not come back in time: say so for the silent
        lost = "no reply: the connection to NATS was lost during the gather"
        expected_reasons = {n: lost for n in (expected or ())}

    result = Gathered(messages[0][1].probe if messages else "", request_id, time.monotonic() - started, expected)
    result.undecodable = undecodable
    result.nodes = _classify(raw, expected, expected_reasons or {}, request_id, verdicts, bad)
    return result


async def _wait(
    everyone: asyncio.Event, deadline: float, last_reply: list[float], stall: float | None, nc=None
) -> None:
    while True:
        remaining = deadline - time.time()
        if remaining <= 0 or everyone.is_set() or (nc is not None and nc.is_closed):
            return
        step = min(remaining, 0.5) if stall is None else min(remaining, stall / 4)
        try:
            await asyncio.wait_for(everyone.wait(), timeout=step)
            return
        except TimeoutError:
            pass
        if stall is not None and last_reply[0] and time.monotonic() - last_reply[0] >= stall:
            return


def _classify(
    raw: dict[str, dict],
    expected: set[str] | None,
    reasons: dict[str, str],
    request_id: str,
    verdicts: dict[str, str] | None = None,
    bad: dict[str, str] | None = None,
) -> list[NodeResult]:
    nodes: list[NodeResult] = []
    answered: set[str] = set()
    for node, data in raw.items():
        try:
            reply = Reply.model_validate(data)
        except ValueError as exc:
            nodes.append(NodeResult(node, Status.ERROR, f"unreadable reply: {exc.__class__.__name__}"))
            answered.add(node)
            continue
        if reply.id and request_id and reply.id != request_id:
            continue  # a late reply to another request that reused this inbox cannot happen, but be strict
        answered.add(node)
        # The reply's own status stands even for a node that was not expected: an answer proves the node is
        # there (its presence entry expired, say while NATS failed over, or was not written yet); the
        # row is only marked, and Gathered.summary() and the footer name it.
        row = NodeResult(node, reply.status, reply.message, reply.duration_s, reply.result)
        row.expected = expected is None or node in expected
        if verdicts:
            row.signature = verdicts.get(node)
        nodes.append(row)
    for node, why in (bad or {}).items():  # only forged or unsigned replies came in this node's name
        if node not in answered:
            row = NodeResult(node, Status.ERROR, f"reply signature does not verify ({why})", signature="bad")
            row.expected = expected is None or node in expected
            nodes.append(row)
            answered.add(node)
    for node in sorted((expected or set()) - answered):  # a reply that did not count leaves its node named
        nodes.append(NodeResult(node, Status.NO_REPLY, reasons.get(node, "no reply by the deadline")))
    nodes.sort(key=lambda n: n.node)
    return nodes
