"""port-check and vm-check: from a Neutron port to a verdict that names the failing hop.

OpenStack says where the port is (binding:host_id), what it should look like (MAC, addresses, hybrid or
native plugging) and who serves it (DHCP agents with their DHCP ports, the routers' L3 agents, the provider
bridge of each host from the OVS agents' bridge_mappings). Then, at once, over one NATS connection:

- vif on the compute host (OVS port by iface-id, attached-mac, tag, ofport, tap/qbr/qvb/qvo up, MTU);
- dhcp-watch on the compute host (the device chain and the provider bridge's uplinks; a DISCOVER with the
  port's MAC injected where the VM would send it, when the agent's policy allows) and on every DHCP host
  (its uplinks and the DHCP port's tap);
- neutron-ns in qdhcp-<network> on every DHCP host (dnsmasq, the port's host entry, ARP and a full-MTU
  don't-fragment ping to the port) and in qrouter-<router> on every L3 host (gateway address, ARP).

The hops are then laid out in the order a DHCP exchange meets them, and the first failure is the verdict.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from dataclasses import dataclass, field
from typing import Any

from steth.controller.diagnosis import FAIL, NOT_RUN, OK, SKIPPED, UNREACHED, Diagnosis, send, unanswered
from steth.controller.diagnosis_neutron import (
    align_hosts,
    dvr_note,
    ha_hops,
    mtu_hop,
    network_on_host,
    ovs_configurations,
    provider_bridges,
    router_hosts,
    security_group_hops,
    snat_hops,
    snat_hosts,
)
from steth.controller.diagnosis_tunnel import arp_reply, br_tun_calls, tunnel_hops
from steth.controller.errors import UsageError
from steth.controller.gather import Gathered
from steth.controller.inventory import Inventory, Network, Port, Router, Subnet
from steth.controller.neutron_wiring import not_applicable, same_host
from steth.controller.output import document
from steth.controller.secgroups import PortFilter
from steth.schemas.envelope import Status
from steth.schemas.probes.br_tun import BrTunParams
from steth.schemas.probes.dhcp_watch import SPEC as DHCP_WATCH
from steth.schemas.probes.dhcp_watch import DhcpHop, DhcpWatchParams
from steth.schemas.probes.neutron_ns import SPEC as NEUTRON_NS
from steth.schemas.probes.neutron_ns import NeutronNsParams
from steth.schemas.probes.vif import SPEC as VIF
from steth.schemas.probes.vif import VifParams

DEFAULT_LISTEN_S = 5.0
# The compute node's first DISCOVER, after its own listeners are up: the DHCP hosts' listeners start as fast
# (a child without scapy, about 50 ms), so this is a margin for a loaded node, not a wait for slow ones.
INJECT_DELAY_S = 0.5


def devs(port_id: str) -> dict[str, str]:
    return {role: f"{role}{port_id[:11]}" for role in ("tap", "qbr", "qvb", "qvo")}


@dataclass
class PortContext:
    port: Port
    network: Network
    subnets: list[Subnet]
    dhcp_hosts: list[tuple[str, bool]]  # (host, Neutron agent alive)
    dhcp_ports: dict[str, Port]  # host -> the network's DHCP port bound there
    routers: list[Router]
    provider_bridges: dict[str, str]  # host -> bridge carrying the network's physical network
    server_host: str | None = None
    notes: list[str] = field(default_factory=list)
    port_filter: PortFilter | None = None  # its security groups (None: not read)
    tunnel_ips: dict[str, str] = field(default_factory=dict)  # host -> its OVS agent's tunneling_ip
    arp_responders: dict[str, bool] = field(default_factory=dict)  # host -> its OVS agent's arp_responder_enabled

    def tunnel(self, src: str, dst: str) -> str:
        """A tunnel network's path between two hosts, as the OVS agent builds it: br-int -> patch-tun -> br-tun
        -> a `<type>-<remote ip in hex>` port to each remote tunneling_ip, with l2population's flood and
        unicast flows for the network's VNI (neutron/plugins/ml2/drivers/openvswitch/agent/ovs_neutron_agent.py:
        setup_tunnel_br, get_tunnel_name; l2pop fdb_add). '' for a VLAN or flat network."""
        n = self.network
        if n.network_type not in ("vxlan", "gre", "geneve"):
            return ""
        ips = f" ({self.tunnel_ips.get(src, '?')} -> {self.tunnel_ips.get(dst, '?')})"
        vni = f", VNI {n.segmentation_id}" if n.segmentation_id is not None else ""
        return (
            f"tunnel {src} -> {dst}{ips}{vni}: the underlay between them (routes, MTU, a firewall on UDP "
            f"{'4789' if n.network_type == 'vxlan' else n.network_type}), or br-tun's tunnel port and "
            "l2population flows for the network on either end"
        )

    @property
    def not_applicable(self) -> str:
        """Why the tap/OVS checks do not apply (SR-IOV, vhost-user); '' when they do."""
        return not_applicable(self.port.vnic_type, self.port.vif_type)

    @property
    def host(self) -> str:
        return self.port.host or ""

    @property
    def hybrid(self) -> bool:
        return self.port.hybrid_expected is not False  # Nova's default with iptables_hybrid; said explicitly by Neutron

    def v4_addresses(self) -> list[str]:
        return [ip for ip in self.port.addresses if ipaddress.ip_address(ip).version == 4]

    def subject(self) -> dict[str, Any]:
        n = self.network
        seg = (
            f"{n.network_type or '?'}"
            + (f" {n.segmentation_id}" if n.segmentation_id is not None else "")
            + (f" on {n.physical_network}" if n.physical_network else "")
        )
        return {
            "port": self.port.id,
            "mac": self.port.mac,
            "addresses": ", ".join(self.port.addresses) or "-",
            "host": self.host,
            "plugging (Neutron)": "hybrid" if self.hybrid else "native",
            "network": f"{n.name or n.id} ({n.id}), {seg}, MTU {n.mtu}",
            "dhcp agents": ", ".join(f"{h}{'' if alive else ' (DOWN)'}" for h, alive in self.dhcp_hosts) or "none",
            "routers": ", ".join(
                f"{r.name or r.id}{' (HA)' if r.ha else ''}{' (DVR)' if r.distributed else ''} on "
                + (", ".join(f"{h}{f' {r.ha_states.get(h)}' if r.ha else ''}" for h, _ in r.l3_hosts) or "no L3 agent")
                for r in self.routers
            )
            or "none",
            "security groups": self.port_filter.labels()
            if self.port_filter and self.port_filter.port_security
            else ("port security disabled" if self.port_filter else ""),
        }


def resolve(inv: Inventory, port_id: str, server_host: str | None = None) -> PortContext:
    """Everything OpenStack knows that the checks need; one clear error when it cannot be known."""
    inv.require_admin("port-check (binding:host_id, provider network, agents)")
    port = inv.port(port_id)
    if not port.host:
        raise UsageError(
            f"port {port.id} is not bound to any host (binding:host_id is empty; status {port.status or '?'}): "
            "nothing to check on a compute node"
        )
    ovs = ovs_configurations(inv)
    network, segment_note = network_on_host(inv.network(port.network_id), port.host, ovs)
    subnets = inv.subnets(network.id)
    dhcp = inv.dhcp_agents(network.id)
    dhcp_ports = {p.host: p for p in inv.ports(network_id=network.id, device_owner="network:dhcp") if p.host}
    routers = inv.routers(network.id)
    bridges = provider_bridges(inv.network(port.network_id), ovs)
    ctx = PortContext(
        port, network, subnets, [(a.host, a.alive) for a in dhcp], dhcp_ports, routers, bridges, server_host
    )
    ctx.port_filter = inv.port_filter(port)
    ctx.tunnel_ips = {h: c["tunneling_ip"] for h, c in ovs.items() if c.get("tunneling_ip")}
    ctx.arp_responders = {h: bool(c.get("arp_responder_enabled")) for h, c in ovs.items()}
    if segment_note:
        ctx.notes.append(segment_note)
    if not any(s.enable_dhcp for s in subnets):
        ctx.notes.append("no subnet of the network has DHCP enabled: the DHCP checks are skipped")
        ctx.dhcp_hosts = []
    return ctx


# --- the probes ------------------------------------------------------------------------------------


@dataclass
class PortPlan:
    """What port-check sends for one port: per request, node -> validated params (one request per field)."""

    vif: dict[str, VifParams] = field(default_factory=dict)
    dhcp_watch: dict[str, DhcpWatchParams] = field(default_factory=dict)
    dhcp_ns: dict[str, NeutronNsParams] = field(default_factory=dict)  # qdhcp- on the DHCP hosts
    router_ns: dict[str, NeutronNsParams] = field(default_factory=dict)  # qrouter- on the L3 hosts
    snat_ns: dict[str, NeutronNsParams] = field(default_factory=dict)  # snat- of DVR routers on dvr_snat hosts
    br_tun: dict[str, BrTunParams] = field(default_factory=dict)  # tunnel networks: the port's and DHCP hosts

    def requests(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(field, probe, node -> params) of every request to send."""
        parts = [
            ("vif", "vif", self.vif),
            ("dhcp_watch", "dhcp-watch", self.dhcp_watch),
            ("dhcp_ns", "neutron-ns", self.dhcp_ns),
            ("router_ns", "neutron-ns", self.router_ns),
            ("snat_ns", "neutron-ns", self.snat_ns),
            ("br_tun", "br-tun", self.br_tun),
        ]
        return [p for p in parts if p[2]]


