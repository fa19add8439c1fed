"""The Neutron-aware probes' logic (vif, neutron-ns, dhcp-watch, ovs-uplinks) and the diagnosis verdict, offline."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
from pydantic import ValidationError

from steth.agent.probes.neutron_ns import find_dnsmasq, iface_for, parse_hosts
from steth.agent.probes.vif import device_names, evaluate
from steth.agent.uplinks import uplink_interfaces
from steth.controller.diagnosis import FAIL, NO_REPLY, OK, UNREACHED, Diagnosis
from steth.schemas.probes.dhcp_watch import DhcpWatchParams
from steth.schemas.probes.neutron_ns import NeutronNsParams, NsInterface
from steth.schemas.probes.vif import VifParams

PORT = "886445c6-481b-5775-8db3-55f43e2cf28d"
MAC = "fa:16:3e:88:64:45"
N = device_names(PORT)


def ovs_port(name: str, tag=1, ofport=2, bridge="br-int", iface_id=PORT, mac=MAC) -> dict:
    return {
        "bridge": bridge,
        "name": name,
        "tag": tag,
        "ofport": ofport,
        "iface_id": iface_id,
        "attached_mac": mac,
        "type": "",
    }


def link(name: str, up=True, oper="UP", mtu=1500, master=None) -> dict:
    return {
        "ifname": name,
        "flags": ["BROADCAST", "UP"] if up else ["BROADCAST"],
        "operstate": oper,
        "mtu": mtu,
        "master": master,
    }


def hybrid_links(**over) -> dict:
    links = {
        N["tap"]: link(N["tap"], master=N["qbr"]),
        N["qbr"]: link(N["qbr"]),
        N["qvb"]: link(N["qvb"], master=N["qbr"]),
        N["qvo"]: link(N["qvo"], master="ovs-netdev"),
    }
    links.update(over)
    return links


def failing(res) -> list[tuple[str, str]]:
    return [(c.check, c.target) for c in res.checks if not c.ok]


def test_vif_hybrid_healthy():
    p = VifParams(port_id=PORT, mac=MAC.upper(), expect_mtu_bytes=1500, expect_hybrid=True)
    res = evaluate(p, [ovs_port(N["qvo"])], hybrid_links())
    assert res.plugging == "hybrid" and res.ovs_port == N["qvo"] and failing(res) == []
    assert [d.role for d in res.devices] == ["tap", "qbr", "qvb", "qvo"]


def test_vif_native_healthy_and_style_mismatch():
    res = evaluate(
        VifParams(port_id=PORT, mac=MAC, expect_hybrid=True),
        [ovs_port(N["tap"])],
        {N["tap"]: link(N["tap"], oper="UNKNOWN")},
    )
    assert res.plugging == "native"
    assert failing(res) == [("plugging", "native")]


@pytest.mark.parametrize(
    "ports,links,expected",
    [
        ([ovs_port(N["qvo"], tag=4095)], hybrid_links(), [("tag", N["qvo"])]),
        ([ovs_port(N["qvo"], tag=None)], hybrid_links(), [("tag", N["qvo"])]),
        ([ovs_port(N["qvo"], ofport=-1)], hybrid_links(), [("ofport", N["qvo"])]),
        ([ovs_port(N["qvo"], mac="fa:16:3e:00:00:09")], hybrid_links(), [("attached-mac", N["qvo"])]),
        ([], hybrid_links(), [("ovs-port", "br-int")]),  # gone from OVS, the qbr left behind says hybrid
        ([ovs_port(N["qvo"], bridge="br-ex")], hybrid_links(), [("ovs-port", N["qvo"])]),
        (
            [ovs_port(N["qvo"])],
            hybrid_links(**{N["tap"]: link(N["tap"], up=False, oper="DOWN", master=N["qbr"])}),
            [("device", N["tap"])],
        ),
        (
            [ovs_port(N["qvo"])],
            hybrid_links(**{N["qvb"]: link(N["qvb"], oper="LOWERLAYERDOWN", master=N["qbr"])}),
            [("device", N["qvb"])],
        ),
        ([ovs_port(N["qvo"])], hybrid_links(**{N["tap"]: link(N["tap"])}), [("device", N["tap"])]),  # not in its qbr
        ([ovs_port(N["qvo"])], {k: v for k, v in hybrid_links().items() if k != N["qbr"]}, [("device", N["qbr"])]),
        ([ovs_port(N["qvo"])], hybrid_links(**{N["qvo"]: link(N["qvo"], mtu=1400)}), [("mtu", N["qvo"])]),
    ],
)
def test_vif_findings(ports, links, expected):
    res = evaluate(VifParams(port_id=PORT, mac=MAC, expect_mtu_bytes=1500), ports, links)
    assert failing(res) == expected


def test_hosts_file_forms():
    text = (
        f"{MAC},host-10-20-0-11.openstacklocal,10.20.0.11\n"
        "FA:16:3E:00:00:02,10.20.0.12\n"
        "fa:16:3e:00:00:03,set:port-x,host-x,[2001:db8::5]\n"
        "# a comment\n\nfa:16:3e:00:00:04,host-only\n"
    )
    assert parse_hosts(text) == {
        (MAC, "10.20.0.11"),
        ("fa:16:3e:00:00:02", "10.20.0.12"),
        ("fa:16:3e:00:00:03", "2001:db8::5"),
    }


def test_find_dnsmasq_by_the_network_in_its_command_line(monkeypatch):
    """As Neutron's ProcessManager.active: a dnsmasq naming the network (real processes, renamed with exec -a)."""
    from steth.agent.probes import neutron_ns

    net, other = str(uuid.uuid4()), str(uuid.uuid4())

    def fake_dnsmasq(network: str) -> subprocess.Popen:
        code = "import time; time.sleep(60)"
        argv = f"exec -a dnsmasq {sys.executable} -c '{code}' --dhcp-hostsfile=/var/lib/neutron/dhcp/{network}/host"
        return subprocess.Popen(["bash", "-c", argv])

    procs = [fake_dnsmasq(other), fake_dnsmasq(net)]
    try:
        deadline = time.monotonic() + 10
        while not all(neutron_ns.read_cmdline(p.pid)[:1] == ["dnsmasq"] for p in procs):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        monkeypatch.setattr(neutron_ns, "same_netns", lambda pid, ns: None)  # the unit's case: no ptrace
        assert find_dnsmasq(f"qdhcp-{net}") == (procs[1].pid, f"/var/lib/neutron/dhcp/{net}/host")
        assert find_dnsmasq(f"qdhcp-{uuid.uuid4()}") == (None, None)
        # Where the kernel says the process is in another namespace (another lab node's), it is not taken.
        monkeypatch.setattr(neutron_ns, "same_netns", lambda pid, ns: False)
        assert find_dnsmasq(f"qdhcp-{net}") == (None, None)
        monkeypatch.setattr(neutron_ns, "same_netns", lambda pid, ns: None)
        monkeypatch.setattr(neutron_ns, "proc_state", lambda pid: "Z")
        assert find_dnsmasq(f"qdhcp-{net}") == (None, None)  # a zombie serves nobody
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_iface_for_picks_the_subnet():
    ifaces = [
        NsInterface(name="qg-1", addresses=["203.0.113.5/24"]),
        NsInterface(name="qr-1", addresses=["10.20.0.1/24"]),
    ]
    assert iface_for("10.20.0.11", ifaces) == "qr-1"
    assert iface_for("198.51.100.1", ifaces) == "qg-1"


