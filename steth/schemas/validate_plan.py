"""The site plan of `steth validate PLAN`: what a site must look like before it carries VMs.

A plan names the nodes and roles expected, the planes (a CIDR or an interface per role) with their MTU and
minimum bandwidth, the physnets with their bridge or uplink per role and VLAN ranges, the tunnel underlay and
its overlay, and the control-plane endpoints that must answer from given roles. docs/validate.md documents
every key; steth.controller.validate_plan loads one from YAML with errors naming the line.

Models only (stdlib + pydantic + steth.schemas): unknown keys are errors, every value is bounded.

Checks that span several parts of the plan (a role named in a plane but declared nowhere, a tunnel on a plane
whose MTU is too small for it) are `Plan.problems()`, each with the location of the offending key, so that the
loader can name its line. `Plan.model_validate` runs them too, unless the validation context says
{"defer_cross_checks": True} (what the loader does, to report them with line numbers).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from steth.schemas.subjects import NODE_NAME_RE, ROLE_RE
from steth.schemas.types import HostPort, InterfaceName

# --- bounds ----------------------------------------------------------------------------------------------

# An MTU a plan may require: from the smallest datagram every IPv4 host must accept (RFC 791) to the largest
# jumbo frame common switches carry.
MIN_MTU = 576
MAX_MTU = 9216
MAX_NODES = 4096
MAX_ROLES = 64
MAX_PLANES = 16
MAX_PHYSNETS = 16
MAX_ENDPOINTS = 64  # also what one tcp-check request takes (TcpCheckParams.targets)
MAX_BPS = 400_000_000_000  # as IperfClientParams.min_bps
VLAN_MIN, VLAN_MAX = 1, 4094  # 802.1Q; neutron_lib.constants MIN_VLAN_TAG / MAX_VLAN_TAG

# --- tunnel overheads, as Neutron computes them ------------------------------------------------------------
#
# Neutron gives a tunnelled network the MTU  min(global_physnet_mtu, [ml2] path_mtu) - IP header - encap:
#   neutron/plugins/ml2/drivers/type_tunnel.py, _TunnelTypeDriverBase.get_mtu(): subtracts
#     neutron_lib.constants.IP_HEADER_LENGTH[[ml2] overlay_ip_version]  (4: 20, 6: 40 bytes);
#   neutron/plugins/ml2/drivers/type_vxlan.py, VxlanTypeDriver.get_mtu(): subtracts
#     neutron_lib.constants.VXLAN_ENCAP_OVERHEAD = 30  (outer Ethernet 14 + UDP 8 + VXLAN 8);
#   neutron/plugins/ml2/drivers/type_gre.py, GreTypeDriver.get_mtu(): subtracts GRE_ENCAP_OVERHEAD = 22;
#   neutron/plugins/ml2/drivers/type_geneve.py, GeneveTypeDriver.get_mtu(): subtracts
#     [ml2_type_geneve] max_header_size, whose default is neutron_lib.constants.GENEVE_ENCAP_MIN_OVERHEAD = 30
#     (neutron/conf/plugins/ml2/drivers/driver_type.py), but the OVN mechanism driver refuses to start below
#     OVN_MIN_GENEVE_MAX_HEADER_SIZE = 38 (neutron/plugins/ml2/drivers/ovn/mech_driver/mech_driver.py): OVN
#     carries its own Geneve option, so 38 is what an ML2/OVN site uses.
# So the underlay must carry tenant MTU + 50 for VXLAN over IPv4, + 58 for Geneve (OVN) and + 42 for GRE.
IP_HEADER_BYTES = {4: 20, 6: 40}
VXLAN_ENCAP_BYTES = 30
GRE_ENCAP_BYTES = 22
GENEVE_MIN_HEADER_BYTES = 30  # neutron_lib GENEVE_ENCAP_MIN_OVERHEAD: Geneve without options
GENEVE_OVN_HEADER_BYTES = 38  # neutron's OVN_MIN_GENEVE_MAX_HEADER_SIZE
GENEVE_MAX_HEADER_BYTES = 8 + 14 + 8 + 252  # base header + inner Ethernet + UDP + the most options Geneve allows

NEITHER_OR_BOTH = "give either cidr or interface (not both, not neither)"

# --- value types ---------------------------------------------------------------------------------------

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Role = Annotated[str, StringConstraints(pattern=ROLE_RE.pattern)]
NodeName = Annotated[str, StringConstraints(pattern=NODE_NAME_RE.pattern)]
Mtu = Annotated[int, Field(ge=MIN_MTU, le=MAX_MTU)]

_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:bit/s|bps|b)?\s*$", re.IGNORECASE)
_RATE_SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_rate(value: Any) -> Any:
    """Bits per second from a number or text like 250000, 100k, 900M, 2.5G (decimal, as iperf3 counts)."""
    if isinstance(value, bool):
        raise ValueError("a rate is a number of bits per second, like 900M or 10G")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        m = _RATE.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a rate: use bits per second like 250000, 900M or 10G")
        return float(m.group(1)) * _RATE_SCALE[m.group(2).lower()]
    return value  # pydantic reports the wrong type


Rate = Annotated[float, Field(ge=0, le=MAX_BPS), BeforeValidator(parse_rate)]


def parse_vlan_ranges(text: str) -> list[int]:
    """'100-199,300' -> [100, ..., 199, 300]. Ranges may be of any length within 1..4094; overlaps merge."""
    out: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        lo, sep, hi = (s.strip() for s in part.partition("-"))
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"{part!r} is not a VLAN id or a range like 100-199")
        first, last = int(lo), int(hi) if sep else int(lo)
        for vid in (first, last):
            if not VLAN_MIN <= vid <= VLAN_MAX:
                raise ValueError(f"VLAN {vid} is outside {VLAN_MIN}..{VLAN_MAX}")
        if last < first:
            raise ValueError(f"{part!r}: the range is reversed")
        out.update(range(first, last + 1))
    if not out:
        raise ValueError("no VLAN given")
    return sorted(out)


def format_vlan_ranges(vlans: list[int]) -> str:
    """[90, 91, 92, 95] -> '90-92,95'."""
    parts: list[list[int]] = []
    for v in sorted(set(vlans)):
        if parts and parts[-1][1] == v - 1:
            parts[-1][1] = v
        else:
            parts.append([v, v])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in parts)


def _vlan_ranges(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("VLANs are text like '100-199,300'")
    return format_vlan_ranges(parse_vlan_ranges(value))


VlanRanges = Annotated[str, BeforeValidator(_vlan_ranges), StringConstraints(max_length=20000)]


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a network like 10.78.0.0/24") from None


Network = Annotated[str, StringConstraints(max_length=64), AfterValidator(_network)]

# An interface (or bridge) name for every role, or one name per role.
PerRole = InterfaceName | Annotated[dict[Role, InterfaceName], Field(min_length=1, max_length=MAX_ROLES)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _for_role(value: str | dict[str, str] | None, role: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.get(role)


# --- the plan ----------------------------------------------------------------------------------------


class NodeSpec(_Model):
    """A node the site must have, by its Nova/Neutron host name (the agent's node name)."""

    name: NodeName = Field(description="the host name, as the agent reports it (Nova/Neutron `host`)")
    roles: list[Role] = Field(min_length=1, max_length=16, description="its roles, as in the agent's config")


class Bandwidth(_Model):
    """A minimum throughput between the nodes of a plane, measured with iperf3 one pair at a time."""

    min_bps: Rate = Field(description="received bits/s below which a pair fails: 900M, 9.5G, 250000")
    protocol: Literal["tcp", "udp"] = Field("tcp", description="tcp, or udp (then bitrate_bps is required)")
    pairs: Literal["ring", "all"] = Field(
        "ring", description="ring: each node sends to the next; all: every ordered pair (N x (N-1) tests)"
    )
    duration_s: float = Field(5.0, ge=1.0, le=300.0, description="seconds each pair sends")
    parallel: int = Field(1, ge=1, le=16, description="parallel streams per test")
    bitrate_bps: Rate | None = Field(
        None, description="UDP: the rate to send at (iperf3's UDP default is only 1 Mbit/s); at least min_bps"
    )

    @model_validator(mode="after")
    def _udp_rate(self) -> Bandwidth:
        if self.protocol == "udp" and self.bitrate_bps is None:
            raise ValueError("protocol udp needs bitrate_bps (iperf3 sends UDP at 1 Mbit/s by default)")
        if self.bitrate_bps is not None and self.bitrate_bps < self.min_bps:
            raise ValueError(f"bitrate_bps {self.bitrate_bps:g} is below min_bps {self.min_bps:g}: it cannot pass")
        return self


class Plane(_Model):
    """A network the nodes share (management, data/tunnel, storage): reached by a CIDR or an interface per role."""

    name: Name = Field(description="a name for reports: data, mgmt, storage")
    cidr: Network | None = Field(None, description="the plane's network: each node's address in it is used")
    interface: PerRole | None = Field(
        None, description="the interface carrying the plane: one name, or a name per role ({compute: data0})"
    )
    roles: list[Role] | None = Field(
        None,
        max_length=MAX_ROLES,
        description="roles on this plane (default: the roles of `interface` given per role, else every role)",
    )
    mtu: Mtu | None = Field(
        None, description=f"path MTU (bytes) every pair must pass with don't-fragment, {MIN_MTU}..{MAX_MTU}"
    )
    mtu_pairs: Literal["ring", "all"] = Field(
        "ring", description="pairs whose path MTU is measured: ring (each node to the next) or all"
    )
    mesh: bool = Field(True, description="every node pings every other on this plane")
    bandwidth: Bandwidth | None = Field(None, description="a minimum throughput between the plane's nodes")

    @model_validator(mode="after")
    def _one_way_to_find_it(self) -> Plane:
        # Neither is a plan problem (Plan.problems) unless it is the tunnel plane and hosts[] (or
        # --from-openstack) give every node's tunnel address.
        if self.cidr is not None and self.interface is not None:
            raise ValueError(NEITHER_OR_BOTH)
        return self

    @property
    def located(self) -> bool:
        """Whether the plan itself says where the plane is (a CIDR or an interface)."""
        return self.cidr is not None or self.interface is not None

    def plane_roles(self, all_roles: list[str]) -> list[str]:
        if self.roles is not None:
            return list(self.roles)
        if isinstance(self.interface, dict):
            return sorted(self.interface)
        return list(all_roles)

    def selector_for(self, roles: list[str]) -> str | None:
        """What identifies the plane on a node with these roles: the CIDR, or its interface (AgentInfo.address_on)."""
        if self.cidr:
            return self.cidr
        for role in roles:
            name = _for_role(self.interface, role)
            if name:
                return name
        return None


class Physnet(_Model):
    """A Neutron physical network: its trunk (an OVS bridge or an uplink per role) and the VLANs it must pass."""

    name: Name = Field(description="the physnet name, as in Neutron's network_vlan_ranges and bridge_mappings")
    bridge: PerRole | None = Field(
        None, description="the OVS bridge of the physnet (bridge_mappings): one name, or a name per role"
    )
    uplink: PerRole | None = Field(
        None, description="the interface the VLANs leave on: one name, or a name per role (preferred over bridge)"
    )
    vlans: VlanRanges = Field(description="VLAN ids that must pass between every pair: '100-299,310'")
    roles: list[Role] | None = Field(
        None,
        max_length=MAX_ROLES,
        description="roles attached to the physnet (default: the roles of bridge/uplink given per role, else every role)",
    )

    @property
    def trunked(self) -> bool:
        """Whether the plan itself gives a bridge or an uplink (else: hosts[].bridge_mappings, Neutron's)."""
        return self.bridge is not None or self.uplink is not None

    def vlan_ids(self) -> list[int]:
        return parse_vlan_ranges(self.vlans)

    def physnet_roles(self, all_roles: list[str]) -> list[str]:
        if self.roles is not None:
            return list(self.roles)
        named = set()
        for value in (self.bridge, self.uplink):
            if isinstance(value, dict):
                named |= set(value)
        return sorted(named) if named else list(all_roles)

    def trunk_for(self, roles: list[str]) -> tuple[str | None, str | None]:
        """(uplink, bridge) of a node with these roles; either may be None."""
        uplink = next((u for r in roles if (u := _for_role(self.uplink, r))), None)
        bridge = next((b for r in roles if (b := _for_role(self.bridge, r))), None)
        return uplink, bridge


class HostFacts(_Model):
    """What Neutron's L2 agent reports about one host: `--from-openstack` fills these, a plan may give them."""

    bridge_mappings: Annotated[dict[Name, InterfaceName], Field(max_length=MAX_PHYSNETS)] = Field(
        default_factory=dict,
        description="physnet -> the host's OVS bridge for it (the agent's bridge_mappings)",
    )
    interface_mappings: Annotated[dict[Name, InterfaceName], Field(max_length=MAX_PHYSNETS)] = Field(
        default_factory=dict,
        description="physnet -> the host's interface for it (the Linux bridge agent's interface_mappings)",
    )
    tunnel_ip: Annotated[str, StringConstraints(max_length=45), AfterValidator(_ip)] | None = Field(
        None, description="the host's tunnel endpoint (the agent's tunneling_ip, [ovs] local_ip)"
    )


class Tunnel(_Model):
    """The overlay of tenant networks and the plane that carries it: its MTU must fit tenant MTU + overhead."""

    plane: Name = Field(description="the name of the plane that carries the tunnels (the underlay)")
    overlay: Literal["vxlan", "geneve", "gre"] = Field(description="vxlan (ML2/OVS), geneve (ML2/OVN) or gre")
    tenant_mtu: Mtu = Field(1500, description="the MTU tenant networks must get (what VMs see)")
    overlay_ip_version: Literal[4, 6] = Field(4, description="IP version of the underlay ([ml2] overlay_ip_version)")
    geneve_max_header_size: int | None = Field(
        None,
        ge=GENEVE_MIN_HEADER_BYTES,
        le=GENEVE_MAX_HEADER_BYTES,
        description=f"geneve only: Neutron's [ml2_type_geneve] max_header_size (default {GENEVE_OVN_HEADER_BYTES}, OVN's minimum)",
    )

    @model_validator(mode="after")
    def _geneve_only(self) -> Tunnel:
        if self.geneve_max_header_size is not None and self.overlay != "geneve":
            raise ValueError("geneve_max_header_size applies to overlay geneve only")
        return self

    @property
    def encap_bytes(self) -> int:
        if self.overlay == "vxlan":
            return VXLAN_ENCAP_BYTES
        if self.overlay == "gre":
            return GRE_ENCAP_BYTES
        return self.geneve_max_header_size or GENEVE_OVN_HEADER_BYTES

    @property
    def overhead_bytes(self) -> int:
        """What the underlay adds per packet: the outer IP header plus the encapsulation (as Neutron counts)."""
        return IP_HEADER_BYTES[self.overlay_ip_version] + self.encap_bytes

    @property
    def underlay_mtu(self) -> int:
        """The path MTU the tunnel plane must carry so that tenant networks get tenant_mtu."""
        return self.tenant_mtu + self.overhead_bytes


class Endpoint(_Model):
    """A control-plane service (Keystone, RabbitMQ, the database, NATS ...) that must answer from given roles."""

    name: Name = Field(description="a name for reports: keystone, rabbitmq, mariadb, nats")
    address: HostPort = Field(description="HOST:PORT, [IPV6]:PORT or NAME:PORT")
    from_roles: list[Role] = Field(
        alias="from", min_length=1, max_length=MAX_ROLES, description="roles whose every node must connect"
    )
    connect_timeout_s: float = Field(3.0, ge=0.1, le=30.0, description="seconds to wait for the TCP handshake")


class Plan(_Model):
    """A site plan: every key is documented in docs/validate.md."""

    version: Literal[1] = Field(1, description="the plan format version: 1")
    site: Name | None = Field(None, description="the site's name, for reports")
    nodes: list[NodeSpec] = Field(
        default_factory=list, max_length=MAX_NODES, description="nodes the site must have, by name, with roles"
    )
    role_counts: Annotated[dict[Role, Annotated[int, Field(ge=1, le=MAX_NODES)]], Field(max_length=MAX_ROLES)] = Field(
        default_factory=dict,
        description="nodes per role when they are not named (or not all named): exactly this many",
    )
    planes: list[Plane] = Field(default_factory=list, max_length=MAX_PLANES, description="networks the nodes share")
    physnets: list[Physnet] = Field(default_factory=list, max_length=MAX_PHYSNETS, description="VLAN physnets")
    tunnel: Tunnel | None = Field(None, description="the tenant overlay and the plane that carries it")
    endpoints: list[Endpoint] = Field(
        default_factory=list, max_length=MAX_ENDPOINTS, description="control-plane HOST:PORT that must answer"
    )
    hosts: Annotated[dict[NodeName, HostFacts], Field(max_length=MAX_NODES)] = Field(
        default_factory=dict,
        description="per host, what Neutron's agents report (bridge_mappings, tunnel_ip): --from-openstack fills it",
    )

    @field_validator("site", mode="before")
    @classmethod
    def _site_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Plan:
        context = info.context or {}
        if context.get("defer_cross_checks"):
            return self
        problems = self.problems(partial=bool(context.get("partial")))
        if problems:
            raise ValueError("; ".join(f"{dotted(loc)}: {msg}" if loc else msg for loc, msg in problems))
        return self

    # --- derived facts ---

    def roles(self) -> list[str]:
        """Every role the plan declares: of its named nodes and of role_counts."""
        found = {r for n in self.nodes for r in n.roles} | set(self.role_counts)
        return sorted(found)

    def plane(self, name: str) -> Plane | None:
        return next((p for p in self.planes if p.name == name), None)

    def required_mtu(self, plane: Plane) -> int | None:
        """The plane's own MTU requirement, raised to the tunnel's underlay MTU on the tunnel plane."""
        wanted = [m for m in (plane.mtu,) if m]
        if self.tunnel and self.tunnel.plane == plane.name:
            wanted.append(self.tunnel.underlay_mtu)
        return max(wanted) if wanted else None

    # --- checks across the plan ---

    def mapped(self, physnet: str) -> list[str]:
        """The hosts whose bridge_mappings (hosts[]) name this physnet."""
        return sorted(
            h for h, f in self.hosts.items() if physnet in f.bridge_mappings or physnet in f.interface_mappings
        )

    def tunnel_hosts(self) -> list[str]:
        return sorted(h for h, f in self.hosts.items() if f.tunnel_ip)

    def problems(self, partial: bool = False) -> list[tuple[tuple[str | int, ...], str]]:
        """What is wrong across parts of the plan: (location of the offending key, message).

        partial: the plan is to be completed from OpenStack (--from-openstack): what Neutron may still fill
        (nodes, a physnet's bridges, the tunnel plane's addresses) is not asked of it yet."""
        return list(self._problems(partial))

    def _problems(self, partial: bool) -> Iterator[tuple[tuple[str | int, ...], str]]:
        declared = set(self.roles())
        if not self.nodes and not self.role_counts and not partial:
            yield (), "the plan expects no node: give nodes, role_counts or both"
        for key, items in (("nodes", self.nodes), ("planes", self.planes), ("physnets", self.physnets)):
            yield from _duplicates(key, [i.name for i in items])
        yield from _duplicates("endpoints", [e.name for e in self.endpoints])
        for role, count in self.role_counts.items():
            named = sum(1 for n in self.nodes if role in n.roles)
            if named > count:
                yield ("role_counts", role), f"{count} {role} node(s) expected, but {named} are named in nodes"

        def unknown(loc: tuple[str | int, ...], roles: list[str] | dict | str | None) -> Iterator:
            if not isinstance(roles, (list, dict)):
                return
            for role in roles:
                if role not in declared:
                    known = ", ".join(sorted(declared)) or "none"
                    yield (
                        (*loc, role) if isinstance(roles, dict) else loc,
                        f"role {role!r} is not declared (roles: {known})",
                    )

        for i, p in enumerate(self.planes):
            if not p.located:
                tunnel_plane = self.tunnel is not None and self.tunnel.plane == p.name
                if not (tunnel_plane and (partial or self.tunnel_hosts())):
                    why = NEITHER_OR_BOTH
                    if tunnel_plane:
                        why += ", or the hosts' tunnel_ip (hosts[], --from-openstack)"
                    yield ("planes", i), why
            yield from unknown(("planes", i, "roles"), p.roles)
            yield from unknown(("planes", i, "interface"), p.interface)
            if isinstance(p.interface, dict):
                for role in p.plane_roles(sorted(declared)):
                    if role in declared and role not in p.interface:
                        yield ("planes", i, "interface"), f"no interface for role {role!r} on plane {p.name}"
        for i, ph in enumerate(self.physnets):
            yield from unknown(("physnets", i, "roles"), ph.roles)
            yield from unknown(("physnets", i, "bridge"), ph.bridge)
            yield from unknown(("physnets", i, "uplink"), ph.uplink)
            if not ph.trunked:
                if not partial and not self.mapped(ph.name):
                    yield (
                        ("physnets", i),
                        "give the physnet's bridge or uplink (or both), or hosts[].bridge_mappings naming it "
                        "(what --from-openstack fills from Neutron's agents)",
                    )
                continue
            for role in ph.physnet_roles(sorted(declared)):
                if role in declared and ph.trunk_for([role]) == (None, None) and not self.mapped(ph.name):
                    yield ("physnets", i), f"no bridge or uplink for role {role!r} on physnet {ph.name}"
        for i, e in enumerate(self.endpoints):
            yield from unknown(("endpoints", i, "from"), e.from_roles)
        if self.tunnel:
            t = self.tunnel
            plane = self.plane(t.plane)
            if plane is None:
                names = ", ".join(p.name for p in self.planes) or "none"
                yield ("tunnel", "plane"), f"no plane named {t.plane!r} (planes: {names})"
            elif plane.mtu is not None and plane.mtu < t.underlay_mtu:
                where = ("planes", self.planes.index(plane), "mtu")
                yield (
                    where,
                    (
                        f"{plane.mtu} is below what the {t.overlay} tunnel needs: tenant_mtu {t.tenant_mtu} "
                        f"+ {t.overhead_bytes} = {t.underlay_mtu}"
                    ),
                )
            if t.underlay_mtu > MAX_MTU:
                yield (
                    ("tunnel", "tenant_mtu"),
                    (f"{t.tenant_mtu} + {t.overhead_bytes} ({t.overlay}) = {t.underlay_mtu} is above {MAX_MTU}"),
                )


def _duplicates(key: str, names: list[str]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            yield (key, i, "name"), f"{name!r} is named twice (also {key}[{seen[name]}])"
        else:
            seen[name] = i


def dotted(loc: tuple[str | int, ...]) -> str:
    """('planes', 1, 'mtu') -> 'planes[1].mtu', as an operator reads the YAML."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
