"""ovn-port: an OVN logical port in the NB and SB, read where the node reaches them ([ovn] in its config).

NB Logical_Switch_Port: addresses, port_security, enabled, up, options:requested-chassis and its DHCPv4
options (cidr and options). SB Port_Binding: the chassis it is bound to, up, requested_chassis.

Findings: no such port in the NB, not up, no DHCP options, no Port_Binding, not bound to any chassis, bound to
another chassis than requested. The remotes come only from the agent's config: a request names none.
"""

from __future__ import annotations

from pydantic import Field

from steth.schemas.neutron_types import PortId
from steth.schemas.probe import Column, Command, ProbeSpec
from steth.schemas.types import Params, Result


class OvnPortParams(Params):
    ports: list[PortId] = Field(min_length=1, max_length=64, description="OVN logical port names: Neutron port ids")

    def expected_duration_s(self) -> float:
        return 3.0


class OvnPort(Result):
    name: str
    nb_found: bool = False
    type: str = ""
    addresses: list[str] = []
    port_security: list[str] = []
    enabled: bool | None = None
    up: bool | None = None  # NB: what ovn-northd copies from the SB Port_Binding
    requested_chassis: str | None = None
    dhcpv4_cidr: str | None = None
    dhcpv4_options: dict[str, str] = {}
    sb_found: bool = False
    chassis: str | None = None  # SB Port_Binding chassis (its name)
    sb_up: bool | None = None
    findings: list[str] = []


class OvnPortResult(Result):
    nb_connection: str | None = None
    sb_connection: str | None = None
    ports: list[OvnPort] = []
    findings: list[str] = []


SPEC = ProbeSpec(
    name="ovn-port",
    summary="OVN logical ports in the NB and SB: addresses, port security, up, requested and bound chassis, DHCP.",
    params=OvnPortParams,
    result=OvnPortResult,
    max_timeout_s=20,
    rows_key="ports",
    columns=(
        Column("PORT", "name"),
        Column("ADDRESSES", "addresses"),
        Column("UP", "up"),
        Column("REQUESTED", "requested_chassis"),
        Column("CHASSIS", "chassis"),
        Column("SB-UP", "sb_up"),
        Column("DHCP", "dhcpv4_cidr"),
        Column("FINDINGS", "findings"),
    ),
    tools=("ovn-nbctl", "ovn-sbctl"),
    command=Command(
        help="Runs on agents whose config has an [ovn] table (nb_connection, sb_connection): typically the "
        "network or controller nodes. The request names no database.",
        examples=("steth ovn-port 5d3c1a40-7f0e-4d52-9d7e-0c0f6b1c2a11 --node network-1",),
        argument="ports",
        metavar="PORT_ID",
    ),
)
