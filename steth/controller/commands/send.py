from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import Column, View, document, emit, footer
from steth.controller.params import collect, params_options
from steth.schemas.probes.send import SPEC as SEND
from steth.schemas.probes.send import SendParams

COLUMNS = [
    Column("NODE"),
    Column("STATUS"),
    Column("SENT"),
    Column("REPLY", "kind"),
    Column("FROM IP"),
    Column("FROM MAC"),
    Column("VLAN"),
    Column("DELAY MS", "delay_ms", "ms"),
    Column("DETAIL"),
    Column("MESSAGE"),
]


def view(gathered, **kw) -> View:
    """Per node: what it sent, then one row per reply."""
    rows, groups = [], []
    for node in gathered.nodes:
        result = node.parsed(SEND)
        sent = (result and result.sent_summary) or "-"
        if result and result.spoofed:
            sent += f" [spoofed src {result.src_mac}]"
        for r in (result and result.replies) or [None]:
            detail = ""
            if r is not None and r.offered_ip:
                detail = f"offered {r.offered_ip}" + (f"/{r.subnet_mask}" if r.subnet_mask else "")
                detail += f" lease {r.lease_time_s}s" if r.lease_time_s else ""
                detail += f" router {r.router}" if r.router else ""
            elif r is not None and r.answered_mac:
                detail = f"is-at {r.answered_mac}"
            cells = ("kind", "from_ip", "from_mac", "vlan")
            rows.append(
                [
                    node.node,
                    node.status.value,
                    sent,
                    *(getattr(r, c, None) if r is not None else "" for c in cells),
                    getattr(r, "delay_ms", None) if r is not None else "",
                    detail or ("-" if r is not None else ""),
                    node.message,
                ]
            )
            groups.append(node.node)
    return View(COLUMNS, rows, groups=groups, grouped=("node", "status", "sent", "message"), **kw)


def render(gathered) -> str:
    return view(gathered).table()


@click.command("send")
@click.argument("target", required=False, metavar="[TARGET]")
@click.option("--dst", "dst", hidden=True)  # the old spelling of TARGET
@params_options(SendParams, exclude=("dst",))
@gathering_command
def command(inv: Invocation, target: str | None, dst: str | None, **options) -> None:
    """Send one crafted packet from the selected nodes and show what came back within --listen.

    --packet dhcp-discover broadcasts a DISCOVER (broadcast flag set) and lists every OFFER; arp-request,
    icmp-echo, tcp-syn and udp go to TARGET (its MAC resolved by ARP first). --vlan tags the frame.
    A spoofed --src-mac (not the interface's own) needs the agent's mutating policy: refused otherwise.
    No reply within the window is a finding (exit 1).

    \b
    Examples:
      steth send --interface eth1 --packet dhcp-discover --vlan 100 --node compute-1
      steth send 10.98.0.12 --interface data0 --packet icmp-echo --role compute
      steth send 10.98.0.12 --interface data0 --packet tcp-syn --port 22 -f json
    """
    target = target or dst
    fixed = {"dst": target} if target else {}
    params = collect(SendParams, options, {"dst": "TARGET"}, **fixed)  # bad input: exit 2 before any network

    gathered = inv.gather("send", params)
    emit(view(gathered, doc=document(gathered), after=[footer(gathered)]))
    click.get_current_context().exit(gathered.exit_code())
