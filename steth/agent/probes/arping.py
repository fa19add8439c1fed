"""arping: distributions ship one of two different tools named arping, with different options and output.

iputils arping (RHEL, CentOS, Ubuntu's iputils-arping): `-I IFACE`, `-w DEADLINE`, "Unicast reply from ...".
Thomas Habets' arping (Debian's `arping` package): `-i IFACE`, "42 bytes from MAC (IP): index=0 time=...".
`-i` means "interval" to one and "interface" to the other, so the variant is found out before anything runs.
"""

from __future__ import annotations

import re

from steth.agent import procs
from steth.agent.errors import CouldNotRun, Unsupported
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.envelope import Status
from steth.schemas.probes.arping import ArpingParams, ArpingResult

_variant: str | None = None  # cached for the agent's life: the tool does not change under it

_IPUTILS_REPLY = re.compile(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]\s+([\d.]+)(ms|usec)")
_IPUTILS_SENT = re.compile(r"Sent (\d+) probes?")
_IPUTILS_RECV = re.compile(r"Received (\d+) response")
_HABETS_REPLY = re.compile(r"bytes from ([0-9a-fA-F:]{17}) \([^)]*\): index=\d+ time=([\d.]+) (usec|msec|sec)")
_HABETS_STATS = re.compile(r"(\d+) packets transmitted, (\d+) packets received")
_TO_MS = {"ms": 1.0, "msec": 1.0, "usec": 0.001, "sec": 1000.0}


def detect_variant(version_text: str) -> str | None:
    """From `arping -V` (stdout and stderr): iputils prints its name; Habets' arping prints his."""
    if "iputils" in version_text:
        return "iputils"
    if "Habets" in version_text:
        return "habets"
    return None


async def variant(ctx: ProbeContext) -> str:
    global _variant
    if _variant is None:
        done = await procs.run(["arping", "-V"], timeout=min(3.0, ctx.remaining(0.1)))
        found = detect_variant(done.stdout + done.stderr)
        if found is None:
            raise Unsupported("arping is neither iputils' nor Habets' arping: cannot tell its options")
        _variant = found
    return _variant


def arping_argv(kind: str, p: ArpingParams) -> list[str]:
    # iputils sends one request a second, Habets' one per --interval; the deadline leaves a second for the last reply.
    if kind == "iputils":
        return ["arping", "-c", str(p.count), "-w", str(p.count + 1), "-I", p.interface, p.target]
    wait = f"{p.interval_s:g}"
    return ["arping", "-c", str(p.count), "-W", wait, "-w", str(p.count + 1), "-i", p.interface, p.target]


def parse_arping(kind: str, p: ArpingParams, stdout: str, stderr: str, returncode: int | None) -> ArpingResult:
    row = ArpingResult(target=p.target, interface=p.interface, tool=kind)
    reply_re = _IPUTILS_REPLY if kind == "iputils" else _HABETS_REPLY
    replies = reply_re.findall(stdout)
    macs: list[str] = []
    for mac, _, _ in replies:
        if mac.lower() not in macs:
            macs.append(mac.lower())
    row.macs = macs
    rtts = [float(value) * _TO_MS[unit] for _, value, unit in replies]
    row.rtt_avg_ms = round(sum(rtts) / len(rtts), 3) if rtts else None
    if kind == "iputils":
        sent, recv = _IPUTILS_SENT.search(stdout), _IPUTILS_RECV.search(stdout)
        row.sent, row.received = (int(sent.group(1)) if sent else 0), (int(recv.group(1)) if recv else len(replies))
        summary = sent
    else:
        stats = _HABETS_STATS.search(stdout)
        row.sent, row.received = (int(stats.group(1)), int(stats.group(2))) if stats else (0, len(replies))
        summary = stats
    if not summary:  # the tool failed before sending: no device, no permission, killed at the deadline
        row.error = (stderr.strip().splitlines() or [f"arping exited {returncode}"])[-1]
    return row


async def run(params: ArpingParams, ctx: ProbeContext) -> Outcome:
    kind = await variant(ctx)
    done = await procs.run(arping_argv(kind, params), timeout=ctx.remaining(0.1), netns=params.netns)
    row = parse_arping(kind, params, done.stdout, done.stderr, done.returncode)
    if row.error and row.sent == 0:
        raise CouldNotRun(row.error, row)
    if len(row.macs) > 1:
        message = f"{params.target} answered from {len(row.macs)} MACs: {', '.join(row.macs)}"
        return Outcome(Status.FAILED, message, row)
    if row.received == 0:
        return Outcome(Status.FAILED, f"no ARP reply from {params.target} on {params.interface}", row)
    return Outcome(Status.OK, "", row)
