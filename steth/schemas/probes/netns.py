"""netns: the network namespaces on a node, classified the way Neutron names them, with their addresses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from steth.schemas.probe import Column, Command, ProbeSpec
from steth.schemas.types import NetnsName, Params, Result

# Neutron's (and OVN's) namespace prefixes; anything else is "other".
NETNS_KINDS = ("qdhcp", "qrouter", "snat", "fip", "ovnmeta")
NetnsKind = Literal["qdhcp", "qrouter", "snat", "fip", "ovnmeta", "other"]


def classify(name: str) -> tuple[str, str]:
    """(kind, the id after the prefix): qdhcp-<network id>, qrouter-/snat- <router id>, fip-<ext net id>."""
    prefix, sep, rest = name.partition("-")
    if sep and prefix in NETNS_KINDS and rest:
        return prefix, rest
    return "other", ""


class NetnsParams(Params):
    prefix: NetnsName | None = Field(None, description="only namespaces whose name starts with this")
    kind: NetnsKind | None = Field(None, description="only namespaces of this kind")
    max_namespaces: int = Field(500, ge=1, le=5000, description="list at most this many namespaces")

    def expected_duration_s(self) -> float:
        return 1.0 + self.max_namespaces * 0.004  # one `ip -n NS addr` each, several at once


class NetnsInterface(Result):
    name: str
    oper_state: str = "unknown"
    addresses: list[str] = Field(default_factory=list)


class NetnsEntry(Result):
    name: str
    kind: str = "other"
    neutron_id: str = ""  # the network or router id in the name, for joins with the Neutron API
    nsid: int | None = None
    interface_names: list[str] = Field(default_factory=list)  # without lo
    addresses: list[str] = Field(default_factory=list)  # "iface:addr/len", without loopback and link-local
    interfaces: list[NetnsInterface] = Field(default_factory=list)
    error: str = ""


class NetnsResult(Result):
    namespaces: list[NetnsEntry]
    total: int = 0  # namespaces matching the filters, before max_namespaces


SPEC = ProbeSpec(
    name="netns",
    summary="Network namespaces (qdhcp-, qrouter-, snat-, fip-, ovnmeta-, other) with interfaces and addresses.",
    params=NetnsParams,
    result=NetnsResult,
    max_timeout_s=60,
    rows_key="namespaces",
    columns=(
        Column("NETNS", "name"),
        Column("KIND", "kind"),
        Column("INTERFACES", "interface_names"),
        Column("ADDRESSES", "addresses"),
        Column("ERROR", "error"),
    ),
    tools=("ip -j netns list", "ip -n NS -j addr show (iproute2)"),
    command=Command(
        help="KIND follows Neutron's naming: qdhcp-<network id> (DHCP agent), qrouter-<router id> (L3 agent), "
        "snat-<router id> (DVR SNAT), fip-<external network id> (DVR floating IPs), ovnmeta-<network id> "
        "(OVN metadata); anything else is `other`. JSON adds the id after the prefix (neutron_id) and every "
        "interface with its state. Use the names with --netns on ping, tcp-check, arping, mtu and interface.",
        examples=(
            "steth netns --role network",
            "steth netns --kind qrouter -o json",
            "steth netns --prefix qdhcp-8a2f --node network-1",
        ),
    ),
)