def test_uplinks_are_neither_patch_nor_internal():
    ports = [
        {"bridge": "br-phys", "name": "phy-br-phys", "type": "patch"},
        {"bridge": "br-phys", "name": "br-phys", "type": "internal"},
        {"bridge": "br-phys", "name": "eth1", "type": ""},
        {"bridge": "br-int", "name": "tap1", "type": ""},
    ]
    assert [u["interface"] for u in uplink_interfaces(ports, ["br-phys"])] == ["eth1"]


def test_a_bond_gives_its_members_and_a_dpdk_uplink_is_no_kernel_device():
    member = lambda name, kind="": {"name": name, "type": kind, "ofport": 3, "link_state": "up"}  # noqa: E731
    ports = [
        {"bridge": "br-phys", "name": "bond0", "type": "", "members": [member("eth1"), member("eth2")]},
        {"bridge": "br-ex", "name": "dpdk0", "type": "dpdk", "members": [member("dpdk0", "dpdk")]},
    ]
    rows = {u["interface"]: u for u in uplink_interfaces(ports, ["br-phys", "br-ex"])}
    assert sorted(rows) == ["dpdk0", "eth1", "eth2"]
    assert rows["eth1"]["port"] == rows["eth2"]["port"] == "bond0" and rows["eth1"]["bond"]
    assert not rows["eth1"]["not_applicable"]
    assert rows["dpdk0"]["not_applicable"] == "not applicable: DPDK port, not a kernel device"
    assert not rows["dpdk0"]["bond"]


