"""capture: tcpdump on one interface, bounded by count, duration and bytes; one-line summaries per packet.

With write=True the pcap stays on the node as an agent job (for keep_s seconds) and the controller moves it
in chunks with `capture-fetch`; otherwise it is removed before the reply.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from steth.schemas.probe import CAPTURE, Column, ProbeSpec
from steth.schemas.types import InterfaceName, NetnsName, Params, Result

MAX_FILTER_CHARS = 512
# What a BPF expression needs (`tcp[13] & 2 != 0`, `host 10.0.0.1 and (port 67 or port 68)`, `ip6`, `vlan 100`),
# and nothing a shell would act on: no ; $ ` ' " \ { } # ~ or control characters. tcpdump gets the filter as one
# argument after `--`, and a leading '-' is refused as well, so it can never become an option.
_FILTER_RE = re.compile(r"^[A-Za-z0-9_ .:/!=<>&|()\[\]+*%^-]+$")


def _bpf(value: str) -> str:
    text = " ".join(value.split())
    if not text:
        raise ValueError("the filter is empty")
    if len(text) > MAX_FILTER_CHARS:
        raise ValueError(f"the filter is longer than {MAX_FILTER_CHARS} characters")
    if text.startswith("-"):
        raise ValueError("the filter may not start with '-'")
    if not _FILTER_RE.match(text):
        bad = sorted({c for c in text if not _FILTER_RE.match(c)})
        raise ValueError(
            f"the filter may not contain {' '.join(repr(c) for c in bad)}: only letters, digits, spaces and "
            ". : / ! = < > & | ( ) [ ] + * % ^ -"
        )
    return text


BpfFilter = Annotated[str, Field(max_length=4 * MAX_FILTER_CHARS), AfterValidator(_bpf)]


class CaptureParams(Params):
    interface: InterfaceName = Field(description="capture on this interface ('any': all of them)")
    filter: BpfFilter | None = Field(None, description="BPF filter expression, e.g. 'icmp or arp'")
    count: int = Field(100, ge=1, le=100_000, description="stop after this many packets")
    duration_s: float = Field(10.0, ge=0.1, le=300.0, description="stop after this many seconds")
    snaplen_bytes: int = Field(65535, ge=64, le=65535, description="bytes kept of each packet")
    max_pcap_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="stop when the pcap reaches this size"
    )
    lines: int = Field(200, ge=0, le=2000, description="one-line packet summaries returned (the pcap keeps all)")
    write: bool = Field(False, description="keep the pcap on the node for capture-fetch")
    keep_s: float = Field(300.0, ge=10.0, le=3600.0, description="how long a kept pcap waits to be fetched")
    netns: NetnsName | None = Field(None, description="capture inside this network namespace on the node")

    def expected_duration_s(self) -> float:
        return self.duration_s + 1.5  # tcpdump start, its last write, summaries from the file


class PacketLine(Result):
    time: float  # seconds since the epoch
    summary: str


class CaptureResult(Result):
    interface: str
    packets: int = 0  # packets in the pcap (what the summaries and the file hold)
    captured: int | None = None  # tcpdump's own counters
    received_by_filter: int | None = None
    dropped_by_kernel: int | None = None
    stopped_by: str = ""  # count, duration, bytes, deadline
    duration_s: float = 0.0
    pcap_bytes: int = 0
    sha256: str = ""
    capture_id: str | None = None  # set when the pcap is kept for capture-fetch
    keep_s: float | None = None
    lines: list[PacketLine] = Field(default_factory=list)
    lines_truncated: bool = False


SPEC = ProbeSpec(
    name="capture",
    effects=(CAPTURE,),
    summary="tcpdump bounded by count, duration and bytes: packet count and one-line summaries; pcap kept on request.",
    params=CaptureParams,
    result=CaptureResult,
    max_timeout_s=330,
    rows_key="lines",
    columns=(Column("TIME", "time"), Column("PACKET", "summary")),
    tools=("tcpdump (4.9+)", "timeout (coreutils)"),
)