@dataclass
class PortAnswers:
    """The gathered replies of a PortPlan, field by field (None: not sent)."""

    vif: Gathered | None = None
    dhcp_watch: Gathered | None = None
    dhcp_ns: Gathered | None = None
    router_ns: Gathered | None = None
    snat_ns: Gathered | None = None
    br_tun: Gathered | None = None

    # each request's key in the JSON document's "probes" (the router's namespaces: "neutron-ns#router")
    LABELS = {
        "vif": "vif",
        "dhcp_watch": "dhcp-watch",
        "dhcp_ns": "neutron-ns",
        "router_ns": "neutron-ns#router",
        "snat_ns": "neutron-ns#snat",
        "br_tun": "br-tun",
    }

    def documents(self) -> dict[str, Any]:
        return {label: document(g) for name, label in self.LABELS.items() if (g := getattr(self, name)) is not None}


def dhcp_watch_calls(
    ctx: PortContext, listen_s: float, inject: bool, finish_early: bool = True
) -> dict[str, dict[str, Any]]:
    """dhcp-watch per node: the compute host (the device chain, its uplinks, the injection) and every DHCP host
    (its uplinks and the DHCP port, found inside qdhcp- when Neutron moved it there). One xid for all, so each
    node follows the injected exchange only and stops as soon as it saw it pass every listener."""
    d = devs(ctx.port.id)
    xid = random.randint(1, 0xFFFFFFFF) if inject else 0
    calls: dict[str, dict[str, Any]] = {}
    chain = [d["tap"], d["qbr"], d["qvb"], d["qvo"]] if ctx.hybrid else [d["tap"]]
    common = {"mac": ctx.port.mac, "listen_s": listen_s, "xid": xid, "finish_early": finish_early}
    compute: dict[str, Any] = {**common, "interfaces": chain}
    if ctx.host in ctx.provider_bridges:
        compute["uplink_bridges"] = [ctx.provider_bridges[ctx.host]]
    if inject:
        # hybrid: written on qvb, so it enters br-int through qvo; native: packet-out as from the tap. The
        # devices behind that point see only the OFFER.
        if ctx.hybrid:
            compute.update(inject="send", inject_port=d["qvb"], offer_only=[d["tap"], d["qbr"]])
        else:
            compute.update(inject="ovs", inject_port=d["tap"], offer_only=[d["tap"]])
        compute["inject_delay_s"] = INJECT_DELAY_S
    calls[ctx.host] = compute
    for host, _ in ctx.dhcp_hosts:
        args = calls.setdefault(host, {**common, "interfaces": []})
        dport = ctx.dhcp_ports.get(host)
        if dport is not None and devs(dport.id)["tap"] not in args["interfaces"]:
            # neutron/agent/linux/interface.py OVSInterfaceDriver.plug_new: with ovs_use_veth = False (the
            # default, neutron/conf/agent/common.py) tap<port id[:11]> is an OVS internal port moved into
            # qdhcp-<network id>; with True it is a veth whose tap end stays here on br-int (ns-... inside).
            args["interfaces"] = [*args["interfaces"], devs(dport.id)["tap"]]
            args["netns"] = f"qdhcp-{ctx.network.id}"
        if host in ctx.provider_bridges and ctx.provider_bridges[host] not in args.get("uplink_bridges", []):
            args["uplink_bridges"] = [*args.get("uplink_bridges", []), ctx.provider_bridges[host]]
    return calls


