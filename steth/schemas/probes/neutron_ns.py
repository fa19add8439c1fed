"""neutron-ns: a Neutron namespace (qdhcp-, qrouter-) on this node, as the agents should have made it.

Checks, each optional: the namespace exists; addresses are on its interfaces (a router's gateway, a DHCP
port's address); a dnsmasq runs in it and its --dhcp-hostsfile holds each MAC,address pair; ARP from the
namespace reaches each target (the port's address); a don't-fragment ping of `ping_size_bytes` (the network
MTU) reaches each target, so a lowered MTU on the way shows as a finding even when small frames pass.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from steth.schemas.checks import CHECK_COLUMNS, CheckRow
from steth.schemas.neutron_types import MacAddress
from steth.schemas.probe import ProbeSpec
from steth.schemas.types import IPAddress, NetnsName, Params, Result


def _v4(value: str) -> str:
    if ipaddress.ip_address(value).version != 4:
        raise ValueError("ARP is IPv4 only")
    return value


class HostEntry(Params):
    mac: MacAddress
    ip: IPAddress


class NeutronNsParams(Params):
    netns: NetnsName = Field(description="the namespace, e.g. qdhcp-<network id> or qrouter-<router id>")
    expect_addresses: list[IPAddress] = Field(
        default_factory=list, max_length=16, description="addresses that must be on its interfaces"
    )
    dnsmasq: bool = Field(False, description="a dnsmasq must run in the namespace")
    host_entries: list[HostEntry] = Field(
        default_factory=list, max_length=64, description="MAC,address pairs dnsmasq's host file must hold"
    )
    arping: list[Annotated[IPAddress, AfterValidator(_v4)]] = Field(
        default_factory=list, max_length=8, description="addresses ARP must reach from the namespace"
    )
    ping_size_bytes: int | None = Field(
        None,
        ge=68,
        le=9216,
        description="don't-fragment ping of this packet size (IP header included) to each arping target",
    )
    count: int = Field(2, ge=1, le=10, description="ARP requests and pings per target")

    def expected_duration_s(self) -> float:
        return (
            1.0 + (self.count + 1.0 if self.arping else 0.0) + (self.count * 0.2 + 1.0 if self.ping_size_bytes else 0.0)
        )


class NsInterface(Result):
    name: str
    up: bool = False
    mtu: int | None = None
    addresses: list[str] = []


class NeutronNsResult(Result):
    netns: str
    exists: bool = False
    interfaces: list[NsInterface] = []
    dnsmasq_pid: int | None = None
    hostsfile: str | None = None
    checks: list[CheckRow] = []


SPEC = ProbeSpec(
    name="neutron-ns",
    summary="A qdhcp-/qrouter- namespace: exists, holds its addresses, dnsmasq runs with the port's host entry, "
    "ARP and a full-MTU don't-fragment ping reach the port.",
    params=NeutronNsParams,
    result=NeutronNsResult,
    max_timeout_s=60,
    rows_key="checks",
    columns=CHECK_COLUMNS,
    tools=("ip (iproute2)", "arping", "ping (iputils)"),
)
