"""steth bandwidth: a controller recipe of single-node probes (agents never talk to each other).

For each pair, one after another so pairs never share the underlay: `iperf-server` on the server node (a
one-test iperf3 bound to its plane address, with a lifetime), `iperf-client` on the client node, then
`iperf-stop` on the server node whatever happened.
"""

from __future__ import annotations

import time

import click

from steth.controller.errors import UsageError
from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import Column, View, emit
from steth.controller.params import collect, params_options, wire_args
from steth.schemas.envelope import INCOMPLETE, Status
from steth.schemas.probes.iperf_client import IperfClientParams
from steth.schemas.probes.iperf_server import SPEC as IPERF_SERVER

SERVER_START_S = 5.0  # deadline of iperf-server and iperf-stop requests
SERVER_MARGIN_S = 10.0  # the server's lifetime beyond the client's expected test time


class Rate(click.ParamType):
    """Bits per second: 250000, 100k, 100M, 2.5G (decimal, like iperf3)."""

    name = "RATE"
    _SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return value
        text = str(value).strip().lower().removesuffix("bit/s").removesuffix("bps")
        number, unit = (text[:-1], text[-1]) if text and text[-1] in "kmgt" else (text, "")
        try:
            rate = float(number) * self._SCALE[unit]
        except ValueError:
            self.fail(f"{value!r} is not a rate: use bits per second like 250000, 100M or 2.5G", param, ctx)
        if rate < 0:
            self.fail(f"{value!r}: a rate cannot be negative", param, ctx)
        return rate


def plan_pairs(nodes: list[str], mode: str) -> list[tuple[str, str]]:
    """(server, client) pairs: ring = each node sends to the next; all = every ordered pair."""
    nodes = sorted(nodes)
    if mode == "ring":
        if len(nodes) == 2:
            return [(nodes[1], nodes[0]), (nodes[0], nodes[1])]
        return [(nodes[(i + 1) % len(nodes)], nodes[i]) for i in range(len(nodes))]
    return [(server, client) for client in nodes for server in nodes if server != client]


async def measure(
    s, server: str, client: str, addresses: dict[str, str], params_args: dict, lifetime: float, timeout: float
) -> dict:
    """One pair: server up, client test, server stopped. A dict shaped like a node entry, plus the pair."""
    pair = {
        "server": server,
        "client": client,
        "server_address": addresses[server],
        "port": None,
        "status": Status.NO_REPLY.value,
        "message": "",
        "duration_s": None,
        "result": None,
    }
    started = await s.run(
        "iperf-server",
        None,
        SERVER_START_S,
        per_node_args={server: {"bind": addresses[server], "lifetime_s": lifetime}},
    )
    srv = started.nodes[0]
    listening = srv.parsed(IPERF_SERVER)
    if srv.status is not Status.OK or listening is None:
        why = srv.message or srv.status.value if srv.status is not Status.OK else "answered without a job and port"
        pair.update(status=srv.status.value, message=f"server {server}: {why}")
        return pair
    job, pair["port"] = listening.job_id, listening.port
    try:
        args = dict(params_args, server=addresses[server], port=listening.port, bind=addresses[client])
        ran = await s.run("iperf-client", None, timeout, per_node_args={client: args})
        node = ran.nodes[0]
        duration = None if node.duration_s is None else round(node.duration_s, 4)
        pair.update(status=node.status.value, message=node.message, duration_s=duration, result=node.result)
        if node.status is Status.NO_REPLY:
            pair["message"] = f"client {client}: {node.message}"
    finally:
        stopped = await s.run("iperf-stop", None, SERVER_START_S, per_node_args={server: {"job_id": job}})
        if stopped.nodes[0].status is not Status.OK:  # its lifetime still ends it; say so
            note = f"server {server} not confirmed stopped ({stopped.nodes[0].status.value}); its lifetime ends it"
            pair["message"] = f"{pair['message']}; {note}" if pair["message"] else note
    return pair


def summary(pairs: list[dict]) -> dict[str, int]:
    counts = {"expected": len(pairs), "replied": sum(1 for p in pairs if p["status"] != Status.NO_REPLY.value)}
    for status in Status:
        counts[status.value] = sum(1 for p in pairs if p["status"] == status.value)
    return counts


def exit_code(pairs: list[dict]) -> int:
    statuses = {Status(p["status"]) for p in pairs}
    if Status.FAILED in statuses:
        return 1
    return 3 if statuses & INCOMPLETE or not pairs else 0


COLUMNS = [
    Column("FROM"),
    Column("TO"),
    Column("PROTO", "protocol"),
    Column("SENT", "sent_bps", "bps"),
    Column("RECEIVED", "received_bps", "bps"),
    Column("RETR", "retransmits"),
    Column("JITTER", "jitter_ms", "ms"),
    Column("LOSS", "loss", "ratio"),
    Column("STATUS"),
    Column("MESSAGE"),
]