def plan(ctx: PortContext, listen_s: float, inject: bool, finish_early: bool = True) -> PortPlan:
    """Every request the port's checks need, node by node."""
    mtu = ctx.network.mtu
    calls: dict[str, dict[str, dict[str, Any]]] = {"vif": {}, "dhcp_watch": {}, "dhcp_ns": {}, "router_ns": {}}
    vif = {"port_id": ctx.port.id, "mac": ctx.port.mac}
    if mtu:
        vif["expect_mtu_bytes"] = mtu
    if ctx.port.hybrid_expected is not None:
        vif["expect_hybrid"] = ctx.port.hybrid_expected
    if ctx.not_applicable:
        inject = False  # no tap or qvb to inject at: the DHCP path is only listened to
    else:
        calls["vif"][ctx.host] = vif
    v4 = ctx.v4_addresses()
    if ctx.dhcp_hosts:
        calls["dhcp_watch"] = dhcp_watch_calls(ctx, listen_s, inject, finish_early)
        for host, _ in ctx.dhcp_hosts:
            dport = ctx.dhcp_ports.get(host)
            ns = {
                "netns": f"qdhcp-{ctx.network.id}",
                "dnsmasq": True,
                "host_entries": [{"mac": ctx.port.mac, "ip": ip} for ip in ctx.port.addresses],
                "arping": v4,
            }
            if dport is not None:
                ns["expect_addresses"] = dport.addresses
            if mtu and v4:
                ns["ping_size_bytes"] = mtu
            calls["dhcp_ns"][host] = ns
    for router in ctx.routers:
        gw = [ip for s in ctx.subnets for sid, ip in router.interface_ips.items() if sid == s.id]
        for host in router_hosts(router, ctx.host):
            calls["router_ns"][host] = {"netns": f"qrouter-{router.id}", "expect_addresses": gw, "arping": v4}
    snat = {host: {"netns": f"snat-{r.id}"} for r in ctx.routers for host in snat_hosts(r)}
    return PortPlan(
        vif={n: VifParams.model_validate(a) for n, a in calls["vif"].items()},
        dhcp_watch={n: DhcpWatchParams.model_validate(a) for n, a in calls["dhcp_watch"].items()},
        dhcp_ns={n: NeutronNsParams.model_validate(a) for n, a in calls["dhcp_ns"].items()},
        router_ns={n: NeutronNsParams.model_validate(a) for n, a in calls["router_ns"].items()},
        snat_ns={n: NeutronNsParams.model_validate(a) for n, a in snat.items()},
        br_tun=br_tun_calls(ctx),
    )


