"""ping: ICMP echo from the node to one or more targets, all probed concurrently."""

from __future__ import annotations

from pydantic import Field, model_validator

from steth.schemas.probe import Column, ProbeSpec
from steth.schemas.types import InterfaceName, IPAddress, NetnsName, Params, Result

MAX_RUN_S = 480


class PingParams(Params):
    targets: list[IPAddress] = Field(min_length=1, max_length=256, description="addresses to ping")
    count: int = Field(3, ge=1, le=1000, description="echo requests per target")
    interval_s: float = Field(0.2, ge=0.01, le=10.0, description="seconds between echo requests")
    size_bytes: int = Field(56, ge=0, le=65507, description="ICMP payload size in bytes")
    interface: InterfaceName | None = Field(None, description="send from this interface")
    dont_fragment: bool = Field(False, description="set don't-fragment (path MTU discovery off)")
    max_loss: float = Field(0.0, ge=0.0, le=1.0, description="loss ratio above which the node is failed")
    netns: NetnsName | None = Field(None, description="run inside this network namespace on the node")

    @model_validator(mode="after")
    def _fits_the_longest_deadline(self) -> PingParams:
        # SPEC.max_timeout_s (600 s) must cover count x interval with the deadline's margin.
        if self.count * self.interval_s > MAX_RUN_S:
            raise ValueError(f"count x interval is {self.count * self.interval_s:g} s; at most {MAX_RUN_S} s per run")
        return self

    def expected_duration_s(self) -> float:
        return self.count * self.interval_s + 1.0


class PingTarget(Result):
    target: str
    sent: int = 0
    received: int = 0
    loss: float = 1.0  # ratio 0..1
    rtt_min_ms: float | None = None
    rtt_avg_ms: float | None = None
    rtt_max_ms: float | None = None
    rtt_mdev_ms: float | None = None
    error: str = ""


class PingResult(Result):
    targets: list[PingTarget]


SPEC = ProbeSpec(
    name="ping",
    summary="ICMP echo to each target: sent, received, loss and RTT; loss above max_loss is a finding.",
    params=PingParams,
    result=PingResult,
    max_timeout_s=600,
    rows_key="targets",
    columns=(
        Column("TARGET", "target"),
        Column("SENT", "sent"),
        Column("RECV", "received"),
        Column("LOSS", "loss", "ratio"),
        Column("MIN", "rtt_min_ms", "ms"),
        Column("AVG", "rtt_avg_ms", "ms"),
        Column("MAX", "rtt_max_ms", "ms"),
        Column("MDEV", "rtt_mdev_ms", "ms"),
        Column("ERROR", "error"),
    ),
    tools=("ping (iputils)",),
)
