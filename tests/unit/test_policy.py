"""The agent's allow-lists: found generically from the params' types, for every probe."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from steth.agent.config import PolicyConfig, load
from steth.agent.policy import ADDRESS, HOSTPORT, INTERFACE, NETNS, OVSDB, VLAN, Policy, plan
from steth.schemas.probes import registry
from steth.schemas.types import InterfaceName, IPAddress, Params


def kinds(model) -> dict[str, str | None]:
    return {name: kind for name, kind, _ in plan(model)}


def test_fields_are_found_by_type():
    reg = registry()
    assert kinds(reg["ping"].params) == {"targets": ADDRESS, "interface": INTERFACE, "netns": NETNS}
    assert kinds(reg["tcp-check"].params) == {"targets": HOSTPORT, "netns": NETNS}
    assert kinds(reg["vlan-check"].params)["vlans"] == VLAN and kinds(reg["send"].params)["vlan"] == VLAN
    assert kinds(reg["ovs"].params)["db"] == OVSDB
    if "arping" in reg:  # Annotated[IPAddress, AfterValidator(v4)] flattens: still an address
        assert kinds(reg["arping"].params) == {"target": ADDRESS, "interface": INTERFACE, "netns": NETNS}
    if "link-setup" in reg:
        found = kinds(reg["link-setup"].params)
        assert found["name"] == found["peer"] == found["parent"] == INTERFACE and found["check"] == ADDRESS
    # Every probe's interface fields are covered, whatever their nesting (list, optional).
    for spec in reg.values():
        for name, field in spec.params.model_fields.items():
            if "0,14}$" in repr(field.annotation) + repr(field.metadata):
                assert kinds(spec.params).get(name) == INTERFACE, (spec.name, name)


def test_addresses_are_found_by_value():
    """Whatever validator a probe uses for an address (send's dst is an IPv4-only local type), it is checked."""
    reg = registry()
    policy = Policy(PolicyConfig(allowed_target_cidrs=["10.0.0.0/8"]))
    if "send" in reg:
        params = reg["send"].params(packet="icmp-echo", interface="eth0", dst="192.0.2.9")
        assert policy.check(params) == "dst: address 192.0.2.9 is not in this agent's allowed_target_cidrs"
        assert policy.check(reg["send"].params(packet="icmp-echo", interface="eth0", dst="10.1.1.1")) is None
    if "iperf-client" in reg:
        assert "server: address 192.0.2.1" in policy.check(reg["iperf-client"].params(server="192.0.2.1"))


class Hop(BaseModel):
    via: IPAddress
    dev: InterfaceName | None = None


class Nested(Params):
    hops: list[Hop] = Field(default_factory=list)
    label: str = ""


def test_nested_models_and_patterns():
    policy = Policy(PolicyConfig(allowed_interfaces=["eth*", "br-ex"], allowed_target_cidrs=["10.0.0.0/8", "fd00::/8"]))
    assert policy.check(Nested(hops=[Hop(via="10.1.2.3", dev="eth1")])) is None
    assert "10.0.0.0/8" not in (policy.check(Nested(hops=[Hop(via="fd00::1", dev="br-ex")])) or "")
    reason = policy.check(Nested(hops=[Hop(via="10.1.2.3"), Hop(via="192.0.2.1")]))
    assert reason == "hops: via: address 192.0.2.1 is not in this agent's allowed_target_cidrs"
    assert "interface 'br-int'" in policy.check(Nested(hops=[Hop(via="10.0.0.1", dev="br-int")]))
    ping = registry()["ping"].params
    assert policy.check(ping(targets=["10.0.0.1", "8.8.8.8"])).startswith("targets: address 8.8.8.8")
    assert Policy(PolicyConfig()).check(ping(targets=["8.8.8.8"], interface="anything")) is None  # no lists: no limits


def test_config_validates_cidrs():
    cfg = load(
        None,
        {
            "STETH_NODE": "n",
            "STETH_POLICY_ALLOWED_TARGET_CIDRS": "10.0.0.0/8,fd00::/8",
            "STETH_POLICY_ALLOWED_INTERFACES": "eth*,lo",
        },
    )
    assert cfg.policy.allowed_target_cidrs == ["10.0.0.0/8", "fd00::/8"] and cfg.policy.allowed_interfaces == [
        "eth*",
        "lo",
    ]
    with pytest.raises(ValueError, match="is not a network"):
        load(None, {"STETH_NODE": "n", "STETH_POLICY_ALLOWED_TARGET_CIDRS": "10.0.0.0/33"})


def test_ovsdb_remote_is_always_checked_against_the_allow_list(monkeypatch):
    """Without any policy configured, `db` may name only Open vSwitch's own socket; allowed_ovsdb widens it."""
    monkeypatch.setenv("OVS_RUNDIR", "/run/ovs-here")
    ovs = registry()["ovs"].params
    open_policy = Policy(PolicyConfig())
    assert open_policy.check(ovs(db="unix:/run/ovs-here/db.sock")) is None
    assert open_policy.check(ovs()) is None  # no db: the probe reads the default
    refused = open_policy.check(ovs(db="tcp:127.0.0.1:6640"))
    assert refused == (
        "db: OVSDB tcp:127.0.0.1:6640 is not in this agent's allowed_ovsdb (default: Open vSwitch's own socket)"
    )
    assert open_policy.check(ovs(db="unix:/tmp/other/db.sock")) is not None
    lab = Policy(PolicyConfig(allowed_ovsdb=["unix:/var/lib/steth-lab/*/db.sock", "tcp:127.0.0.1:6640"]))
    assert lab.check(ovs(db="unix:/var/lib/steth-lab/ovs/compute-1/db.sock")) is None
    assert lab.check(ovs(db="tcp:127.0.0.1:6640")) is None
    assert lab.check(ovs(db="unix:/run/ovs-here/db.sock")) is not None  # a list replaces the default
    for spec in registry().values():  # every probe that takes a db is covered, not only `ovs`
        if "db" in spec.params.model_fields:
            assert open_policy.check(spec.params.model_construct(db="tcp:127.0.0.1:1")) is not None, spec.name


@pytest.mark.parametrize("bad", ["tcp:fe80::1%x,punix:db.sock", "unix:relative", "unix:/a,punix:/b"])
def test_allowed_ovsdb_entries_are_validated(bad):
    with pytest.raises(ValueError, match="allowed_ovsdb"):
        PolicyConfig(allowed_ovsdb=[bad])


def test_vlans_networks_and_namespaces_are_checked():
    reg = registry()
    policy = Policy(
        PolicyConfig(
            allowed_vlans=["100-199", "300"], allowed_target_cidrs=["10.0.0.0/8"], allow_other_namespaces=False
        )
    )
    vlan_check = reg["vlan-check"].params
    assert policy.check(vlan_check(interface="eth1", vlans=[100, 199, 300], token="ab12")) is None
    assert policy.check(vlan_check(interface="eth1", vlans=[100, 200], token="ab12")) == (
        "vlans: VLAN 200 is not in this agent's allowed_vlans"
    )
    assert "VLAN 5 is not" in policy.check(
        reg["send"].params(packet="icmp-echo", interface="eth0", dst="10.1.1.1", vlan=5)
    )
    # A network a probe adds to the host must lie inside an allowed one, all of it.
    assert policy.check(vlan_check(interface="eth1", vlans=[100], token="ab12", cidr="10.9.0.0/24")) is None
    assert policy.check(vlan_check(interface="eth1", vlans=[100], token="ab12", cidr="192.0.2.0/24")) == (
        "cidr: network 192.0.2.0/24 is not inside this agent's allowed_target_cidrs"
    )
    assert policy.check(reg["ping"].params(targets=["10.0.0.1"], netns="qdhcp-1")) == (
        "netns: namespace qdhcp-1: allow_other_namespaces is off in this agent's policy"
    )
    tcp = reg["tcp-check"].params
    assert policy.check(tcp(targets=["10.0.0.1:22"])) is None
    assert policy.check(tcp(targets=["10.0.0.1:22", "192.0.2.1:5672"])) == (
        "targets: address 192.0.2.1 is not in this agent's allowed_target_cidrs"
    )
    assert policy.check(tcp(targets=["keystone.example:5000"])) is None  # checked once resolved (tcp-check)


def test_effects_have_their_switches():
    reg = registry()
    closed = Policy(PolicyConfig(allow_capture=False, allow_traffic=False))
    capture = reg["capture"]
    assert closed.check(capture.params(interface="eth0"), capture) == (
        "capture captures traffic: allow_capture is off in this agent's policy"
    )
    iperf = reg["iperf-client"]
    refused = closed.check(iperf.params.model_construct(), iperf)
    assert refused == "iperf-client generates traffic: allow_traffic is off in this agent's policy"
    assert closed.check(reg["ping"].params(targets=["10.0.0.1"]), reg["ping"]) is None
    assert Policy(PolicyConfig()).check(capture.params(interface="eth0"), capture) is None  # on by default
    for spec in reg.values():  # every declared effect has a switch
        assert set(spec.effects) <= {"capture", "traffic"}, spec.name


@pytest.mark.parametrize("bad", ["0", "4095", "200-100", "a", "1-2-3"])
def test_allowed_vlans_entries_are_validated(bad):
    with pytest.raises(ValueError, match="allowed_vlans"):
        PolicyConfig(allowed_vlans=[bad])


def test_tcp_check_host_names_are_checked_where_resolved():
    """'127.1' and 'localhost' are host names to the schema; the address they resolve to is what counts."""
    import asyncio
    import ipaddress

    from steth.agent.tools import tcpconnect

    allowed = [ipaddress.ip_network("10.0.0.0/8")]
    rows = asyncio.run(tcpconnect.check_all(["127.1:9", "localhost:9"], 1.0, allowed))
    assert [r["connected"] for r in rows] == [False, False]
    assert all(r["error"].startswith(tcpconnect.REFUSED) and "127.0.0.1" in r["error"] for r in rows), rows
    open_rows = asyncio.run(tcpconnect.check_all(["127.1:9"], 1.0, [ipaddress.ip_network("127.0.0.0/8")]))
    assert open_rows[0]["address"] == "127.0.0.1" and not open_rows[0]["error"].startswith(tcpconnect.REFUSED)


@pytest.mark.parametrize("allow", ["10.0.0.0/8", ""])
def test_tcp_check_helper_in_a_namespace_checks_too(allow):
    """The helper run by `ip netns exec` (its resolver is the namespace's) gets the networks as --allow."""
    import ipaddress
    import json
    import subprocess
    import sys

    from steth.agent.probes.tcp_check import helper_argv
    from steth.agent.tools import tcpconnect

    params = registry()["tcp-check"].params(targets=["127.1:9"], connect_timeout_s=1.0)
    argv = helper_argv(params, [ipaddress.ip_network(allow)] if allow else [])
    assert argv[argv.index("--allow") + 1] == allow and argv[-2:] == ["--", "127.1:9"]
    done = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=20)
    row = json.loads(done.stdout)[0]
    assert row["error"].startswith(tcpconnect.REFUSED) and not row["connected"], row
