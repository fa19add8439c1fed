"""How Neutron and Nova describe where a port is wired: pure decisions over what the API returned.

Each function answers one question the diagnosis must not guess at, from the upstream facts cited beside it
(docs/diagnosis.md, "How Neutron wires a port", lists them all).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# neutron_lib/constants.py: ROUTER_INTERFACE_OWNERS (DEVICE_OWNER_ROUTER_INTF, DEVICE_OWNER_HA_REPLICATED_INT,
# DEVICE_OWNER_DVR_INTERFACE): a router's interface on a tenant subnet has one of these device_owners.
ROUTER_INTF = "network:router_interface"
HA_REPLICATED_INT = "network:ha_router_replicated_interface"
DVR_INTERFACE = "network:router_interface_distributed"
ROUTER_INTERFACE_OWNERS = (ROUTER_INTF, HA_REPLICATED_INT, DVR_INTERFACE)
# neutron_lib/constants.py: HA_ROUTER_STATE_ACTIVE / _STANDBY / _UNKNOWN, the ha_state of each L3 agent in
# GET /v2.0/routers/{id}/l3-agents (neutron/db/l3_hamode_db.py get_l3_bindings_hosting_router_with_ha_states).
HA_ACTIVE, HA_STANDBY = "active", "standby"


def is_router_interface(device_owner: str) -> bool:
    return device_owner in ROUTER_INTERFACE_OWNERS


# --- L3 HA -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HaState:
    active: list[str]  # hosts whose agent reports the router active
    finding: str = ""  # no active, or more than one: the operator's line


def ha_state(router_label: str, agents: Iterable[tuple[str, str | None]]) -> HaState:
    """(host, ha_state) of every L3 agent hosting an HA router: where its gateway lives, or what is wrong.

    keepalived holds the router's addresses on the active instance only (neutron/agent/l3/ha_router.py:
    HaRouter, the VIPs in keepalived.conf); standbys have the qr- devices without addresses.
    """
    agents = list(agents)
    active = sorted(h for h, s in agents if s == HA_ACTIVE)
    if len(active) == 1:
        return HaState(active)
    states = ", ".join(f"{h} {s or 'unknown'}" for h, s in sorted(agents)) or "no L3 agent"
    if not active:
        return HaState([], f"HA router {router_label} has no active instance ({states})")
    return HaState(active, f"HA router {router_label} is active on {len(active)} nodes at once ({states}): split brain")


# --- segments --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    network_type: str | None
    physical_network: str | None
    segmentation_id: int | None

    @classmethod
    def from_api(cls, s: dict[str, Any]) -> Segment:
        """One entry of a network's `segments` (api-ref: networks/network-multi-show-response.json)."""
        seg = s.get("provider:segmentation_id", s.get("segmentation_id"))
        return cls(
            s.get("provider:network_type", s.get("network_type")),
            s.get("provider:physical_network", s.get("physical_network")),
            int(seg) if seg not in (None, "") else None,
        )

    def describe(self) -> str:
        return (
            f"{self.network_type or '?'}"
            + (f" {self.segmentation_id}" if self.segmentation_id is not None else "")
            + (f" on {self.physical_network}" if self.physical_network else "")
        )


def bound_segment(segments: list[Segment], ovs_conf: dict[str, Any] | None) -> Segment | None:
    """The segment ML2 binds on a host, from its Open vSwitch agent's configurations.

    neutron/plugins/ml2/drivers/mech_agent.py: AgentMechanismDriverBase.bind_port tries the segments in
    order and binds the first for which check_segment_for_agent holds: the type is one the agent handles
    (its tunnel_types, plus flat/vlan/local), and a flat or VLAN segment's physical_network is in its
    bridge_mappings. None: no agent known or no segment it could bind.
    """
    if not ovs_conf:
        return None
    tunnels = set(ovs_conf.get("tunnel_types") or [])
    mappings = ovs_conf.get("bridge_mappings") or {}
    for seg in segments:
        if seg.network_type in ("flat", "vlan"):
            if seg.physical_network in mappings:
                return seg
        elif seg.network_type == "local" or seg.network_type in tunnels:
            return seg
    return None


# --- what steth can check on the host -----------------------------------------------------------------

# neutron_lib/api/definitions/portbindings.py: VNIC_* and VIF_TYPE_*. Only vnic_type normal with vif_type ovs
# is a tap (or qbr/qvb/qvo chain) on br-int; os-vif (vif_plug_ovs) plugs vhostuser as a vhu<id> socket port,
# SR-IOV (direct, macvtap, direct-physical, ...) is a VF handed to the VM, never seen by br-int.
TAP_VIF_TYPES = {"ovs", "bridge", "tap"}


def not_applicable(vnic_type: str | None, vif_type: str | None) -> str:
    """Why the tap/qbr/OVS checks do not apply to a port ('' when they do)."""
    vnic = vnic_type or "normal"
    if vnic != "normal":
        return (
            f"binding:vnic_type {vnic} (vif_type {vif_type or '?'}): the VM has a passed-through device, "
            "no tap on br-int"
        )
    if vif_type == "vhostuser":
        return "binding:vif_type vhostuser: a DPDK vhost-user socket port (vhu...), no tap or kernel device"
    if vif_type and vif_type not in TAP_VIF_TYPES and vif_type not in ("unbound", "binding_failed"):
        return f"binding:vif_type {vif_type}: not plugged as a tap on br-int"
    return ""


# --- host names ------------------------------------------------------------------------------------


def short(name: str) -> str:
    return name.split(".", 1)[0].lower()


def same_host(a: str | None, b: str | None) -> bool:
    """Nova's OS-EXT-SRV-ATTR:host, Neutron's binding:host_id and a steth node name are one host when equal,
    or equal up to the domain: Nova and Neutron both default to socket.gethostname() (nova/conf/netconf.py
    `host`, neutron/conf/common.py `host`), short or FQDN depending on how the host was set up."""
    return bool(a and b) and (a == b or short(a) == short(b))


def parse_host_map(values: Iterable[str]) -> dict[str, str]:
    """--host-map OLD=NEW (repeatable, or STETH_HOST_MAP="a=b c=d"): OpenStack's name -> steth's node name."""
    out = {}
    for value in values:
        for item in value.split():
            old, sep, new = item.partition("=")
            if not sep or not old or not new:
                raise ValueError(f"--host-map wants OLD=NEW (OpenStack's host name = steth's node name), not {item!r}")
            out[old] = new
    return out


def node_for(host: str, nodes: Iterable[str], host_map: dict[str, str] | None = None) -> str:
    """The steth node name of an OpenStack host: the mapping first, then the same name, then the same short name.
    The host itself when no node matches (the probe to it then gets no reply, named as such)."""
    host_map = host_map or {}
    if host in host_map:
        return host_map[host]
    nodes = list(nodes)
    if host in nodes:
        return host
    return next((n for n in nodes if same_host(n, host)), host)
