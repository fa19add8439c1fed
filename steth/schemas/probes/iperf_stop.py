"""iperf-stop: end an iperf3 server job started by `iperf-server` (it may have exited already)."""

from __future__ import annotations

from pydantic import Field

from steth.schemas.probe import Column, ProbeSpec
from steth.schemas.types import Params, Result

JOB_ID_PATTERN = r"^[0-9a-f]{16}$"


class IperfStopParams(Params):
    job_id: str = Field(pattern=JOB_ID_PATTERN, description="the job id iperf-server returned")


class IperfStopResult(Result):
    job_id: str
    found: bool  # False: it had already ended (served its test, reached its lifetime)
    was_running: bool = False


SPEC = ProbeSpec(
    name="iperf-stop",
    summary="Stop an iperf3 server job started by iperf-server; stopping one that already ended is fine.",
    params=IperfStopParams,
    result=IperfStopResult,
    max_timeout_s=15,
    columns=(Column("JOB", "job_id"), Column("FOUND", "found"), Column("WAS RUNNING", "was_running")),
    tools=(),
)
