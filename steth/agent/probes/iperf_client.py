"""iperf-client: one iperf3 -J test to a server; the JSON's end-of-test sums become the result."""

from __future__ import annotations

import json
from typing import Any

from steth.agent import procs
from steth.agent.errors import DeadlineReached
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.iperf_client import IperfClientParams, IperfClientResult


def client_argv(p: IperfClientParams) -> list[str]:
    argv = [
        "iperf3",
        "-c",
        p.server,
        "-p",
        str(p.port),
        "-J",
        "-t",
        f"{p.duration_s:g}",
        "-P",
        str(p.parallel),
        "--connect-timeout",
        "3000",
    ]
    if p.omit_s:
        argv += ["-O", f"{p.omit_s:g}"]
    if p.protocol == "udp":
        argv.append("-u")
    if p.bitrate_bps is not None:
        argv += ["-b", str(p.bitrate_bps)]
    if p.reverse:
        argv.append("-R")
    if p.bind:
        argv += ["-B", p.bind]
    return argv


def parse_iperf(text: str, p: IperfClientParams) -> IperfClientResult:
    """iperf3 -J output (TCP or UDP, either direction) to the result; `error` says why there are no numbers."""
    result = IperfClientResult(
        server=p.server, port=p.port, protocol=p.protocol, reverse=p.reverse, parallel=p.parallel
    )
    try:
        doc: dict[str, Any] = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        result.error = "iperf3 gave no JSON" + (f": {text.strip()[:200]}" if text.strip() else "")
        return result
    if doc.get("error"):
        result.error = str(doc["error"])[:300]
    end = doc.get("end") or {}
    sent, received = end.get("sum_sent") or {}, end.get("sum_received") or {}
    if not sent and not received:
        result.error = result.error or "iperf3 reported no end-of-test sums"
        return result
    result.duration_s = float(received.get("seconds") or sent.get("seconds") or 0.0)
    result.sent_bps = sent.get("bits_per_second")
    result.received_bps = received.get("bits_per_second")
    result.sent_bytes = sent.get("bytes")
    result.received_bytes = received.get("bytes")
    if p.protocol == "tcp":
        result.retransmits = sent.get("retransmits")  # sender's count; with -R the server's, as iperf3 reports it
    else:
        # UDP: the receiver's side carries jitter and loss (sum_received; 3.12 also mirrors it in `sum`).
        udp = received if "lost_packets" in received else end.get("sum") or {}
        result.jitter_ms = udp.get("jitter_ms")
        result.lost_packets = udp.get("lost_packets")
        result.packets = udp.get("packets")
        if result.packets:
            result.loss = max(0.0, min(1.0, (result.lost_packets or 0) / result.packets))
    return result


def rate(bps: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("Kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.2f} {unit}"
    return f"{bps:.0f} bit/s"


def verdict(result: IperfClientResult, p: IperfClientParams) -> tuple[Status, str]:
    if result.received_bps is None:
        return Status.FAILED, result.error or "no measurement"
    if p.min_bps is not None and result.received_bps < p.min_bps:
        return Status.FAILED, f"received {rate(result.received_bps)}, below the minimum {rate(p.min_bps)}"
    return Status.OK, result.error


async def run(params: IperfClientParams, ctx: ProbeContext) -> Outcome:
    done = await procs.run(client_argv(params), timeout=ctx.remaining(margin=0.1))
    result = parse_iperf(done.stdout, params)
    if done.timed_out:
        raise DeadlineReached(f"iperf3 did not finish before the deadline ({params.duration_s:g} s test)", result)
    status, message = verdict(result, params)
    return Outcome(status, message, result)
