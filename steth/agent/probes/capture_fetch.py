"""capture-fetch: read a chunk of a kept pcap; release removes the job (file and folder) at once."""

from __future__ import annotations

import base64

from steth.agent.errors import CouldNotRun
from steth.agent.jobs import jobs_of
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.probes.capture import PCAP
from steth.schemas.envelope import Status
from steth.schemas.probes.capture_fetch import CaptureFetchParams, CaptureFetchResult


async def run(params: CaptureFetchParams, ctx: ProbeContext) -> Outcome:
    table = jobs_of(ctx)
    job = table.get(params.capture_id, kind="capture")
    if job is None or not job.info.get("complete"):
        raise CouldNotRun(f"no kept capture {params.capture_id} here (released, expired, or never kept)")
    size = job.info["size"]
    with open(job.directory / PCAP, "rb") as f:
        f.seek(min(params.offset_bytes, size))
        data = f.read(params.length_bytes)
    eof = params.offset_bytes + len(data) >= size
    if params.release:
        await table.end(job.id)
    result = CaptureFetchResult(
        capture_id=job.id,
        offset_bytes=params.offset_bytes,
        length_bytes=len(data),
        size_bytes=size,
        sha256=job.info["sha256"],
        eof=eof,
        released=params.release,
        data_b64=base64.b64encode(data).decode(),
    )
    return Outcome(Status.OK, "", result)
