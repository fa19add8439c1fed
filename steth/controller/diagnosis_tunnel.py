"""port-check over a tunnel network: br-tun on the port's host and on each DHCP host, and what an ARP reply proves.

On VXLAN/GRE/Geneve the OVS agent carries a network's frames br-int -> patch-tun -> patch-int -> br-tun ->
`<type>-<remote ip in hex>`, and l2population installs, per VNI, a flood flow to every host with a port of the
network and a unicast flow per remote port MAC (ovs_neutron_agent.py setup_tunnel_br, _setup_tunnel_port;
l2pop/rpc_manager/l2population_rpc.py fdb_add_tun; openflow/native/br_tun.py). The `br-tun` probe checks them on both ends of each port <-> DHCP host
pair; its findings come before the DHCP path hops they explain.
"""

from __future__ import annotations

from typing import Any

from steth.controller.diagnosis import FAIL, OK, SKIPPED, Diagnosis, unanswered
from steth.schemas.probes.br_tun import SPEC as BR_TUN
from steth.schemas.probes.br_tun import BrTunParams, tunnel_name

TUNNEL_TYPES = ("vxlan", "gre", "geneve")
STAGE = "tunnel"


def tunnel_peers(ctx) -> list[str]:
    """The DHCP hosts the port's frames reach over a tunnel (any other host than the port's)."""
    n = ctx.network
    if n.network_type not in TUNNEL_TYPES or n.segmentation_id is None:
        return []
    return [h for h, _ in ctx.dhcp_hosts if h != ctx.host]


def br_tun_calls(ctx) -> dict[str, BrTunParams]:
    """br-tun on the port's host (tunnels, flood and unicast flows towards each DHCP host and its DHCP port) and
    on each DHCP host (towards the port's host and the port's MAC). Hosts without a known tunneling_ip have no
    tunnel port to look for; the patch pair and the VNI's local VLAN are still checked."""
    peers = tunnel_peers(ctx)
    if not peers:
        return {}
    n, ips = ctx.network, ctx.tunnel_ips
    common: dict[str, Any] = {"network_type": n.network_type, "vni": n.segmentation_id}
    here = ips.get(ctx.host)
    calls: dict[str, dict[str, Any]] = {
        ctx.host: {
            **common,
            "local_ip": here,
            "remote_ips": [ips[p] for p in peers if p in ips],
            "unicast": [
                {"mac": ctx.dhcp_ports[p].mac, "remote_ip": ips[p]}
                for p in peers
                if p in ips and p in ctx.dhcp_ports and ctx.dhcp_ports[p].mac
            ],
        }
    }
    for p in peers:
        calls[p] = {
            **common,
            "local_ip": ips.get(p),
            "remote_ips": [here] if here else [],
            "unicast": [{"mac": ctx.port.mac, "remote_ip": here}] if here and ctx.port.mac else [],
        }
    return {node: BrTunParams.model_validate(args) for node, args in calls.items()}


def tunnel_hops(diag: Diagnosis, ctx, gathered, present) -> None:
    """One hop per br-tun check on the port's host, then on each DHCP host; a finding names host, peer and VNI."""
    peers = tunnel_peers(ctx)
    if not peers or gathered is None:
        return
    by_ip = {ip: host for host, ip in ctx.tunnel_ips.items()}
    vni = ctx.network.segmentation_id
    macs = {ctx.port.mac: ctx.host, **{d.mac: h for h, d in ctx.dhcp_ports.items() if d.mac}}
    for node in [ctx.host, *peers]:
        r = gathered.by_node().get(node)
        if unanswered(diag, STAGE, node, "br-tun", r, present):
            continue
        res = r.parsed(BR_TUN)
        for c in res.checks if res else []:
            label, cause = _label_and_cause(c, node, vni, by_ip, macs, res, peers if node == ctx.host else [ctx.host])
            diag.add(STAGE, node, label, OK if c.ok else FAIL, c.detail, "" if c.ok else cause)


