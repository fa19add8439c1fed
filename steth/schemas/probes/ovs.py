"""ovs: Open vSwitch bridges and ports from OVSDB (`ovs-vsctl --format=json`), and their findings.

Findings: a dead port (tag 4095, what the Neutron OVS agent sets on a port it cannot wire), an interface
with ofport -1 (OVS could not open it), a patch port whose peer is missing or does not point back, and
a requested bridge or port that is absent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from steth.schemas.probe import Column, ProbeSpec
from steth.schemas.types import InterfaceName, OvsdbRemote, Params, Result

DEAD_VLAN = 4095


class OvsParams(Params):
    view: Literal["bridges", "ports", "port", "check"] = Field("ports", description="what to list or check")
    bridge: InterfaceName | None = Field(None, description="only this bridge (check: it must exist)")
    ports: list[InterfaceName] = Field(
        default_factory=list, max_length=256, description="ports to show (port) or that must exist (check)"
    )
    db: OvsdbRemote | None = Field(
        None,
        description="OVSDB socket: unix:/path or tcp:IP:PORT (default: $OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock)",
    )

    @model_validator(mode="after")
    def _view(self) -> OvsParams:
        if self.view == "port" and len(self.ports) != 1:
            raise ValueError("view port takes exactly one port name")
        return self

    def expected_duration_s(self) -> float:
        return 1.0


class OvsBridge(Result):
    name: str
    datapath_type: str = ""
    fail_mode: str = ""
    ports: int = 0
    controllers: list[str] = []
    external_ids: dict[str, str] = {}


class OvsPort(Result):
    bridge: str
    name: str
    type: str = ""  # "" is a system interface; internal, patch, vxlan, ...
    ofport: int | None = None
    tag: int | None = None
    trunks: list[int] = []
    vlan_mode: str = ""
    interfaces: list[str] = []  # more than one for a bond
    mac_in_use: str | None = None
    link_state: str | None = None
    admin_state: str | None = None
    error: str | None = None
    iface_id: str | None = None  # external_ids of the interface, as Neutron and Nova set them
    attached_mac: str | None = None
    vm_uuid: str | None = None
    iface_status: str | None = None
    net_uuid: str | None = None  # other_config of the port, as the Neutron OVS agent sets it
    segmentation_id: str | None = None
    network_type: str | None = None
    physical_network: str | None = None
    external_ids: dict[str, str] = {}
    other_config: dict[str, str] = {}
    options: dict[str, str] = {}
    peer: str | None = None  # patch ports: options:peer
    peer_ok: bool | None = None
    findings: list[str] = []


class OvsResult(Result):
    db: str
    view: str
    ovs_version: str | None = None
    bridges: list[OvsBridge] = []
    ports: list[OvsPort] = []
    findings: list[str] = []


SPEC = ProbeSpec(
    name="ovs",
    summary="Open vSwitch bridges and ports from OVSDB; dead ports, ofport -1, broken patches, absent ports are findings.",
    params=OvsParams,
    result=OvsResult,
    max_timeout_s=30,
    rows_key="ports",
    columns=(
        Column("BRIDGE", "bridge"),
        Column("PORT", "name"),
        Column("OFPORT", "ofport"),
        Column("TAG", "tag"),
        Column("TRUNKS", "trunks"),
        Column("TYPE", "type"),
        Column("LINK", "link_state"),
        Column("IFACE-ID", "iface_id"),
        Column("ATTACHED-MAC", "attached_mac"),
        Column("PEER", "peer"),
        Column("FINDINGS", "findings"),
    ),
    tools=("ovs-vsctl",),
)
