"""Would Neutron's firewall let this probe through? Security groups and port security, decided in one place.

Pure: no I/O. The inventory reads the port's groups, their rules (api-ref: security-groups) and the address
groups they name; the diagnosis asks `admits_echo` before it blames a silent ping on the MTU, and
`needs_findings` for rule sets that leave the VM unable to do what it must.

What Neutron's firewall drivers admit whatever the rules say (neutron/agent/linux/iptables_firewall.py,
neutron/agent/linux/openvswitch_firewall/firewall.py):

- DHCP client egress, UDP 68 -> 67 (`_spoofing_rule`: "Allow dhcp client discovery and request", and
  `_initialize_egress`: "DHCP discovery");
- DHCP server replies, UDP 67 -> 68 (the rule neutron/db/securitygroups_rpc_base.py `_add_ingress_dhcp_rule`
  appends to every port; `_initialize_ingress`: "DHCP offers");
- ARP: iptables filters IP only, and the OVS firewall admits all ingress ARP (`_initialize_ingress`: "Allow
  incoming ARPs"); egress ARP must come from the port's MAC and its fixed IPs or allowed_address_pairs
  (`_initialize_egress`; ovs_neutron_agent.py `setup_arp_spoofing_protection`) - which a VM answering for its
  own address always does.

Everything else is dropped unless a rule of one of the port's groups admits it (a port with
port_security_enabled false has no filter at all). Ports owned by `network:*` (DHCP, router) are trusted
and belong to no group (neutron/db/securitygroups_db.py `_ensure_default_security_group_on_port`), so a
remote-group rule never admits traffic from the qdhcp namespace. Neutron's default group admits ingress only
from its own members (the default rule templates of
neutron/db/migration/alembic_migrations/versions/2023.2/expand/c33da356b165_security_group_default_rules.py:
egress IPv4/IPv6 anywhere, ingress IPv4/IPv6 from remote_group_id PARENT).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
# protocol names Neutron accepts for IPv4 ICMP and their numbers (neutron_lib/constants.py IP_PROTOCOL_MAP)
ICMP_NAMES = {"icmp", "1"}
ANY_PROTOCOL = {None, "", "any", "0"}
PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "icmpv6": "58", "ipv6-icmp": "58"}


@dataclass(frozen=True)
class SgRule:
    """One security group rule as the API shows it (api-ref: security-group-rules-list-response.json)."""

    id: str
    security_group_id: str
    direction: str  # ingress | egress
    ethertype: str  # IPv4 | IPv6
    protocol: str | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None
    remote_address_group_id: str | None = None

    @classmethod
    def from_api(cls, r: dict[str, Any]) -> SgRule:
        proto = r.get("protocol")
        return cls(
            id=r.get("id") or "",
            security_group_id=r.get("security_group_id") or "",
            direction=r.get("direction") or "",
            ethertype=r.get("ethertype") or "IPv4",
            protocol=None if proto is None else str(proto).lower(),
            port_range_min=r.get("port_range_min"),
            port_range_max=r.get("port_range_max"),
            remote_ip_prefix=r.get("remote_ip_prefix"),
            remote_group_id=r.get("remote_group_id"),
            remote_address_group_id=r.get("remote_address_group_id"),
        )

    def describe(self, names: dict[str, str] | None = None) -> str:
        """'ingress IPv4 icmp from group default (85cc3048)', in the words of `openstack security group rule list`."""
        names = names or {}
        proto = "any" if self.protocol in ANY_PROTOCOL else self.protocol
        ports = ""
        if self.port_range_min is not None:
            if self.protocol in ICMP_NAMES:
                ports = f" type {self.port_range_min}" + (
                    f" code {self.port_range_max}" if self.port_range_max is not None else ""
                )
            else:
                ports = f" {self.port_range_min}-{self.port_range_max or self.port_range_min}"
        if self.remote_group_id:
            name = names.get(self.remote_group_id, "")
            remote = f"group {name} ({self.remote_group_id[:8]})" if name else f"group {self.remote_group_id[:8]}"
        elif self.remote_address_group_id:
            remote = f"address group {names.get(self.remote_address_group_id) or self.remote_address_group_id[:8]}"
        else:
            remote = self.remote_ip_prefix or ("0.0.0.0/0" if self.ethertype == "IPv4" else "::/0")
        return f"{self.direction} {self.ethertype} {proto}{ports} {'from' if self.direction == 'ingress' else 'to'} {remote}"


@dataclass
class SecurityGroup:
    id: str
    name: str
    rules: list[SgRule] = field(default_factory=list)
    stateful: bool = True

    @classmethod
    def from_api(cls, g: dict[str, Any]) -> SecurityGroup:
        return cls(
            id=g.get("id") or "",
            name=g.get("name") or "",
            rules=[SgRule.from_api(r) for r in g.get("security_group_rules") or []],
            stateful=g.get("stateful") is not False,  # absent before the stateful-security-group extension
        )

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id[:8]})" if self.name else self.id


@dataclass
class PortFilter:
    """What the firewall applies to one port: its groups (in the port's order) unless port security is off."""

    port_security: bool
    groups: list[SecurityGroup] = field(default_factory=list)
    address_groups: dict[str, list[str]] = field(default_factory=dict)  # id -> its CIDRs (api-ref: address-groups)

    @property
    def stateful(self) -> bool:
        # Neutron refuses to mix stateful and stateless groups on one port (neutron/db/securitygroups_db.py
        # _validate_sgs_for_port), so the first says it for all.
        return self.groups[0].stateful if self.groups else True

    def names(self) -> dict[str, str]:
        return {g.id: g.name for g in self.groups if g.name}

    def rules(self) -> list[SgRule]:
        return [r for g in self.groups for r in g.rules]

    def quote(self, direction: str | None = None, limit: int = 6) -> str:
        """The rules (of one direction) as one line: what the operator would see in the group."""
        chosen = [r for r in self.rules() if direction in (None, r.direction)]
        text = "; ".join(r.describe(self.names()) for r in chosen[:limit])
        more = f"; and {len(chosen) - limit} more" if len(chosen) > limit else ""
        return (text + more) if chosen else f"no {direction or ''} rule".replace("  ", " ")

    def labels(self) -> str:
        return ", ".join(g.label for g in self.groups) or "none"


@dataclass(frozen=True)
class Peer:
    """The other end of a probe: its address and the groups its port belongs to (none for network:* ports)."""

    address: str
    group_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Admission:
    admitted: bool
    by: SgRule | None = None  # the rule that admits it
    why: str = ""  # one line for the operator: which rule, or what the groups lack


def _protocol_matches(rule: SgRule, protocol: str, dst_port: int | None) -> bool:
    if rule.protocol in ANY_PROTOCOL:
        return True
    if PROTOCOL_NUMBERS.get(rule.protocol or "", rule.protocol) != PROTOCOL_NUMBERS.get(protocol, protocol):
        return False
    if rule.port_range_min is None or dst_port is None:
        return True
    if protocol == "icmp":  # port_range_min is the ICMP type, port_range_max its code (any code for echo: 0)
        return rule.port_range_min == dst_port and rule.port_range_max in (None, 0)
    return rule.port_range_min <= dst_port <= (rule.port_range_max or rule.port_range_min)


def _remote_matches(rule: SgRule, peer: Peer, address_groups: dict[str, list[str]]) -> bool:
    addr = ipaddress.ip_address(peer.address)
    if rule.remote_group_id:
        return rule.remote_group_id in peer.group_ids
    if rule.remote_address_group_id:
        cidrs = address_groups.get(rule.remote_address_group_id, [])
        return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)
    if rule.remote_ip_prefix:
        return addr in ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
    return True


