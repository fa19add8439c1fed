"""The Neutron-specific parts of port-check: security groups, L3 HA, segments, vnic types and host names.

Kept apart from diagnosis_port (the DHCP path and the hop layout) so each stays one job: these functions read
the PortContext and the gathered checks, and decide what the Neutron facts (steth.controller.secgroups,
steth.controller.neutron_wiring) make of them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

from steth.controller.diagnosis import FAIL, OK, SKIPPED, Diagnosis, unanswered
from steth.controller.inventory import OVS_AGENT_TYPE, Inventory, Network, Router
from steth.controller.neutron_wiring import bound_segment as _bound_segment
from steth.controller.neutron_wiring import ha_state, node_for, same_host
from steth.controller.secgroups import Admission, Peer, PortFilter, admits_echo, needs_findings
from steth.schemas.probes.neutron_ns import SPEC as NEUTRON_NS

DVR_SNAT = "dvr_snat"  # neutron_lib/constants.py L3_AGENT_MODE_DVR_SNAT

# --- segments --------------------------------------------------------------------------------------


def ovs_configurations(inv: Inventory) -> dict[str, dict[str, Any]]:
    """host -> its Open vSwitch agent's configurations (bridge_mappings, tunnel_types, tunneling_ip)."""
    return {a.host: a.configurations or {} for a in inv.neutron_agents() if a.agent_type == OVS_AGENT_TYPE}


def network_on_host(network: Network, host: str, ovs: dict[str, dict[str, Any]]) -> tuple[Network, str]:
    """The network as bound on `host`: a multi-segment network's segment there, with a note; else unchanged."""
    if network.network_type or not network.segments:
        return network, ""
    conf = next((c for h, c in ovs.items() if same_host(h, host)), None)
    seg = _bound_segment(network.segments, conf)
    listed = ", ".join(s.describe() for s in network.segments)
    if seg is None:
        return network, (
            f"multi-segment network ({listed}): no segment the Open vSwitch agent on {host} can bind "
            "(its bridge_mappings and tunnel_types)"
        )
    picked = replace(
        network,
        network_type=seg.network_type,
        physical_network=seg.physical_network,
        segmentation_id=seg.segmentation_id,
    )
    return picked, f"multi-segment network ({listed}): {seg.describe()} is the one bound on {host}"


