"""br-tun: a tunnel network's wiring on one host's tunnel bridge, as Neutron's OVS agent builds it.

Read-only, from OVSDB (steth.agent.ovsdb) and `ovs-ofctl -O OpenFlow13 dump-flows`:

- the patch pair between br-int and br-tun (patch-tun on br-int, patch-int on br-tun, each the other's peer);
- a tunnel port `<type>-<remote ip in hex>` to each expected remote tunneling_ip, with options remote_ip and
  local_ip, and an ofport > 0;
- the flows of the network's VNI: the tunnel-to-local-VLAN flow (table 4 for VXLAN) that gives its local VLAN,
  then l2population's flood flow (table 22, to every remote tunnel that has a port of the network) and its
  unicast flows (table 20, a remote port's MAC to its host's tunnel).

The tables and names are the OVS agent's (see docs/diagnosis.md, "How Neutron wires a port").
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field

from steth.schemas.checks import CHECK_COLUMNS, CheckRow
from steth.schemas.neutron_types import MacAddress
from steth.schemas.probe import ProbeSpec
from steth.schemas.types import InterfaceName, IPAddress, OvsdbRemote, Params, Result


def tunnel_name(network_type: str, remote_ip: str) -> str:
    """ovs_neutron_agent.py OVSNeutronAgent.get_tunnel_name / get_tunnel_hash: `<type>-<IPv4 as 8 hex digits>`
    (IPv6 remotes get a hash: '' here, those tunnels are found by their remote_ip option)."""
    addr = ipaddress.ip_address(remote_ip)
    return f"{network_type}-{int(addr):08x}" if addr.version == 4 else ""


class UnicastPeer(Params):
    mac: MacAddress = Field(description="a port of the network on another host")
    remote_ip: IPAddress = Field(description="that host's tunneling_ip")


class BrTunParams(Params):
    network_type: Literal["vxlan", "gre", "geneve"] = Field("vxlan", description="the network's tunnel type")
    vni: int = Field(ge=1, le=16777215, description="the network's segmentation id (VNI)")
    local_ip: IPAddress | None = Field(None, description="this host's tunneling_ip (the tunnel ports' local_ip)")
    remote_ips: list[IPAddress] = Field(
        [], max_length=64, description="tunneling_ip of each host with a port of the network (flood targets)"
    )
    unicast: list[UnicastPeer] = Field([], max_length=64, description="remote ports whose unicast flow to check")
    bridge: InterfaceName = Field("br-tun", description="the tunnel bridge ([ovs] tunnel_bridge)")
    int_bridge: InterfaceName = Field("br-int", description="the integration bridge ([ovs] integration_bridge)")
    int_patch: InterfaceName = Field("patch-tun", description="br-int's end ([ovs] int_peer_patch_port)")
    tun_patch: InterfaceName = Field("patch-int", description="br-tun's end ([ovs] tun_peer_patch_port)")
    db: OvsdbRemote | None = Field(
        None, description="OVSDB socket (default: $OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock)"
    )

    def expected_duration_s(self) -> float:
        return 1.5


class Tunnel(Result):
    name: str
    remote_ip: str = ""
    local_ip: str = ""
    ofport: int | None = None
    type: str = ""


class BrTunResult(Result):
    bridge: str
    vni: int
    network_type: str = "vxlan"
    local_vlan: int | None = None  # the OVS agent's local VLAN for the VNI (from the tunnel-to-VLAN flow)
    tunnels: list[Tunnel] = []
    flood_ports: list[str] = []  # the flood flow's outputs, by port name
    unicast: dict[str, str] = {}  # MAC -> port name of its unicast flow
    arp_responder: list[str] = []  # addresses br-tun answers ARP for on this VLAN
    checks: list[CheckRow] = []


SPEC = ProbeSpec(
    name="br-tun",
    summary="A tunnel network on a host's br-tun: the patch pair, a tunnel port to each remote tunneling_ip, "
    "the l2population flood and unicast flows of the VNI.",
    params=BrTunParams,
    result=BrTunResult,
    max_timeout_s=30,
    rows_key="checks",
    columns=CHECK_COLUMNS,
    tools=("ovs-vsctl", "ovs-ofctl"),
)