async def run_plan(session, port_plan: PortPlan, timeout: float | None) -> PortAnswers:
    """Every request of the plan at once."""
    requests = port_plan.requests()
    done = await asyncio.gather(*(send(session, probe, per_node, timeout) for _, probe, per_node in requests))
    return PortAnswers(**{name: gathered for (name, _, _), gathered in zip(requests, done)})


# --- reading the answers into hops -------------------------------------------------------------------


def _result(gathered, node: str):
    return gathered.by_node().get(node) if gathered is not None else None


def vif_hops(diag: Diagnosis, ctx: PortContext, gathered, present) -> None:
    # First: a port bound to another host than its server's explains every wiring check that fails after it.
    if ctx.server_host and not same_host(ctx.server_host, ctx.host):
        diag.add(
            "port",
            ctx.host,
            "binding:host_id",
            FAIL,
            f"port bound to {ctx.host}, server runs on {ctx.server_host}",
            "the port binding is stale (a failed migration or evacuation), or the port was bound by hand: "
            f"the VM is plugged on {ctx.server_host}",
        )
    if ctx.not_applicable:
        diag.add("port", ctx.host, "vif", SKIPPED, f"not applicable: {ctx.not_applicable}")
        return
    r = _result(gathered, ctx.host)
    if unanswered(diag, "port", ctx.host, "vif", r, present):
        return
    res = r.parsed(VIF)
    causes = {
        "ovs-port": f"the port is not plugged into br-int on {ctx.host}: Nova/os-vif did not plug it or it was removed "
        "(nova-compute and neutron-openvswitch-agent logs)",
        "attached-mac": "the OVS port carries another MAC than Neutron's: a stale or wrongly plugged interface",
        "tag": f"the Neutron OVS agent on {ctx.host} has not wired the port (binding failed, agent down or out of sync)",
        "ofport": "OVS cannot open the device (it vanished or was recreated)",
        "device": "the VM's interface or its plugging devices are missing or down (libvirt, os-vif)",
        "mtu": f"a device of the chain has an MTU below the network's {ctx.network.mtu}",
        "plugging": "the plugging style differs from the firewall driver Neutron reports (firewall_driver mismatch)",
    }
    for c in res.checks if res else []:
        diag.add(
            "port",
            ctx.host,
            f"{c.check} {c.target}".strip(),
            OK if c.ok else FAIL,
            c.detail,
            "" if c.ok else causes.get(c.check, ""),
        )


