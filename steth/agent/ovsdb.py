"""Reading OVSDB through `ovs-vsctl --format=json`: one call lists bridges, ports, interfaces and the
version; the OVSDB value encoding ("uuid", "set", "map") is decoded into plain Python here.
"""

from __future__ import annotations

import json
import os
from typing import Any

from steth.agent import procs
from steth.agent.errors import OvsdbUnavailable


def default_db() -> str:
    """Where ovs-vsctl itself would look: $OVS_RUNDIR/db.sock, else the packaged default."""
    return f"unix:{os.environ.get('OVS_RUNDIR') or '/var/run/openvswitch'}/db.sock"


BRIDGE_COLUMNS = "_uuid,name,datapath_type,fail_mode,ports,controller,external_ids"
PORT_COLUMNS = "_uuid,name,interfaces,tag,trunks,vlan_mode,other_config,external_ids"
IFACE_COLUMNS = "_uuid,name,type,ofport,options,external_ids,link_state,admin_state,error,mac_in_use"


def listing_argv(tool: str, db: str, tables: list[tuple[str, str]]) -> list[str]:
    """One call of an OVSDB client (ovs-vsctl, ovn-nbctl, ovn-sbctl) listing each (table, columns) as a JSON
    document a line. db is validated by the params model or the config (unix:/path or tcp:IP:PORT) and
    travels inside one argument."""
    argv = [tool, f"--db={db}", "--timeout=5", "--format=json"]
    for table, columns in tables:
        argv += ["--", f"--columns={columns}", "list", table]
    return argv


def vsctl_argv(db: str) -> list[str]:
    return listing_argv(
        "ovs-vsctl",
        db,
        [
            ("Bridge", BRIDGE_COLUMNS),
            ("Port", PORT_COLUMNS),
            ("Interface", IFACE_COLUMNS),
            ("Open_vSwitch", "ovs_version"),
        ],
    )


def decode(value: Any) -> Any:
    """An OVSDB JSON value: ["uuid", u] -> u, ["set", [..]] -> list, ["map", [[k, v]..]] -> dict."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, body = value
        if kind in ("uuid", "named-uuid"):
            return body
        if kind == "set":
            return [decode(v) for v in body]
        if kind == "map":
            return {str(decode(k)): decode(v) for k, v in body}
    return value


def scalar(value: Any) -> Any:
    """An optional column: the empty set is None, a one-element set its element."""
    if isinstance(value, list):
        return value[0] if len(value) == 1 else None if not value else value
    return value


def as_list(value: Any) -> list:
    """A set column: OVSDB writes a one-element set as the bare element."""
    return value if isinstance(value, list) else [value]


def rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    headings = doc.get("headings", [])
    return [{h: decode(v) for h, v in zip(headings, row)} for row in doc.get("data", [])]


def parse_output(stdout: str) -> tuple[list[dict], list[dict], list[dict], str | None]:
    """The four JSON documents of vsctl_argv's output: bridges, ports, interfaces, ovs_version."""
    docs = json_tables(stdout, 4, "ovs-vsctl")
    version = None
    ovs = rows(docs[3])
    if ovs:
        version = scalar(ovs[0].get("ovs_version"))
    return rows(docs[0]), rows(docs[1]), rows(docs[2]), version


