"""The OpenStack inventory against the loopback API stand-in, through the real openstacksdk (no root needed)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from standin import serving

from steth.controller.inventory import Inventory, InventoryError, NotFound, compare
from steth.lab.openstack_api import clouds_yaml

# openstacksdk's own deprecation notices (PendingDeprecationWarning) about its internals.
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

PORT_ID = "3f2a1b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def description() -> dict:
    agent = lambda i, kind, host, alive=True: {  # noqa: E731
        "id": i,
        "agent_type": kind,
        "binary": "b",
        "host": host,
        "alive": alive,
        "admin_state_up": True,
        "configurations": {"bridge_mappings": {"physnet1": "br-phys"}},
    }
    return {
        "projects": [{"id": "p-admin", "name": "admin"}, {"id": "p-demo", "name": "demo"}],
        "users": [
            {"name": "admin", "password": "pw", "project": "admin", "roles": ["admin"]},
            {"name": "demo", "password": "pw2", "project": "demo", "roles": ["member"]},
        ],
        "hypervisors": [
            {
                "id": "h1",
                "hypervisor_hostname": "compute-1.example",
                "state": "up",
                "status": "enabled",
                "host_ip": "10.0.0.1",
                "service": {"host": "compute-1", "id": "s1"},
            },
            {
                "id": "h2",
                "hypervisor_hostname": "compute-2",
                "state": "down",
                "status": "enabled",
                "service": {"host": "compute-2", "id": "s2"},
            },
        ],
        "agents": [
            agent("a1", "Open vSwitch agent", "compute-1"),
            agent("a2", "Open vSwitch agent", "compute-2", alive=False),
            agent("a3", "DHCP agent", "network-1"),
            agent("a4", "L3 agent", "network-1"),
            agent("a5", "Metadata agent", "network-2"),
        ],
        "networks": [
            {
                "id": "n1",
                "name": "private",
                "project_id": "p-demo",
                "mtu": 1450,
                "subnets": ["s1"],
                "provider:network_type": "vlan",
                "provider:physical_network": "physnet1",
                "provider:segmentation_id": 101,
            }
        ],
        "subnets": [
            {
                "id": "s1",
                "network_id": "n1",
                "cidr": "10.20.0.0/24",
                "gateway_ip": "10.20.0.1",
                "enable_dhcp": True,
                "ip_version": 4,
                "project_id": "p-demo",
            }
        ],
        "ports": [
            {
                "id": PORT_ID,
                "network_id": "n1",
                "mac_address": "FA:16:3E:00:00:01",
                "project_id": "p-demo",
                "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.20.0.11"}],
                "device_id": "vm1",
                "device_owner": "compute:nova",
                "binding:host_id": "compute-1",
                "binding:vif_type": "ovs",
                "binding:vif_details": {"ovs_hybrid_plug": True},
                "status": "ACTIVE",
            },
            {
                "id": "d1",
                "network_id": "n1",
                "mac_address": "fa:16:3e:00:00:02",
                "project_id": "p-demo",
                "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.20.0.2"}],
                "device_owner": "network:dhcp",
                "binding:host_id": "network-1",
                "status": "ACTIVE",
            },
            {
                "id": "r1p",
                "network_id": "n1",
                "mac_address": "fa:16:3e:00:00:03",
                "project_id": "p-demo",
                "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.20.0.1"}],
                "device_owner": "network:router_interface",
                "device_id": "r1",
                "binding:host_id": "network-1",
                "status": "ACTIVE",
            },
        ],
        "routers": [{"id": "r1", "name": "router-1", "project_id": "p-demo"}],
        "servers": [
            {
                "id": "vm1",
                "name": "vm-one",
                "status": "ACTIVE",
                "tenant_id": "p-demo",
                "OS-EXT-SRV-ATTR:host": "compute-1",
            }
        ],
        "network_dhcp_agents": {"n1": ["a3"]},
        "router_l3_agents": {"r1": ["a4"]},
    }


@pytest.fixture
def api(tmp_path, monkeypatch):
    with serving(description(), tmp_path, monkeypatch) as server:
        yield server


def test_hosts_agents_and_roles(api):
    inv = Inventory("steth-lab")
    hyp = inv.hypervisors()
    assert [(h.host, h.name, h.state) for h in hyp] == [
        ("compute-1", "compute-1.example", "up"),
        ("compute-2", "compute-2", "down"),
    ]
    assert inv.hosts_for_role("compute") == {"compute-1", "compute-2"}  # the Nova service host, not hypervisor_hostname
    assert inv.hosts_for_role("network") == {"network-1", "network-2"}
    assert {a.host: a.alive for a in inv.neutron_agents() if a.agent_type == "Open vSwitch agent"} == {
        "compute-1": True,
        "compute-2": False,
    }
    assert inv.is_admin()


def test_port_network_dhcp_router_server(api):
    inv = Inventory("steth-lab")
    port = inv.port(PORT_ID)
    assert (port.host, port.mac, port.addresses, port.hybrid_expected) == (
        "compute-1",
        "fa:16:3e:00:00:01",
        ["10.20.0.11"],
        True,
    )
    net = inv.network("private")
    assert (net.id, net.network_type, net.segmentation_id, net.physical_network, net.mtu) == (
        "n1",
        "vlan",
        101,
        "physnet1",
        1450,
    )
    assert [s.cidr for s in inv.subnets("n1")] == ["10.20.0.0/24"]
    assert [a.host for a in inv.dhcp_agents("n1")] == ["network-1"]
    routers = inv.routers("n1")
    assert [(r.name, r.l3_hosts, r.interface_ips) for r in routers] == [
        ("router-1", [("network-1", True)], {"s1": "10.20.0.1"})
    ]
    assert inv.server("vm-one").host == "compute-1"
    assert [p.id for p in inv.ports(device_id="vm1")] == [PORT_ID]


def test_results_are_cached_within_one_invocation(api):
    inv = Inventory("steth-lab")
    inv.hypervisors(), inv.port(PORT_ID), inv.neutron_agents()
    calls = len(api.calls)
    inv.hypervisors(), inv.port(PORT_ID), inv.neutron_agents(), inv.hosts_for_role("network")
    assert len(api.calls) == calls


def test_missing_admin_is_one_clear_error(api):
    inv = Inventory("steth-lab-demo")
    with pytest.raises(InventoryError) as exc:
        inv.neutron_agents()
    assert exc.value.exit_code == 4
    assert "lack the admin role" in str(exc.value) and "Neutron agents" in str(exc.value)
    with pytest.raises(InventoryError, match="needs admin credentials"):
        inv.require_admin("port-check")
    assert inv.port(PORT_ID).host is None  # non-admin tokens do not see binding:host_id


def test_unknown_port_and_server_are_usage_errors(api):
    inv = Inventory("steth-lab")
    for call in (
        lambda: inv.port("00000000-0000-0000-0000-000000000000"),
        lambda: inv.server("nope"),
        lambda: inv.network("nope"),
    ):
        with pytest.raises(NotFound) as exc:
            call()
        assert exc.value.exit_code == 2 and "OpenStack knows no" in str(exc.value)


def test_api_refusing_hanging_and_rejecting(api, tmp_path, monkeypatch):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    refused_port = free.getsockname()[1]
    free.close()
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(0)  # accepts into the backlog, never answers
    cloud = description()
    cases = {
        "refused": f"http://127.0.0.1:{refused_port}/identity/v3",
        "hang": f"http://127.0.0.1:{hang.getsockname()[1]}/identity/v3",
    }
    try:
        for name, url in cases.items():
            path = tmp_path / f"{name}.yaml"
            path.write_text(clouds_yaml(url, cloud))
            monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
            started = time.monotonic()
            with pytest.raises(InventoryError) as exc:
                Inventory("steth-lab", api_timeout_s=1.0).hypervisors()
            assert exc.value.exit_code == 4 and "is not answering" in str(exc.value)
            assert ("connection refused" if name == "refused" else "timeout") in str(exc.value)
            assert "\n" not in str(exc.value)
            assert time.monotonic() - started < 10
    finally:
        hang.close()
    cloud["users"][0]["password"] = "wrong"
    path = tmp_path / "wrong.yaml"
    path.write_text(clouds_yaml(api.auth_url, cloud))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    with pytest.raises(InventoryError, match="rejected the credentials"):
        Inventory("steth-lab").hypervisors()


def test_os_variables_select_the_cloud(api, monkeypatch):
    monkeypatch.delenv("OS_CLIENT_CONFIG_FILE")
    monkeypatch.setenv("OS_AUTH_URL", api.auth_url)
    for k, v in dict(
        OS_USERNAME="admin",
        OS_PASSWORD="pw",
        OS_PROJECT_NAME="admin",
        OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
        OS_IDENTITY_API_VERSION="3",
    ).items():
        monkeypatch.setenv(k, v)
    assert Inventory(None).hosts_for_role("compute") == {"compute-1", "compute-2"}


def test_no_cloud_selected_says_how(monkeypatch, tmp_path):
    for var in ("OS_CLOUD", "OS_AUTH_URL", "OS_CLIENT_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STETH_LAB_DIR", str(tmp_path))  # no lab there
    with pytest.raises(InventoryError, match="no OpenStack cloud selected"):
        Inventory(None).hypervisors()


def test_compare_names_every_kind_of_mismatch():
    inv_hyp = [SimpleNamespace(host="compute-1", state="up"), SimpleNamespace(host="compute-2", state="down")]
    from steth.controller.inventory import NeutronAgent

    agents = [
        NeutronAgent("a1", "Open vSwitch agent", "compute-1", True),
        NeutronAgent("a2", "DHCP agent", "network-1", False),
    ]
    present = {
        "compute-1": SimpleNamespace(alive=True),
        "stray-9": SimpleNamespace(alive=True),
        "compute-2": SimpleNamespace(alive=False),
    }
    rows = {r["host"]: r for r in compare(present, inv_hyp, agents)}
    assert rows["compute-1"]["findings"] == []
    assert rows["compute-2"]["findings"] == ["steth agent's heartbeat is stale", "hypervisor down"]
    assert rows["network-1"]["findings"] == [
        "runs OpenStack services but no steth agent",
        "Neutron agent down: DHCP agent",
    ]
    assert rows["stray-9"]["findings"] == ["steth agent unknown to OpenStack (no hypervisor, no Neutron agent)"]


def test_inventory_module_does_not_import_openstack_until_used():
    code = (
        "import sys; import steth.controller.inventory, steth.controller.commands.agents, "
        "steth.controller.commands.port_check, steth.controller.commands.vm_check, steth.controller.commands.network_check; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('openstack', 'keystoneauth1', 'scapy'))))"
    )
    done = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