def _hop(watch_result, iface: str) -> DhcpHop | None:
    watched = watch_result.parsed(DHCP_WATCH)
    return next((h for h in watched.hops if h.interface == iface), None) if watched else None


def path_hops(diag: Diagnosis, ctx: PortContext, watch, ns_gathered, present) -> None:
    """DISCOVER from the port to each DHCP host, the DHCP server, then OFFER back, hop by hop."""
    if not ctx.dhcp_hosts:
        return
    d = devs(ctx.port.id)
    seg = (
        f"VLAN {ctx.network.segmentation_id}"
        if ctx.network.network_type == "vlan"
        else (ctx.network.network_type or "the segment")
    )
    comp = _result(watch, ctx.host)
    comp_ok = not unanswered(diag, "dhcp-path", ctx.host, "dhcp-watch", comp, present)
    comp_res = comp.parsed(DHCP_WATCH) if comp_ok else None
    injected = comp_res is not None and comp_res.injected > 0
    if comp_ok and not injected:
        note = (comp_res and comp_res.inject_note) or "no DISCOVER injected"
        diag.notes.append(f"DHCP path: {note} on {ctx.host}; the path hops count only traffic seen while listening")
    traffic = injected or any(h.discover or h.offer for h in (comp_res.hops if comp_res else []))
    if injected:
        where = (
            f"DISCOVER injected at {d['qvb']}" if ctx.hybrid else f"DISCOVER injected into br-int as from {d['tap']}"
        )
        diag.add("dhcp-path", ctx.host, where, OK, f"{comp_res.injected} sent, xid {comp_res.xid}")

    def seen(result, iface: str, kind: str) -> bool | None:
        h = _hop(result, iface) if result is not None else None
        return None if h is None or not h.exists or h.error else getattr(h, kind) > 0

    def uplink_names(result) -> list[str]:
        watched = result.parsed(DHCP_WATCH) if result else None
        return [h.interface for h in watched.hops if h.role == "uplink"] if watched else []

    last_sent = comp_res and comp_res.last_injected_at

    def add(node: str, iface: str, kind: str, result, cause: str, label: str = "", server_side: bool = False) -> bool:
        """One path hop; True when it passed (or could not be tested)."""
        check = f"{kind.upper()} at {label or iface}"
        if server_side and dhcp_port_unobserved(diag, ctx, node, check, _hop(result, iface)):
            return False
        if not traffic:
            diag.add("dhcp-path", node, check, SKIPPED, "not tested (nothing injected)")
            return True
        got = seen(result, iface, kind)
        watched = result.parsed(DHCP_WATCH) if result is not None else None
        since = watched and watched.listening_since
        if got is False and injected and last_sent and since and since > last_sent:
            # A loaded node started listening after the last DISCOVER left: silence there proves nothing, and
            # at the DHCP port it leaves the server side untested, which must not pass as OK.
            diag.add(
                "dhcp-path",
                node,
                check,
                NOT_RUN if server_side else SKIPPED,
                f"listening began {since - last_sent:.1f} s after the last DISCOVER (a slow node): run it again",
                f"{node} was too slow to watch its DHCP port in time: the server side went untested"
                if server_side
                else "",
            )
            return True
        if got is None:
            h = _hop(result, iface) if result is not None else None
            diag.add("dhcp-path", node, check, SKIPPED, (h and h.error) or "not listened on")
            return True
        if not got and any(
            h.status == FAIL for h in diag.hops if h.stage in ("port", "tunnel", "dhcp-path", "dhcp-server")
        ):
            diag.add("dhcp-path", node, check, UNREACHED, "not seen (after the failure above)")
            return False
        h = _hop(result, iface)
        where = f" in {h.netns}" if h and h.netns else ""
        diag.add(
            "dhcp-path", node, check, OK if got else FAIL, ("seen" if got else "not seen") + where, "" if got else cause
        )
        return got

    comp_up = uplink_names(comp) if comp_ok else []
    # DISCOVER: out of the compute host
    if comp_ok:
        for a in ["qvb", "qvo"] if ctx.hybrid else []:
            add(ctx.host, d[a], "discover", comp, f"{d['qvb']}->{d['qvo']} veth on {ctx.host}")
        for up in comp_up:
            add(
                ctx.host,
                up,
                "discover",
                comp,
                f"br-int -> {ctx.provider_bridges.get(ctx.host, 'provider bridge')} on {ctx.host}: "
                "the OVS agent's flows (local VLAN to segmentation id) or the patch ports",
                f"uplink {up}",
            )
    servers: list[tuple[str, Any]] = []
    for host, _alive in ctx.dhcp_hosts:
        net = _result(watch, host)
        if host != ctx.host and unanswered(diag, "dhcp-path", host, "dhcp-watch", net, present):
            servers.append((host, None))
            continue
        dport = ctx.dhcp_ports.get(host)
        for up in uplink_names(net):
            if host == ctx.host and up in comp_up:
                continue
            add(
                host,
                up,
                "discover",
                net,
                f"the fabric between {ctx.host} and {host}: {seg} not trunked or the link down",
                f"uplink {up}",
            )
        if dport is not None:
            add(
                host,
                devs(dport.id)["tap"],
                "discover",
                net,
                (host != ctx.host and ctx.tunnel(ctx.host, host))
                or f"{ctx.provider_bridges.get(host, 'provider bridge')} -> br-int on {host}: "
                "flows or the DHCP port's tag",
                f"DHCP port {devs(dport.id)['tap']}",
                server_side=True,
            )
        servers.append((host, net))
    # The DHCP server itself, on every DHCP host
    for host, _net in servers:
        server_hops(diag, ctx, host, _result(ns_gathered, host), present)
    # OFFER: back from every DHCP host to the port
    for host, net in servers:
        if net is None:
            continue
        dport = ctx.dhcp_ports.get(host)
        if dport is not None:
            add(
                host,
                devs(dport.id)["tap"],
                "offer",
                net,
                f"dnsmasq on {host} did not answer the DISCOVER (see dhcp-server)",
                f"DHCP port {devs(dport.id)['tap']}",
                server_side=True,
            )
        for up in uplink_names(net):
            if host == ctx.host and up in comp_up:
                continue
            add(host, up, "offer", net, f"br-int -> provider bridge on {host} (the way back)", f"uplink {up}")
    if comp_ok:
        for up in comp_up:
            add(
                ctx.host,
                up,
                "offer",
                comp,
                f"the fabric from the DHCP host(s) back to {ctx.host}: {seg}",
                f"uplink {up}",
            )
        # Over a tunnel the first device back on the compute host is where the way back shows.
        back = next((ctx.tunnel(h, ctx.host) for h, _ in ctx.dhcp_hosts if h != ctx.host), "")
        for a in ["qvo", "qvb", "qbr", "tap"] if ctx.hybrid else ["tap"]:
            add(
                ctx.host,
                d[a],
                "offer",
                comp,
                back
                or f"provider bridge -> br-int -> {d[a]} on {ctx.host}: the VLAN translation back "
                "to the local tag, the port's tag, or the qbr bridge",
            )
            back = ""


