"""The inventory reads security groups, HA routers, segments and other projects' servers through the real
openstacksdk, from a stand-in answering with Neutron's own api-ref samples (tests/unit/data/neutron)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from standin import serving

from steth.controller.inventory import Inventory

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

DATA = Path(__file__).parent / "data" / "neutron"
ADMIN, DEMO = "p-admin", "e4f50856753b4dc6afee5fa6b9b6c550"  # the security group sample's project


def sample(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def description() -> dict:
    sg = sample("security-group-show-default.json")["security_group"]
    net = sample("network-multi-show.json")["network"]
    ag = sample("address-group-show.json")
    sg["security_group_rules"].append(
        {
            **sg["security_group_rules"][0],
            "id": "9d1b6a4e-0000-4000-8000-000000000001",
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "icmp",
            "remote_address_group_id": ag["id"],
        }
    )
    vm = copy.deepcopy(sample("port-bind-show.json")["port"])
    vm.update(
        device_owner="compute:nova",
        device_id="srv-1",
        network_id=net["id"],
        security_groups=[sg["id"]],
        port_security_enabled=True,
        project_id=DEMO,
        tenant_id=DEMO,
    )
    vm["binding:host_id"] = "compute-1.cloud.example"
    router = {"id": "f8a44de0-fc8e-45df-93c7-f79bf3b01c95", "name": "router1", "ha": True, "distributed": False}
    router["project_id"] = DEMO
    ha_port = copy.deepcopy(sample("port-bind-show.json")["port"])
    ha_port.update(
        id="b1c2d3e4-0000-4000-8000-000000000002",
        device_owner="network:ha_router_replicated_interface",
        device_id=router["id"],
        network_id=net["id"],
        project_id=DEMO,
    )
    ha_port["binding:host_id"] = "net-1"
    (l3,) = sample("router-l3-agent-list.json")["agents"]
    l3s = [{**l3, "id": f"l3-{h}", "host": h} for h in ("net-1", "net-2")]
    for a in l3s:
        a.pop("ha_state")  # the agents listing has no ha_state; the router's l3-agents listing adds it
    net["project_id"] = DEMO
    return {
        "projects": [{"id": ADMIN, "name": "admin"}, {"id": DEMO, "name": "demo"}],
        "users": [{"name": "admin", "password": "pw", "project": "admin", "roles": ["admin"]}],
        "agents": l3s,
        "networks": [net],
        "ports": [vm, ha_port],
        "routers": [router],
        "security_groups": [sg],
        "address_groups": [{**ag, "project_id": DEMO}],
        "servers": [
            {"id": "srv-1", "name": "web-1", "status": "ACTIVE", "tenant_id": DEMO, "OS-EXT-SRV-ATTR:host": "compute-1"}
        ],
        "router_l3_agents": {router["id"]: ["l3-net-1", "l3-net-2"]},
        "router_ha_states": {router["id"]: {"l3-net-1": "standby", "l3-net-2": "active"}},
    }


@pytest.fixture
def inv(tmp_path, monkeypatch):
    with serving(description(), tmp_path, monkeypatch):
        yield Inventory("steth-lab")


def test_port_security_groups_rules_and_address_groups(inv):
    port = inv.port("46d4bfb9-b26e-41f3-bd2e-e6dcc1ccedb2")
    assert port.security_group_ids == ["85cc3048-abc3-43cc-89b3-377341426ac5"]
    assert port.port_security_enabled is True and port.vnic_type == "normal"
    pf = inv.port_filter(port)
    assert [g.name for g in pf.groups] == ["default"] and pf.port_security and pf.stateful
    assert {r.direction for r in pf.rules()} == {"ingress", "egress"}
    assert pf.address_groups == {"9ace2ef6-bd57-426a-9223-cf1751d26db9": ["10.0.1.34/32", "192.168.100.0/24"]}


def test_port_with_port_security_disabled_is_not_filtered(inv):
    port = inv.port("b1c2d3e4-0000-4000-8000-000000000002")
    assert port.port_security_enabled is False  # as the sample says (absent would read None: filtered)
    assert not inv.port_filter(port).port_security


def test_ha_router_found_through_its_replicated_interface_with_ha_states(inv):
    (router,) = inv.routers("4e8e5957-649f-477b-9e5b-f1f75b21c03c")
    assert router.ha and not router.distributed
    assert router.ha_states == {"net-1": "standby", "net-2": "active"}
    assert router.interface_ips == {"a0304c3a-4f08-4c43-88af-d796509c97d2": "10.0.0.1"}


def test_multi_segment_network_has_segments_and_no_provider_attributes(inv):
    net = inv.network("net1")
    assert net.network_type is None
    assert [s.describe() for s in net.segments] == ["vlan 2 on public", "flat 0 on default"]


def test_an_admin_finds_another_projects_server_by_name(inv):
    # Nova lists the admin's own project only unless all_projects (all_tenants) is asked for
    assert inv.server("web-1").id == "srv-1"


def test_without_all_projects_nova_would_not_list_it(inv):
    """The stand-in answers as Nova does, so the lookup above proves all_projects is sent."""
    assert list(inv.conn.compute.servers(name="web-1")) == []
    assert [s.id for s in inv.conn.compute.servers(name="web-1", all_projects=True)] == ["srv-1"]
