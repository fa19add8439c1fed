"""The miniature ML2/OVS lab with the DHCP port wired as Neutron's `ovs_use_veth = True` does: tap<port> on br-int
in the node's namespace, ns-<port> inside qdhcp (neutron/agent/linux/interface.py OVSInterfaceDriver). The same
port-check must find the DHCP port there and pass. Its own lab, after test_openstack.py's (same names and
subnets: STETH_TEST_OS_*), so the two never run at once.
"""

from __future__ import annotations

import subprocess

import pytest
from conftest import ROOT
from test_openstack import hop, stack_lab

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not ROOT, reason="needs root (network namespaces, OVS)")]


@pytest.fixture(scope="module")
def veth_stack():
    with stack_lab(dhcp_wiring="veth") as the_lab:
        yield the_lab


@pytest.mark.parametrize("server", ["vm-1", "vm-2"])
def test_the_dhcp_port_as_a_veth_is_watched_in_the_host_namespace(veth_stack, server):
    dhcp = next(p for p in veth_stack.design["ports"] if p["role"] == "dhcp")
    inside = subprocess.run(
        ["ip", "-n", veth_stack.design["qdhcp"], "-br", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert f"ns-{dhcp['id'][:11]}" in inside and f"tap{dhcp['id'][:11]}" not in inside
    code, doc, _ = veth_stack.diagnose("port-check", veth_stack.vm_port(server)["id"])
    assert code == 0 and doc["verdict"]["status"] == "ok", doc["verdict"]
    assert {h["status"] for h in doc["hops"]} == {"ok"}, [h for h in doc["hops"] if h["status"] != "ok"]
    assert hop(doc, "dhcp-path", "DISCOVER at DHCP port")["detail"] == "seen"  # the host-side tap
    assert hop(doc, "dhcp-path", "OFFER at DHCP port")["detail"] == "seen"
    assert hop(doc, "dhcp-server", "address")["detail"] == f"on ns-{dhcp['id'][:11]}"
