"""From a site plan to the requirements `steth validate` checks: pure functions, no I/O.

    plan = load_plan("site.yaml")                        # steth.controller.validate_plan
    present = {"compute-1": ["compute"], ...}            # from presence: node -> roles
    presence = check_presence(plan, present)             # missing / unexpected nodes, counts per role
    reqs = requirements(plan, expected_nodes(plan, present))
    for group in schedule(reqs):                         # groups in order
        ...                                              # the requirements of a group at once,
        for step in requirement.steps:                   # the steps of one requirement in order
            args = step_args(requirement, step, addresses)   # node -> the probe's args for this step

What may run together and what must not (`stage`, `parallel`):
  0 presence     read from the presence bucket before anything is sent;
  1 mesh, mtu, endpoint   light traffic (pings, don't-fragment pings, TCP handshakes): all at once;
  2 vlan         one physnet and one batch of VLANs at a time: every node captures on its trunk, and
                 two checks at once would share the capture (and its buffer);
  3 bandwidth    one pair at a time, alone: iperf3 fills the link, which would disturb every other check
                 and every other pair.
Steps of a requirement always run in order: MTU rounds (each node measures one target per request), VLAN
batches (at most MAX_VLANS per vlan-check request), bandwidth pairs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from steth.schemas.probes.vlan_check import MAX_VLANS
from steth.schemas.validate_plan import Plan, Plane, format_vlan_ranges

Kind = Literal["presence", "mesh", "mtu", "vlan", "bandwidth", "endpoint"]
KINDS: tuple[str, ...] = ("presence", "mesh", "mtu", "vlan", "bandwidth", "endpoint")

STAGE_PRESENCE = 0
STAGE_LIGHT = 1
STAGE_VLAN = 2
STAGE_BANDWIDTH = 3

# Probe arguments the plan does not set: the defaults of `steth mesh`, `steth mtu`, `steth vlan-check`.
MESH_ARGS = {"count": 3, "interval_s": 0.2, "max_loss": 0.0}
MTU_ARGS = {"attempts": 2, "wait_s": 1.0}
VLAN_ARGS = {"mode": "frames", "frames": 3}


class Step(BaseModel):
    """One request (or, for bandwidth, one iperf3 pair) of a requirement."""

    model_config = ConfigDict(frozen=True)

    label: str  # "VLANs 100-299", "compute-1 -> compute-2", "round 1 of 2"
    nodes: tuple[str, ...]  # the nodes that take part in this step
    pairs: tuple[tuple[str, str], ...] = ()  # (from, to): mtu sender -> target; bandwidth client -> server
    vlans: tuple[int, ...] = ()  # vlan: this batch


class Requirement(BaseModel):
    """One line of the validation report: something the plan says must hold, and how to check it."""

    model_config = ConfigDict(frozen=True)

    id: str  # stable and unique: "presence", "mesh:mgmt", "mtu:data", "vlan:physnet1", "endpoint:keystone"
    kind: Kind
    title: str  # what must hold, for people
    source: str  # where the plan says so: "planes[1]", "tunnel", "endpoints[0]"
    stage: int
    parallel: bool  # may run at the same time as the other parallel requirements of its stage
    probe: str | None  # None: no request (presence); bandwidth: the iperf-server/client/stop recipe
    args: dict[str, Any] = Field(default_factory=dict)  # probe args for every node (addresses: step_args)
    node_args: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per node (the vlan-check interface)
    plane_by_node: dict[str, str] = Field(default_factory=dict)  # node -> CIDR or interface: AgentInfo.address_on
    bridge_by_node: dict[str, str] = Field(default_factory=dict)  # node -> OVS bridge whose uplink is the trunk
    nodes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    expect: dict[str, Any] = Field(default_factory=dict)  # thresholds: mtu_bytes, min_bps, vlans, address ...
    plane: str | None = None
    physnet: str | None = None
    endpoint: str | None = None
    blocked: str = ""  # why it cannot run with these nodes (then: incomplete, not failed)


# --- presence ----------------------------------------------------------------------------------------


class PresenceCheck(BaseModel):
    """The site's nodes against the plan."""

    missing: list[str] = []  # named in the plan, not present
    unexpected: list[str] = []  # present, neither named nor of a counted role
    wrong_roles: dict[str, dict[str, list[str]]] = {}  # node -> {"expected": [...], "present": [...]}
    counts: dict[str, dict[str, int]] = {}  # role -> {"expected": N, "present": M} (role_counts only)

    @property
    def short_roles(self) -> list[str]:
        return [r for r, c in self.counts.items() if c["present"] < c["expected"]]

    @property
    def extra_roles(self) -> list[str]:
        return [r for r, c in self.counts.items() if c["present"] > c["expected"]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_roles or self.short_roles or self.extra_roles)

    def findings(self) -> list[str]:
        out = [f"missing: {n}" for n in self.missing]
        out += [f"unexpected: {n}" for n in self.unexpected]
        for node, roles in self.wrong_roles.items():
            out.append(
                f"{node}: roles {', '.join(roles['present']) or 'none'}, plan says {', '.join(roles['expected'])}"
            )
        for role in self.short_roles + self.extra_roles:
            c = self.counts[role]
            out.append(f"role {role}: {c['present']} present, {c['expected']} expected")
        return out