def view(pairs: list[dict], **kw) -> View:
    rows = []
    for p in pairs:
        r = p["result"] or {}
        sender, receiver = (p["server"], p["client"]) if r.get("reverse") else (p["client"], p["server"])
        rows.append(
            [
                sender,
                receiver,
                r.get("protocol", "-"),
                r.get("sent_bps"),
                r.get("received_bps"),
                r.get("retransmits"),
                r.get("jitter_ms"),
                r.get("loss"),
                p["status"],
                p["message"],
            ]
        )
    return View(COLUMNS, rows, **kw)


def render(pairs: list[dict]) -> str:
    return view(pairs).table()


@click.command("bandwidth")
@click.option("--server", metavar="NODE", help="Node that runs the iperf3 server (with --client).")
@click.option("--client", metavar="NODE", help="Node that runs the iperf3 client (with --server).")
@click.option(
    "--pairs",
    "pair_mode",
    type=click.Choice(["ring", "all"]),
    help="Pair the selected nodes: ring (each to the next) or all (every ordered pair).",
)
@click.option(
    "--plane", metavar="CIDR|IFACE", help="Measure between the nodes' addresses on this plane (default: data plane)."
)
@click.option("--bitrate", type=Rate(), help="Target bits/s per stream, e.g. 100M (UDP default: 1M).")
@click.option("--min-bps", type=Rate(), metavar="RATE", help="Received bits/s below which a pair is failed, e.g. 900M.")
@params_options(IperfClientParams, exclude=("server", "port", "bind", "bitrate_bps", "min_bps"))
@gathering_command
def command(inv: Invocation, server, client, pair_mode, plane, bitrate, min_bps, **options) -> None:
    """Measure throughput between nodes with iperf3, one pair at a time.

    The server node starts a one-test iperf3 server bound to its plane address (an agent job that is stopped
    afterwards, and killed at its lifetime if the controller goes away); the client node runs the test with
    JSON output. Each pair reports bits/s sent and received, TCP retransmits, and UDP jitter and loss; a pair
    receiving less than --min-bps is failed (exit 1).

    \b
    Examples:
      steth bandwidth --server compute-2 --client compute-1 --duration 5
      steth bandwidth --server network-1 --client compute-1 --protocol udp --bitrate 500M
      steth bandwidth --role compute --pairs ring --min-bps 900M -o json
    """
    fixed = {"server": "127.0.0.1", "bitrate_bps": int(bitrate) if bitrate is not None else None, "min_bps": min_bps}
    params = collect(
        IperfClientParams,
        options,
        {"bitrate_bps": "--bitrate", "min_bps": "--min-bps"},
        **{k: v for k, v in fixed.items() if v is not None},
    )
    if server or client:
        if not (server and client):
            raise UsageError("give both --server and --client (or --pairs with selectors)")
        if pair_mode or not inv.selection.empty:
            raise UsageError("--server/--client name the pair: no --pairs, --node, --role or --all with them")
        if server == client:
            raise UsageError("--server and --client must be different nodes")
    elif not pair_mode:
        raise UsageError("give --server NODE --client NODE, or --pairs ring|all with --role/--node/--all")
    from steth.schemas.probes import get

    client_timeout = inv.timeout_or(get("iperf-client").timeout_for(params))
    lifetime = min(660.0, params.expected_duration_s() + SERVER_MARGIN_S)
    args = wire_args(params)
    args.pop("server", None)

    async def go():
        async with inv.session() as s:
            present = await s.presence() or {}
            if server:
                wanted = [server, client]
                missing = [n for n in wanted if n not in present]
                if missing:
                    raise UsageError(f"not in presence: {', '.join(missing)} (`steth agents` lists them)")
                plan = [(server, client)]
            else:
                wanted = sorted(n for n, p in present.items() if inv.selection.matches(p.info) and p.alive)
                if len(wanted) < 2:
                    raise UsageError(f"pairs need at least two present nodes; selected: {', '.join(wanted) or 'none'}")
                plan = plan_pairs(wanted, pair_mode)
            addresses = {n: present[n].info.address_on(plane) for n in wanted}
            no_address = [n for n, a in addresses.items() if not a]
            if no_address:
                raise UsageError(f"no address on {plane or 'the data plane'} for: {', '.join(no_address)}")
            started = time.monotonic()
            results = [await measure(s, srv, cli, addresses, args, lifetime, client_timeout) for srv, cli in plan]
            return results, time.monotonic() - started

    pairs, elapsed = run_async(go())
    counts = summary(pairs)
    doc = {"probe": "bandwidth", "elapsed_s": round(elapsed, 3), "summary": counts, "pairs": pairs}
    done = counts["ok"] + counts["failed"]
    text = f"{done}/{len(pairs)} pairs measured in {elapsed:.2f} s"
    others = [f"{counts[s.value]} {s.value}" for s in Status if counts[s.value] and s not in (Status.OK,)]
    if others:
        text += " (" + ", ".join(others) + ")"
    emit(view(pairs, doc=doc, after=[text]))
    click.get_current_context().exit(exit_code(pairs))
