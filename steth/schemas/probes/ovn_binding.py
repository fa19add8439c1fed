"""ovn-binding: where this node's Open vSwitch carries given OVN ports (external_ids:iface-id).

For each iface-id: the OVS interface, its bridge, ofport, link and admin state, attached-mac, and
external_ids:ovn-installed, which ovn-controller sets once the port's flows are installed.

Findings: no interface with that iface-id on this node, ofport -1, link down, not installed by ovn-controller.
"""

from __future__ import annotations

from pydantic import Field

from steth.schemas.neutron_types import PortId
from steth.schemas.probe import Column, Command, ProbeSpec
from steth.schemas.types import OvsdbRemote, Params, Result


class OvnBindingParams(Params):
    iface_ids: list[PortId] = Field(
        min_length=1, max_length=64, description="OVN logical port names: Neutron port ids (external_ids:iface-id)"
    )
    db: OvsdbRemote | None = Field(
        None, description="the node's OVSDB socket (default: $OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock)"
    )

    def expected_duration_s(self) -> float:
        return 1.5


class OvnBinding(Result):
    iface_id: str
    interface: str | None = None
    bridge: str | None = None
    ofport: int | None = None
    link_state: str | None = None
    admin_state: str | None = None
    attached_mac: str | None = None
    vm_uuid: str | None = None
    ovn_installed: bool = False
    findings: list[str] = []


class OvnBindingResult(Result):
    db: str
    bindings: list[OvnBinding] = []
    findings: list[str] = []


SPEC = ProbeSpec(
    name="ovn-binding",
    summary="OVN ports (iface-ids) on this node's Open vSwitch: interface, ofport, link, ovn-installed.",
    params=OvnBindingParams,
    result=OvnBindingResult,
    max_timeout_s=20,
    rows_key="bindings",
    columns=(
        Column("IFACE-ID", "iface_id"),
        Column("INTERFACE", "interface"),
        Column("BRIDGE", "bridge"),
        Column("OFPORT", "ofport"),
        Column("LINK", "link_state"),
        Column("INSTALLED", "ovn_installed"),
        Column("FINDINGS", "findings"),
    ),
    tools=("ovs-vsctl",),
    command=Command(
        help="Ask the node the port is bound to (binding:host_id): on any other node the port is rightly absent.",
        examples=("steth ovn-binding 5d3c1a40-7f0e-4d52-9d7e-0c0f6b1c2a11 --node compute-1",),
        argument="iface_ids",
        metavar="IFACE_ID",
    ),
)
