"""`steth validate PLAN --from-openstack`: what Neutron already knows, filled into the plan.

    facts = gather(Inventory(cloud))          # GET /v2.0/agents, /v2.0/networks, /os-hypervisors (admin)
    plan, notes = merge(plan, facts)          # pure: the completed plan, and what was filled or disagreed

The plan only has to add what Neutron does not hold (VLAN ranges, bandwidth, endpoints). From OpenStack:

- nodes and roles, when the plan names none (compute: the hypervisors' hosts; network: the hosts of DHCP, L3
  and metadata agents, as `--expect-from openstack` counts them);
- per host (the plan's `hosts`): bridge_mappings and the tunnel endpoint from the L2 agent's `configurations`;
- the tunnel: its overlay from the agents' tunnel_types, its plane from their tunneling_ip (each node must hold
  its address), tenant_mtu from the MTUs Neutron gave the networks of that overlay;
- physnets: the VLANs of the networks' segments (provider:* or segments), checked on the hosts that map them.

The plan's values win when both say something; every disagreement becomes a `conflict` note (reported on
stderr and in the report), every value taken from OpenStack a `filled` note.

Where each fact comes from upstream (openstack/neutron, neutron-lib):

- Open vSwitch agent: OVSNeutronAgent.__init__ sets self.agent_state['configurations'] with
  'bridge_mappings' (dict physnet -> bridge, from [ovs] bridge_mappings), 'tunnel_types' (list, [agent]
  tunnel_types) and 'tunneling_ip' (self.local_ip, [ovs] local_ip; None without tunnels), besides
  integration_bridge, l2_population, datapath_type ...: neutron/plugins/ml2/drivers/openvswitch/agent/
  ovs_neutron_agent.py. The server stores the dict as the agent's `configurations` (GET /v2.0/agents;
  openstacksdk `network.agents()`, attribute `configuration`).
- Linux bridge agent: LinuxBridgeManager.get_agent_configurations() reports 'bridge_mappings',
  'interface_mappings' (physnet -> interface) and, with VXLAN, 'tunneling_ip' and 'tunnel_types': ['vxlan']:
  neutron/plugins/ml2/drivers/linuxbridge/agent/linuxbridge_neutron_agent.py.
- OVN: NeutronAgent.as_dict() reports 'chassis_name' and 'bridge-mappings', the chassis'
  external_ids:ovn-bridge-mappings as text "physnet1:br-ex,physnet2:br-p2", and no tunnel address:
  neutron/plugins/ml2/drivers/ovn/agent/neutron_agent.py.
- A network's `mtu` (neutron-lib api/definitions/network_mtu.py); its segment as `provider:network_type`,
  `provider:physical_network`, `provider:segmentation_id` (api/definitions/provider_net.py), or, with several
  segments, `segments`, a list of dicts with those three keys (api/definitions/multiprovidernet.py). Both are
  admin-only by default policy. A tunnelled network's MTU is what Neutron computed as path MTU minus the
  overlay's overhead (neutron/plugins/ml2/drivers/type_tunnel.py get_mtu()), so the tunnel's underlay must
  carry that MTU plus the overhead again: that is tenant_mtu.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from steth.schemas.validate_plan import MAX_PHYSNETS, Plan, format_vlan_ranges, parse_vlan_ranges

L2_AGENT_TYPES = ("Open vSwitch agent", "Linux bridge agent", "OVN Controller agent", "OVN Controller Gateway agent")
OVERLAYS = ("vxlan", "geneve", "gre")  # what a plan's tunnel.overlay takes
TUNNEL_PLANE = "tunnel"  # the plane's name when OpenStack gives the tunnel and the plan none


@dataclass
class L2Agent:
    """The parts of one L2 agent's `configurations` a plan uses."""

    host: str
    agent_type: str
    bridge_mappings: dict[str, str] = field(default_factory=dict)
    interface_mappings: dict[str, str] = field(default_factory=dict)
    tunnel_ip: str | None = None
    tunnel_types: list[str] = field(default_factory=list)


@dataclass
class Segment:
    network_type: str | None
    physical_network: str | None
    segmentation_id: int | None


@dataclass
class NetworkFacts:
    id: str
    name: str
    mtu: int | None
    segments: list[Segment] = field(default_factory=list)


@dataclass
class OpenStackFacts:
    agents: list[L2Agent] = field(default_factory=list)
    networks: list[NetworkFacts] = field(default_factory=list)
    roles: dict[str, list[str]] = field(default_factory=dict)  # host -> steth roles (compute, network)
    where: str = ""


