"""ovs-uplinks: the ports that lead out of OVS bridges (neither patch nor internal), e.g. of the provider
bridge named in the Neutron OVS agent's bridge_mappings. The controller uses them as each host's trunk
interface for the VLAN check of a network, since their names differ from host to host.

One row per Interface: a bond Port (several Interfaces) gives its members, which are the kernel devices; a DPDK
Interface (type dpdk) is no kernel device, and its row says so in `not_applicable`."""

from __future__ import annotations

from pydantic import Field

from steth.schemas.probe import Column, ProbeSpec
from steth.schemas.types import InterfaceName, OvsdbRemote, Params, Result


class OvsUplinksParams(Params):
    bridges: list[InterfaceName] = Field(min_length=1, max_length=8, description="OVS bridges to look at")
    db: OvsdbRemote | None = Field(
        None, description="OVSDB socket (default: $OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock)"
    )


class Uplink(Result):
    bridge: str
    port: str = ""  # the OVS Port: the bond's name for its members, else the interface's own
    interface: str
    type: str = ""
    bond: bool = False
    not_applicable: str = ""  # why this is no kernel device (DPDK), else empty
    ofport: int | None = None
    link_state: str | None = None
    tag: int | None = None
    trunks: list[int] = []


class OvsUplinksResult(Result):
    uplinks: list[Uplink] = []
    missing_bridges: list[str] = []


SPEC = ProbeSpec(
    name="ovs-uplinks",
    summary="The uplink ports (neither patch nor internal) of OVS bridges; a missing bridge or one without uplink is a finding.",
    params=OvsUplinksParams,
    result=OvsUplinksResult,
    max_timeout_s=20,
    rows_key="uplinks",
    columns=(
        Column("BRIDGE", "bridge"),
        Column("PORT", "port"),
        Column("UPLINK", "interface"),
        Column("TYPE", "type"),
        Column("OFPORT", "ofport"),
        Column("LINK", "link_state"),
        Column("TRUNKS", "trunks"),
        Column("NOTE", "not_applicable"),
    ),
    tools=("ovs-vsctl",),
)
