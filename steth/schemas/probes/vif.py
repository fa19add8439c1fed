"""vif: is a Neutron port wired on this compute host the way Nova and the OVS agent should have wired it?

Finds the OVS port whose external_ids:iface-id is the port id; checks attached-mac, the local VLAN tag (4095
is the OVS agent's dead VLAN), the ofport, and every device of the chain: hybrid plugging (tap in the Linux
bridge qbr, veth qvb-qvo, qvo on br-int) or native (tap on br-int), each existing, up and with its MTU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from steth.schemas.checks import CHECK_COLUMNS, CheckRow
from steth.schemas.neutron_types import MacAddress, PortId
from steth.schemas.probe import ProbeSpec
from steth.schemas.types import InterfaceName, OvsdbRemote, Params, Result


class VifParams(Params):
    port_id: PortId = Field(description="Neutron port id (external_ids:iface-id on br-int)")
    mac: MacAddress | None = Field(None, description="the port's MAC (external_ids:attached-mac must match)")
    bridge: InterfaceName = Field("br-int", description="the integration bridge")
    expect_mtu_bytes: int | None = Field(
        None, ge=68, le=65535, description="every device of the chain needs at least this MTU"
    )
    expect_hybrid: bool | None = Field(None, description="what binding:vif_details ovs_hybrid_plug says")
    db: OvsdbRemote | None = Field(
        None, description="OVSDB socket (default: $OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock)"
    )

    def expected_duration_s(self) -> float:
        return 1.5


class VifDevice(Result):
    role: str  # tap, qbr, qvb, qvo
    name: str
    exists: bool = False
    admin_up: bool | None = None
    oper: str | None = None  # operstate: UP, DOWN, LOWERLAYERDOWN, UNKNOWN
    mtu: int | None = None
    master: str | None = None


class VifResult(Result):
    port_id: str
    bridge: str
    plugging: Literal["hybrid", "native", "unknown"] = "unknown"
    ovs_port: str | None = None
    ovs_bridge: str | None = None
    tag: int | None = None
    ofport: int | None = None
    iface_id: str | None = None
    attached_mac: str | None = None
    vm_uuid: str | None = None
    devices: list[VifDevice] = []
    checks: list[CheckRow] = []


SPEC = ProbeSpec(
    name="vif",
    summary="A Neutron port's wiring on its compute host: OVS port by iface-id, attached-mac, tag (4095 dead), "
    "ofport, the tap/qbr/qvb/qvo devices up with their MTU, hybrid or native plugging.",
    params=VifParams,
    result=VifResult,
    max_timeout_s=30,
    rows_key="checks",
    columns=CHECK_COLUMNS,
    tools=("ovs-vsctl", "ip (iproute2)"),
)