def admits(pf: PortFilter, direction: str, protocol: str, peer: Peer, dst_port: int | None = None) -> Admission:
    """Whether the port's filter admits `protocol` (tcp, udp, icmp, any) to/from `peer` in `direction`."""
    if not pf.port_security:
        return Admission(True, why="port security is disabled on the port: no filter")
    ethertype = f"IPv{ipaddress.ip_address(peer.address).version}"
    for rule in pf.rules():
        if rule.direction != direction or rule.ethertype != ethertype:
            continue
        # "any": is some traffic admitted at all (a narrower rule admits some)
        if protocol != "any" and not _protocol_matches(rule, protocol, dst_port):
            continue
        if _remote_matches(rule, peer, pf.address_groups):
            return Admission(True, rule, f"admitted by {rule.describe(pf.names())}")
    groups = pf.labels()
    what = {"icmp": "ICMP", "any": "traffic", "udp": "UDP", "tcp": "TCP"}.get(protocol, protocol)
    side = "from" if direction == "ingress" else "to"
    return Admission(
        False, why=f"security group {groups} admits no {direction} {what} {side} {peer.address} (rules: {pf.quote()})"
    )


def admits_echo(pf: PortFilter, peer: Peer) -> Admission:
    """An ICMP echo from `peer` to the port, and its reply: ingress always, egress too for stateless groups."""
    inbound = admits(pf, "ingress", "icmp", peer, ICMP_ECHO_REQUEST)
    if not inbound.admitted or pf.stateful or not pf.port_security:
        return inbound
    outbound = admits(pf, "egress", "icmp", peer, ICMP_ECHO_REPLY)
    if outbound.admitted:
        return inbound
    return Admission(False, why=f"stateless {outbound.why}")


def needs_findings(pf: PortFilter, gateways: list[str]) -> list[str]:
    """Rule sets that keep the VM from what it needs; one line each, quoting the rules.

    DHCP itself is never one: the drivers admit it whatever the rules (see the module's docstring). What the
    rules can take away is the VM's own egress: no IPv4 egress at all, or none to its subnet's gateway.
    """
    if not pf.port_security:
        return []
    out = []
    for gw in gateways:
        if not admits(pf, "egress", "any", Peer(gw)).admitted:
            out.append(
                f"security group {pf.labels()} admits no egress to the gateway {gw}: the VM can send DHCP only "
                f"(egress rules: {pf.quote('egress')})"
            )
    return out