def dhcp_port_unobserved(diag: Diagnosis, ctx: PortContext, node: str, check: str, hop: DhcpHop | None) -> bool:
    """The DHCP port could not be watched: a finding or an incomplete verdict, never a silent skip (the server
    side of the path would go blind). True when a hop was added."""
    if hop is None or (hop.exists and not hop.error):
        return False
    if any(h.node == node and h.check.endswith(hop.interface) and h.status in (FAIL, NOT_RUN) for h in diag.hops):
        return True  # said once, at the DISCOVER
    netns = f"qdhcp-{ctx.network.id}"
    if not hop.exists:
        diag.add(
            "dhcp-path",
            node,
            check,
            FAIL,
            f"{hop.interface} is neither in the host namespace nor in {netns}",
            f"the DHCP agent on {node} has not plugged its port (neutron-dhcp-agent: its log, interface_driver)",
        )
    elif hop.error == "interface is down":
        diag.add(
            "dhcp-path",
            node,
            check,
            FAIL,
            f"{hop.interface} is down" + (f" in {hop.netns}" if hop.netns else ""),
            f"the DHCP port is down: neutron-dhcp-agent on {node} (or someone) set it down",
        )
    else:
        diag.add(
            "dhcp-path",
            node,
            check,
            NOT_RUN,
            hop.error,
            f"the DHCP port on {node} could not be watched, so the server side of the path is untested",
        )
    return True


