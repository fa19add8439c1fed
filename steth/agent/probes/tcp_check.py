"""tcp-check: asyncio connects from the agent itself, or from a helper process inside a namespace."""

from __future__ import annotations

import json
import sys

from steth.agent import procs
from steth.agent.errors import HelperFailed, NotAllowed
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.tools import tcpconnect
from steth.schemas.envelope import Status
from steth.schemas.probes.tcp_check import TcpCheckParams, TcpCheckResult, TcpTarget


def helper_argv(params: TcpCheckParams, allowed: list | None = None) -> list[str]:
    argv = [sys.executable, "-m", "steth.agent.tools.tcpconnect", "--timeout", f"{params.connect_timeout_s:g}"]
    if allowed is not None:
        argv += ["--allow", ",".join(str(n) for n in allowed)]  # "" (an empty list) allows nothing
    return [*argv, "--", *params.targets]


async def in_namespace(params: TcpCheckParams, ctx: ProbeContext, allowed: list | None) -> list[dict]:
    done = await procs.run(helper_argv(params, allowed), timeout=ctx.remaining(0.1), netns=params.netns)
    if done.returncode != 0:
        # nsenter failed (no such namespace) or the helper did: the probe could not run.
        raise HelperFailed((done.stderr.strip().splitlines() or [f"helper exited {done.returncode}"])[-1])
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        raise HelperFailed("the tcpconnect helper printed no JSON") from None


async def run(params: TcpCheckParams, ctx: ProbeContext) -> Outcome:
    allowed = ctx.extra["policy"].networks if "policy" in ctx.extra else None  # checked once resolved
    if params.netns:
        raw = await in_namespace(params, ctx, allowed)
    else:
        raw = await tcpconnect.check_all(params.targets, params.connect_timeout_s, allowed)
    rows = [TcpTarget.model_validate(r) for r in raw]
    refused = next((r for r in rows if r.error.startswith(tcpconnect.REFUSED)), None)
    if refused:  # a host name resolved outside the policy: nothing was connected to it
        raise NotAllowed(f"{refused.error} (targets: {refused.target})")
    result = TcpCheckResult(targets=rows)
    down = [r for r in rows if not r.connected]
    if down:
        message = f"{down[0].target}: {down[0].error}"
        if len(down) > 1:
            message += f" and {len(down) - 1} more target(s) not connected"
        return Outcome(Status.FAILED, message, result)
    return Outcome(Status.OK, "", result)
