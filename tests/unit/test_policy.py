"""The agent's allow-lists: found generically from the params' types, for every probe."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from steth.agent.config import PolicyConfig, load
from steth.agent.policy import ADDRESS, INTERFACE, Policy, plan
from steth.schemas.probes import registry
from steth.schemas.types import InterfaceName, IPAddress, Params


def kinds(model) -> dict[str, str | None]:
    return {name: kind for name, kind, _ in plan(model)}


def test_fields_are_found_by_type():
    reg = registry()
    assert kinds(reg["ping"].params) == {"targets": ADDRESS, "interface": INTERFACE}
    if "arping" in reg:  # Annotated[IPAddress, AfterValidator(v4)] flattens: still an address
        assert kinds(reg["arping"].params) == {"target": ADDRESS, "interface": INTERFACE}
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
