"""br-tun: a tunnel network on this host's tunnel bridge, from OVSDB and `ovs-ofctl -O OpenFlow13 dump-flows`.

The facts checked are the OVS agent's (upstream file in each comment); `evaluate` is pure and decides every check.
"""

from __future__ import annotations

from steth.agent import ovsdb, procs
from steth.agent.errors import CouldNotRun
from steth.agent.openflow import Flow, parse_flows
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.checks import CheckRow
from steth.schemas.envelope import Status
from steth.schemas.probes.br_tun import BrTunParams, BrTunResult, Tunnel, tunnel_name

# neutron_lib/plugins/ml2/ovs_constants.py, "Tunnel bridge (tun_br)": the tables br_tun.py installs into.
TUN_TO_LV = {"gre": 3, "vxlan": 4, "geneve": 6}  # GRE_TUN_TO_LV, VXLAN_TUN_TO_LV, GENEVE_TUN_TO_LV
UCAST_TO_TUN = 20
ARP_RESPONDER = 21
FLOOD_TO_TUN = 22
OFPVID_PRESENT = 0x1000  # OpenFlow 1.3: a VLAN id set with set_field carries this bit


def dump_flows_argv(bridge: str) -> list[str]:
    # neutron/agent/common/ovs_lib.py OVSBridge.initial_protocols: OpenFlow10, 13 and 14 on every bridge; the
    # native (os-ken) interface writes goto_table instructions, which OpenFlow 1.0 cannot carry, so ask for 1.3.
    # --no-names: ports by number (mapped to names from OVSDB); --no-stats: no counters to parse around.
    return ["ovs-ofctl", "-O", "OpenFlow13", "--no-names", "--no-stats", "dump-flows", bridge]


def local_vlan(flows: list[Flow], network_type: str, vni: int) -> int | None:
    """br_tun.py OVSTunnelBridge.provision_local_vlan: in TUN_TABLE[type], tun_id=VNI pushes the local VLAN."""
    for f in flows:
        if f.table == TUN_TO_LV[network_type] and _int(f.match.get("tun_id")) == vni:
            vid = _int(f.set_field("vlan_vid"))
            if vid is not None:
                return vid & 0xFFF
    return None


def vlan_of(f: Flow) -> int | None:
    """The local VLAN a br-tun flow matches (dl_vlan=N, or vlan_vid=0x1000|N as OpenFlow 1.3 may print it)."""
    if "dl_vlan" in f.match:
        return _int(f.match["dl_vlan"])
    vid = _int(f.match.get("vlan_vid", "").split("/")[0] or None)
    return vid & 0xFFF if vid is not None else None


def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def find_tunnel(ports: list[dict], bridge: str, network_type: str, remote_ip: str) -> dict | None:
    by_name = tunnel_name(network_type, remote_ip)
    on_bridge = [p for p in ports if p["bridge"] == bridge]
    return next((p for p in on_bridge if p["name"] == by_name), None) or next(
        (p for p in on_bridge if p["type"] == network_type and p["options"].get("remote_ip") == remote_ip), None
    )


