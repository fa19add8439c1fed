"""Reading OVN's state on a node: its OVSDB (chassis settings, tunnels, OVN ports), ovn-controller's control
socket, and the NB/SB databases named in the agent's [ovn] config. argv builders and pure parsers here;
the probes (steth.agent.probes.ovn_*) only decide.

The OVN facts relied on, with their upstream sources (ovn-org/ovn):
- controller/ovn-controller.c: OVS_NB_CFG_NAME "ovn-nb-cfg" and OVS_NB_CFG_TS_NAME "ovn-nb-cfg-ts" are
  written to br-int's external_ids once the flows of that SB_Global nb_cfg are installed.
- controller/binding.c: OVN_INSTALLED_EXT_ID "ovn-installed" on the Interface once a port's flows are in.
- controller/encaps.h: OVN_TUNNEL_ID "ovn-chassis-id" on the tunnel port ("<chassis>@<ip>" since 22.x; the
  Port's external_ids in 23.03, the Interface's in later releases: both are read).
- controller/ovn-controller.c: the unixctl server is $OVN_RUNDIR/ovn-controller.<pid>.ctl (no --unixctl),
  its pidfile $OVN_RUNDIR/ovn-controller.pid; `connection-status` answers "connected" or "not connected".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from steth.agent import procs
from steth.agent.errors import CouldNotRun
from steth.agent.ovsdb import as_list, json_tables, listing_argv, rows, run_vsctl, scalar

TUNNEL_TYPES = ("geneve", "vxlan", "stt")
GATEWAY_OPTION = "enable-chassis-as-gw"  # neutron/common/ovn/constants.py CMS_OPT_CHASSIS_AS_GW
CHASSIS_KEYS = {  # Open_vSwitch external_ids ovn-controller reads (ovn-controller(8), "Configuration")
    "system_id": "system-id",
    "hostname": "hostname",
    "ovn_remote": "ovn-remote",
    "encap_type": "ovn-encap-type",
    "encap_ip": "ovn-encap-ip",
    "bridge": "ovn-bridge",
    "bridge_mappings": "ovn-bridge-mappings",
    "cms_options": "ovn-cms-options",
}


def ovn_rundir() -> Path:
    """Where ovn-controller keeps its pidfile and control socket, as ovn-appctl itself looks."""
    return Path(os.environ.get("OVN_RUNDIR") or "/var/run/ovn")


# --- the node's own OVSDB -------------------------------------------------------------------------


def local_argv(db: str) -> list[str]:
    """One ovs-vsctl call: Open_vSwitch, Bridge, Port and Interface rows (db is a validated remote)."""
    return listing_argv(
        "ovs-vsctl",
        db,
        [
            ("Open_vSwitch", "external_ids"),
            ("Bridge", "_uuid,name,ports,external_ids"),
            ("Port", "_uuid,name,interfaces,external_ids"),
            ("Interface", "_uuid,name,type,ofport,options,external_ids,bfd,bfd_status,link_state,admin_state,error"),
        ],
    )


def parse_local(stdout: str) -> dict[str, Any]:
    """local_argv's four JSON tables as {"ovs": external_ids, "bridges", "ports", "ifaces"}."""
    docs = json_tables(stdout, 4, "ovs-vsctl")
    ovs = rows(docs[0])
    return {
        "ovs": (ovs[0].get("external_ids") or {}) if ovs else {},
        "bridges": rows(docs[1]),
        "ports": rows(docs[2]),
        "ifaces": rows(docs[3]),
    }


