"""vlan-check: does each VLAN pass between every pair of the selected nodes?

A controller recipe: one request goes to every selected node at once, with the same args. Each agent
listens on the interface, sends `frames` 802.1Q-tagged frames per VLAN after `send_delay_s` (so that
every peer listens by then) carrying the request's token, and reports per (VLAN, peer) what it saw.
The default mode changes nothing on the host. `subinterface` mode (mutating) creates temporary VLAN
subinterfaces with addresses from `cidr`, pings across them and removes them: it needs 802.1Q in the
kernel and answers `aborted` where that is missing.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from steth.schemas.probe import TRAFFIC, Column, ProbeSpec
from steth.schemas.types import InterfaceName, Params, Result, VlanId

NodeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")]
MAX_VLANS = 512


def _ipv4_network(value: str) -> str:
    net = ipaddress.ip_network(value, strict=False)
    if net.version != 4 or net.prefixlen > 30:
        raise ValueError("an IPv4 network of /30 or larger")
    return str(net)


Ipv4Network = Annotated[str, AfterValidator(_ipv4_network)]


def parse_vlans(text: str) -> list[int]:
    """'100,200-210' -> [100, 200, ..., 210]; bounds are checked by the params model."""
    out: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"{part!r} is not a VLAN id or a range like 200-210")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise ValueError(f"{part!r}: the range is reversed")
        if last - first >= MAX_VLANS:
            raise ValueError(f"{part!r}: at most {MAX_VLANS} VLANs per check")
        out.update(range(first, last + 1))
    if not out:
        raise ValueError("no VLAN given")
    return sorted(out)


class VlanCheckParams(Params):
    interface: InterfaceName = Field(description="the trunk interface to send and listen on")
    vlans: list[VlanId] = Field(min_length=1, max_length=MAX_VLANS, description="VLAN ids to check (1..4094)")
    mode: Literal["frames", "subinterface"] = Field(
        "frames",
        description="frames: tagged frames, changes nothing; subinterface: VLAN interfaces and ping (mutating, needs 802.1Q)",
    )
    nodes: list[NodeName] = Field(
        default_factory=list, max_length=256, description="every node taking part (set by the controller)"
    )
    token: str = Field(
        "", pattern=r"^[a-f0-9]{0,32}$", description="per-request token carried by the frames (set by the controller)"
    )
    frames: int = Field(3, ge=1, le=20, description="frames (or pings) per VLAN")
    send_delay_s: float = Field(1.5, ge=0.2, le=10.0, description="wait before sending, so that every peer listens")
    listen_s: float = Field(1.0, ge=0.2, le=30.0, description="keep listening this long after sending")
    cidr: Ipv4Network | None = Field(
        None, description="subinterface mode: addresses for the VLAN interfaces (node k gets host k)"
    )

    @model_validator(mode="after")
    def _mode(self) -> VlanCheckParams:
        if self.mode == "subinterface":
            if not self.cidr:
                raise ValueError("subinterface mode needs cidr")
            if ipaddress.ip_network(self.cidr).num_addresses - 2 < max(2, len(self.nodes)):
                raise ValueError(f"cidr {self.cidr} has fewer host addresses than nodes")
        return self

    def expected_duration_s(self) -> float:
        return self.send_delay_s + self.listen_s + 0.05 * self.frames + 1.0


class VlanPeerRow(Result):
    vlan: int
    peer: str  # the sending node, seen from the reporting node
    frames: int = 0  # frames (or ping replies) that arrived
    expected: int = 0
    passed: bool = False
    detail: str = ""  # "arrived tagged 200", "arrived untagged", ping error


class VlanSeen(Result):
    vlan: int  # the tag it arrived with (0: untagged)
    meant_vlan: int  # the VLAN its sender tagged it with
    sender: str
    frames: int


class VlanCheckResult(Result):
    interface: str
    mode: str
    mac: str | None = None
    vlans: list[int] = []
    listening_since: float | None = None  # when this node's listener was up (epoch)
    sent_at: float | None = None  # when this node sent its frames (epoch)
    socket_drops: int | None = None  # frames the kernel dropped on our capture socket (buffer full)
    rows: list[VlanPeerRow] = []
    seen: list[VlanSeen] = []  # every steth frame of this request, including from unexpected senders

    def missing(self) -> str:
        """'VLAN 300: nothing from compute-2, network-1; ...' for the rows that did not pass ('' if all did)."""
        lost: dict[int, list[str]] = {}
        for r in self.rows:
            if not r.passed:
                lost.setdefault(r.vlan, []).append(r.peer + (f" ({r.detail})" if r.detail else ""))
        parts = [f"VLAN {v}: nothing from {', '.join(peers)}" for v, peers in sorted(lost.items())]
        if len(parts) > 3:
            parts = parts[:3] + [f"{len(parts) - 3} more VLAN(s)"]
        return "; ".join(parts)


SPEC = ProbeSpec(
    name="vlan-check",
    effects=(TRAFFIC,),
    summary="802.1Q frames per VLAN between the selected nodes: which VLANs pass between which pairs.",
    params=VlanCheckParams,
    result=VlanCheckResult,
    max_timeout_s=120,
    rows_key="rows",
    columns=(
        Column("VLAN", "vlan"),
        Column("FROM", "peer"),
        Column("FRAMES", "frames"),
        Column("PASSED", "passed"),
        Column("DETAIL", "detail"),
    ),
    tools=("a raw packet socket (child process, standard library)", "ip (iproute2), ping: subinterface mode"),
    description="Mode `subinterface` is mutating (needs the agent's policy) and needs 802.1Q in the kernel.",
)
