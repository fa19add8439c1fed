"""The OVN probes' pure parts on real captured output (tests/unit/data/ovn/, from the OVN lab: Debian's OVN 23.03
and OVS 3.1): ovs-vsctl of a chassis (healthy, Geneve blocked to one chassis, ovn-controller stopped, a VM's
iface-id removed), ovn-sbctl and ovn-nbctl in --format=json; and the validation of what a request may name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from steth.agent import ovn
from steth.agent.config import AgentConfig
from steth.schemas.probes.ovn_binding import OvnBindingParams
from steth.schemas.probes.ovn_chassis import OvnChassisParams
from steth.schemas.probes.ovn_port import OvnPortParams

DATA = Path(__file__).parent / "data" / "ovn"
PORT = (DATA / "port-id").read_text().strip()  # vm-1's port, plugged on compute-1
MISSING = "00000000-0000-4000-8000-000000000000"  # asked for too: in no database


def local(name: str) -> dict:
    return ovn.parse_local((DATA / name).read_text())


def test_chassis_settings_of_a_compute_and_a_gateway():
    c1 = ovn.chassis_settings(local("vsctl-compute-1.json")["ovs"])
    assert c1 == {
        "system_id": "compute-1",
        "hostname": "compute-1",
        "ovn_remote": "tcp:10.47.0.5:6642",
        "encap_type": "geneve",
        "encap_ip": "10.46.0.11",
        "bridge": "br-int",  # not set: ovn-controller's default
        "bridge_mappings": None,
        "cms_options": None,
        "gateway": False,
    }
    n1 = ovn.chassis_settings(local("vsctl-network-1.json")["ovs"])
    assert n1["cms_options"] == "enable-chassis-as-gw" and n1["gateway"] is True


def test_not_a_chassis():
    settings = ovn.chassis_settings({})
    assert settings["system_id"] is None and settings["ovn_remote"] is None and not settings["gateway"]


def test_gateway_option_among_others():
    assert ovn.chassis_settings({"ovn-cms-options": "availability-zones=az1,enable-chassis-as-gw"})["gateway"]
    assert not ovn.chassis_settings({"ovn-cms-options": "enable-chassis-as-gw-not"})["gateway"]


def test_nb_cfg_from_br_int():
    assert ovn.bridge_nb_cfg(local("vsctl-compute-1.json"), "br-int") == (1, 1796225002812)
    assert ovn.bridge_nb_cfg(local("vsctl-compute-1.json"), "br-other") == (None, None)


def test_healthy_tunnels_with_bfd_where_ovn_enabled_it():
    tunnels = ovn.tunnels(local("vsctl-compute-1.json"))
    assert [(t["port"], t["chassis"], t["remote_ip"], t["ofport"]) for t in tunnels] == [
        ("ovn-comput-0", "compute-2", "10.46.0.12", 1),
        ("ovn-networ-0", "network-1", "10.46.0.13", 2),
        ("ovn-networ-1", "network-2", "10.46.0.14", 3),
    ]
    # BFD only towards the gateway chassis (the router's HA chassis group), none between two computes.
    assert [(t["bfd_enabled"], t["bfd_state"]) for t in tunnels] == [(False, None), (True, "up"), (True, "up")]
    assert all(t["findings"] == [] for t in tunnels)


def test_geneve_blocked_shows_as_bfd_not_up():
    tunnels = {t["chassis"]: t for t in ovn.tunnels(local("vsctl-compute-1-geneve-blocked.json"))}
    assert tunnels["network-1"]["findings"] == ["BFD init (remote down): Neighbor Signaled Session Down"]
    assert tunnels["network-2"]["findings"] == []


def test_binding_of_a_plugged_vm():
    [row] = ovn.bindings(local("vsctl-compute-1.json"), [PORT])
    assert row["interface"] == f"tap{PORT[:11]}" and row["bridge"] == "br-int" and row["ofport"] == 4
    assert row["ovn_installed"] is True and row["link_state"] == "up" and row["findings"] == []
    assert row["attached_mac"] == "fa:16:3e:a8:ac:21" and row["vm_uuid"]


def test_binding_without_iface_id_or_elsewhere():
    [gone] = ovn.bindings(local("vsctl-compute-1-no-iface-id.json"), [PORT])
    assert gone["findings"] == [f"no interface with iface-id {PORT} on this node"]
    [elsewhere] = ovn.bindings(local("vsctl-network-1.json"), [PORT])
    assert elsewhere["findings"] == [f"no interface with iface-id {PORT} on this node"]


def test_binding_not_installed_and_ofport_minus_one():
    data = local("vsctl-compute-1.json")
    iface = next(i for i in data["ifaces"] if (i.get("external_ids") or {}).get("iface-id") == PORT)
    iface["external_ids"] = {k: v for k, v in iface["external_ids"].items() if k != "ovn-installed"}
    iface["ofport"], iface["error"] = -1, "could not open network device tapx (No such device)"
    [row] = ovn.bindings(data, [PORT])
    assert row["findings"] == [
        "ofport -1: could not open network device tapx (No such device)",
        "not installed: ovn-controller has not set external_ids:ovn-installed",
    ]


def test_sb_chassis_and_nb_cfg():
    sb = ovn.parse_sb((DATA / "sbctl-chassis.json").read_text())
    assert sb["nb_cfg"] == 1
    assert [(c["name"], c["encap_ips"]) for c in sb["chassis"]] == [
        ("compute-1", ["10.46.0.11"]),
        ("compute-2", ["10.46.0.12"]),
        ("network-1", ["10.46.0.13"]),
        ("network-2", ["10.46.0.14"]),
    ]
    # After ovn-controller on compute-2 was stopped and nb_cfg bumped: the SB moved on, compute-2 did not.
    assert ovn.parse_sb((DATA / "sbctl-chassis-bumped.json").read_text())["nb_cfg"] == 2
    assert ovn.bridge_nb_cfg(local("vsctl-compute-2-controller-stopped.json"), "br-int")[0] == 1


def test_logical_port_healthy_and_missing():
    nb = ovn.parse_nb_ports((DATA / "nbctl-ports.json").read_text(), [PORT, MISSING])
    sb = ovn.parse_sb_ports((DATA / "sbctl-ports.json").read_text(), [PORT, MISSING])
    assert set(nb) == set(sb) == {PORT}
    assert nb[PORT]["addresses"] == nb[PORT]["port_security"] == ["fa:16:3e:a8:ac:21 10.30.0.11"]
    assert nb[PORT]["up"] is True and nb[PORT]["requested_chassis"] == "compute-1"
    assert nb[PORT]["dhcpv4_cidr"] == "10.30.0.0/24" and nb[PORT]["dhcpv4_options"]["mtu"] == "1442"
    assert sb[PORT] == {"chassis": "compute-1", "sb_up": True, "sb_requested_chassis": "compute-1"}
    assert ovn.port_findings(PORT, nb[PORT], sb[PORT], True, True) == []
    assert ovn.port_findings(MISSING, None, None, True, True) == [
        "no Logical_Switch_Port of that name in the NB",
        "no Port_Binding in the SB",
    ]


def test_logical_port_unbound_after_iface_id_removed():
    nb = ovn.parse_nb_ports((DATA / "nbctl-ports-unbound.json").read_text(), [PORT])
    sb = ovn.parse_sb_ports((DATA / "sbctl-ports-unbound.json").read_text(), [PORT])
    assert sb[PORT]["chassis"] is None and sb[PORT]["sb_up"] is False
    assert ovn.port_findings(PORT, nb[PORT], sb[PORT], True, True) == [
        "NB up=false: no chassis has claimed it",
        "Port_Binding bound to no chassis",
    ]


def test_bound_elsewhere_than_requested():
    nb = {"type": "", "up": True, "requested_chassis": "compute-1", "dhcpv4_cidr": "10.30.0.0/24"}
    sb = {"chassis": "compute-2", "sb_up": True}
    assert ovn.port_findings(PORT, nb, sb, True, True) == ["bound to compute-2, not the requested chassis compute-1"]


def test_port_names_travel_as_single_arguments():
    argv = ovn.nb_ports_argv("tcp:192.0.2.5:6641", [PORT])
    assert argv[:4] == ["ovn-nbctl", "--db=tcp:192.0.2.5:6641", "--timeout=5", "--format=json"]
    assert f"name={PORT}" in argv
    assert f"logical_port={PORT}" in ovn.sb_ports_argv("tcp:192.0.2.5:6642", [PORT])


@pytest.mark.parametrize("bad", ["--db=tcp:6.6.6.6:6641", "a8ac210d", "A8AC210D-1CAD-51AF-B385-032459FB3972 x", ""])
def test_iface_ids_must_be_port_ids(bad):
    with pytest.raises(ValidationError):
        OvnBindingParams(iface_ids=[bad])
    with pytest.raises(ValidationError):
        OvnPortParams(ports=[bad])


def test_a_request_names_no_nb_or_sb():
    # The NB/SB remotes come from the agent's [ovn] table only; a request that tries is invalid.
    with pytest.raises(ValidationError):
        OvnPortParams(ports=[PORT], nb_connection="tcp:6.6.6.6:6641")
    # The local OVSDB is an OvsdbRemote: checked against [policy] allowed_ovsdb like every other `db`.
    with pytest.raises(ValidationError):
        OvnChassisParams(db="tcp:1.2.3.4:6640,ptcp:6640")


@pytest.mark.parametrize(
    "remote,ok",
    [
        ("tcp:10.47.0.5:6642", True),
        ("unix:/var/run/ovn/ovnsb_db.sock", True),
        ("ptcp:6642", False),
        ("tcp:10.0.0.1:6642,tcp:10.0.0.2:6642", False),
        ("ssl:10.0.0.1:6642", False),
    ],
)
def test_ovn_config_remotes(remote, ok):
    if ok:
        assert AgentConfig.model_validate({"ovn": {"sb_connection": remote}}).ovn.sb_connection == remote
    else:
        with pytest.raises(ValidationError):
            AgentConfig.model_validate({"ovn": {"sb_connection": remote}})


def test_an_sb_that_does_not_answer_is_one_line():
    # ovn-sbctl's stderr when nftables dropped the node's packets to the SB (tests/integration/test_ovn.py).
    from steth.agent.procs import Completed

    remote = "tcp:10.49.0.5:6642"
    argv = ovn.sb_argv(remote)
    stderr = f"ovn-sbctl: {remote}: database connection failed ()\n"
    assert (
        ovn.tool_error(Completed(argv, 1, "", stderr), remote, 5) == f"cannot read {remote}: database connection failed"
    )
    assert (
        ovn.tool_error(Completed(argv, None, "", ""), remote, 5) == f"ovn-sbctl did not answer within 5.0 s ({remote})"
    )
    assert ovn.tool_error(Completed(argv, 0, "{}", ""), remote, 5) is None