def build(bridges: list[dict], ports: list[dict], ifaces: list[dict]) -> tuple[list[dict], list[dict]]:
    """Bridges and ports as the result models want them (ports carry their first interface's fields)."""
    iface_by_uuid = {i["_uuid"]: i for i in ifaces}
    port_by_uuid = {p["_uuid"]: p for p in ports}
    patches = {i["name"]: i for i in ifaces if i.get("type") == "patch"}
    out_bridges, out_ports = [], []
    for br in sorted(bridges, key=lambda b: b["name"]):
        members = [port_by_uuid[u] for u in as_list(br.get("ports", [])) if u in port_by_uuid]
        out_bridges.append(
            {
                "name": br["name"],
                "datapath_type": br.get("datapath_type") or "",
                "fail_mode": scalar(br.get("fail_mode")) or "",
                "ports": len(members),
                "controllers": as_list(br.get("controller") or []),
                "external_ids": br.get("external_ids") or {},
            }
        )
        for port in sorted(members, key=lambda p: p["name"]):
            members_if = [iface_by_uuid[u] for u in as_list(port.get("interfaces", [])) if u in iface_by_uuid]
            iface = next((i for i in members_if if i["name"] == port["name"]), members_if[0] if members_if else {})
            ext, other, options = (
                iface.get("external_ids") or {},
                port.get("other_config") or {},
                iface.get("options") or {},
            )
            row = {
                "bridge": br["name"],
                "name": port["name"],
                "type": iface.get("type") or "",
                "ofport": scalar(iface.get("ofport")),
                "tag": scalar(port.get("tag")),
                "trunks": sorted(as_list(port.get("trunks", []))),
                "vlan_mode": scalar(port.get("vlan_mode")) or "",
                "interfaces": sorted(i["name"] for i in members_if),
                "members": [  # every Interface of the Port (a bond has several): steth.agent.uplinks
                    {
                        "name": i["name"],
                        "type": i.get("type") or "",
                        "ofport": scalar(i.get("ofport")),
                        "link_state": scalar(i.get("link_state")),
                    }
                    for i in sorted(members_if, key=lambda i: i["name"])
                ],
                "mac_in_use": scalar(iface.get("mac_in_use")),
                "link_state": scalar(iface.get("link_state")),
                "admin_state": scalar(iface.get("admin_state")),
                "error": scalar(iface.get("error")),
                "iface_id": ext.get("iface-id"),
                "attached_mac": ext.get("attached-mac"),
                "vm_uuid": ext.get("vm-uuid"),
                "iface_status": ext.get("iface-status"),
                "net_uuid": other.get("net_uuid"),
                "segmentation_id": other.get("segmentation_id"),
                "network_type": other.get("network_type"),
                "physical_network": other.get("physical_network"),
                "external_ids": ext,
                "other_config": other,
                "options": options,
                "peer": options.get("peer") if iface.get("type") == "patch" else None,
                "peer_ok": None,
            }
            if row["peer"] is not None:
                peer = patches.get(row["peer"])
                row["peer_ok"] = bool(peer) and (peer.get("options") or {}).get("peer") == port["name"]
            row["findings"] = port_findings(row, peer_exists=row["peer"] in patches if row["peer"] else None)
            out_ports.append(row)
    return out_bridges, out_ports


def port_findings(port: dict, peer_exists: bool | None = None) -> list[str]:
    found = []
    if port.get("tag") == 4095:
        found.append("dead port (tag 4095)")
    if port.get("ofport") == -1:
        found.append("ofport -1" + (f": {port['error']}" if port.get("error") else ""))
    if port.get("peer") is not None and not port.get("peer_ok"):
        found.append(
            f"patch peer {port['peer']} missing"
            if not peer_exists
            else f"patch peer {port['peer']} does not point back"
        )
    return found


def requested_findings(bridges: list[dict], ports: list[dict], bridge: str | None, wanted: list[str]) -> list[str]:
    """A requested bridge or port that is absent (or on another bridge than asked)."""
    found = []
    if bridge and bridge not in {b["name"] for b in bridges}:
        found.append(f"bridge {bridge} absent")
    where = {}
    for p in ports:
        where.setdefault(p["name"], []).append(p["bridge"])
    for name in wanted:
        if name not in where:
            found.append(f"port {name} absent")
        elif bridge and bridge not in where[name]:
            found.append(f"port {name} is on {', '.join(where[name])}, not {bridge}")
    return found


async def run_vsctl(argv: list[str], db: str, timeout: float) -> str:
    """ovs-vsctl's stdout; OvsdbUnavailable (aborted) in the operator's words when the database does not answer."""
    done = await procs.run(argv, timeout=timeout)
    if done.timed_out:
        raise OvsdbUnavailable(f"ovs-vsctl did not answer within {timeout:.1f} s ({db})")
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        why = lines[0].removeprefix("ovs-vsctl: ").removeprefix(f"{db}: ") if lines else f"exit {done.returncode}"
        raise OvsdbUnavailable(f"cannot read OVSDB at {db}: {why}")
    return done.stdout


def json_tables(stdout: str, expected: int, tool: str) -> list[dict]:
    """The JSON documents of a multi-command `--format=json` call, one a line; ValueError when not `expected`."""
    docs = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    if len(docs) != expected:
        raise ValueError(f"expected {expected} JSON tables from {tool}, got {len(docs)}")
    return docs


async def read(db: str, timeout: float) -> tuple[list[dict], list[dict], str | None]:
    """(bridges, ports, ovs_version) from the OVSDB at db."""
    bridges, ports, ifaces, version = parse_output(await run_vsctl(vsctl_argv(db), db, timeout))
    out_bridges, out_ports = build(bridges, ports, ifaces)
    return out_bridges, out_ports, version
