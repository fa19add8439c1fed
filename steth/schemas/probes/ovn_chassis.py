"""ovn-chassis: this node as an OVN chassis, from its own OVSDB, ovn-controller and (if configured) the SB.

Reads Open_vSwitch external_ids (system-id, ovn-remote, ovn-encap-type/-ip, ovn-bridge, ovn-bridge-mappings,
ovn-cms-options), ovn-controller's connection status (ovn-appctl connection-status on its control socket),
the nb_cfg it last acknowledged (br-int external_ids:ovn-nb-cfg) against the SB's SB_Global nb_cfg, and the
tunnel interfaces to the other chassis with their BFD state.

Findings: not an OVN chassis, ovn-controller not running or not connected, nb_cfg behind the SB, a tunnel
missing to a chassis the SB knows, a tunnel with ofport -1, BFD enabled but not up.
"""

from __future__ import annotations

from pydantic import Field

from steth.schemas.probe import Column, Command, ProbeSpec
from steth.schemas.types import OvsdbRemote, Params, Result


class OvnChassisParams(Params):
    db: OvsdbRemote | None = Field(
        None, description="the node's OVSDB socket (default: $OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock)"
    )
    nb_cfg_grace_s: float = Field(
        5.0, ge=0, le=30, description="how long ovn-controller may take to catch up with the SB's nb_cfg"
    )

    def expected_duration_s(self) -> float:
        return 3.0 + self.nb_cfg_grace_s


class OvnTunnel(Result):
    port: str
    type: str  # geneve, vxlan, stt
    remote_ip: str | None = None
    chassis: str | None = None  # the peer's system-id, from external_ids:ovn-chassis-id ("name@ip")
    ofport: int | None = None
    bfd_enabled: bool = False
    bfd_state: str | None = None  # bfd_status:state (admin_down, down, init, up)
    bfd_remote_state: str | None = None
    bfd_diagnostic: str | None = None
    findings: list[str] = []


class OvnChassisResult(Result):
    db: str
    system_id: str | None = None
    hostname: str | None = None
    ovn_remote: str | None = None
    encap_type: str | None = None
    encap_ip: str | None = None
    bridge: str = "br-int"
    bridge_mappings: str | None = None
    cms_options: str | None = None
    gateway: bool = False  # ovn-cms-options carries enable-chassis-as-gw
    controller_pid: int | None = None
    controller_status: str | None = None  # connection-status: "connected" or "not connected"
    nb_cfg: int | None = None  # br-int external_ids:ovn-nb-cfg
    nb_cfg_ts: int | None = None  # ... :ovn-nb-cfg-ts (ms since the epoch)
    sb_nb_cfg: int | None = None  # SB_Global nb_cfg, when [ovn] sb_connection is set
    sb_chassis: list[str] = []  # Chassis rows in the SB (names), when reachable
    sb_error: str | None = None
    tunnels: list[OvnTunnel] = []
    findings: list[str] = []


SPEC = ProbeSpec(
    name="ovn-chassis",
    summary="This node as an OVN chassis: its settings, ovn-controller's connection and nb_cfg, tunnels and BFD.",
    params=OvnChassisParams,
    result=OvnChassisResult,
    max_timeout_s=45,
    rows_key="tunnels",
    columns=(
        Column("TUNNEL", "port"),
        Column("TYPE", "type"),
        Column("REMOTE-IP", "remote_ip"),
        Column("CHASSIS", "chassis"),
        Column("OFPORT", "ofport"),
        Column("BFD", "bfd_state"),
        Column("FINDINGS", "findings"),
    ),
    tools=("ovs-vsctl", "ovn-appctl", "ovn-sbctl"),
    command=Command(
        help="The chassis settings (system-id, ovn-remote, encap, ovn-cms-options) come from the node's own "
        "OVSDB; ovn-controller is found by its pidfile in $OVN_RUNDIR (else /var/run/ovn). With [ovn] "
        "sb_connection in the agent's config the SB's nb_cfg and chassis list are compared too.",
        examples=("steth ovn-chassis --node compute-1", "steth ovn-chassis --role compute -o json"),
    ),
)
