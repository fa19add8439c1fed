"""network-check: a Neutron network's DHCP servers and the segment between the hosts that carry it.

- every DHCP agent host: qdhcp-<network> exists with the DHCP port's address, dnsmasq runs, every port of
  the network is in its host file, and ARP plus a full-MTU don't-fragment ping reach (up to 8) ports;
- the segment between the compute hosts of its ports and the DHCP hosts: for VLAN (and flat) networks the
  vlan-check probe on each host's uplink of the provider bridge (bridge_mappings of its OVS agent; the
  uplink's name comes from ovs-uplinks, as it differs from host to host); for VXLAN and GRE a ping mesh
  between the OVS agents' tunnel endpoints (tunneling_ip), with don't-fragment packets of the underlay size.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from steth.controller.diagnosis import FAIL, OK, SKIPPED, Diagnosis, send, unanswered
from steth.controller.diagnosis_neutron import align_network_hosts, mtu_hop, network_on_host
from steth.controller.gather import Gathered
from steth.controller.inventory import OVS_AGENT_TYPE, Inventory, Network, Port, Subnet
from steth.controller.output import document
from steth.schemas.envelope import Status
from steth.schemas.probes.neutron_ns import SPEC as NEUTRON_NS
from steth.schemas.probes.neutron_ns import NeutronNsParams
from steth.schemas.probes.ovs_uplinks import SPEC as OVS_UPLINKS
from steth.schemas.probes.ovs_uplinks import OvsUplinksParams
from steth.schemas.probes.ping import SPEC as PING
from steth.schemas.probes.ping import PingParams
from steth.schemas.probes.vlan_check import VlanCheckParams

MAX_ARPING = 8
TUNNEL_OVERHEAD = {"vxlan": 50, "gre": 42, "geneve": 58}


@dataclass
class NetworkContext:
    """What OpenStack says about the network: where it is served and carried."""

    network: Network
    subnets: list[Subnet]
    ports: list[Port]
    dhcp_hosts: list[tuple[str, bool]]  # (host, Neutron agent alive)
    computes: list[str]  # hosts of the network's VM ports
    ovs_agents: dict[str, Any]  # host -> its Neutron OVS agent
    port_filters: dict[str, Any] = field(default_factory=dict)  # VM port id -> its PortFilter (security groups)
    notes: list[str] = field(default_factory=list)


@dataclass
class NetworkAnswers:
    """The gathered replies, request by request (None: not sent)."""

    dhcp_ns: Gathered | None = None  # neutron-ns in qdhcp- on every DHCP host
    tunnel_ping: Gathered | None = None  # ping between tunnel endpoints (VXLAN, GRE, Geneve)
    uplinks: Gathered | None = None  # ovs-uplinks of the provider bridges (VLAN, flat)
    vlan_check: Gathered | None = None  # the VLAN on each host's uplink
    uplink_of: dict[str, str] = field(default_factory=dict)  # host -> the uplink the VLAN check used

    def documents(self) -> dict[str, Any]:
        """Each request's document, under its probe's name (the JSON document's "probes")."""
        sent = {"neutron-ns": self.dhcp_ns, "ping": self.tunnel_ping}
        sent.update({"ovs-uplinks": self.uplinks, "vlan-check": self.vlan_check})
        return {probe: document(g) for probe, g in sent.items() if g is not None}


def resolve(inv: Inventory, name_or_id: str) -> NetworkContext:
    inv.require_admin("network-check (DHCP agents, bindings, provider network)")
    net = inv.network(name_or_id)
    ports = inv.ports(network_id=net.id)
    dhcp = inv.dhcp_agents(net.id)
    agents = [a for a in inv.neutron_agents() if a.agent_type == OVS_AGENT_TYPE]
    computes = sorted({p.host for p in ports if p.host and p.device_owner.startswith("compute:")})
    vm_ports = [p for p in ports if p.device_owner.startswith("compute:")][:MAX_ARPING]
    # a multi-segment network: the segment its first DHCP host (else compute host) binds, said in a note
    where = next(iter([a.host for a in dhcp] + computes), "")
    net, note = network_on_host(net, where, {a.host: a.configurations or {} for a in agents})
    return NetworkContext(
        net,
        inv.subnets(net.id),
        ports,
        [(a.host, a.alive) for a in dhcp],
        computes,
        {a.host: a for a in agents},
        {p.id: inv.port_filter(p) for p in vm_ports},
        [note] if note else [],
    )


def subject(r: NetworkContext) -> dict[str, Any]:
    n = r.network
    seg = (
        f"{n.network_type or '?'}"
        + (f" {n.segmentation_id}" if n.segmentation_id is not None else "")
        + (f" on {n.physical_network}" if n.physical_network else "")
    )
    return {
        "network": f"{n.name or n.id} ({n.id})",
        "segment": f"{seg}, MTU {n.mtu}",
        "subnets": ", ".join(s.cidr for s in r.subnets) or "-",
        "ports": len(r.ports),
        "compute hosts": ", ".join(r.computes) or "none",
        "dhcp agents": ", ".join(f"{h}{'' if alive else ' (DOWN)'}" for h, alive in r.dhcp_hosts) or "none",
    }


async def check(
    invocation, r: NetworkContext, timeout: float | None, host_map: dict[str, str] | None = None
) -> Diagnosis:
    net = r.network
    diag = Diagnosis("network-check", subject(r))
    diag.notes.extend(r.notes)
    started = time.monotonic()
    vm_ports = [p for p in r.ports if p.device_owner.startswith("compute:")]
    v4 = [ip for p in vm_ports for ip in p.addresses if ipaddress.ip_address(ip).version == 4][:MAX_ARPING]
    done = NetworkAnswers()
    async with invocation.session() as s:
        present = await s.presence() or {}
        align_network_hosts(r, sorted(present), host_map or {})
        hosts = sorted(set(r.computes) | {h for h, _ in r.dhcp_hosts})
        jobs: dict[str, Any] = {}
        if r.dhcp_hosts:
            entries = [{"mac": p.mac, "ip": ip} for p in r.ports for ip in p.addresses][:64]
            per = {}
            for host, _ in r.dhcp_hosts:
                dport = [p for p in r.ports if p.device_owner == "network:dhcp" and p.host == host]
                per[host] = NeutronNsParams(
                    netns=f"qdhcp-{net.id}",
                    dnsmasq=True,
                    host_entries=entries,
                    arping=v4,
                    expect_addresses=dport[0].addresses if dport else [],
                    ping_size_bytes=net.mtu if net.mtu and v4 else None,
                )
            jobs["dhcp_ns"] = send(s, "neutron-ns", per, timeout)
        if net.network_type in ("vlan", "flat") and len(hosts) > 1:
            bridges = {
                h: (r.ovs_agents[h].configurations.get("bridge_mappings") or {}).get(net.physical_network)
                for h in hosts
                if h in r.ovs_agents
            }
            bridges = {h: b for h, b in bridges.items() if b}
            if bridges:
                per = {h: OvsUplinksParams(bridges=[b]) for h, b in bridges.items()}
                jobs["uplinks"] = send(s, "ovs-uplinks", per, timeout)
        elif net.network_type in TUNNEL_OVERHEAD and len(hosts) > 1:
            ips = {h: r.ovs_agents[h].configurations.get("tunneling_ip") for h in hosts if h in r.ovs_agents}
            ips = {h: ip for h, ip in ips.items() if ip}
            size = (net.mtu or 1450) + TUNNEL_OVERHEAD[net.network_type]
            per = {
                h: PingParams(
                    targets=[ip for o, ip in ips.items() if o != h],
                    count=3,
                    interval_s=0.2,
                    size_bytes=size - 28,
                    dont_fragment=True,
                )
                for h in ips
                if len(ips) > 1
            }
            if per:
                jobs["tunnel_ping"] = send(s, "ping", per, timeout)
        for name, gathered in zip(jobs, await asyncio.gather(*jobs.values())):
            setattr(done, name, gathered)
        if done.uplinks is not None:  # the second round: the VLAN check on each host's uplink
            for n in done.uplinks.nodes:
                found = n.parsed(OVS_UPLINKS)
                usable = [u for u in (found.uplinks if found else []) if not u.not_applicable]
                if n.status is Status.OK and usable:  # a bond's first member; never a DPDK port
                    done.uplink_of[n.node] = usable[0].interface
            if len(done.uplink_of) > 1 and net.segmentation_id:
                token = secrets.token_hex(6)
                nodes = sorted(done.uplink_of)
                per = {
                    h: VlanCheckParams(interface=i, vlans=[net.segmentation_id], nodes=nodes, token=token)
                    for h, i in done.uplink_of.items()
                }
                from steth.controller.commands.vlan_check import gather_once_more_if_late

                done.vlan_check = await gather_once_more_if_late(
                    lambda per_node: send(s, "vlan-check", per_node, timeout), per, nodes
                )
    diag.timings["probes"] = time.monotonic() - started
    diag.raw.update(done.documents())
    server_hops(diag, r, done.dhcp_ns, present)
    segment_hops(diag, r, hosts, done, present)
    reach_hops(diag, r, done.dhcp_ns)
    if not r.dhcp_hosts and any(s.enable_dhcp for s in r.subnets):
        diag.add(
            "dhcp-server",
            "-",
            "DHCP agents",
            FAIL,
            "DHCP is enabled but no DHCP agent hosts the network",
            "no alive DHCP agent was scheduled for the network (neutron-dhcp-agent, dhcp_agents_per_network)",
        )
    return diag


def server_hops(diag: Diagnosis, r: NetworkContext, gathered, present) -> None:
    for host, alive in r.dhcp_hosts:
        if not alive:
            diag.add(
                "dhcp-server",
                host,
                "DHCP agent",
                FAIL,
                "Neutron reports the DHCP agent down",
                f"neutron-dhcp-agent on {host} is not reporting",
            )
        res = gathered.by_node().get(host) if gathered is not None else None
        if unanswered(diag, "dhcp-server", host, "neutron-ns qdhcp", res, present):
            continue
        result = res.parsed(NEUTRON_NS)
        checks = result.checks if result else []
        missing = [c for c in checks if c.check == "host-entry" and not c.ok]
        for c in checks:
            if c.check in ("netns", "address", "dnsmasq"):
                cause = {
                    "netns": f"the DHCP agent on {host} has not set up the network",
                    "address": "the DHCP port's address is not configured (neutron-dhcp-agent)",
                    "dnsmasq": f"dnsmasq is not running on {host}: neutron-dhcp-agent should respawn it",
                }[c.check]
                label = {"netns": "netns qdhcp", "dnsmasq": "dnsmasq"}.get(c.check, f"address {c.target}")
                diag.add("dhcp-server", host, label, OK if c.ok else FAIL, c.detail, "" if c.ok else cause)
        entries = [c for c in checks if c.check == "host-entry"]
        if entries:
            diag.add(
                "dhcp-server",
                host,
                "host entries",
                FAIL if missing else OK,
                f"{len(entries) - len(missing)}/{len(entries)} ports in the host file"
                + (f"; missing {', '.join(c.target for c in missing[:3])}" if missing else ""),
                "the DHCP agent has not synced these ports into dnsmasq's host file" if missing else "",
            )


def segment_hops(diag: Diagnosis, r: NetworkContext, hosts: list[str], done: NetworkAnswers, present) -> None:
    net = r.network
    if len(hosts) < 2:
        diag.add("segment", ", ".join(hosts) or "-", "segment", SKIPPED, "fewer than two hosts carry the network")
        return
    if net.network_type in ("vlan", "flat"):
        ups = done.uplinks
        for h in hosts:
            if h not in r.ovs_agents:
                diag.add(
                    "segment",
                    h,
                    "OVS agent",
                    FAIL,
                    "no Neutron OVS agent on this host",
                    "neutron-openvswitch-agent missing",
                )
                continue
            res = ups.by_node().get(h) if ups is not None else None
            if unanswered(diag, "segment", h, "ovs-uplinks", res, present):
                continue
            found = res.parsed(OVS_UPLINKS) if res.status is Status.OK else None
            if found and h not in done.uplink_of:  # uplinks, but none a kernel device (DPDK): nothing to probe
                reasons = sorted({f"{u.interface}: {u.not_applicable}" for u in found.uplinks})
                diag.add("segment", h, "uplink", SKIPPED, "; ".join(reasons))
                continue
            diag.add(
                "segment",
                h,
                "uplink",
                OK if res.status is Status.OK else FAIL,
                done.uplink_of.get(h) or res.message,
                "" if res.status is Status.OK else "the provider bridge or its uplink is missing",
            )
        vc = done.vlan_check
        if vc is None:
            if net.network_type == "vlan":
                diag.add(
                    "segment", "-", f"VLAN {net.segmentation_id}", SKIPPED, "fewer than two hosts with a known uplink"
                )
            return
        from steth.controller.commands.vlan_check import build_pairs

        nodes = sorted(done.uplink_of)
        pairs = build_pairs(vc, nodes, [net.segmentation_id])
        for p in pairs:
            status = {"passed": OK, "lost": FAIL}.get(p["result"], SKIPPED)
            diag.add(
                "segment",
                f"{p['from']}>{p['to']}",
                f"VLAN {p['vlan']}",
                status,
                {"passed": "tagged frames arrive", "lost": "tagged frames do not arrive"}.get(
                    p["result"], p["detail"] or "unknown"
                )
                + (f" ({p['detail']})" if p["detail"] and p["result"] == "lost" else ""),
                ""
                if status != FAIL
                else f"VLAN {p['vlan']} is not trunked between {p['from']} and {p['to']} "
                f"(switch ports, {net.physical_network} uplinks)",
            )
        return
    ping = done.tunnel_ping
    if ping is None:
        diag.add("segment", "-", "tunnel mesh", SKIPPED, "fewer than two hosts with a tunnel endpoint (tunneling_ip)")
        return
    for n in ping.nodes:
        if unanswered(diag, "segment", n.node, "tunnel ping", n, present):
            continue
        result = n.parsed(PING)
        for t in result.targets if result else []:
            ok = t.received > 0
            diag.add(
                "segment",
                n.node,
                f"tunnel -> {t.target}",
                OK if ok else FAIL,
                f"loss {t.loss:.0%}" + (f" ({t.error})" if t.error else ""),
                ""
                if ok
                else "the underlay between the tunnel endpoints (routing, firewall, or an MTU below "
                f"{(net.mtu or 0) + TUNNEL_OVERHEAD.get(net.network_type, 0)})",
            )


def reach_hops(diag: Diagnosis, r: NetworkContext, gathered) -> None:
    if gathered is None:
        return
    where = {ip: p.host for p in r.ports for ip in p.addresses}
    owner = {ip: p for p in r.ports for ip in p.addresses}
    for n in gathered.nodes:
        dhcp_port = next((p for p in r.ports if p.device_owner == "network:dhcp" and p.host == n.node), None)
        if n.status not in (Status.OK, Status.FAILED):
            continue
        result = n.parsed(NEUTRON_NS)
        for c in result.checks if result else []:
            if c.check not in ("arping", "mtu"):
                continue
            to = where.get(c.target) or "?"
            label = f"{'ARP' if c.check == 'arping' else 'MTU'} qdhcp -> {c.target} ({to})"
            cause = (
                f"L2 between {n.node} and {to}: the port's wiring on {to} or the segment"
                if c.check == "arping"
                else f"an MTU below {r.network.mtu} between {n.node} and {to}"
            )
            status, detail = (OK if c.ok else FAIL), c.detail
            if c.check == "mtu":  # a ping the port's security groups drop tests nothing
                port = owner.get(c.target)
                pf = r.port_filters.get(port.id) if port else None
                status, detail, cause = mtu_hop(pf, dhcp_port, c.ok, c.detail, cause)
            diag.add("reach", n.node, label, status, detail, "" if status != FAIL else cause)
