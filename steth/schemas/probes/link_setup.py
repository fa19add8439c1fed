"""link-setup: create a steth-owned link (veth pair, macvlan or bridge) with an address, and bring it up.

Mutating: refused unless the agent's policy allows it. Everything it creates carries the interface alias
`steth:<request-id>:<expires-epoch>`; it never touches an existing interface and never removes an address
it did not add. The link lives until `link-teardown`, its ttl, or the agent stopping; a setup that does not
finish (an error, the deadline) removes whatever it had created before it replies.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from steth.schemas.probe import Column, ProbeSpec
from steth.schemas.types import InterfaceName, IPAddress, Params, Result

ALIAS_PREFIX = "steth:"  # the mark on every link steth creates


def _cidr(value: str) -> str:
    """An interface address with its prefix: 192.0.2.10/24. Not a network, broadcast or special address."""
    if "/" not in value:
        raise ValueError("expected ADDRESS/PREFIX, e.g. 192.0.2.10/24")
    iface = ipaddress.ip_interface(value)  # ValueError names the problem
    ip, net = iface.ip, iface.network
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local:
        raise ValueError(f"{ip} is a loopback, multicast, unspecified or link-local address")
    if ip.version == 4 and net.prefixlen < 31 and ip in (net.network_address, net.broadcast_address):
        raise ValueError(f"{ip} is the network or broadcast address of {net}")
    return str(iface)


Cidr = Annotated[str, Field(max_length=64), AfterValidator(_cidr)]


class LinkSetupParams(Params):
    name: InterfaceName = Field(description="the new link's name (must not exist)")
    kind: Literal["veth", "macvlan", "bridge"] = Field("veth", description="what to create")
    peer: InterfaceName | None = Field(None, description="veth: the other end's name (default: NAME + 'p')")
    parent: InterfaceName | None = Field(None, description="macvlan: the existing interface it sits on")
    cidr: Cidr | None = Field(None, description="address to add, ADDRESS/PREFIX")
    mtu: int | None = Field(None, ge=68, le=65535, description="MTU of the new link")
    ttl_s: float = Field(3600.0, ge=1.0, le=86400.0, description="remove the link after this many seconds")
    check: IPAddress | None = Field(None, description="ping this address through the new link once it is up")
    check_count: int = Field(3, ge=1, le=50, description="echo requests of the check")

    @model_validator(mode="after")
    def _shape(self) -> LinkSetupParams:
        if self.kind == "macvlan" and not self.parent:
            raise ValueError("a macvlan needs --parent")
        if self.kind != "macvlan" and self.parent:
            raise ValueError("--parent is for a macvlan only")
        if self.kind != "veth" and self.peer:
            raise ValueError("--peer is for a veth only")
        if self.kind == "veth":
            peer = self.peer or f"{self.name}p"
            if len(peer) > 15:
                raise ValueError(f"peer name {peer!r} is longer than 15 characters: give --peer")
            if peer == self.name:
                raise ValueError("a veth's two ends need different names")
            self.peer = peer
        if self.check and not self.cidr:
            raise ValueError("--check needs --cidr (the link needs an address to ping from)")
        return self

    def expected_duration_s(self) -> float:
        return 1.0 + (self.check_count * 0.2 + 1.0 if self.check else 0.0)


class LinkRow(Result):
    name: str
    kind: str = ""
    action: str  # created, removed, refused, absent, failed
    alias: str = ""
    addresses: list[str] = Field(default_factory=list)
    up: bool | None = None
    error: str = ""


class LinkResult(Result):
    links: list[LinkRow] = Field(default_factory=list)
    expires_at: float | None = None  # when the agent removes what it created (seconds since the epoch)
    check_target: str | None = None
    check_sent: int | None = None
    check_received: int | None = None
    check_loss: float | None = None


LINK_COLUMNS = (
    Column("LINK", "name"),
    Column("KIND", "kind"),
    Column("ACTION", "action"),
    Column("ADDRESSES", "addresses"),
    Column("UP", "up"),
    Column("ALIAS", "alias"),
    Column("ERROR", "error"),
)

SPEC = ProbeSpec(
    name="link-setup",
    summary="Create a steth-marked veth, macvlan or bridge with an address, up, for ttl_s; optional ping check.",
    params=LinkSetupParams,
    result=LinkResult,
    max_timeout_s=60,
    mutating=True,
    rows_key="links",
    columns=LINK_COLUMNS,
    tools=("ip (iproute2)", "ping (iputils)"),
)