def test_params_are_bounded():
    with pytest.raises(ValidationError):
        VifParams(port_id="not-a-uuid")
    with pytest.raises(ValidationError):
        VifParams(port_id=PORT, bridge="-x")
    with pytest.raises(ValidationError):
        DhcpWatchParams(mac=MAC, interfaces=["eth0"], inject="send")  # injection needs a port
    with pytest.raises(ValidationError):
        DhcpWatchParams(mac=MAC)  # nothing to listen on
    with pytest.raises(ValidationError):
        DhcpWatchParams(
            mac=MAC, interfaces=["eth0"], inject="ovs", inject_port="tap1", listen_s=1.0, inject_delay_s=2.0
        )
    with pytest.raises(ValidationError):
        DhcpWatchParams(mac="fa:16:3e:zz:00:01", interfaces=["eth0"])
    with pytest.raises(ValidationError):
        NeutronNsParams(netns="qdhcp-x", arping=["2001:db8::1"])
    with pytest.raises(ValidationError):
        NeutronNsParams(netns="-n", dnsmasq=True)
    with pytest.raises(ValidationError):
        NeutronNsParams(netns="qdhcp-x", host_entries=[{"mac": MAC, "ip": "10.0.0.1", "extra": 1}])


def test_verdict_is_the_first_failure_in_path_order():
    d = Diagnosis("port-check", {})
    d.add("port", "compute-1", "tag qvo", OK)
    d.add("dhcp-path", "network-1", "DISCOVER at uplink trunk0", FAIL, "not seen", "the fabric")
    d.add("dhcp-path", "compute-1", "OFFER at tap", UNREACHED, "not seen (after the failure above)")
    d.add("reach", "network-1", "ARP qdhcp", FAIL, "no reply", "L2")
    v = d.verdict()
    assert (v["status"], v["stage"], v["node"], v["cause"]) == ("finding", "dhcp-path", "network-1", "the fabric")
    assert d.exit_code() == 1
    assert d.verdict_line().startswith(
        "VERDICT: FAIL at network-1 DISCOVER at uplink trunk0: not seen; likely cause: the fabric"
    )


def test_verdict_incomplete_and_ok():
    d = Diagnosis("port-check", {})
    d.add("port", "compute-1", "tag", OK)
    assert d.verdict()["status"] == "ok" and d.exit_code() == 0
    d.add("dhcp-server", "network-1", "qdhcp", NO_REPLY, "no reply")
    assert d.verdict()["status"] == "incomplete" and d.verdict()["node"] == "network-1" and d.exit_code() == 3
    d.add("router", "network-1", "gateway", FAIL, "missing")
    assert d.exit_code() == 1  # a finding outranks what could not be checked
