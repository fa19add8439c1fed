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
from typing import Any

from steth.controller.diagnosis import FAIL, OK, SKIPPED, Diagnosis, unanswered
from steth.controller.inventory import OVS_AGENT_TYPE, Inventory
from steth.controller.output import document
from steth.controller.session import Selection
from steth.schemas.envelope import Status

MAX_ARPING = 8
TUNNEL_OVERHEAD = {"vxlan": 50, "gre": 42, "geneve": 58}


async def _run(session, probe: str, per_node: dict[str, dict[str, Any]], timeout: float | None):
    from steth.schemas.probes import get

    spec = get(probe)
    parsed = {n: spec.params.model_validate(a) for n, a in per_node.items()}
    longest = max(spec.timeout_for(p) for p in parsed.values())
    wire = {n: p.model_dump(mode="json", exclude_defaults=True) for n, p in parsed.items()}
    return await session.run(probe, Selection(), timeout or longest, per_node_args=wire)


def resolve(inv: Inventory, name_or_id: str) -> dict[str, Any]:
    inv.require_admin("network-check (DHCP agents, bindings, provider network)")
    net = inv.network(name_or_id)
    ports = inv.ports(network_id=net.id)
    dhcp = inv.dhcp_agents(net.id)
    agents = [a for a in inv.neutron_agents() if a.agent_type == OVS_AGENT_TYPE]
    computes = sorted({p.host for p in ports if p.host and p.device_owner.startswith("compute:")})
    return {
        "network": net,
        "subnets": inv.subnets(net.id),
        "ports": ports,
        "dhcp_hosts": [(a.host, a.alive) for a in dhcp],
        "computes": computes,
        "ovs_agents": {a.host: a for a in agents},
    }


def subject(r: dict[str, Any]) -> dict[str, Any]:
    n = r["network"]
    seg = (
        f"{n.network_type or '?'}"
        + (f" {n.segmentation_id}" if n.segmentation_id is not None else "")
        + (f" on {n.physical_network}" if n.physical_network else "")
    )
    return {
        "network": f"{n.name or n.id} ({n.id})",
        "segment": f"{seg}, MTU {n.mtu}",
        "subnets": ", ".join(s.cidr for s in r["subnets"]) or "-",
        "ports": len(r["ports"]),
        "compute hosts": ", ".join(r["computes"]) or "none",
        "dhcp agents": ", ".join(f"{h}{'' if alive else ' (DOWN)'}" for h, alive in r["dhcp_hosts"]) or "none",
    }


async def check(invocation, r: dict[str, Any], timeout: float | None) -> Diagnosis:
    net = r["network"]
    diag = Diagnosis("network-check", subject(r))
    started = time.monotonic()
    vm_ports = [p for p in r["ports"] if p.device_owner.startswith("compute:")]
    v4 = [ip for p in vm_ports for ip in p.addresses if ipaddress.ip_address(ip).version == 4][:MAX_ARPING]
    hosts = sorted(set(r["computes"]) | {h for h, _ in r["dhcp_hosts"]})
    async with invocation.session() as s:
        present = await s.presence() or {}
        jobs: dict[str, Any] = {}
        if r["dhcp_hosts"]:
            entries = [{"mac": p.mac, "ip": ip} for p in r["ports"] for ip in p.addresses][:64]
            per = {}
            for host, _ in r["dhcp_hosts"]:
                dport = [p for p in r["ports"] if p.device_owner == "network:dhcp" and p.host == host]
                args = {
                    "netns": f"qdhcp-{net.id}",
                    "dnsmasq": True,
                    "host_entries": entries,
                    "arping": v4,
                    "expect_addresses": dport[0].addresses if dport else [],
                }
                if net.mtu and v4:
                    args["ping_size_bytes"] = net.mtu
                per[host] = args
            jobs["neutron-ns"] = _run(s, "neutron-ns", per, timeout)
        segment = None
        if net.network_type in ("vlan", "flat") and len(hosts) > 1:
            bridges = {
                h: (r["ovs_agents"][h].configurations.get("bridge_mappings") or {}).get(net.physical_network)
                for h in hosts
                if h in r["ovs_agents"]
            }
            segment = ("vlan", bridges)
        elif net.network_type in TUNNEL_OVERHEAD and len(hosts) > 1:
            ips = {h: r["ovs_agents"][h].configurations.get("tunneling_ip") for h in hosts if h in r["ovs_agents"]}
            ips = {h: ip for h, ip in ips.items() if ip}
            size = (net.mtu or 1450) + TUNNEL_OVERHEAD[net.network_type]
            per = {
                h: {
                    "targets": [ip for o, ip in ips.items() if o != h],
                    "count": 3,
                    "interval_s": 0.2,
                    "size_bytes": size - 28,
                    "dont_fragment": True,
                }
                for h in ips
                if len(ips) > 1
            }
            if per:
                jobs["ping"] = _run(s, "ping", per, timeout)
            segment = ("tunnel", ips)
        if segment and segment[0] == "vlan":
            bridges = {h: b for h, b in segment[1].items() if b}
            if bridges:
                jobs["ovs-uplinks"] = _run(s, "ovs-uplinks", {h: {"bridges": [b]} for h, b in bridges.items()}, timeout)
        keys = list(jobs)
        done = dict(zip(keys, await asyncio.gather(*jobs.values())))
        if "ovs-uplinks" in done:  # the second round: the VLAN check on each host's uplink
            uplinks = {}
            for n in done["ovs-uplinks"].nodes:
                ups = [u["interface"] for u in (n.result or {}).get("uplinks", [])]
                if n.status is Status.OK and ups:
                    uplinks[n.node] = ups[0]
            if len(uplinks) > 1 and net.segmentation_id:
                token = secrets.token_hex(6)
                per = {
                    h: {"interface": i, "vlans": [net.segmentation_id], "nodes": sorted(uplinks), "token": token}
                    for h, i in uplinks.items()
                }
                done["vlan-check"] = await _run(s, "vlan-check", per, timeout)
            done["_uplinks"] = uplinks
    diag.timings["probes"] = time.monotonic() - started
    uplinks = done.pop("_uplinks", {})
    for key, gathered in done.items():
        diag.raw[key] = document(gathered)
    server_hops(diag, r, done.get("neutron-ns"), present)
    segment_hops(diag, r, hosts, done, uplinks, present)
    reach_hops(diag, r, done.get("neutron-ns"))
    if not r["dhcp_hosts"] and any(s.enable_dhcp for s in r["subnets"]):
        diag.add(
            "dhcp-server",
            "-",
            "DHCP agents",
            FAIL,
            "DHCP is enabled but no DHCP agent hosts the network",
            "no alive DHCP agent was scheduled for the network (neutron-dhcp-agent, dhcp_agents_per_network)",
        )
    return diag


