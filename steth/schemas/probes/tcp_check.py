"""tcp-check: can this node open a TCP connection to HOST:PORT, and how long does the handshake take."""

from __future__ import annotations

from pydantic import Field

from steth.schemas.probe import Column, Command, ProbeSpec
from steth.schemas.types import HostPort, NetnsName, Params, Result


class TcpCheckParams(Params):
    targets: list[HostPort] = Field(min_length=1, max_length=64, description="HOST:PORT targets")
    connect_timeout_s: float = Field(3.0, ge=0.1, le=30.0, description="seconds to wait for each connection")
    netns: NetnsName | None = Field(None, description="connect from inside this network namespace on the node")

    def expected_duration_s(self) -> float:
        return self.connect_timeout_s + (1.0 if self.netns else 0.3)  # all targets at once; a helper in a netns


class TcpTarget(Result):
    target: str
    address: str = ""  # what the host resolved to (the one tried)
    connected: bool = False
    connect_ms: float | None = None
    error: str = ""  # refused, timeout after N s, no route to host, cannot resolve ...


class TcpCheckResult(Result):
    targets: list[TcpTarget]


SPEC = ProbeSpec(
    name="tcp-check",
    summary="TCP connect to each HOST:PORT: handshake time or the error; any target not connected is a finding.",
    params=TcpCheckParams,
    result=TcpCheckResult,
    max_timeout_s=60,
    rows_key="targets",
    columns=(
        Column("TARGET", "target"),
        Column("ADDRESS", "address"),
        Column("CONNECTED", "connected"),
        Column("CONNECT", "connect_ms", "ms"),
        Column("ERROR", "error"),
    ),
    tools=("python asyncio (in a namespace: nsenter --net=/run/netns/NS python -m steth.agent.tools.tcpconnect)",),
    command=Command(
        argument="targets",
        metavar="HOST:PORT",
        help="For the control plane: the message queue, the database, the Neutron and Nova APIs, the metadata "
        "service. HOST is an IPv4 address, [IPv6] or a host name (resolved on the node). The connection is "
        "closed at once, no data is sent. Errors read `refused`, `timeout after N s`, `no route to host`, "
        "`cannot resolve: ...`. Any target not connected is a finding (exit 1). With --netns the connects run "
        "inside that namespace (a small helper started with `nsenter --net`; it resolves names with the host's /etc/hosts and resolv.conf).",
        examples=(
            "steth tcp-check 10.0.0.10:5672 10.0.0.10:3306 --role compute",
            "steth tcp-check keystone.example.org:5000 --connect-timeout 1 -o json",
            "steth tcp-check 169.254.169.254:80 --netns qdhcp-8a2f... --node network-1",
        ),
    ),
)
