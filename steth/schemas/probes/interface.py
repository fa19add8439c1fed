"""interface: the node's links as the kernel sees them (state, carrier, MTU, MAC, addresses, counters)."""

from __future__ import annotations

from pydantic import Field

from steth.schemas.probe import Column, Command, ProbeSpec
from steth.schemas.types import InterfaceName, NetnsName, Params, Result


class InterfaceParams(Params):
    interface: InterfaceName | None = Field(None, description="only this interface (default: every interface)")
    netns: NetnsName | None = Field(None, description="look inside this network namespace on the node")


class InterfaceInfo(Result):
    name: str
    index: int | None = None
    kind: str = ""  # veth, bridge, vlan, vxlan, tun, openvswitch, ... ("" for a plain device)
    link_type: str = ""  # ether, loopback, none, ...
    admin_state: str = "down"  # up | down (the IFF_UP flag)
    oper_state: str = "unknown"  # RFC 2863 operstate, lower-case: up, down, lowerlayerdown, unknown, ...
    carrier: bool = False  # LOWER_UP
    mtu_bytes: int | None = None
    mac: str = ""
    ipv4: list[str] = Field(default_factory=list)  # "10.0.0.5/24"
    ipv6: list[str] = Field(default_factory=list)
    master: str = ""  # bridge or bond this link is enslaved to
    parent: str = ""  # the lower link (VLAN's parent, macvlan's lower device), when in the same namespace
    vlan_id: int | None = None
    vlan_protocol: str = ""  # 802.1Q or 802.1ad
    rx_packets: int | None = None
    rx_bytes: int | None = None
    rx_errors: int | None = None
    rx_dropped: int | None = None
    tx_packets: int | None = None
    tx_bytes: int | None = None
    tx_errors: int | None = None
    tx_dropped: int | None = None


class InterfaceResult(Result):
    netns: str = ""
    interfaces: list[InterfaceInfo]


SPEC = ProbeSpec(
    name="interface",
    summary="Links with admin/oper state, carrier, MTU, MAC, addresses, master, VLAN and counters; "
    "a named interface that is admin up without carrier is a finding.",
    params=InterfaceParams,
    result=InterfaceResult,
    max_timeout_s=30,
    rows_key="interfaces",
    columns=(
        Column("IFACE", "name"),
        Column("KIND", "kind"),
        Column("ADMIN", "admin_state"),
        Column("OPER", "oper_state"),
        Column("CARRIER", "carrier"),
        Column("MTU", "mtu_bytes"),
        Column("MAC", "mac"),
        Column("IPV4", "ipv4"),
        Column("IPV6", "ipv6"),
        Column("MASTER", "master"),
        Column("VLAN", "vlan_id"),
        Column("RX PKTS", "rx_packets"),
        Column("RX ERR", "rx_errors"),
        Column("RX DROP", "rx_dropped"),
        Column("TX PKTS", "tx_packets"),
        Column("TX ERR", "tx_errors"),
        Column("TX DROP", "tx_dropped"),
    ),
    tools=("ip -j -s -d addr show (iproute2)",),
    command=Command(
        argument="interface",
        metavar="IFACE",
        help="Shows the links of the selected nodes (or only IFACE).\n\n"
        "From `ip -j -s -d addr show` on each node (any distribution with iproute2). ADMIN is the up flag, "
        "OPER the kernel's operational state, CARRIER the lower layer; MASTER is the bridge or bond a link is "
        "enslaved to; VLAN the 802.1Q id of a VLAN link. JSON adds bytes, the parent link and the VLAN protocol. "
        "A named IFACE that is admin up without carrier is a finding (exit 1); a missing one is `aborted`.",
        examples=(
            "steth interface --role network",
            "steth interface data0 --node compute-1 -o json",
            "steth interface --netns qrouter-5f1c... --node network-1",
        ),
    ),
)
