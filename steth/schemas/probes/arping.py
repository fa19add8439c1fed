"""arping: ARP requests for an IPv4 address on one interface; who answers, with which MAC."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from steth.schemas.probe import Column, Command, ProbeSpec
from steth.schemas.types import InterfaceName, IPAddress, NetnsName, Params, Result


def _v4(value: str) -> str:
    if ipaddress.ip_address(value).version != 4:
        raise ValueError("ARP is IPv4 only (use ping for IPv6 neighbours)")
    return value


class ArpingParams(Params):
    target: Annotated[IPAddress, AfterValidator(_v4)] = Field(description="IPv4 address to resolve")
    interface: InterfaceName = Field(description="send the requests on this interface")
    count: int = Field(3, ge=1, le=100, description="ARP requests to send")
    netns: NetnsName | None = Field(None, description="run inside this network namespace on the node")
    interval_s: float = Field(
        1.0, ge=0.1, le=5.0, description="seconds between requests (Habets' arping; iputils' sends one a second)"
    )

    def expected_duration_s(self) -> float:
        return self.count * max(1.0, self.interval_s) + 1.0  # iputils arping sends one request a second


class ArpingResult(Result):
    target: str
    interface: str
    sent: int = 0
    received: int = 0
    macs: list[str] = Field(default_factory=list)  # distinct MACs that answered, lower-case
    rtt_avg_ms: float | None = None
    tool: str = ""  # iputils | habets: which arping the node has
    error: str = ""


SPEC = ProbeSpec(
    name="arping",
    summary="ARP-ping an IPv4 address on an interface: replies and the answering MACs; "
    "no answer, or answers from two MACs, is a finding.",
    params=ArpingParams,
    result=ArpingResult,
    max_timeout_s=120,
    columns=(
        Column("TARGET", "target"),
        Column("IFACE", "interface"),
        Column("SENT", "sent"),
        Column("RECV", "received"),
        Column("MACS", "macs"),
        Column("AVG", "rtt_avg_ms", "ms"),
        Column("ERROR", "error"),
    ),
    tools=("arping (iputils or Thomas Habets' arping)",),
    command=Command(
        argument="target",
        metavar="ADDRESS",
        help="Sends ARP requests for ADDRESS on --interface from the selected nodes: who answers, with which MAC.\n\n"
        "Works with either arping a distribution ships (iputils, or Thomas Habets'); one request a second. "
        "No reply is a finding, and so are replies from two different MACs (an address conflict): exit 1. "
        "A missing interface or namespace is `aborted` (exit 3).",
        examples=(
            "steth arping 10.0.0.1 --interface br-ex --role network",
            "steth arping 192.168.0.1 --interface qr-3b1a0c2e-4f --netns qrouter-5f1c... --count 5",
        ),
    ),
)