def chassis_settings(ovs_external_ids: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {field: ovs_external_ids.get(key) for field, key in CHASSIS_KEYS.items()}
    out["bridge"] = out["bridge"] or "br-int"  # ovn-controller's default integration bridge
    out["gateway"] = GATEWAY_OPTION in (out["cms_options"] or "").split(",")
    return out


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def bridge_nb_cfg(local: dict[str, Any], bridge: str) -> tuple[int | None, int | None]:
    """(ovn-nb-cfg, ovn-nb-cfg-ts) from the integration bridge's external_ids."""
    for br in local["bridges"]:
        if br["name"] == bridge:
            ext = br.get("external_ids") or {}
            return _int(ext.get("ovn-nb-cfg")), _int(ext.get("ovn-nb-cfg-ts"))
    return None, None


def _port_of(local: dict[str, Any]) -> dict[str, tuple[dict, str]]:
    """Interface uuid -> (its Port row, its bridge's name)."""
    bridge_of = {u: br["name"] for br in local["bridges"] for u in as_list(br.get("ports") or [])}
    out = {}
    for port in local["ports"]:
        for iface in as_list(port.get("interfaces") or []):
            out[iface] = (port, bridge_of.get(port["_uuid"], ""))
    return out


def tunnels(local: dict[str, Any]) -> list[dict[str, Any]]:
    """Tunnel interfaces (geneve, vxlan, stt) with their peer chassis and BFD state, with findings."""
    owners = _port_of(local)
    out = []
    for iface in sorted(local["ifaces"], key=lambda i: i["name"]):
        if iface.get("type") not in TUNNEL_TYPES:
            continue
        port, _ = owners.get(iface["_uuid"], ({}, ""))
        chassis_id = (iface.get("external_ids") or {}).get("ovn-chassis-id") or (port.get("external_ids") or {}).get(
            "ovn-chassis-id"
        )
        bfd, status = iface.get("bfd") or {}, iface.get("bfd_status") or {}
        row = {
            "port": iface["name"],
            "type": iface["type"],
            "remote_ip": (iface.get("options") or {}).get("remote_ip"),
            "chassis": chassis_id.split("@", 1)[0] if chassis_id else None,
            "ofport": scalar(iface.get("ofport")),
            "bfd_enabled": bfd.get("enable") == "true",
            "bfd_state": status.get("state"),
            "bfd_remote_state": status.get("remote_state"),
            "bfd_diagnostic": status.get("diagnostic") or None,
        }
        findings = []
        if row["ofport"] == -1:
            findings.append("ofport -1" + (f": {scalar(iface.get('error'))}" if scalar(iface.get("error")) else ""))
        if row["bfd_enabled"] and row["bfd_state"] != "up":
            findings.append(
                f"BFD {row['bfd_state'] or 'no state'}"
                + (f" (remote {row['bfd_remote_state']})" if row["bfd_remote_state"] else "")
                + (f": {row['bfd_diagnostic']}" if row["bfd_diagnostic"] else "")
            )
        row["findings"] = findings
        out.append(row)
    return out


def bindings(local: dict[str, Any], iface_ids: list[str]) -> list[dict[str, Any]]:
    """For each iface-id, the interface carrying it (the first, by name, if several do), with findings."""
    owners = _port_of(local)
    out = []
    for wanted in iface_ids:
        found = sorted(
            (i for i in local["ifaces"] if (i.get("external_ids") or {}).get("iface-id") == wanted),
            key=lambda i: i["name"],
        )
        if not found:
            out.append({"iface_id": wanted, "findings": [f"no interface with iface-id {wanted} on this node"]})
            continue
        iface = found[0]
        ext = iface.get("external_ids") or {}
        row = {
            "iface_id": wanted,
            "interface": iface["name"],
            "bridge": owners.get(iface["_uuid"], ({}, None))[1] or None,
            "ofport": scalar(iface.get("ofport")),
            "link_state": scalar(iface.get("link_state")),
            "admin_state": scalar(iface.get("admin_state")),
            "attached_mac": ext.get("attached-mac"),
            "vm_uuid": ext.get("vm-uuid"),
            "ovn_installed": ext.get("ovn-installed") == "true",
        }
        findings = []
        if len(found) > 1:
            findings.append(f"{len(found)} interfaces carry this iface-id: {', '.join(i['name'] for i in found)}")
        if row["ofport"] == -1:
            findings.append("ofport -1" + (f": {scalar(iface.get('error'))}" if scalar(iface.get("error")) else ""))
        if row["link_state"] == "down":
            findings.append("link down")
        if not row["ovn_installed"]:
            findings.append("not installed: ovn-controller has not set external_ids:ovn-installed")
        row["findings"] = findings
        out.append(row)
    return out


async def read_local(db: str, timeout: float) -> dict[str, Any]:
    return parse_local(await run_vsctl(local_argv(db), db, timeout))


# --- ovn-controller -------------------------------------------------------------------------------


def controller_pid(rundir: Path) -> int | None:
    """ovn-controller's pid from its pidfile, if that process is alive and is ovn-controller."""
    try:
        pid = int((rundir / "ovn-controller.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if comm == "ovn-controller" else None


def connection_status_argv(rundir: Path, pid: int) -> list[str]:
    return ["ovn-appctl", "--timeout=5", "-t", str(rundir / f"ovn-controller.{pid}.ctl"), "connection-status"]


async def connection_status(rundir: Path, pid: int, timeout: float) -> str | None:
    done = await procs.run(connection_status_argv(rundir, pid), timeout=timeout)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


# --- the NB and SB (remotes from the agent's config only) ------------------------------------------


def sb_argv(remote: str) -> list[str]:
    return listing_argv(
        "ovn-sbctl",
        remote,
        [("SB_Global", "nb_cfg"), ("Chassis", "_uuid,name,hostname,encaps"), ("Encap", "_uuid,ip,type")],
    )


def parse_sb(stdout: str) -> dict[str, Any]:
    """{"nb_cfg": int | None, "chassis": [{"name", "hostname", "encap_ips"}]}"""
    docs = json_tables(stdout, 3, "ovn-sbctl")
    glob, chassis, encaps = rows(docs[0]), rows(docs[1]), rows(docs[2])
    ip_of = {e["_uuid"]: e.get("ip") for e in encaps}
    return {
        "nb_cfg": _int(glob[0].get("nb_cfg")) if glob else None,
        "chassis": sorted(
            (
                {
                    "name": c["name"],
                    "hostname": c.get("hostname") or "",
                    "encap_ips": [ip_of[u] for u in as_list(c.get("encaps") or []) if ip_of.get(u)],
                }
                for c in chassis
            ),
            key=lambda c: c["name"],
        ),
    }


LSP_COLUMNS = "name,type,addresses,port_security,enabled,up,options,dhcpv4_options"
PB_COLUMNS = "logical_port,chassis,up,requested_chassis"


def nb_ports_argv(remote: str, ports: list[str]) -> list[str]:
    """One `find` per port (names validated as port ids), then every DHCP_Options row."""
    argv = listing_argv("ovn-nbctl", remote, [])
    for name in ports:
        argv += ["--", f"--columns={LSP_COLUMNS}", "find", "Logical_Switch_Port", f"name={name}"]
    return argv + ["--", "--columns=_uuid,cidr,options", "list", "DHCP_Options"]


def sb_ports_argv(remote: str, ports: list[str]) -> list[str]:
    argv = listing_argv("ovn-sbctl", remote, [])
    for name in ports:
        argv += ["--", f"--columns={PB_COLUMNS}", "find", "Port_Binding", f"logical_port={name}"]
    return argv + ["--", "--columns=_uuid,name", "list", "Chassis"]


def found_rows(stdout: str, ports: list[str], tool: str) -> tuple[dict[str, dict], list[dict]]:
    """({port: its row} for the ports a `find` per port found, the rows of the final `list`)."""
    docs = json_tables(stdout, len(ports) + 1, tool)
    found = {name: rows(doc)[0] for name, doc in zip(ports, docs) if rows(doc)}
    return found, rows(docs[-1])


def parse_nb_ports(stdout: str, ports: list[str]) -> dict[str, dict[str, Any]]:
    found, dhcp_rows = found_rows(stdout, ports, "ovn-nbctl")
    dhcp = {d["_uuid"]: d for d in dhcp_rows}
    out: dict[str, dict[str, Any]] = {}
    for name, lsp in found.items():
        options = lsp.get("options") or {}
        dhcp_row = dhcp.get(scalar(lsp.get("dhcpv4_options")) or "", {})
        out[name] = {
            "type": lsp.get("type") or "",
            "addresses": as_list(lsp.get("addresses") or []),
            "port_security": as_list(lsp.get("port_security") or []),
            "enabled": scalar(lsp.get("enabled")),
            "up": scalar(lsp.get("up")),
            "requested_chassis": options.get("requested-chassis"),
            "dhcpv4_cidr": dhcp_row.get("cidr"),
            "dhcpv4_options": dhcp_row.get("options") or {},
        }
    return out


def parse_sb_ports(stdout: str, ports: list[str]) -> dict[str, dict[str, Any]]:
    found, chassis_rows = found_rows(stdout, ports, "ovn-sbctl")
    chassis = {c["_uuid"]: c["name"] for c in chassis_rows}
    out: dict[str, dict[str, Any]] = {}
    for name, pb in found.items():
        bound, requested = scalar(pb.get("chassis")), scalar(pb.get("requested_chassis"))
        out[name] = {
            "chassis": chassis.get(bound, bound) if bound else None,
            "sb_up": scalar(pb.get("up")),
            "sb_requested_chassis": chassis.get(requested, requested) if requested else None,
        }
    return out


def port_findings(name: str, nb: dict[str, Any] | None, sb: dict[str, Any] | None, nb_read: bool, sb_read: bool):
    found = []
    if nb_read and nb is None:
        found.append("no Logical_Switch_Port of that name in the NB")
    if nb:
        if nb.get("enabled") is False:
            found.append("disabled (enabled=false)")
        if nb.get("type") == "" and not nb.get("up"):
            found.append("NB up=false: no chassis has claimed it")
        if nb.get("type") == "" and not nb.get("dhcpv4_cidr"):
            found.append("no DHCPv4 options: OVN will not answer its DHCP")
    if sb_read and sb is None and (nb is None or nb.get("type") == ""):
        found.append("no Port_Binding in the SB")
    if sb:
        if not sb.get("chassis"):
            found.append("Port_Binding bound to no chassis")
        elif nb and nb.get("requested_chassis") and sb["chassis"] != nb["requested_chassis"]:
            found.append(f"bound to {sb['chassis']}, not the requested chassis {nb['requested_chassis']}")
        if sb.get("chassis") and sb.get("sb_up") is False:
            found.append(f"Port_Binding up=false on {sb['chassis']}")
    return found


def tool_error(done: procs.Completed, remote: str, timeout: float) -> str | None:
    """Why an ovn-nbctl/ovn-sbctl call gave no answer, in one line; None when it did."""
    tool = done.argv[0] if done.argv else "the tool"
    if done.timed_out:
        return f"{tool} did not answer within {timeout:.1f} s ({remote})"
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        why = lines[0].removeprefix(f"{tool}: ").removeprefix(f"{remote}: ") if lines else f"exit {done.returncode}"
        return f"cannot read {remote}: {why.removesuffix(' ()')}"  # "()": the tool's empty errno text
    return None


async def ovn_tool(argv: list[str], remote: str, timeout: float) -> str:
    """The tool's stdout; a database that does not answer means the probe could not run (aborted)."""
    done = await procs.run(argv, timeout=timeout)
    error = tool_error(done, remote, timeout)
    if error:
        raise CouldNotRun(error)
    return done.stdout


async def read_sb(remote: str, timeout: float) -> tuple[dict[str, Any] | None, str | None]:
    """(parse_sb of the SB, None) or (None, why not): for ovn-chassis an unreachable SB is a finding."""
    done = await procs.run(sb_argv(remote), timeout=timeout)
    error = tool_error(done, remote, timeout)
    return (None, error) if error else (parse_sb(done.stdout), None)
