"""What the lab's Nova stand-in answers, in the shapes of Nova's api-samples (servers, hypervisors) and the
identity the token stand-in knows: shared by the stand-in cloud (steth.lab.ml2) and the real-Neutron lab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def server(server_id: str, name: str, host: str, project: str, network: str, ip: str, mac: str) -> dict[str, Any]:
    """A server as `GET /servers/detail` shows it to an admin (the OS-EXT-SRV-ATTR attributes included)."""
    return {
        "id": server_id,
        "name": name,
        "status": "ACTIVE",
        "tenant_id": project,
        "user_id": "demo",
        "OS-EXT-SRV-ATTR:host": host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{server_id[:8]}",
        "OS-EXT-STS:vm_state": "active",
        "addresses": {
            network: [{"addr": ip, "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac}]
        },
        "flavor": {"original_name": "m1.tiny"},
        "image": "",
        "created": "2024-01-01T00:00:00Z",
    }


def hypervisors(nodes: list[dict[str, Any]], lab_uuid: Callable[[str, str], str]) -> list[dict[str, Any]]:
    """One hypervisor per compute node, as `GET /os-hypervisors/detail` lists them."""
    return [
        {
            "id": lab_uuid("hypervisor", n["name"]),
            "hypervisor_hostname": n["name"],
            "state": "up",
            "status": "enabled",
            "host_ip": n.get("data_address", ""),
            "hypervisor_type": "QEMU",
            "hypervisor_version": 8002000,
            "service": {"host": n["name"], "id": lab_uuid("service", n["name"]), "disabled_reason": None},
        }
        for n in nodes
        if "compute" in n["roles"]
    ]


def identity(admin: str, demo: str) -> dict[str, Any]:
    """The region, projects and users of the token stand-in: an admin, and a member of the demo project."""
    return {
        "region": "RegionOne",
        "projects": [{"id": admin, "name": "admin"}, {"id": demo, "name": "demo"}],
        "users": [
            {
                "name": "admin",
                "password": "steth-lab-admin",
                "project": "admin",
                "roles": ["admin", "member", "reader"],
            },
            {"name": "demo", "password": "steth-lab-demo", "project": "demo", "roles": ["member", "reader"]},
        ],
    }