@dataclass
class Note:
    kind: Literal["filled", "conflict", "unused"]
    key: str  # the plan key it is about: nodes, hosts.compute-1, tunnel.tenant_mtu, physnets[0].vlans
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.key}: {self.message}"


# --- reading what OpenStack says ------------------------------------------------------------------------------


def _mappings(value: Any) -> dict[str, str]:
    """bridge_mappings as the OVS agent reports them (a dict) or as OVN does ("physnet1:br-ex,physnet2:br-x")."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if k and v}
    if isinstance(value, str):
        pairs = (p.strip().partition(":") for p in value.split(",") if p.strip())
        return {k.strip(): v.strip() for k, sep, v in pairs if sep and k.strip() and v.strip()}
    return {}


def l2_agent(agent_type: str, host: str, configurations: dict[str, Any]) -> L2Agent | None:
    """What one agent of GET /v2.0/agents says about its host; None for agents that are not L2 agents."""
    if agent_type not in L2_AGENT_TYPES:
        return None
    conf = configurations or {}
    bridges = _mappings(conf.get("bridge_mappings") or conf.get("bridge-mappings"))
    if agent_type == "Linux bridge agent":  # its bridge_mappings name Linux bridges: no OVS bridge to look up
        bridges = {}
    types = conf.get("tunnel_types") or []
    tunnel_ip = conf.get("tunneling_ip") or None
    try:
        tunnel_ip = str(ipaddress.ip_address(tunnel_ip)) if tunnel_ip else None
    except ValueError:
        tunnel_ip = None
    return L2Agent(
        host=host,
        agent_type=agent_type,
        bridge_mappings=bridges,
        interface_mappings=_mappings(conf.get("interface_mappings")),
        tunnel_ip=tunnel_ip if types else None,  # an address without tunnel types carries no tunnel
        tunnel_types=[str(t) for t in types] if isinstance(types, list) else [],
    )


def network_facts(n: Any) -> NetworkFacts:
    """From an openstacksdk Network (or anything with its attribute names)."""
    segments = []
    for s in getattr(n, "segments", None) or []:
        segments.append(
            Segment(
                s.get("provider:network_type"), s.get("provider:physical_network"), s.get("provider:segmentation_id")
            )
        )
    if not segments and getattr(n, "provider_network_type", None):
        segments.append(Segment(n.provider_network_type, n.provider_physical_network, n.provider_segmentation_id))
    return NetworkFacts(id=n.id, name=n.name or "", mtu=n.mtu, segments=segments)


def gather(inv: Any) -> OpenStackFacts:
    """Ask OpenStack (steth.controller.inventory.Inventory): agents, networks, the hosts' roles. Admin only."""
    inv.require_admin("--from-openstack (Neutron agents, provider attributes)")
    facts = OpenStackFacts(where=inv.where)
    for a in inv.neutron_agents():
        found = l2_agent(a.agent_type, a.host, a.configurations)
        if found is not None and a.host:
            facts.agents.append(found)
    facts.networks = inv.networks_facts()
    for role in ("compute", "network"):
        for host in inv.hosts_for_role(role):
            facts.roles.setdefault(host, []).append(role)
    return facts


# --- merging ----------------------------------------------------------------------------------------------


def merge(plan: Plan, facts: OpenStackFacts) -> tuple[Plan, list[Note]]:
    """The plan completed with OpenStack's facts (the plan wins), and a note per value filled or disagreeing.

    Raises ValueError (from Plan validation) when even the completed plan is not usable."""
    notes: list[Note] = []
    data = plan.model_dump(by_alias=True, exclude_none=True)
    _nodes(plan, facts, data, notes)
    _hosts(plan, facts, data, notes)
    _tunnel(plan, facts, data, notes)
    _physnets(plan, facts, data, notes)
    return Plan.model_validate(data), notes


def _nodes(plan: Plan, facts: OpenStackFacts, data: dict, notes: list[Note]) -> None:
    hosts = {h: sorted(r) for h, r in sorted(facts.roles.items())}
    if not plan.nodes and not plan.role_counts:
        data["nodes"] = [{"name": h, "roles": r} for h, r in hosts.items()]
        if hosts:
            notes.append(Note("filled", "nodes", f"{len(hosts)} from OpenStack: {_roles_text(hosts)}"))
        return
    named = {n.name: sorted(n.roles) for n in plan.nodes}
    counted = set(plan.role_counts)
    for host, roles in hosts.items():
        if host in named:
            if not set(roles) <= set(named[host]):
                notes.append(
                    Note(
                        "conflict",
                        "nodes",
                        f"{host}: OpenStack has it as {', '.join(roles)}, the plan as {', '.join(named[host])}",
                    )
                )
        elif not counted & set(roles):
            notes.append(Note("conflict", "nodes", f"{host}: OpenStack has it as {', '.join(roles)}; not in the plan"))


