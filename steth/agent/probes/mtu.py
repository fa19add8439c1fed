"""mtu: search the largest don't-fragment echo that is answered, several sizes per round.

Each round pings PROBES_PER_ROUND sizes at once (`ping -M do -s SIZE`) inside the interval still open:
(largest size answered, smallest size lost). A black hole costs one wait per round, not one per size, and a
9-way split narrows 68..9000 bytes down to one byte in 5 rounds where halving takes 14. When ping reports the local
route's MTU ("local error: message too long, mtu=1500") or a router's ("Frag needed ... mtu = 1400"), the
search caps there and tries that size first.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from steth.agent import procs
from steth.agent.errors import CouldNotRun, DeadlineReached
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.mtu import MIN_MTU_BYTES, OVERHEAD_BYTES, PROBES_PER_ROUND, MtuParams, MtuResult

_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_MTU_HINT = re.compile(r"mtu ?= ?(\d+)")
_INTERVAL_S = 0.2


@dataclass
class Probe:
    payload: int
    passed: bool
    mtu_hint: int | None = None  # an MTU ping was told about (local route, or an ICMP "frag needed")
    error: str = ""  # ping printed no summary: it could not send at all


def ping_argv(payload: int, p: MtuParams) -> list[str]:
    argv = [
        "ping",
        "-n",
        "-c",
        str(p.attempts),
        "-i",
        f"{_INTERVAL_S:g}",
        "-W",
        f"{p.wait_s:g}",
        "-M",
        "do",
        "-s",
        str(payload),
    ]
    if p.interface:
        argv += ["-I", p.interface]
    return argv + [p.target]


def parse_probe(payload: int, stdout: str, stderr: str, returncode: int | None) -> Probe:
    hints = [int(m) for m in _MTU_HINT.findall(stdout + "\n" + stderr)]
    counts = _COUNTS.search(stdout)
    if not counts:
        error = (stderr.strip().splitlines() or [f"ping exited {returncode}"])[-1]
        return Probe(payload, False, min(hints) if hints else None, error)
    return Probe(payload, int(counts.group(2)) > 0, min(hints) if hints else None)


async def try_size(payload: int, p: MtuParams, ctx: ProbeContext) -> Probe:
    budget = min(ctx.remaining(0.1), p.attempts * _INTERVAL_S + p.wait_s + 1.0)
    done = await procs.run(ping_argv(payload, p), timeout=budget, netns=p.netns)
    return parse_probe(payload, done.stdout, done.stderr, done.returncode)


def next_sizes(best: int, worst: int, hint_payload: int | None) -> list[int]:
    """Up to PROBES_PER_ROUND sizes strictly between best (passed) and worst (lost), evenly spread."""
    if worst - best <= 1:
        return []
    sizes: list[int] = []
    top = worst
    if hint_payload is not None and best < hint_payload < worst:
        sizes.append(hint_payload)  # the MTU we were told about is the likeliest answer
        top = hint_payload
    k = min(PROBES_PER_ROUND - len(sizes), top - best - 1)
    for i in range(1, k + 1):
        size = best + round((top - best) * i / (k + 1))
        if best < size < top and size not in sizes:
            sizes.append(size)
    return sorted(sizes)


class Search:
    """What is known so far: every size tried, and the interval that is still open."""

    def __init__(self, p: MtuParams):
        self.overhead = OVERHEAD_BYTES[p.version()]
        self.low = MIN_MTU_BYTES[p.version()] - self.overhead
        self.high = max(self.low, p.max_bytes - self.overhead)
        self.passed: set[int] = set()
        self.lost: set[int] = set()
        self.reported_mtu: int | None = None
        self.errors: list[str] = []

    def record(self, probe: Probe) -> None:
        (self.passed if probe.passed else self.lost).add(probe.payload)
        if probe.mtu_hint:
            self.reported_mtu = min(self.reported_mtu or probe.mtu_hint, probe.mtu_hint)
        if probe.error:
            self.errors.append(probe.error)

    @property
    def best(self) -> int | None:
        return max(self.passed) if self.passed else None

    @property
    def worst(self) -> int:
        """The smallest lost size above the best pass (a pass above a loss means that loss was noise)."""
        cap = self.high + 1
        if self.reported_mtu:
            cap = min(cap, self.reported_mtu - self.overhead + 1)
        floor = self.best if self.best is not None else -1
        above = [s for s in self.lost if s > floor]
        return min([cap, *above])

    def first_sizes(self) -> list[int]:
        return sorted({self.low, self.high, *next_sizes(self.low, self.high, None)})

    def sizes(self) -> list[int]:
        hint = self.reported_mtu - self.overhead if self.reported_mtu else None
        return next_sizes(self.best, self.worst, hint) if self.best is not None else []


async def run(params: MtuParams, ctx: ProbeContext) -> Outcome:
    search = Search(params)
    result = MtuResult(target=params.target, expect_bytes=params.expect_bytes)
    sizes = search.first_sizes()
    round_cost = params.attempts * _INTERVAL_S + params.wait_s + 0.2
    stopped = False
    while sizes:
        if ctx.remaining() < round_cost:
            stopped = True
            break
        probes = await asyncio.gather(*(try_size(s, params, ctx) for s in sizes))
        result.rounds += 1
        result.probes += len(probes)
        for probe in probes:
            search.record(probe)
        sizes = search.sizes()

    result.reported_mtu_bytes = search.reported_mtu
    if search.best is None:
        if search.errors and len(search.errors) == result.probes:
            result.error = search.errors[-1]
            raise CouldNotRun(result.error, result)
        result.error = f"no reply even to a {search.low + search.overhead}-byte packet"
        return Outcome(Status.FAILED, f"{params.target}: {result.error}", result)
    result.largest_payload_bytes = search.best
    result.path_mtu_bytes = search.best + search.overhead
    if stopped:
        result.error = (
            f"search stopped at the deadline: path MTU between {result.path_mtu_bytes} and "
            f"{search.worst - 1 + search.overhead} bytes"
        )
        raise DeadlineReached(result.error, result)
    if params.expect_bytes and result.path_mtu_bytes < params.expect_bytes:
        message = (
            f"path MTU to {params.target} is {result.path_mtu_bytes} bytes, below the expected {params.expect_bytes}"
        )
        return Outcome(Status.FAILED, message, result)
    return Outcome(Status.OK, "", result)