def check_presence(plan: Plan, present: Mapping[str, Sequence[str]]) -> PresenceCheck:
    """Compare the present nodes (node -> roles) with the plan's named nodes and role counts."""
    named = {n.name: sorted(n.roles) for n in plan.nodes}
    result = PresenceCheck()
    result.missing = sorted(n for n in named if n not in present)
    for node, roles in named.items():
        if node in present and not set(roles) <= set(present[node]):
            result.wrong_roles[node] = {"expected": roles, "present": sorted(present[node])}
    counted = set(plan.role_counts)
    result.unexpected = sorted(n for n, roles in present.items() if n not in named and not counted & set(roles))
    for role, count in sorted(plan.role_counts.items()):
        have = sum(1 for roles in present.values() if role in roles)
        result.counts[role] = {"expected": count, "present": have}
    return result


def expected_nodes(plan: Plan, present: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """The nodes the checks run on (node -> roles): the plan's named nodes (missing ones included, so that they
    show as no reply), and the present nodes of a counted role. Without `present`, the named nodes only."""
    nodes = {n.name: sorted(n.roles) for n in plan.nodes}
    counted = set(plan.role_counts)
    for node, roles in (present or {}).items():
        if node not in nodes and counted & set(roles):
            nodes[node] = sorted(roles)
    return dict(sorted(nodes.items()))


# --- requirements ------------------------------------------------------------------------------------


def requirements(
    plan: Plan, nodes: Mapping[str, Sequence[str]] | None = None, vlan_batch: int = MAX_VLANS
) -> list[Requirement]:
    """Every requirement the plan implies, in the order they run. `nodes` (node -> roles, see expected_nodes)
    defaults to the plan's named nodes; `vlan_batch` (at most MAX_VLANS) is the VLANs per vlan-check request."""
    if not 1 <= vlan_batch <= MAX_VLANS:
        raise ValueError(f"vlan_batch must be 1..{MAX_VLANS}")
    nodes = {n: sorted(r) for n, r in (nodes if nodes is not None else expected_nodes(plan)).items()}
    all_roles = plan.roles()
    out = [_presence(plan)]
    for i, plane in enumerate(plan.planes):
        members = _plane_members(plan, plane, nodes, all_roles)
        selectors = _selectors(plan, plane, members, nodes, all_roles)
        if plane.mesh:
            out.append(_mesh(plane, i, members, selectors, all_roles))
        mtu = plan.required_mtu(plane)
        if mtu:
            out.append(_mtu(plan, plane, i, mtu, members, selectors, all_roles))
    for i, physnet in enumerate(plan.physnets):
        roles = physnet.physnet_roles(all_roles)
        members = _members(nodes, roles)
        if not physnet.trunked and physnet.roles is None:  # the hosts that map it (Neutron's bridge_mappings)
            members = [n for n in members if n in plan.mapped(physnet.name)]
        node_args, bridges = {}, {}
        for node in members:
            uplink, bridge = physnet.trunk_for([r for r in nodes[node] if r in roles])
            if not uplink and not bridge and node in plan.hosts:  # Neutron's mappings (hosts[], --from-openstack)
                uplink = plan.hosts[node].interface_mappings.get(physnet.name)
                bridge = plan.hosts[node].bridge_mappings.get(physnet.name)
            if uplink:
                node_args[node] = {"interface": uplink}
            elif bridge:
                bridges[node] = bridge
        vlans = physnet.vlan_ids()
        batches = [vlans[k : k + vlan_batch] for k in range(0, len(vlans), vlan_batch)]
        steps = tuple(
            Step(label=f"VLANs {format_vlan_ranges(b)}", nodes=tuple(members), vlans=tuple(b)) for b in batches
        )
        count = counted(len(batches), "batch", "batches")
        out.append(
            Requirement(
                id=f"vlan:{physnet.name}",
                kind="vlan",
                title=f"physnet {physnet.name}: VLANs {physnet.vlans} ({len(vlans)}) pass between every pair "
                f"({counted(len(members), 'node')}, {count})",
                source=f"physnets[{i}]",
                stage=STAGE_VLAN,
                parallel=False,
                probe="vlan-check",
                args=dict(VLAN_ARGS),
                node_args=node_args,
                bridge_by_node=bridges,
                nodes=tuple(members),
                roles=tuple(roles),
                steps=steps if len(members) >= 2 else (),
                expect={"vlans": physnet.vlans, "vlan_count": len(vlans)},
                physnet=physnet.name,
                blocked=_too_few(members, f"physnet {physnet.name}"),
            )
        )
    for i, plane in enumerate(plan.planes):
        if plane.bandwidth:
            members = _plane_members(plan, plane, nodes, all_roles)
            out.append(_bandwidth(plane, i, members, _selectors(plan, plane, members, nodes, all_roles), all_roles))
    for i, ep in enumerate(plan.endpoints):
        members = _members(nodes, ep.from_roles)
        out.append(
            Requirement(
                id=f"endpoint:{ep.name}",
                kind="endpoint",
                title=f"{ep.name} {ep.address} answers from {', '.join(ep.from_roles)} ({counted(len(members), 'node')})",
                source=f"endpoints[{i}]",
                stage=STAGE_LIGHT,
                parallel=True,
                probe="tcp-check",
                args={"targets": [ep.address], "connect_timeout_s": ep.connect_timeout_s},
                nodes=tuple(members),
                roles=tuple(ep.from_roles),
                steps=(Step(label=f"TCP connect to {ep.address}", nodes=tuple(members)),) if members else (),
                expect={"address": ep.address},
                endpoint=ep.name,
                blocked="" if members else f"no node of role {', '.join(ep.from_roles)}",
            )
        )
    out.sort(key=lambda r: r.stage)  # stable: plan order within a stage
    ids = [r.id for r in out]
    assert len(ids) == len(set(ids)), f"requirement ids must be unique: {ids}"
    return out


def schedule(reqs: Sequence[Requirement]) -> list[list[Requirement]]:
    """Groups to run one after another; the requirements of one group run at the same time."""
    groups: list[list[Requirement]] = []
    for stage in sorted({r.stage for r in reqs}):
        in_stage = [r for r in reqs if r.stage == stage]
        together = [r for r in in_stage if r.parallel]
        if together:
            groups.append(together)
        groups.extend([r] for r in in_stage if not r.parallel)
    return groups


def step_args(
    req: Requirement,
    step: Step,
    addresses: Mapping[str, str],
    interfaces: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """node -> the probe's args for one step, given each node's address on the plane (`addresses`) and, for a
    physnet known by its bridge only, each node's trunk interface found with ovs-uplinks (`interfaces`).

    mesh: ping with the other nodes' addresses; mtu: one target per sender; vlan: the batch, the nodes and the
    node's interface (the controller adds the token); endpoint: tcp-check as is; bandwidth: the iperf-client
    args of the pair's client (the controller adds the port its iperf-server got)."""
    out: dict[str, dict[str, Any]] = {}
    if req.kind == "mesh":
        for node in step.nodes:
            out[node] = {**req.args, "targets": [addresses[n] for n in step.nodes if n != node]}
    elif req.kind == "mtu":
        for sender, target in step.pairs:
            out[sender] = {**req.args, "target": addresses[target]}
    elif req.kind == "vlan":
        for node in step.nodes:
            iface = (interfaces or {}).get(node) or req.node_args.get(node, {}).get("interface")
            if not iface:
                raise KeyError(f"{node}: no trunk interface (bridge {req.bridge_by_node.get(node)}: run ovs-uplinks)")
            out[node] = {**req.args, "interface": iface, "vlans": list(step.vlans), "nodes": list(step.nodes)}
    elif req.kind == "endpoint":
        out = {node: dict(req.args) for node in step.nodes}
    elif req.kind == "bandwidth":
        for client, server in step.pairs:
            out[client] = {**req.args, "server": addresses[server], "bind": addresses[client]}
    return out


# --- one builder per kind ----------------------------------------------------------------------------------


def _presence(plan: Plan) -> Requirement:
    named = [n.name for n in plan.nodes]
    parts = []
    if named:
        shown = ", ".join(named[:6]) + (f" and {len(named) - 6} more" if len(named) > 6 else "")
        parts.append(f"{len(named)} named ({shown})")
    if plan.role_counts:
        parts.append(", ".join(f"{c} x {r}" for r, c in sorted(plan.role_counts.items())))
    return Requirement(
        id="presence",
        kind="presence",
        title="nodes present as planned: " + "; ".join(parts),
        source="nodes",
        stage=STAGE_PRESENCE,
        parallel=False,
        probe=None,
        nodes=tuple(named),
        roles=tuple(plan.roles()),
        expect={"nodes": named, "role_counts": dict(plan.role_counts)},
    )


def _mesh(plane: Plane, i: int, members: list[str], selectors: dict[str, str], all_roles: list[str]) -> Requirement:
    return Requirement(
        id=f"mesh:{plane.name}",
        kind="mesh",
        title=f"mesh on {plane.name}: every node pings every other ({counted(len(members), 'node')})",
        source=f"planes[{i}]",
        stage=STAGE_LIGHT,
        parallel=True,
        probe="ping",
        args=dict(MESH_ARGS),
        plane_by_node=selectors,
        nodes=tuple(members),
        roles=tuple(plane.plane_roles(all_roles)),
        steps=(Step(label="ping every other node", nodes=tuple(members)),) if len(members) >= 2 else (),
        expect={"max_loss": MESH_ARGS["max_loss"]},
        plane=plane.name,
        blocked=_too_few(members, f"plane {plane.name}"),
    )


def _mtu(
    plan: Plan, plane: Plane, i: int, mtu: int, members: list[str], selectors: dict[str, str], all_roles: list[str]
) -> Requirement:
    rounds = pair_rounds(members, plane.mtu_pairs)
    why = ""
    tunnel = plan.tunnel
    if tunnel and tunnel.plane == plane.name and mtu == tunnel.underlay_mtu:
        why = f" for {tunnel.overlay}: tenant {tunnel.tenant_mtu} + {tunnel.overhead_bytes}"
    pairs = sum(len(r) for r in rounds)
    return Requirement(
        id=f"mtu:{plane.name}",
        kind="mtu",
        title=f"path MTU >= {mtu} on {plane.name} with don't-fragment{why} ({plane.mtu_pairs}, {counted(pairs, 'pair')})",
        source="tunnel" if why and plane.mtu is None else f"planes[{i}]",
        stage=STAGE_LIGHT,
        parallel=True,
        probe="mtu",
        args={**MTU_ARGS, "expect_bytes": mtu, "max_bytes": mtu},
        plane_by_node=selectors,
        nodes=tuple(members),
        roles=tuple(plane.plane_roles(all_roles)),
        steps=tuple(
            Step(label=f"round {k + 1} of {len(rounds)}", nodes=_nodes_of(r), pairs=tuple(r))
            for k, r in enumerate(rounds)
        ),
        expect={"mtu_bytes": mtu},
        plane=plane.name,
        blocked=_too_few(members, f"plane {plane.name}"),
    )


def _bandwidth(
    plane: Plane, i: int, members: list[str], selectors: dict[str, str], all_roles: list[str]
) -> Requirement:
    bw = plane.bandwidth
    assert bw is not None
    pairs = [p for r in pair_rounds(members, bw.pairs) for p in r]
    args: dict[str, Any] = {
        "protocol": bw.protocol,
        "duration_s": bw.duration_s,
        "parallel": bw.parallel,
        "min_bps": bw.min_bps,
    }
    if bw.bitrate_bps is not None:
        args["bitrate_bps"] = int(bw.bitrate_bps)
    return Requirement(
        id=f"bandwidth:{plane.name}",
        kind="bandwidth",
        title=f"bandwidth on {plane.name} >= {format_bps(bw.min_bps)} {bw.protocol} ({bw.pairs}, {counted(len(pairs), 'pair')})",
        source=f"planes[{i}].bandwidth",
        stage=STAGE_BANDWIDTH,
        parallel=False,
        probe="iperf-client",
        args=args,
        plane_by_node=selectors,
        nodes=tuple(members),
        roles=tuple(plane.plane_roles(all_roles)),
        steps=tuple(Step(label=f"{a} -> {b}", nodes=(a, b), pairs=((a, b),)) for a, b in pairs),
        expect={"min_bps": bw.min_bps, "protocol": bw.protocol},
        plane=plane.name,
        blocked=_too_few(members, f"plane {plane.name}"),
    )


# --- helpers ---------------------------------------------------------------------------------------------


def pair_rounds(nodes: Sequence[str], mode: str) -> list[list[tuple[str, str]]]:
    """(from, to) pairs in rounds where every node sends at most once.

    ring: each node to the next in name order (one round; two nodes: both ways); all: every ordered pair,
    in N-1 rounds (round k: node i to node i+k)."""
    nodes = sorted(nodes)
    n = len(nodes)
    if n < 2:
        return []
    if mode == "ring":
        return (
            [[(nodes[i], nodes[(i + 1) % n]) for i in range(n)]]
            if n > 2
            else [[(nodes[0], nodes[1]), (nodes[1], nodes[0])]]
        )
    return [[(nodes[i], nodes[(i + k) % n]) for i in range(n)] for k in range(1, n)]


def format_bps(bps: float) -> str:
    """Decimal units, as iperf3 and the plan count: 1e9 -> '1 Gbit/s', 9.5e8 -> '950 Mbit/s'."""
    for scale, unit in ((1e12, "Tbit/s"), (1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if bps >= scale:
            return f"{bps / scale:.4g} {unit}"
    return f"{bps:.0f} bit/s"


def _members(nodes: Mapping[str, Sequence[str]], roles: Sequence[str]) -> list[str]:
    wanted = set(roles)
    return sorted(n for n, r in nodes.items() if wanted & set(r))


def _plane_members(plan: Plan, plane: Plane, nodes: Mapping[str, Sequence[str]], all_roles: list[str]) -> list[str]:
    members = _members(nodes, plane.plane_roles(all_roles))
    if not plane.located:  # the tunnel plane known by the hosts' tunnel_ip only: the nodes that have one
        members = [n for n in members if n in plan.tunnel_hosts()]
    return members


def _selectors(
    plan: Plan, plane: Plane, members: list[str], nodes: Mapping[str, Sequence[str]], all_roles: list[str]
) -> dict:
    """node -> what finds its address on the plane (AgentInfo.address_on): the plane's CIDR or interface, else
    (the tunnel plane) the host's tunnel_ip as a one-address network, which the node must hold."""
    roles = set(plane.plane_roles(all_roles))
    out = {}
    for node in members:
        sel = plane.selector_for([r for r in nodes[node] if r in roles])
        facts = plan.hosts.get(node)
        if not sel and facts and facts.tunnel_ip and plan.tunnel and plan.tunnel.plane == plane.name:
            sel = str(ipaddress.ip_network(facts.tunnel_ip))
        if sel:
            out[node] = sel
    return out


def _nodes_of(pairs: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(sorted({n for p in pairs for n in p}))


def _too_few(members: list[str], where: str) -> str:
    return "" if len(members) >= 2 else f"{where} needs at least two nodes; the plan gives {len(members)}"


def counted(count: int, one: str, many: str | None = None) -> str:
    """counted(1, "node") -> "1 node"; counted(3, "batch", "batches") -> "3 batches"."""
    return f"{count} {one if count == 1 else (many or one + 's')}"
