"""What the diagnosis commands share: hops in path order, the verdict, rendering, exit codes.

A hop is one check at one place (a node, a device, a namespace). Recipes (diagnosis_port, diagnosis_network)
list hops in the order a packet meets them; the verdict names the first hop that failed, with its likely
cause. Nodes that did not answer make the verdict incomplete (exit 3) unless a finding came first.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from steth.controller.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK

OK, FAIL, NO_REPLY, NOT_RUN, SKIPPED = "ok", "FAIL", "no_reply", "not_run", "skipped"
UNREACHED = "unreached"  # a path hop behind an earlier failure: a consequence, not another finding


@dataclass
class Hop:
    stage: str  # "port", "tunnel", "dhcp-path", "dhcp-server", "reach", "router", "segment"
    node: str
    check: str
    status: str  # ok, FAIL, unreached, no_reply, not_run (aborted, timeout, error), skipped (could not be tested)
    detail: str = ""
    cause: str = ""  # the likely cause, for a failing hop


@dataclass
class Diagnosis:
    command: str
    subject: dict[str, Any]  # what was checked, as OpenStack describes it
    hops: list[Hop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # every gathered probe, for -o json
    started: float = field(default_factory=time.monotonic)

    def add(self, stage: str, node: str, check: str, status: str, detail: str = "", cause: str = "") -> Hop:
        hop = Hop(stage, node, check, status, detail, cause)
        self.hops.append(hop)
        return hop

    def verdict(self) -> dict[str, Any]:
        failed = next((h for h in self.hops if h.status == FAIL), None)
        if failed:
            where = f"{failed.node} {failed.check}".strip()
            message = f"{where}: {failed.detail}" if failed.detail else where
            return {
                "status": "finding",
                "stage": failed.stage,
                "node": failed.node,
                "check": failed.check,
                "message": message,
                "cause": failed.cause,
            }
        silent = [h for h in self.hops if h.status in (NO_REPLY, NOT_RUN)]
        if silent:
            nodes = sorted({h.node for h in silent})
            return {
                "status": "incomplete",
                "stage": silent[0].stage,
                "node": silent[0].node,
                "check": silent[0].check,
                "message": f"{silent[0].node}: {silent[0].detail}",
                "cause": silent[0].cause
                or f"nothing could be checked on {', '.join(nodes)}: is steth-agent running there?",
            }
        return {"status": "ok", "stage": "", "node": "", "check": "", "message": "every hop passed", "cause": ""}

    def exit_code(self) -> int:
        status = self.verdict()["status"]
        return EXIT_FINDINGS if status == "finding" else EXIT_INCOMPLETE if status == "incomplete" else EXIT_OK

    def verdict_line(self) -> str:
        v = self.verdict()
        if v["status"] == "ok":
            return f"VERDICT: OK: {v['message']} ({sum(1 for h in self.hops if h.status == OK)} checks)"
        head = "FAIL at" if v["status"] == "finding" else "INCOMPLETE:"
        return f"VERDICT: {head} {v['message']}" + (f"; likely cause: {v['cause']}" if v["cause"] else "")

    def document(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "subject": self.subject,
            "elapsed_s": round(time.monotonic() - self.started, 3),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "verdict": self.verdict(),
            "hops": [asdict(h) for h in self.hops],
            "notes": self.notes,
            "probes": self.raw,
        }

    def emit(self, output: str | None = None) -> int:
        from steth.controller.output import View, current_format, emit

        rows = [[h.stage, h.node, h.check, h.status, h.detail] for h in self.hops]
        t = self.timings
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in t.items())
        took = f"diagnosis took {time.monotonic() - self.started:.2f} s" + (f" ({parts})" if parts else "")
        table_only = current_format().is_table
        emit(
            View(
                ["STAGE", "NODE", "CHECK", "RESULT", "DETAIL"],
                rows,
                doc=self.document(),
                groups=[h.stage for h in self.hops],
                grouped=("stage",),
                before=self.header_lines() if table_only else [],
                after=[*(f"note: {n}" for n in self.notes), self.verdict_line(), took] if table_only else [],
            )
        )
        return self.exit_code()

    def header_lines(self) -> list[str]:
        return [
            f"{k}: {v}" for k, v in self.subject.items() if isinstance(v, (str, int, float)) and v not in ("", None)
        ]


async def send(session, probe: str, per_node: dict[str, Any], timeout: float | None):
    """One probe to the given nodes, each with its own validated params; the Gathered replies."""
    from steth.controller.params import wire_args
    from steth.controller.session import Selection
    from steth.schemas.probes import get

    longest = max(get(probe).timeout_for(p) for p in per_node.values())
    wire = {n: wire_args(p) for n, p in per_node.items()}
    return await session.run(probe, Selection(), timeout or longest, per_node_args=wire)


def invocation(output: str | None, timeout: float | None):  # output: unused (the format is on the context)
    """The diagnosis commands pick their nodes from OpenStack: no selectors, the group's NATS options."""
    from steth.controller.options import Invocation
    from steth.controller.session import Selection

    group = click.get_current_context().find_root().obj or {}
    return Invocation(
        group,
        Selection(),
        None,
        timeout if timeout is not None else group.get("timeout"),
        False,
    )


def host_map_option(f):
    """--host-map OS_HOST=NODE for the commands that send probes to the hosts OpenStack names."""
    return click.option(
        "--host-map",
        "host_map",
        multiple=True,
        metavar="OS_HOST=NODE",
        envvar="STETH_HOST_MAP",
        callback=_host_map,
        help="OpenStack's name for a host = its steth node name, where they differ by more than the domain "
        "(repeatable; STETH_HOST_MAP='a=b c=d'). Short names and FQDNs match without it.",
    )(f)


def options(f):
    """-o/--timeout like every command, the OpenStack cloud options, the DHCP listening window and injection."""
    from steth.controller.inventory import os_options
    from steth.controller.options import output_options

    f = host_map_option(f)
    f = click.option(
        "--no-inject", is_flag=True, help="Do not inject a DHCP DISCOVER: only listen (what the VM sends itself)."
    )(f)
    f = click.option(
        "--full-window",
        is_flag=True,
        help="Listen the whole --listen window even after the DHCP exchange was seen (timing comparisons).",
    )(f)
    f = click.option(
        "--listen",
        "listen_s",
        type=click.FloatRange(3.0, 30.0),
        default=5.0,
        show_default=True,
        metavar="S",
        help="The longest every node listens for the port's DHCP exchange (each stops once it saw it pass).",
    )(f)
    return os_options(output_options(f))


def _host_map(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    from steth.controller.neutron_wiring import parse_host_map

    try:
        return parse_host_map(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def unanswered(diag: Diagnosis, stage: str, node: str, what: str, result, present: dict | None) -> bool:
    """Add a hop for a node that did not run the probe; True when it did not."""
    from steth.schemas.envelope import Status

    if result is None or result.status is Status.NO_REPLY:
        entry = (present or {}).get(node)
        if entry is None:
            why = (
                "no reply: no steth agent in presence (none runs there, it left, or its node name differs: --host-map)"
            )
        elif not entry.alive:
            why = f"no reply: its steth agent's heartbeat is {entry.age_s:.0f} s old (hung or gone)"
        else:
            why = "no reply from its steth agent by the deadline"
        diag.add(stage, node, what, NO_REPLY, why)
        return True
    if result.status not in (Status.OK, Status.FAILED):
        diag.add(stage, node, what, NOT_RUN, f"{result.status.value}: {result.message}")
        return True
    return False
