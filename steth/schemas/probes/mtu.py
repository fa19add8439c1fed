"""mtu: the largest packet that reaches a target with don't-fragment set (path MTU), found by searching."""

from __future__ import annotations

import ipaddress
import math

from pydantic import Field

from steth.schemas.probe import Column, ProbeSpec
from steth.schemas.types import InterfaceName, IPAddress, NetnsName, Params, Result

# IP header + ICMP header: path MTU = ICMP payload + this.
OVERHEAD_BYTES = {4: 28, 6: 48}
# The smallest MTU each IP version must carry (RFC 791, RFC 8200): where the search starts.
MIN_MTU_BYTES = {4: 68, 6: 1280}
# Sizes tried at once per search round (a 9-way split instead of halving: fewer rounds of waiting).
PROBES_PER_ROUND = 8


class MtuParams(Params):
    target: IPAddress = Field(description="the address to measure the path to")
    expect_bytes: int | None = Field(None, ge=68, le=65535, description="a path MTU below this is a finding")
    max_bytes: int = Field(9000, ge=68, le=65535, description="largest MTU to try (the local link caps it too)")
    wait_s: float = Field(1.0, ge=0.1, le=5.0, description="seconds to wait for each echo reply")
    attempts: int = Field(2, ge=1, le=5, description="echo requests per size; one reply is a pass")
    interface: InterfaceName | None = Field(None, description="send from this interface")
    netns: NetnsName | None = Field(None, description="run inside this network namespace on the node")

    def version(self) -> int:
        return ipaddress.ip_address(self.target.split("%")[0]).version

    def rounds(self) -> int:
        span = max(2, self.max_bytes - MIN_MTU_BYTES[self.version()])
        return 1 + math.ceil(math.log(span, PROBES_PER_ROUND + 1))

    def expected_duration_s(self) -> float:
        # Worst case: every round waits for a lost reply.
        return self.rounds() * ((self.attempts - 1) * 0.2 + self.wait_s) + 0.5


class MtuResult(Result):
    target: str
    path_mtu_bytes: int | None = None  # largest packet (IP header included) that passed
    largest_payload_bytes: int | None = None  # its ICMP payload (what `ping -s` takes)
    reported_mtu_bytes: int | None = None  # an MTU ping was told: the local route's, or a router's "frag needed"
    expect_bytes: int | None = None
    probes: int = 0  # ping processes run
    rounds: int = 0
    error: str = ""


SPEC = ProbeSpec(
    name="mtu",
    summary="Path MTU to a target: the largest don't-fragment ICMP echo that is answered; below expect is a finding.",
    params=MtuParams,
    result=MtuResult,
    max_timeout_s=120,
    columns=(
        Column("TARGET", "target"),
        Column("PATH MTU", "path_mtu_bytes"),
        Column("PAYLOAD", "largest_payload_bytes"),
        Column("REPORTED MTU", "reported_mtu_bytes"),
        Column("EXPECT", "expect_bytes"),
        Column("PROBES", "probes"),
        Column("ERROR", "error"),
    ),
    tools=("ping -M do (iputils)",),
)
