"""capture: tcpdump -w into an agent job's folder, stopped by count, duration, size or the deadline.

The pcap is the one source of truth: the packet count and the one-line summaries are read back from it
(`tcpdump -r`), so what the reply says and what `-w` writes are the same packets.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from steth.agent import procs
from steth.agent.errors import CouldNotRun, Invalid, NoSuchDevice, ProbeError
from steth.agent.jobs import Job, JobTable, jobs_of, wait_for_text
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.capture import CaptureParams, CaptureResult, PacketLine

PCAP = "capture.pcap"
LOG = "tcpdump.log"
LISTENING = "listening on"
MAX_LINE_CHARS = 300
# Time kept back from the request's deadline for stopping tcpdump and reading the summaries.
FINISH_RESERVE_S = 0.6

_STATS = {
    "captured": re.compile(r"^(\d+) packets? captured", re.M),
    "received_by_filter": re.compile(r"^(\d+) packets? received by filter", re.M),
    "dropped_by_kernel": re.compile(r"^(\d+) packets? dropped by kernel", re.M),
}
_LINE = re.compile(r"^(\d+\.\d+) (.*)$")
# pcap magic numbers (microsecond and nanosecond timestamps), as read little- and big-endian
_MAGIC = {0xA1B2C3D4: "<", 0xA1B23C4D: "<", 0xD4C3B2A1: ">", 0x4D3CB2A1: ">"}


def tcpdump_argv(p: CaptureParams, path: Path) -> list[str]:
    # -U with --immediate-mode: each packet reaches the file at once, so stopping loses nothing. -Z root: stay
    # root to write into the job's root-only folder. The filter is ONE argument after `--`: never an option.
    argv = [
        "tcpdump",
        "-i",
        p.interface,
        "-n",
        "-U",
        "--immediate-mode",
        "-Z",
        "root",
        "-s",
        str(p.snaplen_bytes),
        "-c",
        str(p.count),
        "-w",
        str(path),
    ]
    if p.filter:
        argv += ["--", p.filter]
    return argv


def parse_stats(text: str) -> dict[str, int | None]:
    """tcpdump's closing counters (on stderr) as numbers; None for a line it did not print."""
    out: dict[str, int | None] = {}
    for key, pattern in _STATS.items():
        m = pattern.search(text)
        out[key] = int(m.group(1)) if m else None
    return out