def _roles_text(hosts: dict[str, list[str]]) -> str:
    by_role: dict[str, list[str]] = {}
    for host, roles in hosts.items():
        for r in roles:
            by_role.setdefault(r, []).append(host)
    return "; ".join(f"{r}: {', '.join(h)}" for r, h in sorted(by_role.items()))


def _hosts(plan: Plan, facts: OpenStackFacts, data: dict, notes: list[Note]) -> None:
    hosts = data.setdefault("hosts", {})
    for agent in sorted(facts.agents, key=lambda a: (a.host, a.agent_type)):
        mine = hosts.setdefault(agent.host, {})
        given = plan.hosts.get(agent.host)
        filled = []
        for kind in ("bridge_mappings", "interface_mappings"):  # OVS (and OVN) agents; the Linux bridge agent
            for physnet, where in sorted(getattr(agent, kind).items()):
                have = getattr(given, kind).get(physnet) if given else None
                if have and have != where:
                    notes.append(
                        Note(
                            "conflict",
                            f"hosts.{agent.host}.{kind}.{physnet}",
                            f"Neutron's {agent.agent_type} maps it to {where}, the plan to {have}",
                        )
                    )
                elif not have:
                    mine.setdefault(kind, {})[physnet] = where
                    filled.append(f"{physnet}:{where}")
        if agent.tunnel_ip:
            have = given.tunnel_ip if given else None
            if have and have != agent.tunnel_ip:
                notes.append(
                    Note(
                        "conflict",
                        f"hosts.{agent.host}.tunnel_ip",
                        f"Neutron's {agent.agent_type} reports tunneling_ip {agent.tunnel_ip}, the plan {have}",
                    )
                )
            elif not have:
                mine["tunnel_ip"] = agent.tunnel_ip
                filled.append(f"tunneling_ip {agent.tunnel_ip} ({', '.join(agent.tunnel_types)})")
        if filled:
            notes.append(Note("filled", f"hosts.{agent.host}", f"{agent.agent_type}: {', '.join(filled)}"))
    if not hosts:
        data.pop("hosts")


def _tunnel_mtu(facts: OpenStackFacts, overlay: str) -> tuple[int | None, list[str]]:
    """The largest MTU Neutron gave a network of this overlay, and those networks' names."""
    nets = [n for n in facts.networks if n.mtu and any(s.network_type == overlay for s in n.segments)]
    if not nets:
        return None, []
    top = max(n.mtu or 0 for n in nets)
    return top, [n.name or n.id for n in nets if n.mtu == top]


