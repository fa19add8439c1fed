"""dhcp-watch: which interfaces of this node see DHCP DISCOVER and OFFER for one MAC, optionally after
injecting a DISCOVER with that MAC (needs the mutating policy; without it the probe only listens).

The controller runs it at once on the port's compute host (the tap/qbr/qvb/qvo chain and the provider
bridge's uplinks) and on the DHCP agents' hosts (their uplinks and the DHCP port's tap): the hops that saw
DISCOVER and OFFER show where a DHCP exchange stops. Injection: `send` writes the frame on an interface
(hybrid plugging: qvb, so it enters br-int through qvo); `ovs` hands it to the bridge with an OpenFlow
packet-out as if it came in on an OVS port (native plugging: the tap).

Every listener is a packet socket; an interface not in the agent's namespace is looked for inside `netns`
(Neutron's DHCP port: with `ovs_use_veth = False`, its default, an OVS internal port moved into
qdhcp-<network>). The probe ends as soon as one exchange (one xid) was seen at every listener: the DISCOVER
and its OFFER, only the OFFER on the interfaces in `offer_only`; `listen_s` bounds a broken path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from steth.schemas.neutron_types import MacAddress
from steth.schemas.probe import CAPTURE, Column, ProbeSpec
from steth.schemas.types import InterfaceName, NetnsName, Params, Result


class DhcpWatchParams(Params):
    mac: MacAddress = Field(description="the client MAC (BOOTP chaddr) to follow")
    interfaces: list[InterfaceName] = Field(default_factory=list, max_length=16, description="interfaces to listen on")
    uplink_bridges: list[InterfaceName] = Field(
        default_factory=list,
        max_length=4,
        description="also listen on these OVS bridges' uplinks (ports neither patch nor internal)",
    )
    netns: NetnsName | None = Field(
        None, description="look for interfaces missing here inside this network namespace (e.g. qdhcp-<network id>)"
    )
    listen_s: float = Field(4.0, ge=0.5, le=30.0, description="the longest to listen (a broken path)")
    finish_early: bool = Field(
        True, description="stop as soon as one exchange was seen at every listener (else listen the whole window)"
    )
    offer_only: list[InterfaceName] = Field(
        default_factory=list,
        max_length=16,
        description="listeners an injected DISCOVER does not pass (behind the injection point): only its OFFER counts",
    )
    inject: Literal["none", "send", "ovs"] = Field(
        "none", description="inject a DISCOVER: send on inject_port, or ovs packet-out from it"
    )
    inject_port: InterfaceName | None = Field(
        None, description="the interface (send) or OVS port (ovs) the DISCOVER comes from"
    )
    bridge: InterfaceName = Field("br-int", description="the bridge of inject_port (ovs injection)")
    inject_delay_s: float = Field(
        0.5, ge=0.0, le=10.0, description="wait this long after listening starts (peers start listening too)"
    )
    inject_count: int = Field(3, ge=1, le=5, description="DISCOVERs to inject, 0.4 s apart, until the exchange is seen")
    xid: int = Field(0, ge=0, le=0xFFFFFFFF, description="transaction id of the injected DISCOVER (0: random)")

    @model_validator(mode="after")
    def _inject(self) -> DhcpWatchParams:
        if self.inject != "none" and not self.inject_port:
            raise ValueError("injection needs inject_port")
        if not self.interfaces and not self.uplink_bridges:
            raise ValueError("nothing to listen on: give interfaces or uplink_bridges")
        if self.inject != "none" and self.inject_delay_s + self.inject_count * 0.4 >= self.listen_s:
            raise ValueError("listen_s must outlast the injection (inject_delay_s + 0.4 s per DISCOVER)")
        return self

    def expected_duration_s(self) -> float:
        return self.listen_s + 2.0  # reading OVSDB and the child's start, then the window


class DhcpHop(Result):
    interface: str
    role: str = ""  # tap, qbr, qvb, qvo, uplink, dhcp-port, ...: as the controller named it ("uplink" when found here)
    exists: bool = True
    discover: int = 0
    offer: int = 0
    vlans: list[int] = []  # 802.1Q tags the frames carried here (0: untagged)
    error: str = ""
    netns: str = ""  # the namespace the interface was found in ("": the agent's own)


class DhcpOffer(Result):
    interface: str
    server_ip: str | None = None
    offered_ip: str | None = None
    vlan: int = 0


class DhcpWatchResult(Result):
    mac: str
    listen_s: float = 0.0
    injected: int = 0
    xid: int | None = None
    inject_note: str = ""
    listening_since: float | None = None  # epoch: every listener of this node was up (frames before it are missed)
    last_injected_at: float | None = None  # epoch: the last DISCOVER went out
    complete: bool = False  # one exchange was seen at every listener
    finished_at: float | None = None  # epoch: when it was (the probe stopped listening then)
    hops: list[DhcpHop] = []
    offers: list[DhcpOffer] = []


SPEC = ProbeSpec(
    name="dhcp-watch",
    effects=(CAPTURE,),
    summary="DHCP DISCOVER and OFFER for one MAC, per interface (optionally after injecting a DISCOVER): "
    "where a DHCP exchange stops.",
    params=DhcpWatchParams,
    result=DhcpWatchResult,
    max_timeout_s=45,
    rows_key="hops",
    columns=(
        Column("IFACE", "interface"),
        Column("ROLE", "role"),
        Column("DISCOVER", "discover"),
        Column("OFFER", "offer"),
        Column("VLANS", "vlans"),
        Column("NETNS", "netns"),
        Column("ERROR", "error"),
    ),
    tools=("packet sockets (child process)", "ovs-vsctl, ovs-ofctl packet-out (ovs injection)"),
    description="Injection needs the agent's mutating policy; without it the probe listens only.",
)
