"""vif: one Neutron port's wiring on this host, from OVSDB (steth.agent.ovsdb) and `ip -j link`."""

from __future__ import annotations

import json

from steth.agent import ovsdb, procs
from steth.agent.errors import IpError
from steth.agent.probes import Outcome, ProbeContext
from steth.schemas.checks import CheckRow
from steth.schemas.envelope import Status
from steth.schemas.probes.vif import VifDevice, VifParams, VifResult

DEAD_VLAN = 4095


def device_names(port_id: str) -> dict[str, str]:
    """Nova/os-vif names: prefix plus the first 11 characters of the port id."""
    return {role: f"{role}{port_id[:11]}" for role in ("tap", "qbr", "qvb", "qvo")}


def parse_links(text: str) -> dict[str, dict]:
    return {link["ifname"]: link for link in json.loads(text or "[]") if "ifname" in link}


def device(role: str, name: str, links: dict[str, dict]) -> VifDevice:
    link = links.get(name)
    if link is None:
        return VifDevice(role=role, name=name, exists=False)
    return VifDevice(
        role=role,
        name=name,
        exists=True,
        admin_up="UP" in link.get("flags", []),
        oper=link.get("operstate"),
        mtu=link.get("mtu"),
        master=link.get("master"),
    )


def evaluate(p: VifParams, ports: list[dict], links: dict[str, dict]) -> VifResult:
    """Every check in path order (the controller names the first that fails)."""
    names = device_names(p.port_id)
    res = VifResult(port_id=p.port_id, bridge=p.bridge)
    checks = res.checks
    mine = [row for row in ports if row.get("iface_id") == p.port_id]
    row = next((r for r in mine if r["bridge"] == p.bridge), mine[0] if mine else None)
    if row is not None:
        res.ovs_port, res.ovs_bridge, res.tag, res.ofport = (
            row["name"],
            row["bridge"],
            row.get("tag"),
            row.get("ofport"),
        )
        res.iface_id, res.attached_mac, res.vm_uuid = row.get("iface_id"), row.get("attached_mac"), row.get("vm_uuid")
    # Plugging style: from the OVS port's name, else from the devices left behind.
    if res.ovs_port == names["qvo"] or (res.ovs_port is None and names["qbr"] in links):
        res.plugging = "hybrid"
    elif res.ovs_port == names["tap"] or (res.ovs_port is None and names["tap"] in links):
        res.plugging = "native"
    chain = ("tap", "qbr", "qvb", "qvo") if res.plugging == "hybrid" else ("tap",)
    res.devices = [device(role, names[role], links) for role in chain]

    if row is None:
        checks.append(
            CheckRow(
                check="ovs-port",
                target=p.bridge,
                ok=False,
                detail=f"no port with external_ids:iface-id={p.port_id} on any bridge"
                + (
                    f" (expected {names['qvo' if res.plugging == 'hybrid' else 'tap']} on {p.bridge})"
                    if res.plugging != "unknown"
                    else ""
                ),
            )
        )
    elif row["bridge"] != p.bridge:
        checks.append(
            CheckRow(check="ovs-port", target=row["name"], ok=False, detail=f"on {row['bridge']}, not {p.bridge}")
        )
    else:
        checks.append(CheckRow(check="ovs-port", target=row["name"], detail=f"on {p.bridge}, iface-id matches"))
    if row is not None:
        if p.mac:
            same = (row.get("attached_mac") or "").lower() == p.mac
            checks.append(
                CheckRow(
                    check="attached-mac",
                    target=row["name"],
                    ok=same,
                    detail=f"{row.get('attached_mac') or 'none'}" + ("" if same else f", Neutron says {p.mac}"),
                )
            )
        tag = row.get("tag")
        if tag == DEAD_VLAN:
            checks.append(
                CheckRow(
                    check="tag",
                    target=row["name"],
                    ok=False,
                    detail="tag 4095: the OVS agent's dead VLAN (port not bound or wiring failed)",
                )
            )
        elif tag is None:
            checks.append(
                CheckRow(
                    check="tag",
                    target=row["name"],
                    ok=False,
                    detail="no local VLAN tag: the OVS agent has not wired it",
                )
            )
        else:
            checks.append(CheckRow(check="tag", target=row["name"], detail=f"local VLAN {tag}"))
        ofport = row.get("ofport")
        ok = isinstance(ofport, int) and ofport > 0
        checks.append(
            CheckRow(
                check="ofport",
                target=row["name"],
                ok=ok,
                detail=f"ofport {ofport}"
                + ("" if ok else f": OVS cannot use the device {row.get('error') or ''}".rstrip()),
            )
        )
    for d in res.devices:
        if not d.exists:
            checks.append(CheckRow(check="device", target=d.name, ok=False, detail=f"{d.role} device missing"))
            continue
        if not d.admin_up:
            checks.append(CheckRow(check="device", target=d.name, ok=False, detail=f"{d.role} is down (admin)"))
        elif d.oper not in ("UP", "UNKNOWN"):
            checks.append(
                CheckRow(
                    check="device",
                    target=d.name,
                    ok=False,
                    detail=f"{d.role} operstate {d.oper} (no carrier: its peer is down)",
                )
            )
        else:
            want = {"tap": names["qbr"], "qvb": names["qbr"]}.get(d.role) if res.plugging == "hybrid" else None
            if want and d.master != want:
                checks.append(
                    CheckRow(
                        check="device", target=d.name, ok=False, detail=f"not in {want} (master: {d.master or 'none'})"
                    )
                )
            else:
                checks.append(CheckRow(check="device", target=d.name, detail=f"{d.role} up"))
        if p.expect_mtu_bytes and d.mtu is not None:
            ok = d.mtu >= p.expect_mtu_bytes
            checks.append(
                CheckRow(
                    check="mtu",
                    target=d.name,
                    ok=ok,
                    detail=f"MTU {d.mtu}" + ("" if ok else f" < network MTU {p.expect_mtu_bytes}"),
                )
            )
    if p.expect_hybrid is not None and res.plugging != "unknown":
        ok = (res.plugging == "hybrid") == p.expect_hybrid
        checks.append(
            CheckRow(
                check="plugging",
                target=res.plugging,
                ok=ok,
                detail=res.plugging
                + ("" if ok else f", but binding:vif_details says ovs_hybrid_plug={p.expect_hybrid}"),
            )
        )
    return res


async def run(params: VifParams, ctx: ProbeContext) -> Outcome:
    _, ports, _ = await ovsdb.read(params.db or ovsdb.default_db(), timeout=ctx.remaining(0.5))
    links = await procs.run(["ip", "-j", "link", "show"], timeout=ctx.remaining(0.1))
    if links.returncode != 0:
        raise IpError(f"ip link: {links.stderr.strip() or links.returncode}")
    res = evaluate(params, ports, parse_links(links.stdout))
    bad = [c for c in res.checks if not c.ok]
    if bad:
        return Outcome(
            Status.FAILED,
            f"{bad[0].target}: {bad[0].detail}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""),
            res,
        )
    return Outcome(Status.OK, f"{res.plugging} plugging, {res.ovs_port} tag {res.tag}", res)
