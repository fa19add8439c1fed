from __future__ import annotations

import time

import click

from steth.controller.diagnosis import host_map_option, invocation
from steth.controller.inventory import os_options
from steth.controller.options import output_options, run_async


@click.command("network-check")
@click.argument("network")
@host_map_option
@os_options
@output_options
def command(
    network: str,
    host_map: dict[str, str],
    output: str | None = None,
    timeout: float | None = None,
    _debug: bool = False,
) -> None:
    """Check a Neutron network: its DHCP servers and the segment between the hosts that carry it.

    NETWORK is a name or id. On every DHCP agent host: qdhcp-<network> with the DHCP port's address,
    dnsmasq running, every port of the network in its host file, ARP and a full-MTU don't-fragment ping
    to (up to 8) ports. Between the compute hosts of its ports and the DHCP hosts: for VLAN networks the
    VLAN passes on each host's provider-bridge uplink (vlan-check); for VXLAN/GRE a don't-fragment ping
    mesh between the tunnel endpoints. Exit codes as port-check.

    \b
    Examples:
      steth network-check private
      steth network-check 7e5a1c0b-... -o json
    """
    from steth.controller.diagnosis_network import check, resolve
    from steth.controller.inventory import Inventory

    inv = invocation(output, timeout)
    started = time.monotonic()
    r = resolve(Inventory.from_options(), network)
    openstack_s = time.monotonic() - started
    diag = run_async(check(inv, r, inv.timeout, host_map))
    diag.started = started
    diag.timings = {"openstack": openstack_s, **diag.timings}
    click.get_current_context().exit(diag.emit(inv.output))
