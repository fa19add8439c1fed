from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import emit_footer, emit_gathered, fmt, table
from steth.controller.params import collect, params_options
from steth.schemas.probes.send import SPEC as SEND
from steth.schemas.probes.send import SendParams


def render(gathered) -> str:
    """Per node: what it sent, then one line per reply."""
    rows = []
    for node in gathered.nodes:
        result = node.parsed(SEND)
        sent = (result and result.sent_summary) or "-"
        if result and result.spoofed:
            sent += f" [spoofed src {result.src_mac}]"
        for i, r in enumerate((result and result.replies) or [None]):
            detail = ""
            if r is not None and r.offered_ip:
                detail = f"offered {r.offered_ip}" + (f"/{r.subnet_mask}" if r.subnet_mask else "")
                detail += f" lease {r.lease_time_s}s" if r.lease_time_s else ""
                detail += f" router {r.router}" if r.router else ""
            elif r is not None and r.answered_mac:
                detail = f"is-at {r.answered_mac}"
            first = i == 0
            cells = ("kind", "from_ip", "from_mac", "vlan")
            rows.append(
                [
                    node.node if first else "",
                    node.status.value if first else "",
                    sent if first else "",
                    *(fmt(getattr(r, c, None)) for c in cells),
                    fmt(getattr(r, "delay_ms", None), "ms"),
                    detail or ("-" if r is not None else ""),
                    node.message if first else "",
                ]
            )
    return table(
        ["NODE", "STATUS", "SENT", "REPLY", "FROM IP", "FROM MAC", "VLAN", "DELAY MS", "DETAIL", "MESSAGE"], rows
    )


@click.command("send")
@params_options(SendParams)
@gathering_command
def command(inv: Invocation, **options) -> None:
    """Send one crafted packet from the selected nodes and show what came back within --listen.

    --packet dhcp-discover broadcasts a DISCOVER (broadcast flag set) and lists every OFFER; arp-request,
    icmp-echo, tcp-syn and udp go to --dst (its MAC resolved by ARP first). --vlan tags the frame.
    A spoofed --src-mac (not the interface's own) needs the agent's mutating policy: refused otherwise.
    No reply within the window is a finding (exit 1).

    \b
    Examples:
      steth send --interface eth1 --packet dhcp-discover --vlan 100 --node compute-1
      steth send --interface data0 --packet icmp-echo --dst 10.98.0.12 --role compute
      steth send --interface data0 --packet tcp-syn --dst 10.98.0.12 --port 22 -o json
    """
    from steth.schemas.probes import get

    spec = get("send")
    params = collect(SendParams, options)  # bad input: exit 2 before any network

    gathered = inv.gather("send", params)
    if inv.output == "table":
        click.echo(render(gathered))
        emit_footer(gathered, inv.output)
    else:
        emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
