"""iperf-stop: end one iperf-server job. Only jobs of that kind: it can stop nothing else on the host."""

from __future__ import annotations

from steth.agent.jobs import jobs_of
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.iperf_stop import IperfStopParams, IperfStopResult


async def run(params: IperfStopParams, ctx: ProbeContext) -> Outcome:
    table = jobs_of(ctx)
    job = table.get(params.job_id, kind="iperf-server")
    if job is None:
        result = IperfStopResult(job_id=params.job_id, found=False)
        return Outcome(Status.OK, "already ended", result)
    was_running = job.running
    await table.end(job.id)
    return Outcome(Status.OK, "", IperfStopResult(job_id=job.id, found=True, was_running=was_running))