def server_hops(diag: Diagnosis, r: dict, gathered, present) -> None:
    for host, alive in r["dhcp_hosts"]:
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
        checks = (res.result or {}).get("checks", [])
        missing = [c for c in checks if c["check"] == "host-entry" and not c["ok"]]
        for c in checks:
            if c["check"] in ("netns", "address", "dnsmasq"):
                cause = {
                    "netns": f"the DHCP agent on {host} has not set up the network",
                    "address": "the DHCP port's address is not configured (neutron-dhcp-agent)",
                    "dnsmasq": f"dnsmasq is not running on {host}: neutron-dhcp-agent should respawn it",
                }[c["check"]]
                label = {"netns": "netns qdhcp", "dnsmasq": "dnsmasq"}.get(c["check"], f"address {c['target']}")
                diag.add("dhcp-server", host, label, OK if c["ok"] else FAIL, c["detail"], "" if c["ok"] else cause)
        entries = [c for c in checks if c["check"] == "host-entry"]
        if entries:
            diag.add(
                "dhcp-server",
                host,
                "host entries",
                FAIL if missing else OK,
                f"{len(entries) - len(missing)}/{len(entries)} ports in the host file"
                + (f"; missing {', '.join(c['target'] for c in missing[:3])}" if missing else ""),
                "the DHCP agent has not synced these ports into dnsmasq's host file" if missing else "",
            )


def segment_hops(diag: Diagnosis, r: dict, hosts: list[str], done: dict, uplinks: dict, present) -> None:
    net = r["network"]
    if len(hosts) < 2:
        diag.add("segment", ", ".join(hosts) or "-", "segment", SKIPPED, "fewer than two hosts carry the network")
        return
    if net.network_type in ("vlan", "flat"):
        ups = done.get("ovs-uplinks")
        for h in hosts:
            if h not in r["ovs_agents"]:
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
            diag.add(
                "segment",
                h,
                "uplink",
                OK if res.status is Status.OK else FAIL,
                uplinks.get(h) or res.message,
                "" if res.status is Status.OK else "the provider bridge or its uplink is missing",
            )
        vc = done.get("vlan-check")
        if vc is None:
            if net.network_type == "vlan":
                diag.add(
                    "segment", "-", f"VLAN {net.segmentation_id}", SKIPPED, "fewer than two hosts with a known uplink"
                )
            return
        from steth.controller.commands.vlan_check import build_pairs

        nodes = sorted(uplinks)
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
    ping = done.get("ping")
    if ping is None:
        diag.add("segment", "-", "tunnel mesh", SKIPPED, "fewer than two hosts with a tunnel endpoint (tunneling_ip)")
        return
    for n in ping.nodes:
        if unanswered(diag, "segment", n.node, "tunnel ping", n, present):
            continue
        for t in (n.result or {}).get("targets", []):
            ok = t.get("received", 0) > 0
            diag.add(
                "segment",
                n.node,
                f"tunnel -> {t['target']}",
                OK if ok else FAIL,
                f"loss {t.get('loss', 1):.0%}" + (f" ({t['error']})" if t.get("error") else ""),
                ""
                if ok
                else "the underlay between the tunnel endpoints (routing, firewall, or an MTU below "
                f"{(net.mtu or 0) + TUNNEL_OVERHEAD.get(net.network_type, 0)})",
            )


def reach_hops(diag: Diagnosis, r: dict, gathered) -> None:
    if gathered is None:
        return
    where = {ip: p.host for p in r["ports"] for ip in p.addresses}
    for n in gathered.nodes:
        if n.status not in (Status.OK, Status.FAILED):
            continue
        for c in (n.result or {}).get("checks", []):
            if c["check"] not in ("arping", "mtu"):
                continue
            to = where.get(c["target"]) or "?"
            label = f"{'ARP' if c['check'] == 'arping' else 'MTU'} qdhcp -> {c['target']} ({to})"
            cause = (
                f"L2 between {n.node} and {to}: the port's wiring on {to} or the segment"
                if c["check"] == "arping"
                else f"an MTU below {r['network'].mtu} between {n.node} and {to}"
            )
            diag.add("reach", n.node, label, OK if c["ok"] else FAIL, c["detail"], "" if c["ok"] else cause)