def _checks(r) -> list:
    """The CheckRows of a neutron-ns reply (none when it sent no readable result)."""
    result = r.parsed(NEUTRON_NS) if r is not None else None
    return result.checks if result else []


def server_hops(diag: Diagnosis, ctx: PortContext, host: str, r, present) -> None:
    if unanswered(diag, "dhcp-server", host, f"qdhcp-{ctx.network.id[:8]}", r, present):
        return
    causes = {
        "netns": f"the DHCP agent on {host} has not set up the network (no qdhcp namespace): neutron-dhcp-agent",
        "address": "the DHCP port's address is not configured in the namespace (neutron-dhcp-agent)",
        "dnsmasq": f"dnsmasq is not running for the network on {host}: neutron-dhcp-agent should respawn it (its log)",
        "host-entry": "dnsmasq does not know this port: the DHCP agent has not synced it into its host file",
    }
    for c in _checks(r):
        if c.check in causes:
            label = {"netns": "netns qdhcp", "dnsmasq": "dnsmasq"}.get(c.check, f"{c.check} {c.target}")
            diag.add("dhcp-server", host, label, OK if c.ok else FAIL, c.detail, "" if c.ok else causes[c.check])


def reach_hops(diag: Diagnosis, ctx: PortContext, ns_gathered, router_gathered, present, br_tun=None) -> None:
    seg = (
        f"VLAN {ctx.network.segmentation_id} on {ctx.network.physical_network}"
        if ctx.network.network_type == "vlan"
        else (ctx.network.network_type or "the segment")
    )
    for host, _ in ctx.dhcp_hosts:
        r = _result(ns_gathered, host)
        if r is None or r.status not in (Status.OK, Status.FAILED):
            continue  # already reported as no reply / not run
        for c in _checks(r):
            if c.check == "arping":
                status, detail = arp_reply(diag, ctx, host, c, _checks(r), br_tun)
                diag.add(
                    "reach",
                    host,
                    f"ARP qdhcp -> {c.target}",
                    status,
                    detail,
                    ""
                    if c.ok
                    else f"the L2 segment between {host} and {ctx.host} ({seg}): a VLAN not trunked, "
                    "a link down, or the port not wired",
                )
            elif c.check == "mtu":
                # a ping the port's security groups drop is "not tested", never an MTU failure
                status, detail, cause = mtu_hop(
                    ctx.port_filter,
                    ctx.dhcp_ports.get(host),
                    c.ok,
                    c.detail,
                    f"an MTU below the network's {ctx.network.mtu} between {host} and {ctx.host} "
                    "(fabric, uplinks or the port's devices)",
                )
                diag.add("reach", host, f"MTU qdhcp -> {c.target}", status, detail, cause)
    for router in ctx.routers:
        ha_hops(diag, router)
        for host in router_hosts(router, ctx.host):
            r = _result(router_gathered, host)
            if unanswered(diag, "router", host, f"qrouter-{router.id[:8]}", r, present):
                continue
            for c in _checks(r):
                label = {
                    "netns": "netns qrouter",
                    "address": f"gateway {c.target}",
                    "arping": f"ARP qrouter -> {c.target}",
                }.get(c.check, c.check)
                cause = {
                    "netns": f"the L3 agent on {host} has not set up the router"
                    + (dvr_note(router, host) if router.distributed else ""),
                    "address": "the router's interface on this subnet is missing or down (neutron-l3-agent)",
                    "arping": f"L2 between the router on {host} and {ctx.host} ({seg})",
                }.get(c.check, "")
                status, detail = arp_reply(diag, ctx, host, c, [], br_tun) if c.check == "arping" else ("", c.detail)
                status = status or (OK if c.ok else FAIL)
                diag.add("router", host, label, status, detail, "" if c.ok else cause)


