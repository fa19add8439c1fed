"""Which interfaces lead out of OVS bridges, as kernel devices a probe can listen or send on.

An OVS Port is not a device: a bond is one Port holding several Interfaces (the members carry the traffic), and
a DPDK Interface (type dpdk) is driven by vswitchd in userspace, so no kernel device of that name exists. OVS
reports a DPDK row by its `type` whether or not vswitchd could open it (without DPDK it sets ofport -1 and
error "could not open network device ... (Address family not supported by protocol)"): the type decides.
"""

from __future__ import annotations

from typing import Any

# Interface types backed by a kernel network device of the same name (ovs-vswitchd.conf.db(5), Interface type).
KERNEL_TYPES = ("", "system", "tap", "afxdp", "afxdp-nonpmd")
NOT_UPLINKS = ("patch", "internal")


def not_applicable(kind: str) -> str:
    """Why a probe cannot use an interface of this type as a kernel device ("" when it can)."""
    if kind in KERNEL_TYPES:
        return ""
    if kind.startswith("dpdk"):
        return "not applicable: DPDK port, not a kernel device"
    return f"not applicable: {kind} port, not a kernel device"


def uplink_interfaces(ports: list[dict[str, Any]], bridges: list[str]) -> list[dict[str, Any]]:
    """One row per Interface of each uplink Port (neither patch nor internal) of `bridges`: the members of a
    bond each, with `not_applicable` saying why one is no kernel device."""
    rows = []
    for port in ports:
        if port["bridge"] not in bridges or port.get("type") in NOT_UPLINKS:
            continue
        members = port.get("members") or [
            {"name": port["name"], "type": port.get("type") or "", "ofport": port.get("ofport"), "link_state": None}
        ]
        for member in members:
            rows.append(
                {
                    "bridge": port["bridge"],
                    "port": port["name"],
                    "interface": member["name"],
                    "type": member.get("type") or "",
                    "ofport": member.get("ofport"),
                    "link_state": member.get("link_state"),
                    "tag": port.get("tag"),
                    "trunks": port.get("trunks") or [],
                    "bond": len(members) > 1,
                    "not_applicable": not_applicable(member.get("type") or ""),
                }
            )
    return rows
