from __future__ import annotations

import click

from steth.controller.errors import EXIT_FINDINGS
from steth.controller.options import Invocation, gathering_command
from steth.controller.output import View, document, emit, footer
from steth.controller.params import collect, params_options
from steth.schemas.envelope import Status
from steth.schemas.probes.address import SPEC as ADDRESS
from steth.schemas.probes.address import AddressParams


def holders(gathered, addresses: list[str]) -> list[dict]:
    """Per address: who holds it, and the verdict.

    A duplicate is the same address in the same namespace name on two or more nodes ("" is the nodes' own
    namespace). The same address in differently named namespaces is normal in Neutron (overlapping tenant
    subnets in different qdhcp-/qrouter- namespaces), so it is not flagged.
    """
    found: dict[str, list[dict]] = {a: [] for a in addresses}
    incomplete = any(n.status is not Status.OK for n in gathered.nodes)
    for node in gathered.nodes:
        if node.status is not Status.OK:
            continue
        result = node.parsed(ADDRESS)
        for h in result.holdings if result else []:
            if h.address in found:
                found[h.address].append(
                    {"node": node.node, "interface": h.interface, "netns": h.netns, "prefixlen": h.prefixlen}
                )
    report = []
    for address, held in found.items():
        scopes: dict[str, set[str]] = {}
        for h in held:
            scopes.setdefault(h["netns"], set()).add(h["node"])
        clashes = sorted(ns for ns, nodes in scopes.items() if len(nodes) > 1)
        # Not found, but some node did not answer: it might hold the address.
        verdict = "duplicate" if clashes else "held" if held else "unknown" if incomplete else "not held"
        report.append(
            {
                "address": address,
                "verdict": verdict,
                "holders": held,
                "duplicate_in": ["(node)" if ns == "" else ns for ns in clashes],
            }
        )
    return report


def _where(h: dict) -> str:
    return f"{h['node']}:{h['netns'] + '/' if h['netns'] else ''}{h['interface']}"


@click.command("address-check")
@click.argument("addresses", nargs=-1, required=True, metavar="ADDRESS...")
@params_options(AddressParams, exclude=("addresses",))
@gathering_command
def command(inv: Invocation, addresses: tuple[str, ...], **options) -> None:
    """Which selected nodes hold each ADDRESS, on which interface; an address on two nodes is a finding.

    Every node looks the addresses up in its own namespace (or in --netns NAME, or in all of its
    namespaces with --all-netns). An address held by two or more nodes in the same namespace name is a
    DUPLICATE (exit 1): two hosts answering ARP for one IP, or an HA router active twice. The same address
    in differently named namespaces (overlapping tenant subnets) is not a duplicate.

    \b
    Examples:
      steth address-check 10.0.0.11 10.0.0.12
      steth address-check 192.168.10.1 --all-netns --role network -o json
    """
    params = collect(AddressParams, options, addresses=list(addresses))
    gathered = inv.gather("address", params)
    gathered.probe = "address-check"
    report = holders(gathered, params.addresses)
    duplicates = [r["address"] for r in report if r["verdict"] == "duplicate"]
    rows = [
        [
            r["address"],
            r["verdict"].upper() if r["verdict"] == "duplicate" else r["verdict"],
            ", ".join(_where(h) for h in r["holders"]) or "-",
        ]
        for r in report
    ]
    problems = [f"{n.node}: {n.status.value}: {n.message}" for n in gathered.nodes if n.status is not Status.OK]
    emit(
        View(
            ["ADDRESS", "VERDICT", "HELD BY"],
            rows,
            doc=document(gathered, duplicates=duplicates, addresses=report),
            after=[*(problems if inv.fmt.is_table else []), footer(gathered)],
        )
    )
    click.get_current_context().exit(EXIT_FINDINGS if duplicates else gathered.exit_code())
