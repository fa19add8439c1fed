"""iperf-server: a one-test iperf3 server as an agent job, on the first free port of PORT_RANGE."""

from __future__ import annotations

import errno
import socket

from steth.agent.errors import CouldNotRun
from steth.agent.jobs import jobs_of, wait_for_text
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.iperf_server import PORT_RANGE, IperfServerParams, IperfServerResult

LOG = "iperf3.log"
LISTENING = "Server listening on"
# What iperf3 prints when the port was taken between our check and its bind: try the next port.
PORT_TAKEN = "Address already in use"


def server_argv(address: str, port: int, lifetime_s: float) -> list[str]:
    # -1: serve one test, then exit. --idle-timeout: exit if no client comes. --forceflush: the
    # "Server listening" line reaches the log at once, which is how we know it is ready.
    return [
        "iperf3",
        "-s",
        "-1",
        "-B",
        address,
        "-p",
        str(port),
        "--idle-timeout",
        str(max(1, int(lifetime_s))),
        "--forceflush",
    ]


def port_free(address: str, port: int) -> bool:
    """Whether address:port can be bound now (iperf3 may still lose a race for it: handled by the caller)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as iperf3 binds: TIME_WAIT does not block it
        try:
            s.bind((address, port))
            return True
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise CouldNotRun(f"{address} is not an address of this node") from None
            return False


def log_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("---")]
    return (lines or ["iperf3 exited before listening"])[-1]


async def run(params: IperfServerParams, ctx: ProbeContext) -> Outcome:
    table = jobs_of(ctx)
    address = params.bind or ctx.data_plane
    if not address:
        raise CouldNotRun("no bind address given and this agent has no data-plane address")
    taken = {j.info.get("port") for j in table.of_kind("iperf-server")}
    last_error = "no free port"
    for port in range(PORT_RANGE[0], PORT_RANGE[1] + 1):
        if port in taken or not port_free(address, port):
            continue
        job = table.add(
            "iperf-server",
            params.lifetime_s,
            directory=True,
            end_on_exit=True,
            info={"port": port, "address": address},
        )
        try:
            await table.spawn(job, server_argv(address, port, params.lifetime_s), output=LOG)
            text = await wait_for_text(job.directory / LOG, (LISTENING,), job, timeout=min(3.0, ctx.remaining(0.1)))
        except BaseException:
            await table.end(job.id)
            raise
        if LISTENING in text and job.running:
            result = IperfServerResult(job_id=job.id, address=address, port=port, lifetime_s=params.lifetime_s)
            return Outcome(Status.OK, "", result)
        await table.end(job.id)
        last_error = log_error(text) if text.strip() else "iperf3 did not start listening within 3 s"
        if PORT_TAKEN not in text:
            # Cannot assign requested address, a missing binary behind `timeout`, ...: no other port helps.
            raise CouldNotRun(f"iperf3 server on {address}: {last_error}")
    raise CouldNotRun(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]} on {address}: {last_error}")
