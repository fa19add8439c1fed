from __future__ import annotations

import time

import click

from steth.controller.commands.port_check import port_uuid
from steth.controller.diagnosis import invocation, options
from steth.controller.errors import UsageError
from steth.controller.options import run_async


@click.command("vm-check")
@click.argument("server")
@click.option("--port", "port_ids", multiple=True, metavar="PORT_ID", help="Only this port of the server (repeatable).")
@options
def command(
    server: str,
    port_ids: tuple[str, ...],
    listen_s: float,
    no_inject: bool,
    host_map: dict[str, str],
    full_window: bool = False,
    output: str | None = None,
    timeout: float | None = None,
    _debug: bool = False,
) -> None:
    """Check a server's ports end to end (port-check for each, all at once); name the first failing hop.

    SERVER is a Nova server name or id. The server's host (OS-EXT-SRV-ATTR:host) must match each port's
    binding:host_id. Exit codes as port-check.

    \b
    Examples:
      steth vm-check vm-1
      steth vm-check 0b6e0a4e-... --port 3f2a1b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b -o json
    """
    from steth.controller.diagnosis_port import check_ports, resolve
    from steth.controller.inventory import Inventory

    wanted = [port_uuid(p, "--port") for p in port_ids]
    inv = invocation(output, timeout)
    started = time.monotonic()
    os_inv = Inventory.from_options()
    os_inv.require_admin("vm-check (the server's host, binding:host_id, agents)")
    srv = os_inv.server(server)
    ports = sorted(os_inv.ports(device_id=srv.id), key=lambda p: p.id)
    if wanted:
        unknown = [p for p in wanted if p not in {q.id for q in ports}]
        if unknown:
            raise UsageError(f"server {srv.name or srv.id} has no port {', '.join(unknown)}")
        ports = [p for p in ports if p.id in wanted]
    if not ports:
        raise UsageError(f"server {srv.name or srv.id} has no Neutron port")
    contexts = [resolve(os_inv, p.id, server_host=srv.host) for p in ports]
    openstack_s = time.monotonic() - started
    subject = {
        "server": f"{srv.name} ({srv.id})",
        "host": srv.host or "?",
        "status": srv.status,
        "ports": ", ".join(p.id for p in ports),
    }
    for c in contexts:
        subject[f"port {c.port.id[:8]}"] = (
            f"{c.port.mac} {', '.join(c.port.addresses)} on {c.host}, network {c.network.name or c.network.id}"
        )
    diag = run_async(
        check_ports(
            inv,
            contexts,
            listen_s,
            not no_inject,
            inv.timeout,
            "vm-check",
            subject,
            host_map,
            finish_early=not full_window,
        )
    )
    diag.started = started
    diag.timings = {"openstack": openstack_s, **diag.timings}
    click.get_current_context().exit(diag.emit(inv.output))
