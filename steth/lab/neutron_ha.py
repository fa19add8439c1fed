"""HA routers in the real-Neutron lab (`--routers ha`): where each instance of a router runs and in which VRRP
state, as Neutron reports it, and the keepalived processes behind them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from steth.lab.neutron_nodes import node_dir
from steth.lab.shell import LabError


def ha_states(api, router_id: str) -> dict[str, str]:
    """host -> ha_state (active, standby, unknown) from GET /v2.0/routers/{id}/l3-agents; Neutron fills it from
    each agent's reports (neutron/agent/l3/ha.py: AgentMixin.notify_server -> update_ha_routers_states)."""
    agents = api.get(f"/v2.0/routers/{router_id}/l3-agents")["agents"]
    return {a["host"]: a.get("ha_state") or "unknown" for a in agents}


def wait_states(api, router_id: str, wanted, timeout: float, what: str) -> dict[str, str]:
    """Until wanted(states) holds; the last states otherwise, in one line."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = ha_states(api, router_id)
        if wanted(states):
            return states
        time.sleep(0.5)
    shown = ", ".join(f"{h} {s}" for h, s in sorted(states.items())) or "no L3 agent hosts it"
    raise LabError(f"HA router {router_id[:8]}: not {what} after {timeout:.0f} s ({shown})")


def one_active(expected_instances: int):
    """Exactly one active instance and every other standby, on expected_instances agents."""

    def check(states: dict[str, str]) -> bool:
        values = list(states.values())
        return (
            len(values) == expected_instances
            and values.count("active") == 1
            and values.count("standby") == (expected_instances - 1)
        )

    return check


def keepalived_pids(node: str, router_id: str) -> list[int]:
    """The keepalived parent and its VRRP child of a router on a node, from the pid files the L3 agent gives it:
    <ha_confs_path>/<router id>.pid.keepalived and ...-vrrp (neutron/agent/linux/keepalived.py:
    KeepalivedManager.get_process, get_vrrp_pid_file_name; external_process.py: ProcessManager, 'pid.' + service;
    ha_confs_path defaults to $state_path/ha_confs)."""
    base = node_dir(node) / "ha_confs"
    pids = []
    for name in (f"{router_id}.pid.keepalived", f"{router_id}.pid.keepalived-vrrp"):
        path: Path = base / name
        if path.exists() and path.read_text().strip().isdigit():
            pids.append(int(path.read_text().strip()))
    return pids


def active_host(states: dict[str, Any]) -> str:
    active = [h for h, s in states.items() if s == "active"]
    if len(active) != 1:
        raise LabError(f"expected one active instance, got {', '.join(active) or 'none'}")
    return active[0]
