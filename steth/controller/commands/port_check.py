from __future__ import annotations

import time
import uuid

import click

from steth.controller.diagnosis import invocation, options
from steth.controller.errors import UsageError
from steth.controller.options import run_async


def port_uuid(value: str, what: str = "PORT_ID") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise UsageError(f"{what} must be a Neutron port UUID, not {value!r}") from None


@click.command("port-check")
@click.argument("port_id")
@options
def command(
    port_id: str,
    listen_s: float,
    no_inject: bool,
    host_map: dict[str, str],
    full_window: bool = False,
    output: str | None = None,
    timeout: float | None = None,
    _debug: bool = False,
) -> None:
    """Check one Neutron port end to end and name the first failing hop.

    Asks OpenStack (admin credentials) for the port's host, MAC, addresses and plugging, its network's
    segment and MTU, DHCP agents and routers; then, at once: the port's wiring on its compute host (OVS
    port by iface-id, attached-mac, tag 4095, ofport, tap/qbr/qvb/qvo up, MTU), the DHCP path (every hop
    listens while a DISCOVER with the port's MAC is injected where the VM would send it; needs the agents'
    mutating policy, else listen only), dnsmasq and the port's host entry in qdhcp-<network> on each DHCP
    host with ARP and a full-MTU ping to the port, and the router's gateway and ARP from qrouter-<router>.

    Prints a hop-by-hop table and one verdict line. Exit 0 all passed, 1 a finding, 3 a node did not answer,
    2 an unknown port, 4 OpenStack or NATS could not be used.

    \b
    Examples:
      steth port-check 3f2a1b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b
      steth port-check 3f2a1b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b --os-cloud admin -o json
    """
    from steth.controller.diagnosis_port import check_ports, resolve
    from steth.controller.inventory import Inventory

    port_id = port_uuid(port_id)
    inv = invocation(output, timeout)
    started = time.monotonic()
    os_inv = Inventory.from_options()
    ctx = resolve(os_inv, port_id)
    openstack_s = time.monotonic() - started
    diag = run_async(
        check_ports(
            inv,
            [ctx],
            listen_s,
            not no_inject,
            inv.timeout,
            "port-check",
            ctx.subject(),
            host_map,
            finish_early=not full_window,
        )
    )
    diag.started = started
    diag.timings = {"openstack": openstack_s, **diag.timings}
    click.get_current_context().exit(diag.emit(inv.output))
