"""send: one crafted packet (scapy) from the node, and what came back within the listening window.

Sending with the interface's own MAC changes nothing on the host. A spoofed source MAC (--src-mac other
than the interface's) needs the agent's mutating policy and is refused (`aborted`) without it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from steth.schemas.probe import TRAFFIC, Column, ProbeSpec
from steth.schemas.types import InterfaceName, Params, Result, VlanId

PACKETS = ("dhcp-discover", "arp-request", "icmp-echo", "tcp-syn", "udp")
DEFAULT_PORTS = {"tcp-syn": 80, "udp": 53}


def _unicast_mac(value: str) -> str:
    text = value.strip().lower().replace("-", ":")
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise ValueError("a MAC address like 02:00:00:00:00:01")
    if int(parts[0], 16) & 1:
        raise ValueError("a source MAC must be unicast (first octet even)")
    if text == "00:00:00:00:00:00":
        raise ValueError("a source MAC cannot be all zeros")
    return text


def _ipv4(value: str) -> str:
    addr = ipaddress.ip_address(value)
    if addr.version != 4:
        raise ValueError("an IPv4 address")
    return str(addr)


MacAddress = Annotated[str, AfterValidator(_unicast_mac)]
IPv4Address = Annotated[str, AfterValidator(_ipv4)]


class SendParams(Params):
    interface: InterfaceName = Field(description="send and listen on this interface")
    packet: Literal["dhcp-discover", "arp-request", "icmp-echo", "tcp-syn", "udp"] = Field(description="what to send")
    vlan: VlanId | None = Field(None, description="tag the frame with this 802.1Q VLAN")
    src_mac: MacAddress | None = Field(
        None, description="source MAC (another than the interface's needs the mutating policy)"
    )
    dst: IPv4Address | None = Field(None, description="destination address (all but dhcp-discover)")
    port: int | None = Field(
        None, ge=1, le=65535, description="destination port for tcp-syn (default 80) and udp (default 53)"
    )
    listen_s: float = Field(2.0, ge=0.1, le=30.0, description="listen this long for replies")

    @model_validator(mode="after")
    def _fits_packet(self) -> SendParams:
        if self.packet == "dhcp-discover" and self.dst:
            raise ValueError("dhcp-discover is broadcast: no TARGET")
        if self.packet != "dhcp-discover" and not self.dst:
            raise ValueError(f"{self.packet} needs a TARGET address")
        if self.port is not None and self.packet not in DEFAULT_PORTS:
            raise ValueError(f"{self.packet} takes no port")
        return self

    def expected_duration_s(self) -> float:
        # child start and scapy import, ARP resolution (at most 1 s) for IP packets, then the window
        return self.listen_s + 1.0 + (1.0 if self.packet in ("icmp-echo", "tcp-syn", "udp") else 0.0)


class SendReply(Result):
    kind: str  # offer, ack, nak, arp-reply, echo-reply, syn-ack (open), rst (closed), udp, icmp-unreachable (...)
    from_ip: str | None = None
    from_mac: str | None = None
    vlan: int | None = None  # the tag the reply arrived with
    delay_ms: float | None = None
    offered_ip: str | None = None  # DHCP
    server_id: str | None = None
    lease_time_s: int | None = None
    subnet_mask: str | None = None
    router: str | None = None
    dns: list[str] = []
    answered_mac: str | None = None  # ARP
    summary: str = ""


class SendResult(Result):
    interface: str
    packet: str
    vlan: int | None = None
    src_mac: str | None = None
    spoofed: bool = False
    src_ip: str | None = None
    dst: str | None = None
    dst_mac: str | None = None
    port: int | None = None
    sent_summary: str = ""
    sent_bytes: int = 0
    listen_s: float = 0.0
    replies: list[SendReply] = []
    notes: list[str] = []


SPEC = ProbeSpec(
    name="send",
    effects=(TRAFFIC,),
    summary="Send one crafted packet (DHCP DISCOVER, ARP, ICMP echo, TCP SYN, UDP) and list what came back.",
    params=SendParams,
    result=SendResult,
    max_timeout_s=60,
    rows_key="replies",
    columns=(
        Column("REPLY", "kind"),
        Column("FROM IP", "from_ip"),
        Column("FROM MAC", "from_mac"),
        Column("VLAN", "vlan"),
        Column("DELAY", "delay_ms", "ms"),
        Column("OFFERED", "offered_ip"),
        Column("SERVER", "server_id"),
    ),
    tools=("scapy (child process)",),
    description="No reply within the window is a finding. A spoofed --src-mac needs the mutating policy.",
)