def _tunnel(plan: Plan, facts: OpenStackFacts, data: dict, notes: list[Note]) -> None:
    tunnelled = [a for a in facts.agents if a.tunnel_ip]
    types = sorted({t for a in tunnelled for t in a.tunnel_types})
    if plan.tunnel is not None:
        t = plan.tunnel
        if types and t.overlay not in types:
            notes.append(
                Note(
                    "conflict",
                    "tunnel.overlay",
                    f"the plan says {t.overlay}, Neutron's agents tunnel with {', '.join(types)}",
                )
            )
        mtu, names = _tunnel_mtu(facts, t.overlay)
        if mtu is not None:
            if "tenant_mtu" not in t.model_fields_set:
                data["tunnel"]["tenant_mtu"] = mtu
                notes.append(Note("filled", "tunnel.tenant_mtu", f"{mtu}: the MTU of {t.overlay} network {names[0]}"))
            elif mtu > t.tenant_mtu:
                notes.append(
                    Note(
                        "conflict",
                        "tunnel.tenant_mtu",
                        f"Neutron gives {t.overlay} network {names[0]} MTU {mtu}, above the plan's {t.tenant_mtu}",
                    )
                )
        plane = plan.plane(t.plane)
        if plane is not None and plane.cidr:
            net = ipaddress.ip_network(plane.cidr)
            for a in tunnelled:
                if ipaddress.ip_address(a.tunnel_ip) not in net:
                    notes.append(
                        Note(
                            "conflict",
                            f"hosts.{a.host}.tunnel_ip",
                            f"Neutron's tunneling_ip {a.tunnel_ip} is outside plane {plane.name}'s {plane.cidr} "
                            "(the plane is checked as the plan gives it)",
                        )
                    )
        return
    overlays = [t for t in types if t in OVERLAYS]
    if not overlays:
        if types:
            notes.append(Note("unused", "tunnel", f"tunnel types {', '.join(types)}: not one a plan takes"))
        return
    # Several types (a migration): the one most networks use, else vxlan before geneve before gre.
    used = {o: sum(1 for n in facts.networks if any(s.network_type == o for s in n.segments)) for o in overlays}
    overlay = sorted(overlays, key=lambda o: (-used[o], OVERLAYS.index(o)))[0]
    name = TUNNEL_PLANE
    while plan.plane(name) is not None:
        name += "-underlay"
    data.setdefault("planes", []).append({"name": name, "mesh": True})
    tunnel: dict[str, Any] = {"plane": name, "overlay": overlay}
    mtu, names = _tunnel_mtu(facts, overlay)
    if mtu is not None:
        tunnel["tenant_mtu"] = mtu
    data["tunnel"] = tunnel
    where = f"tenant_mtu {mtu} (network {names[0]})" if mtu else "tenant_mtu 1500 (no such network yet)"
    hosts = ", ".join(sorted(a.host for a in tunnelled))
    notes.append(Note("filled", "tunnel", f"{overlay} on plane {name} (tunneling_ip of {hosts}), {where}"))


def _physnets(plan: Plan, facts: OpenStackFacts, data: dict, notes: list[Note]) -> None:
    in_use: dict[str, dict[int, list[str]]] = {}  # physnet -> VLAN -> networks
    for n in facts.networks:
        for s in n.segments:
            if s.network_type == "vlan" and s.physical_network and s.segmentation_id:
                in_use.setdefault(s.physical_network, {}).setdefault(int(s.segmentation_id), []).append(n.name or n.id)
    mapped = {p for a in facts.agents for p in (*a.bridge_mappings, *a.interface_mappings)}
    mapped |= {p for f in plan.hosts.values() for p in (*f.bridge_mappings, *f.interface_mappings)}
    for i, ph in enumerate(plan.physnets):
        planned = set(parse_vlan_ranges(ph.vlans))
        outside = sorted(set(in_use.get(ph.name, {})) - planned)
        if outside:
            nets = sorted({net for v in outside for net in in_use[ph.name][v]})
            notes.append(
                Note(
                    "conflict",
                    f"physnets[{i}].vlans",
                    f"networks {', '.join(nets)} use VLAN {format_vlan_ranges(outside)} on {ph.name}, outside the "
                    f"plan's {ph.vlans} (the plan's VLANs are checked)",
                )
            )
        if isinstance(ph.bridge, str):
            for a in facts.agents:
                bridge = a.bridge_mappings.get(ph.name)
                if bridge and bridge != ph.bridge:
                    notes.append(
                        Note(
                            "conflict",
                            f"physnets[{i}].bridge",
                            f"{a.host}: Neutron maps {ph.name} to {bridge}, the plan to {ph.bridge} (the plan's is used)",
                        )
                    )
    planned_names = {ph.name for ph in plan.physnets}
    for physnet in sorted(set(in_use) - planned_names):
        vlans = format_vlan_ranges(sorted(in_use[physnet]))
        if physnet not in mapped:
            notes.append(Note("unused", "physnets", f"{physnet} (VLANs {vlans}): no agent maps it, not checked"))
            continue
        if len(data.setdefault("physnets", [])) >= MAX_PHYSNETS:
            notes.append(Note("unused", "physnets", f"{physnet}: more than {MAX_PHYSNETS} physnets, not checked"))
            continue
        data["physnets"].append({"name": physnet, "vlans": vlans})
        nets = sorted({net for names in in_use[physnet].values() for net in names})
        notes.append(Note("filled", "physnets", f"{physnet}: VLANs {vlans} (the segments of {', '.join(nets)})"))
    for physnet in sorted(mapped - planned_names - set(in_use)):
        notes.append(
            Note(
                "unused",
                "physnets",
                f"{physnet} is mapped but neither the plan nor a network gives its VLANs (Neutron's "
                "network_vlan_ranges is not in its API): not checked",
            )
        )