def provider_bridges(network: Network, ovs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """host -> the bridge carrying the network's physical network there (each host's own bound segment)."""
    out = {}
    for host, conf in ovs.items():
        net, _ = network_on_host(network, host, ovs)
        mapping = conf.get("bridge_mappings") or {}
        if net.physical_network and net.physical_network in mapping:
            out[host] = mapping[net.physical_network]
    return out


# --- security groups -------------------------------------------------------------------------------


def qdhcp_peer(dhcp_port) -> Peer | None:
    """The source of the probes sent from qdhcp: the DHCP port's IPv4 address; trusted network:dhcp ports belong
    to no security group (neutron/db/securitygroups_db.py _ensure_default_security_group_on_port)."""
    if dhcp_port is None:
        return None
    v4 = [ip for ip in dhcp_port.addresses if ipaddress.ip_address(ip).version == 4]
    return Peer(v4[0], frozenset(dhcp_port.security_group_ids)) if v4 else None


def echo_admission(pf: PortFilter | None, dhcp_port) -> Admission | None:
    """Whether the full-MTU ping from qdhcp may reach the VM at all (None: cannot be told)."""
    peer = qdhcp_peer(dhcp_port)
    if pf is None or peer is None:
        return None
    return admits_echo(pf, peer)


def mtu_hop(pf: PortFilter | None, dhcp_port, ok: bool, detail: str, cause: str) -> tuple[str, str, str]:
    """(status, detail, cause) of the MTU hop: a ping the rules drop tests nothing, it is not an MTU failure."""
    if ok:
        return OK, detail, ""
    admission = echo_admission(pf, dhcp_port)
    if admission is not None and not admission.admitted:
        return SKIPPED, f"not tested: {admission.why}", ""
    return FAIL, detail, cause


def security_group_hops(diag: Diagnosis, node: str, pf: PortFilter | None, gateways: list[str], dhcp_ports) -> None:
    """What the rules admit of the probes, and a finding for rules that keep the VM from its own egress."""
    if pf is None:
        return
    if not pf.port_security:
        diag.add("security-group", node, "port security", OK, "disabled on the port: nothing is filtered")
        return
    icmp = []
    for port in dhcp_ports:
        peer, admission = qdhcp_peer(port), echo_admission(pf, port)
        if peer is None or admission is None:
            continue
        icmp.append(
            f"ICMP from qdhcp {peer.address} {admission.why}"
            if admission.admitted
            else f"no ICMP from qdhcp {peer.address}: the MTU ping is not a test"
        )
    diag.add(
        "security-group",
        node,
        f"groups {pf.labels()}",
        OK,
        "; ".join(["DHCP and ARP admitted by the firewall whatever the rules", *icmp]),
    )
    for line in needs_findings(pf, gateways):
        diag.add(
            "security-group",
            node,
            "egress rules",
            FAIL,
            line,
            "the port's security groups lack an egress rule: add one (openstack security group rule create "
            "--egress ...) or the group the VM should be in",
        )


# --- routers ---------------------------------------------------------------------------------------


def router_hosts(router: Router, port_host: str) -> list[str]:
    """Where the port's gateway must be: for a DVR router the qrouter on the port's own compute node
    (neutron/agent/l3/dvr_local_router.py: DvrLocalRouter, the qr- devices on every dvr-mode agent's host with a
    port of the subnet), for an HA router the active node(s) only, else every L3 host."""
    if router.distributed:
        return [port_host]
    if not router.ha:
        return [h for h, _ in router.l3_hosts]
    return ha_state(router.name or router.id, router.ha_states.items()).active


def snat_hosts(router: Router) -> list[str]:
    """Where a DVR router's snat-<router id> namespace must be: its dvr_snat agents (the active one if HA), when
    it has a gateway (neutron/agent/l3/dvr_edge_router.py: DvrEdgeRouter, dvr_snat_ns.py SNAT_NS_PREFIX)."""
    if not router.distributed or not router.external_network_id:
        return []
    hosts = sorted(h for h, mode in router.l3_modes.items() if mode == DVR_SNAT)
    if router.ha:
        active = set(ha_state(router.name or router.id, router.ha_states.items()).active)
        hosts = [h for h in hosts if h in active]
    return hosts


def dvr_note(router: Router, host: str) -> str:
    mode = router.l3_modes.get(host)
    if mode is None:
        return f" (DVR: no L3 agent on {host} hosts it; a dvr-mode agent must run on every compute node)"
    return f" (DVR: its L3 agent runs in {mode} mode)"


def snat_hops(diag: Diagnosis, routers: list[Router], gathered, present) -> None:
    """A DVR router's centralized SNAT namespace on its dvr_snat node(s)."""
    for router in routers:
        for host in snat_hosts(router):
            r = gathered.by_node().get(host) if gathered is not None else None
            if unanswered(diag, "router", host, f"snat-{router.id[:8]}", r, present):
                continue
            result = r.parsed(NEUTRON_NS)
            for c in result.checks if result else []:
                if c.check == "netns":
                    diag.add(
                        "router",
                        host,
                        "netns snat",
                        OK if c.ok else FAIL,
                        c.detail,
                        "" if c.ok else f"the L3 agent (dvr_snat) on {host} has not set up the router's SNAT namespace",
                    )


def ha_hops(diag: Diagnosis, router: Router) -> None:
    """An HA router with no active instance, or several: a finding naming the nodes."""
    if not router.ha:
        return
    state = ha_state(router.name or router.id, router.ha_states.items())
    if state.finding:
        hosts = ", ".join(sorted(router.ha_states)) or "-"
        diag.add(
            "router",
            hosts,
            f"HA qrouter-{router.id[:8]}",
            FAIL,
            state.finding,
            "keepalived on the L3 nodes (stopped, or the HA network between them is cut: VRRP on the "
            "router's HA ports)",
        )
    else:
        diag.add("router", state.active[0], f"HA qrouter-{router.id[:8]}", OK, f"active on {state.active[0]}")


# --- host names ------------------------------------------------------------------------------------


def align_hosts(ctx, nodes: list[str], host_map: dict[str, str]) -> None:
    """Rename the context's OpenStack host names to the steth node names in presence (short/FQDN, --host-map)."""

    def n(host: str | None) -> str | None:
        return node_for(host, nodes, host_map) if host else host

    if ctx.port.host:
        ctx.port = replace(ctx.port, host=n(ctx.port.host))
    ctx.server_host = n(ctx.server_host)
    ctx.dhcp_hosts = [(n(h), alive) for h, alive in ctx.dhcp_hosts]
    ctx.dhcp_ports = {n(h): p for h, p in ctx.dhcp_ports.items()}
    ctx.provider_bridges = {n(h): b for h, b in ctx.provider_bridges.items()}
    ctx.tunnel_ips = {n(h): ip for h, ip in ctx.tunnel_ips.items()}
    ctx.arp_responders = {n(h): on for h, on in ctx.arp_responders.items()}
    ctx.routers = [
        replace(
            r,
            l3_hosts=[(n(h), alive) for h, alive in r.l3_hosts],
            ha_states={n(h): s for h, s in r.ha_states.items()},
            l3_modes={n(h): m for h, m in r.l3_modes.items()},
        )
        for r in ctx.routers
    ]


def align_network_hosts(r, nodes: list[str], host_map: dict[str, str]) -> None:
    """network-check's NetworkContext with OpenStack's host names as steth's node names."""

    def n(host: str | None) -> str | None:
        return node_for(host, nodes, host_map) if host else host

    r.ports = [replace(p, host=n(p.host)) for p in r.ports]
    r.computes = sorted({n(h) for h in r.computes})
    r.dhcp_hosts = [(n(h), alive) for h, alive in r.dhcp_hosts]
    r.ovs_agents = {n(h): a for h, a in r.ovs_agents.items()}
