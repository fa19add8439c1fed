"""OVSDB parsing and findings, from `ovs-vsctl --format=json` output captured from a real (hermetic) OVS."""

from __future__ import annotations

from pathlib import Path

import pytest

from steth.agent import ovsdb
from steth.schemas.probes.ovs import OvsParams, OvsResult

DATA = Path(__file__).parent / "data" / "ovs" / "vsctl_list.jsonl"


@pytest.fixture(scope="module")
def parsed():
    bridges, ports, ifaces, version = ovsdb.parse_output(DATA.read_text())
    out_bridges, out_ports = ovsdb.build(bridges, ports, ifaces)
    return {b["name"]: b for b in out_bridges}, {p["name"]: p for p in out_ports}


def test_decode_ovsdb_values():
    assert ovsdb.decode(["uuid", "abc"]) == "abc"
    assert ovsdb.decode(["set", []]) == []
    assert ovsdb.decode(["set", [0, 100]]) == [0, 100]
    assert ovsdb.decode(["map", [["peer", "x"], ["k", "v"]]]) == {"peer": "x", "k": "v"}
    assert ovsdb.scalar([]) is None and ovsdb.scalar(5) == 5 and ovsdb.scalar(["a"]) == "a"
    assert ovsdb.as_list(100) == [100] and ovsdb.as_list([1, 2]) == [1, 2]


def test_bridges_and_ports(parsed):
    bridges, ports = parsed
    assert set(bridges) == {"br-ex", "br-int"}
    assert bridges["br-int"]["datapath_type"] == "netdev"
    assert bridges["br-int"]["ports"] == 6 and bridges["br-ex"]["ports"] == 3
    vm = ports["tapvm1"]
    assert vm["bridge"] == "br-int" and vm["tag"] == 1 and vm["type"] == "internal" and vm["ofport"] >= 1
    assert (vm["iface_id"], vm["attached_mac"], vm["vm_uuid"]) == ("3f1c-port", "fa:16:3e:11:22:33", "9d2e-vm")
    assert (vm["net_uuid"], vm["segmentation_id"], vm["network_type"], vm["physical_network"]) == (
        "7a0b-net",
        "100",
        "vlan",
        "physnet1",
    )
    assert vm["findings"] == []
    # A one-element set is written bare by OVSDB: trunks=100 must still be a list.
    assert ports["uplink"]["trunks"] == [100] and ports["uplink"]["vlan_mode"] == "trunk"


def test_findings(parsed):
    _, ports = parsed
    assert ports["tapdead"]["findings"] == ["dead port (tag 4095)"]
    assert ports["nosuchdev"]["ofport"] == -1
    assert ports["nosuchdev"]["findings"][0].startswith("ofport -1: could not open network device nosuchdev")
    assert ports["patch-int"]["peer"] == "patch-ex" and ports["patch-int"]["peer_ok"] is True
    assert ports["patch-int"]["findings"] == [] and ports["patch-ex"]["findings"] == []
    assert ports["patch-lost"]["peer_ok"] is False
    assert ports["patch-lost"]["findings"] == ["patch peer patch-gone missing"]


def test_patch_peer_not_pointing_back():
    port = {"peer": "b", "peer_ok": False}
    assert ovsdb.port_findings(port, peer_exists=True) == ["patch peer b does not point back"]


def test_requested_findings(parsed):
    bridges, ports = parsed
    b, p = list(bridges.values()), list(ports.values())
    assert ovsdb.requested_findings(b, p, "br-int", ["tapvm1"]) == []
    assert ovsdb.requested_findings(b, p, "br-tun", []) == ["bridge br-tun absent"]
    assert ovsdb.requested_findings(b, p, "br-int", ["qvo-gone", "patch-ex"]) == [
        "port qvo-gone absent",
        "port patch-ex is on br-ex, not br-int",
    ]


def test_result_model_accepts_built_rows(parsed):
    bridges, ports = parsed
    OvsResult(db="unix:/x/db.sock", view="ports", bridges=list(bridges.values()), ports=list(ports.values()))


def test_vsctl_argv_keeps_db_in_one_argument():
    argv = ovsdb.vsctl_argv("unix:/run/openvswitch/db.sock")
    assert argv[:2] == ["ovs-vsctl", "--db=unix:/run/openvswitch/db.sock"] and "--format=json" in argv


@pytest.mark.parametrize(
    "db",
    [
        "unix:relative/db.sock",
        "unix:/a/../etc/db.sock",
        "tcp:host:6640",
        "tcp:127.0.0.1:0",
        "ssl:1.2.3.4:6640",
        "unix:/a b",
        "-x",
        "unix:/x;rm",
        # The hole of issue 12: a zone id carrying more connection methods (ovs-vsctl would bind punix:db.sock
        # as root and unlink the live socket on exit).
        "tcp:fe80::1%x,punix:db.sock,tcp:127.0.0.1:1",
        "tcp:[fe80::1%x,punix:db.sock]:6640",
        "unix:/run/openvswitch/db.sock,punix:/tmp/x",
        "tcp:::1:6640",  # IPv6 without brackets: ovsdb(7) wants tcp:[IP]:PORT
        "unix:/a/./b",
    ],
)
def test_db_validation_rejects(db):
    with pytest.raises(ValueError):
        OvsParams(db=db)


@pytest.mark.parametrize("db", ["unix:/var/run/openvswitch/db.sock", "tcp:127.0.0.1:6640", "tcp:[::1]:6640"])
def test_db_validation_accepts(db):
    assert OvsParams(db=db).db == db


@pytest.mark.parametrize(
    ("given", "rebuilt"),
    [
        ("tcp:[0:0::1]:06640", "tcp:[::1]:6640"),
        ("tcp:127.000.0.1:6640", None),
        ("tcp:127.0.0.1:006640", "tcp:127.0.0.1:6640"),
    ],
)
def test_db_is_rebuilt_from_its_parts(given, rebuilt):
    """What reaches ovs-vsctl is built from the parsed address and port, never the caller's text."""
    if rebuilt is None:
        with pytest.raises(ValueError):
            OvsParams(db=given)
    else:
        assert OvsParams(db=given).db == rebuilt


def test_port_view_takes_one_port():
    with pytest.raises(ValueError):
        OvsParams(view="port")
    with pytest.raises(ValueError):
        OvsParams(view="port", ports=["a", "b"])
    with pytest.raises(ValueError):
        OvsParams(view="check", ports=["-x"])
