"""iperf-server: start a one-shot iperf3 server on this node, bound to one address; answers with its port.

The first half of the `steth bandwidth` recipe. The server is an agent-owned background job: it serves one
test (`iperf3 -s -1`) and is killed at its lifetime, by `iperf-stop`, or when the agent stops.
"""

from __future__ import annotations

from pydantic import Field

from steth.schemas.probe import TRAFFIC, Column, ProbeSpec
from steth.schemas.types import IPAddress, Params, Result

# Ports the agent may listen on; it picks the first free one.
PORT_RANGE = (5201, 5299)


class IperfServerParams(Params):
    bind: IPAddress | None = Field(None, description="listen on this local address (default: the agent's data plane)")
    lifetime_s: float = Field(30.0, ge=1.0, le=660.0, description="kill the server after this many seconds")

    def expected_duration_s(self) -> float:
        return 2.0  # starting iperf3 and seeing it listen


class IperfServerResult(Result):
    job_id: str
    address: str
    port: int
    lifetime_s: float


SPEC = ProbeSpec(
    name="iperf-server",
    effects=(TRAFFIC,),
    summary="Start a one-test iperf3 server bound to an address, as an agent job with a lifetime; returns its port.",
    params=IperfServerParams,
    result=IperfServerResult,
    max_timeout_s=15,
    columns=(
        Column("JOB", "job_id"),
        Column("ADDRESS", "address"),
        Column("PORT", "port"),
        Column("LIFETIME", "lifetime_s", "s"),
    ),
    tools=("iperf3 -s -1 (3.x)", "timeout (coreutils)"),
)