async def check_ports(
    invocation,
    contexts: list[PortContext],
    listen_s: float,
    inject: bool,
    timeout: float | None,
    command: str,
    subject: dict[str, Any],
    host_map: dict[str, str] | None = None,
    finish_early: bool = True,
) -> Diagnosis:
    """Run every port's checks at once; one Diagnosis with each port's hops in path order."""
    diag = Diagnosis(command, subject)
    started = time.monotonic()
    async with invocation.session() as s:
        present = await s.presence() or {}
        for c in contexts:  # OpenStack's host names as the steth agents call their nodes
            align_hosts(c, sorted(present), host_map or {})
        plans = [plan(c, listen_s, inject, finish_early) for c in contexts]
        results = await asyncio.gather(*(run_plan(s, p, timeout) for p in plans))
    diag.timings["probes"] = time.monotonic() - started
    for ctx, res in zip(contexts, results):
        diag.notes.extend(ctx.notes)
        vif_hops(diag, ctx, res.vif, present)
        tunnel_hops(diag, ctx, res.br_tun, present)
        path_hops(diag, ctx, res.dhcp_watch, res.dhcp_ns, present)
        reach_hops(diag, ctx, res.dhcp_ns, res.router_ns, present, res.br_tun)
        snat_hops(diag, ctx.routers, res.snat_ns, present)
        gateways = [s.gateway_ip for s in ctx.subnets if s.gateway_ip and s.ip_version == 4]
        security_group_hops(
            diag, ctx.host, ctx.port_filter, gateways, [ctx.dhcp_ports.get(h) for h, _ in ctx.dhcp_hosts]
        )
        if res.documents():
            diag.raw.setdefault(ctx.port.id, {}).update(res.documents())
    return diag