def start_error(text: str, p: CaptureParams) -> ProbeError:
    """Why tcpdump exited before listening: a bad filter is `invalid`, the rest `aborted`."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = next((ln for ln in lines if ln.startswith("tcpdump:")), lines[-1] if lines else "tcpdump exited at once")
    if "can't parse filter" in text or "syntax error" in text:
        return Invalid(f"bad filter {p.filter!r}: {last}")
    if "No such device" in text or "doesn't exist" in text:
        return NoSuchDevice(f"no interface {p.interface} here ({last})")
    return CouldNotRun(last)


@dataclass
class PcapWalk:
    packets: int
    valid_bytes: int  # the header plus every whole record that fits in the limit
    complete: bool  # False: the file ended inside a record, or the limit cut it


def walk_pcap(data: bytes, limit: int | None = None) -> PcapWalk:
    """Count the whole records of a pcap (classic format), stopping at `limit` bytes."""
    if len(data) < 24:
        return PcapWalk(0, 0, False)
    order = _MAGIC.get(struct.unpack("<I", data[:4])[0])
    if order is None:
        raise ValueError("not a pcap file (unknown magic number)")
    limit = len(data) if limit is None else min(limit, len(data))
    offset, packets = 24, 0
    while offset + 16 <= len(data):
        incl_len = struct.unpack(order + "I", data[offset + 8 : offset + 12])[0]
        end = offset + 16 + incl_len
        if end > len(data) or end > limit:
            return PcapWalk(packets, offset, False)
        offset, packets = end, packets + 1
    return PcapWalk(packets, offset, offset == len(data))


def finish_pcap(path: Path, max_pcap_bytes: int) -> tuple[int, int, str]:
    """Cut the pcap to whole records within max_pcap_bytes; (packets, bytes, sha256)."""
    data = path.read_bytes() if path.exists() else b""
    walk = walk_pcap(data, max_pcap_bytes)
    if walk.valid_bytes < len(data):
        data = data[: walk.valid_bytes]
        path.write_bytes(data)
    return walk.packets, len(data), hashlib.sha256(data).hexdigest()


def parse_summaries(text: str, limit: int) -> list[PacketLine]:
    """`tcpdump -r -n -tt` output: one line per packet, epoch time first."""
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            out.append(PacketLine(time=float(m.group(1)), summary=m.group(2)[:MAX_LINE_CHARS]))
            if len(out) >= limit:
                break
    return out


async def _watch(table: JobTable, job: Job, p: CaptureParams, ctx: ProbeContext, pcap: Path) -> str:
    """Wait for whichever ends the capture first; stop tcpdump (SIGINT: it closes the file) and say why."""
    started = time.monotonic()
    reason = "count"
    while job.running:
        if time.monotonic() - started >= p.duration_s:
            reason = "duration"
        elif pcap.exists() and pcap.stat().st_size >= p.max_pcap_bytes:
            reason = "bytes"
        elif ctx.remaining() <= FINISH_RESERVE_S:
            reason = "deadline"
        else:
            await asyncio.sleep(0.02)
            continue
        await table.signal(job, signal.SIGINT)
        break
    try:
        await asyncio.wait_for(job.proc.wait(), timeout=1.0)
    except TimeoutError:
        await procs.kill_group(job.proc)
    if reason == "count" and job.proc.returncode not in (0, None):
        reason = "deadline"  # `timeout` killed it at the job's lifetime
    return reason


async def _summaries(pcap: Path, p: CaptureParams, ctx: ProbeContext) -> list[PacketLine]:
    if p.lines == 0 or not pcap.exists():
        return []
    done = await procs.run(["tcpdump", "-r", str(pcap), "-n", "-tt", "-c", str(p.lines)], timeout=ctx.remaining(0.05))
    return parse_summaries(done.stdout, p.lines)


async def run(params: CaptureParams, ctx: ProbeContext) -> Outcome:
    table = jobs_of(ctx)
    # Lives a little past the request (the probe ends it itself); `timeout` bounds tcpdump by the same.
    job = table.add("capture", ctx.remaining() + 2.0, directory=True, info={"interface": params.interface})
    kept = False
    try:
        pcap, log = job.directory / PCAP, job.directory / LOG
        await table.spawn(job, tcpdump_argv(params, pcap), netns=params.netns, output=LOG)
        text = await wait_for_text(log, (LISTENING,), job, timeout=min(5.0, ctx.remaining(FINISH_RESERVE_S)))
        if LISTENING not in text:
            if job.running:
                raise CouldNotRun(f"tcpdump did not start listening on {params.interface}")
            raise start_error(text, params)
        began = time.time()
        stopped_by = await _watch(table, job, params, ctx, pcap)
        duration = time.time() - began
        packets, size, digest = finish_pcap(pcap, params.max_pcap_bytes)
        lines = await _summaries(pcap, params, ctx)
        result = CaptureResult(
            interface=params.interface,
            packets=packets,
            stopped_by=stopped_by,
            duration_s=round(duration, 3),
            pcap_bytes=size,
            sha256=digest,
            lines=lines,
            lines_truncated=packets > len(lines),
            **parse_stats(log.read_text(errors="replace")),
        )
        if params.write:
            job.deadline = time.time() + params.keep_s
            job.info.update(complete=True, size=size, sha256=digest)
            result.capture_id, result.keep_s = job.id, params.keep_s
            kept = True
        return Outcome(Status.OK, "", result)
    finally:
        if not kept:
            await table.end(job.id)
