"""The real-Neutron lab with HA routers (`steth lab up --openstack --neutron real --routers ha --network 2`): l3_ha
as kolla-ansible sets it, keepalived from Debian in a qrouter- on both network nodes, and what port-check says
of the router when one instance is active, when keepalived dies on the active node, and after the failover.

The lab is its own: STETH_TEST_HA_LAB_NAME, STETH_TEST_HA_MGMT_CIDR, STETH_TEST_HA_DATA_CIDR. Needs root,
keepalived and the rest of scripts/setup.sh's packages, and the Neutron venv.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import ROOT, lab_named
from test_neutron_real import NeutronLab, until

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not ROOT, reason="needs root (namespaces, OVS, Neutron)")]

HA_LAB = os.environ.get("STETH_TEST_HA_LAB_NAME", "sttha")
HA_MGMT = os.environ.get("STETH_TEST_HA_MGMT_CIDR", "10.27.0.0/24")
HA_DATA = os.environ.get("STETH_TEST_HA_DATA_CIDR", "10.26.0.0/24")
NETWORK_NODES = ["network-1", "network-2"]


@pytest.fixture(scope="module")
def ha_lab():
    with lab_named(HA_LAB):
        from steth.lab import fleet, neutron_lab

        fleet.down()
        started = time.monotonic()
        state = neutron_lab.up(compute=2, network=2, mgmt_cidr=HA_MGMT, data_cidr=HA_DATA, routers="ha")
        print(f"\nreal Neutron lab with an HA router up in {time.monotonic() - started:.1f} s")
    the_lab = NeutronLab(state, name=HA_LAB)
    try:
        yield the_lab
    finally:
        with lab_named(HA_LAB):
            from steth.lab import fleet

            fleet.down()


def states(lab: NeutronLab) -> dict[str, str]:
    from steth.lab import neutron_ha

    return neutron_ha.ha_states(_api(lab), lab.cloud["router"]["id"])


def _api(lab: NeutronLab):
    from steth.lab.neutron_client import NeutronClient

    return NeutronClient(lab.state["neutron"]["url"])


def port_check(lab: NeutronLab, vm: str) -> tuple[int, dict]:
    done = lab.cli("vm-check", vm, "-o", "json")
    doc = json.loads(done.stdout)
    print(f"{vm}: exit {done.returncode}, verdict {doc['verdict']}")
    return done.returncode, doc


def router_hops(doc: dict) -> list[dict]:
    return [h for h in doc["hops"] if h["stage"] == "router"]


def test_the_router_is_ha_with_one_active_instance(ha_lab):
    router = ha_lab.api(f"/v2.0/routers/{ha_lab.cloud['router']['id']}")["router"]
    assert router["ha"] is True
    seen = states(ha_lab)
    assert sorted(seen) == NETWORK_NODES and sorted(seen.values()) == ["active", "standby"], seen
    with lab_named(HA_LAB):
        from steth.lab.neutron_ha import keepalived_pids

        for node in NETWORK_NODES:  # keepalived and its VRRP child on both nodes
            assert len(keepalived_pids(node, router["id"])) == 2, node


def test_port_check_checks_the_gateway_on_the_active_node_only(ha_lab):
    active = next(h for h, s in states(ha_lab).items() if s == "active")
    code, doc = port_check(ha_lab, "vm-1")
    assert code == 0 and doc["verdict"]["status"] == "ok", doc["verdict"]
    hops = router_hops(doc)
    ha = [h for h in hops if h["check"].startswith("HA qrouter-")]
    assert ha and ha[0]["status"] == "ok" and ha[0]["node"] == active, hops
    gateway = [h for h in hops if h["check"].startswith("gateway ")]
    assert gateway and {h["node"] for h in gateway} == {active}, hops


def verdict_lines(doc: dict) -> list[str]:
    """The router stage and the verdict, as the operator reads them."""
    lines = [f"{h['node']} {h['check']} {h['status']} {h['detail']}" for h in router_hops(doc)]
    return [*lines, f"VERDICT {doc['verdict']}"]


def test_a_hung_keepalived_on_the_active_node_is_split_brain_named_at_the_router(ha_lab):
    """SIGSTOP to keepalived and its VRRP child on the active node: a hung keepalived. Its process stays, so the
    L3 agent's process monitor does not respawn it (neutron/agent/linux/external_process.py: ProcessManager.active
    reads /proc/<pid>/cmdline); its addresses stay too, and its state-change monitor reports nothing. The standby
    stops hearing VRRP advertisements and becomes master (neutron/agent/linux/keepalived.py: every instance
    starts BACKUP with nopreempt), so Neutron reports two active instances until keepalived resumes. SIGKILL
    would give the same state only until the agent's periodic check respawns keepalived (0-60 s,
    check_child_processes_interval): not a window a test can rely on."""
    router = ha_lab.cloud["router"]["id"]
    old = next(h for h, s in states(ha_lab).items() if s == "active")
    new = next(h for h in NETWORK_NODES if h != old)
    with lab_named(HA_LAB):
        from steth.lab.neutron_ha import keepalived_pids

        pids = keepalived_pids(old, router)
    assert len(pids) == 2
    stopped = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        seen = until(lambda: (s := states(ha_lab)).get(new) == "active" and s, timeout=90)
        print(f"\nkeepalived stopped on {old}: Neutron reports {seen} after {time.monotonic() - stopped:.1f} s")
        assert seen == {old: "active", new: "active"}, seen
        code, doc = port_check(ha_lab, "vm-1")
        print("\n".join(verdict_lines(doc)))
        verdict = doc["verdict"]
        assert code == 1 and verdict["stage"] == "router", verdict
        assert verdict["node"] == ", ".join(NETWORK_NODES) and verdict["check"] == f"HA qrouter-{router[:8]}", verdict
        assert "active on 2 nodes at once" in verdict["message"] and "keepalived" in verdict["cause"], verdict
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    seen = until(lambda: list((s := states(ha_lab)).values()).count("active") == 1 and s, timeout=90)
    print(f"keepalived resumed on {old}: Neutron reports {seen} after {time.monotonic() - resumed:.1f} s")
    assert seen and sorted(seen.values()) == ["active", "standby"], seen
    active = next(h for h, s in seen.items() if s == "active")
    # The data plane follows Neutron's state: the agent reporting active gets the router's ports bound to its host
    # (neutron/db/l3_hamode_db.py: _update_router_port_bindings) and l2population then moves the qr- MAC's
    # tunnel flows; until then the VMs' answers may still go to the other node. Port-check until it passes.
    deadline = time.monotonic() + 90
    while True:
        code, doc = port_check(ha_lab, "vm-1")
        print("\n".join(verdict_lines(doc)))
        if code == 0 or time.monotonic() > deadline:
            break
        assert doc["verdict"]["stage"] == "router" and doc["verdict"]["node"] == active, doc["verdict"]
        time.sleep(1)
    print(f"port-check passes {time.monotonic() - resumed:.1f} s after keepalived resumed")
    assert code == 0, doc["verdict"]
    assert {h["node"] for h in router_hops(doc) if h["check"].startswith("gateway ")} == {active}


def _keepalived_of(lab_dir: str) -> list[int]:
    """keepalived processes whose configuration lives in the lab's directory (the L3 agents' ha_confs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                continue
            if argv and argv[0].endswith(b"keepalived") and any(lab_dir.encode() in a for a in argv):
                found.append(int(entry.name))
    return found


def test_lab_down_leaves_no_keepalived(ha_lab):
    """Last in the module: the keepalived processes the L3 agents spawned go with the lab."""
    assert len(_keepalived_of(ha_lab.state["dir"])) == 4  # a parent and its VRRP child on each network node
    with lab_named(HA_LAB):
        from steth.lab import fleet

        assert fleet.down()
    assert not _keepalived_of(ha_lab.state["dir"])
    assert not Path(ha_lab.state["dir"]).exists()