def _label_and_cause(c, node: str, vni: int, by_ip: dict, macs: dict, res, peers: list[str]) -> tuple[str, str]:
    resync = f"neutron-openvswitch-agent on {node} missed l2population's fdb_add (its log; a restart resyncs)"
    if c.check == "tunnel port":
        tunnel = next((t for t in res.tunnels if t.name == c.target), None)
        ip = tunnel.remote_ip if tunnel else c.target
        peer = by_ip.get(ip, ip)
        name = tunnel.name if tunnel else tunnel_name(res.network_type, ip) or "port"
        return (
            f"tunnel port {name} -> {peer} ({ip})",
            f"tunnel {node} -> {peer} ({ip}), VNI {vni}: br-tun on {node} has no usable tunnel port to {peer}; "
            + resync,
        )
    if c.check == "l2pop flood":
        return (
            f"l2pop flood VNI {vni}",
            f"tunnel {node} -> {', '.join(peers)}, VNI {vni}: no l2population flood flow on {node}, so broadcasts "
            f"(the DHCP DISCOVER, ARP) do not leave for {', '.join(peers)}; " + resync,
        )
    if c.check == "l2pop unicast":
        peer = macs.get(c.target, "the peer")
        return (
            f"l2pop unicast {c.target} VNI {vni}",
            f"tunnel {node} -> {peer}, VNI {vni}: no l2population unicast flow for {c.target} on {node} "
            f"(unicast to it floods, or is lost when the flood flow is gone too); " + resync,
        )
    if c.check == "local vlan":
        return (
            f"local VLAN VNI {vni}",
            f"the OVS agent on {node} has not provisioned VNI {vni} on br-tun (no port of the network bound "
            "there in its view, or the agent is out of sync)",
        )
    return (
        f"{c.check} {c.target}".strip(),
        f"br-int and br-tun on {node} are not joined by their patch pair: the OVS agent's setup_tunnel_br",
    )


def arp_responder_note(ctx, host: str, address: str, gathered) -> str:
    """Why an ARP reply seen in qdhcp on `host` proves nothing about reaching the port over the tunnel, or ''.

    With l2population and arp_responder (the OVS agent's `arp_responder_enabled`), br-tun on the DHCP host
    answers ARP for the network's remote ports itself (openflow/native/ovs_bridge.py install_arp_responder, table 21): the request
    never crosses the tunnel. The one place port-check decides whether "ARP qdhcp -> VM" counts as reach."""
    if host == ctx.host or ctx.network.network_type not in TUNNEL_TYPES:
        return ""
    r = gathered.by_node().get(host) if gathered is not None else None
    res = r.parsed(BR_TUN) if r is not None else None
    if res is not None and address in res.arp_responder:
        return f"answered by br-tun's ARP responder on {host} (table 21), not by the VM: no proof of reach"
    if ctx.arp_responders.get(host):
        return f"br-tun on {host} answers ARP itself (arp_responder): no proof of reach"
    return ""


def reach_proven(diag: Diagnosis, ctx, host: str, ns_checks: list) -> str:
    """What proved the port reachable from `host` across the tunnel when ARP cannot: the DHCP exchange seen at the
    port, or the ping from qdhcp on `host` its security groups admit (neutron-ns's mtu check, in `ns_checks` or
    already a hop); '' when nothing did."""
    if any(h.node == ctx.host and h.check.startswith("OFFER at") and h.status == OK for h in diag.hops):
        return "reach proven by the DHCP exchange"
    pinged = any(h.node == host and h.check.startswith("MTU qdhcp") and h.status == OK for h in diag.hops)
    if pinged or any(c.check == "mtu" and c.ok for c in ns_checks):
        return "reach proven by the ping from qdhcp"
    return ""


def arp_reply(diag: Diagnosis, ctx, host: str, check, ns_checks: list, br_tun) -> tuple[str, str]:
    """Status and detail of an ARP from qdhcp or qrouter on `host` to the port: a reply br-tun's responder may
    have given counts only with other proof of reach (ok), else it is `skipped` saying why; a missing reply is a
    failure either way."""
    if not check.ok:
        return FAIL, check.detail
    note = arp_responder_note(ctx, host, check.target, br_tun)
    if not note:
        return OK, check.detail
    proof = reach_proven(diag, ctx, host, ns_checks)
    return (OK, f"{check.detail}; {note} ({proof})") if proof else (SKIPPED, f"{check.detail}; {note}")
