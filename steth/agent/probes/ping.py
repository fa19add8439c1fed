"""ping via iputils: one process per target, all targets at once."""

from __future__ import annotations

import asyncio
import re

from steth.agent import procs
from steth.agent.errors import CouldNotRun
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.ping import PingParams, PingResult, PingTarget

_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


def ping_argv(target: str, p: PingParams) -> list[str]:
    # -c with -W: exactly `count` requests, then at most a second for the last reply. (-w would keep
    # sending past `count` until enough replies came back, overstating the requests sent to a dead target.)
    argv = ["ping", "-n", "-q", "-c", str(p.count), "-i", f"{p.interval_s:g}", "-s", str(p.size_bytes), "-W", "1"]
    if p.interface:
        argv += ["-I", p.interface]
    if p.dont_fragment:
        argv += ["-M", "do"]
    return argv + [target]


def parse_ping(target: str, stdout: str, stderr: str, returncode: int | None) -> PingTarget:
    """iputils ping -q summary to counts and RTTs; no summary means the tool itself failed."""
    counts = _COUNTS.search(stdout)
    if not counts:
        error = (stderr.strip().splitlines() or [f"ping exited {returncode}"])[-1]
        return PingTarget(target=target, error=error)
    sent, received = int(counts.group(1)), int(counts.group(2))
    row = PingTarget(target=target, sent=sent, received=received, loss=(1 - received / sent) if sent else 1.0)
    rtt = _RTT.search(stdout)
    if rtt:
        row.rtt_min_ms, row.rtt_avg_ms, row.rtt_max_ms, row.rtt_mdev_ms = (float(g) for g in rtt.groups())
    if returncode not in (0, 1) and stderr.strip():
        row.error = stderr.strip().splitlines()[-1]
    return row


async def ping_one(target: str, p: PingParams, ctx: ProbeContext) -> PingTarget:
    done = await procs.run(ping_argv(target, p), timeout=ctx.remaining(margin=0.1), netns=p.netns)
    return parse_ping(target, done.stdout, done.stderr, done.returncode)


async def run(params: PingParams, ctx: ProbeContext) -> Outcome:
    rows = await asyncio.gather(*(ping_one(t, params, ctx) for t in params.targets))
    result = PingResult(targets=list(rows))
    if all(r.error and r.sent == 0 for r in rows):
        raise CouldNotRun(rows[0].error, result)
    lossy = [r for r in rows if r.sent == 0 or r.loss > params.max_loss]
    if lossy:
        worst = max(lossy, key=lambda r: r.loss)
        message = f"loss {worst.loss:.0%} to {worst.target}" + (f" ({worst.error})" if worst.error else "")
        if len(lossy) > 1:
            message += f" and {len(lossy) - 1} more target(s) above max loss {params.max_loss:g}"
        return Outcome(Status.FAILED, message, result)
    return Outcome(Status.OK, "", result)
