"""iperf-client: run an iperf3 test from this node to a server, JSON output; below min_bps is a finding."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from steth.schemas.probe import TRAFFIC, Column, ProbeSpec
from steth.schemas.types import IPAddress, Params, Result


class IperfClientParams(Params):
    server: IPAddress = Field(description="the iperf3 server's address")
    port: int = Field(5201, ge=1024, le=65535, description="the iperf3 server's port")
    protocol: Literal["tcp", "udp"] = Field(
        "tcp", description="TCP, or UDP (set --bitrate: iperf3's UDP default is 1 Mbit/s)"
    )
    duration_s: float = Field(5.0, ge=1.0, le=300.0, description="seconds to send")
    omit_s: float = Field(0.0, ge=0.0, le=10.0, description="leave out the first seconds (TCP slow start)")
    parallel: int = Field(1, ge=1, le=16, description="parallel streams")
    bitrate_bps: int | None = Field(
        None, ge=1000, le=400_000_000_000, description="target bits/s per stream (UDP: default 1M)"
    )
    reverse: bool = Field(False, description="the server sends, the client receives")
    bind: IPAddress | None = Field(None, description="send from this local address")
    min_bps: float | None = Field(
        None, ge=0, le=400_000_000_000, description="received bits/s below which the test is a finding"
    )

    def expected_duration_s(self) -> float:
        return self.duration_s + self.omit_s + 2.0  # connect, and the end-of-test exchange


class IperfClientResult(Result):
    server: str
    port: int
    protocol: str
    reverse: bool = False
    parallel: int = 1
    duration_s: float = 0.0  # measured seconds (without the omitted ones)
    sent_bps: float | None = None
    received_bps: float | None = None
    sent_bytes: int | None = None
    received_bytes: int | None = None
    retransmits: int | None = None  # TCP, sender side
    jitter_ms: float | None = None  # UDP, receiver side
    lost_packets: int | None = None  # UDP
    packets: int | None = None  # UDP
    loss: float | None = None  # UDP, ratio 0..1
    error: str = ""


SPEC = ProbeSpec(
    name="iperf-client",
    effects=(TRAFFIC,),
    summary="Run iperf3 -J against a server: bits/s sent and received, retransmits, UDP jitter and loss.",
    params=IperfClientParams,
    result=IperfClientResult,
    max_timeout_s=330,
    columns=(
        Column("SERVER", "server"),
        Column("PROTO", "protocol"),
        Column("SENT", "sent_bps", "bps"),
        Column("RECEIVED", "received_bps", "bps"),
        Column("RETR", "retransmits"),
        Column("JITTER", "jitter_ms", "ms"),
        Column("LOSS", "loss", "ratio"),
        Column("ERROR", "error"),
    ),
    tools=("iperf3 -c -J (3.x)",),
)
