"""One declaration per probe: params, result, timeouts, mutating or not, table columns, its CLI command."""

from __future__ import annotations

from dataclasses import dataclass

from steth.schemas.types import Params, Result


@dataclass(frozen=True)
class Column:
    header: str
    key: str  # key of a table row (a dict built from the result)
    unit: str = ""  # how to render: "ms", "ratio", "bps", "bytes", "" (as is)


@dataclass(frozen=True)
class Command:
    """The `steth NAME` command generated from a spec: params become options, one gather, a table of columns.

    Its --help is the spec's summary, then `help`, then the examples. A probe whose command does more (resolves
    node:NAME, spans nodes, renders its own view) has none, and a hand-written recipe in steth.controller.
    """

    help: str  # paragraphs after the summary line (plain text; a line of its own is kept as written)
    examples: tuple[str, ...] = ()  # whole command lines: "steth arping 10.0.0.1 --interface br-ex"
    argument: str | None = None  # the params field given as the positional argument (the rest are options)
    metavar: str = ""  # the argument's name in usage: "ADDRESS" (shown "[ADDRESS]" if optional, "ADDRESS..." if a list)


# What a probe does beyond reading the host, each behind its own switch in the agent's [policy].
CAPTURE = "capture"  # reads other traffic on an interface (tcpdump, a sniffer)
TRAFFIC = "traffic"  # generates traffic beyond a few probe packets, or crafted frames (iperf3, scapy)
EFFECTS = (CAPTURE, TRAFFIC)


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    summary: str
    params: type[Params]
    result: type[Result]
    max_timeout_s: float = 60.0
    mutating: bool = False
    # Answers from memory, never waits on I/O: the agent runs it inline in the subscription callback,
    # with no task and no deadline timer (a `hello` to 5,000 agents is then mostly NATS itself).
    inline: bool = False
    # The result field that holds a list of table rows; None: the result itself is one row.
    rows_key: str | None = None
    columns: tuple[Column, ...] = ()
    tools: tuple[str, ...] = ()  # external programs the agent runs for it (docs only)
    description: str = ""
    command: Command | None = None  # None: no generated command (a recipe sends it; steth.controller.cli says which)
    effects: tuple[str, ...] = ()  # of EFFECTS: what [policy] allow_capture / allow_traffic must permit

    def timeout_for(self, params: Params) -> float:
        """A request deadline for these params: the probe's own duration plus a margin, capped."""
        expected = params.expected_duration_s()
        return min(self.max_timeout_s, expected * 1.2 + 2.0)