def evaluate(p: BrTunParams, bridges: list[dict], ports: list[dict], flows: list[Flow]) -> BrTunResult:
    """Every check, in the order a frame from br-int meets them."""
    res = BrTunResult(bridge=p.bridge, vni=p.vni, network_type=p.network_type)
    checks = res.checks
    if p.bridge not in {b["name"] for b in bridges}:
        checks.append(CheckRow(check="bridge", target=p.bridge, ok=False, detail=f"no bridge {p.bridge}"))
        return res
    # ovs_neutron_agent.py OVSNeutronAgent.setup_tunnel_br: patch-tun on br-int and patch-int on br-tun, peers.
    for bridge, name, peer in ((p.int_bridge, p.int_patch, p.tun_patch), (p.bridge, p.tun_patch, p.int_patch)):
        row = next((r for r in ports if r["name"] == name and r["bridge"] == bridge), None)
        if row is None:
            checks.append(CheckRow(check="patch", target=name, ok=False, detail=f"no port {name} on {bridge}"))
            continue
        ofport = row.get("ofport")
        bad = (
            f"type {row['type'] or 'system'}, not patch"
            if row["type"] != "patch"
            else f"peer {row['peer']}, not {peer}"
            if row["peer"] != peer
            else "its peer does not point back"
            if not row["peer_ok"]
            else f"ofport {ofport}"
            if not (isinstance(ofport, int) and ofport > 0)
            else ""
        )
        checks.append(
            CheckRow(check="patch", target=name, ok=not bad, detail=bad or f"{bridge} <-> {peer}, ofport {ofport}")
        )
    names = {r["ofport"]: r["name"] for r in ports if r["bridge"] == p.bridge and isinstance(r.get("ofport"), int)}
    tunnel_port: dict[str, str] = {}  # remote ip -> port name (usable ones only)
    # ovs_neutron_agent.py OVSNeutronAgent._setup_tunnel_port: options remote_ip, local_ip (and in_key/out_key=flow).
    for remote in p.remote_ips:
        row = find_tunnel(ports, p.bridge, p.network_type, remote)
        expected = tunnel_name(p.network_type, remote) or f"{p.network_type} port"
        if row is None:
            checks.append(
                CheckRow(
                    check="tunnel port", target=remote, ok=False, detail=f"no {expected} to {remote} on {p.bridge}"
                )
            )
            continue
        opts = row.get("options") or {}
        res.tunnels.append(
            Tunnel(
                name=row["name"],
                remote_ip=opts.get("remote_ip", ""),
                local_ip=opts.get("local_ip", ""),
                ofport=row.get("ofport"),
                type=row["type"],
            )
        )
        ofport = row.get("ofport")
        bad = (
            f"remote_ip {opts.get('remote_ip') or 'unset'}"
            if opts.get("remote_ip") != remote
            else f"local_ip {opts.get('local_ip') or 'unset'}, this host's tunneling_ip is {p.local_ip}"
            if p.local_ip and opts.get("local_ip") != p.local_ip
            else f"ofport {ofport}" + (f": {row['error']}" if row.get("error") else "")
            if not (isinstance(ofport, int) and ofport > 0)
            else ""
        )
        detail = f"{row['name']} -> {remote}" + (
            f": {bad}" if bad else f" from {opts.get('local_ip')}, ofport {ofport}"
        )
        checks.append(CheckRow(check="tunnel port", target=row["name"], ok=not bad, detail=detail))
        if not bad:
            tunnel_port[remote] = row["name"]

    lvid = res.local_vlan = local_vlan(flows, p.network_type, p.vni)
    table = TUN_TO_LV[p.network_type]
    if lvid is None:
        checks.append(
            CheckRow(
                check="local vlan",
                target=f"VNI {p.vni}",
                ok=False,
                detail=f"no flow in table {table} for tun_id={p.vni:#x}: the OVS agent has not provisioned the network",
            )
        )
        return res
    checks.append(CheckRow(check="local vlan", target=f"VNI {p.vni}", detail=f"table {table}: local VLAN {lvid}"))
    mine = [f for f in flows if vlan_of(f) == lvid]

    def out_names(f: Flow) -> list[str]:
        return [names.get(_int(o), o) for o in f.outputs()]

    # br_tun.py install_flood_to_tun (l2pop fdb_add, FLOODING_ENTRY): table 22, the local VLAN, pop it, set the
    # VNI and output to every tunnel that leads to a host with a port of the network.
    flood = next((f for f in mine if f.table == FLOOD_TO_TUN), None)
    if flood is not None:
        res.flood_ports = out_names(flood)
    if p.remote_ips:
        wanted = [tunnel_port.get(r) or tunnel_name(p.network_type, r) or r for r in p.remote_ips]
        missing = [w for w in wanted if w not in res.flood_ports]
        if flood is None:
            detail = f"no flow in table {FLOOD_TO_TUN} for local VLAN {lvid}: nothing floods to {', '.join(wanted)}"
        elif missing:
            detail = (
                f"table {FLOOD_TO_TUN} floods to {', '.join(res.flood_ports) or 'nothing'}, not {', '.join(missing)}"
            )
        else:
            detail = f"table {FLOOD_TO_TUN}, local VLAN {lvid} -> {', '.join(res.flood_ports)}"
        checks.append(CheckRow(check="l2pop flood", target=f"VNI {p.vni}", ok=not missing, detail=detail))
    # br_tun.py install_unicast_to_tun (l2pop fdb_add, a port's MAC): table 20, priority 2, the local VLAN and the
    # MAC, out of the tunnel to that port's host.
    for f in mine:
        if f.table == UCAST_TO_TUN and f.priority == 2 and "dl_dst" in f.match:
            res.unicast[f.match["dl_dst"].lower()] = ",".join(out_names(f))
    for peer in p.unicast:
        want = tunnel_port.get(peer.remote_ip) or tunnel_name(p.network_type, peer.remote_ip)
        got = res.unicast.get(peer.mac)
        detail = (
            f"no flow in table {UCAST_TO_TUN} for {peer.mac} on local VLAN {lvid}"
            if got is None
            else f"table {UCAST_TO_TUN} -> {got}, not {want} ({peer.remote_ip})"
            if got != want
            else f"table {UCAST_TO_TUN}, local VLAN {lvid} -> {got} ({peer.remote_ip})"
        )
        checks.append(CheckRow(check="l2pop unicast", target=peer.mac, ok=got == want, detail=detail))
    # openflow/native/ovs_bridge.py install_arp_responder (l2pop with arp_responder): table 21, ARP for remote ports.
    res.arp_responder = sorted(f.match["arp_tpa"] for f in mine if f.table == ARP_RESPONDER and "arp_tpa" in f.match)
    return res


async def run(params: BrTunParams, ctx: ProbeContext) -> Outcome:
    bridges, ports, _ = await ovsdb.read(params.db or ovsdb.default_db(), timeout=ctx.remaining(0.5))
    flows: list[Flow] = []
    if params.bridge in {b["name"] for b in bridges}:
        done = await procs.run(dump_flows_argv(params.bridge), timeout=ctx.remaining(0.1))
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise CouldNotRun(f"ovs-ofctl dump-flows {params.bridge}: {why}")
        flows = parse_flows(done.stdout)
    res = evaluate(params, bridges, ports, flows)
    bad = [c for c in res.checks if not c.ok]
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        return Outcome(Status.FAILED, f"{bad[0].check} {bad[0].target}: {bad[0].detail}{more}", res)
    return Outcome(Status.OK, f"VNI {params.vni} on local VLAN {res.local_vlan}, {len(res.tunnels)} tunnel(s)", res)
