from __future__ import annotations

import asyncio

import click

from steth.controller.errors import StethError, UsageError
from steth.controller.options import Invocation, run_async
from steth.controller.output import Column, View, emit, format_options
from steth.controller.session import Selection
from steth.schemas.results import RESULTS_STREAM


@click.command("setup")
@click.option(
    "--presence-ttl",
    type=click.FloatRange(1, 3600),
    default=15.0,
    show_default=True,
    metavar="S",
    help="Seconds a presence entry lives after its last heartbeat (at least twice the agents' heartbeat_s).",
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 5),
    default=None,
    help="Replicas of both (default: 3 on a cluster of at least 3 servers, else 1).",
)
@click.option("--results-stream", default=RESULTS_STREAM, show_default=True, help="The results stream's name.")
@click.option(
    "--results-max-age",
    type=click.FloatRange(60, 90 * 86400),
    default=86400.0,
    show_default=True,
    metavar="S",
    help="Keep scheduled results this long.",
)
@click.option(
    "--results-max-msgs", type=click.IntRange(100, 100_000_000), default=1_000_000, show_default=True, metavar="N"
)
@click.option(
    "--results-max-bytes", type=click.IntRange(1 << 20, 1 << 40), default=1 << 30, show_default=True, metavar="N"
)
@format_options
def command(
    presence_ttl: float,
    replicas: int | None,
    results_stream: str,
    results_max_age: float,
    results_max_msgs: int,
    results_max_bytes: int,
) -> None:
    """Create or update the presence bucket and the results stream (idempotent).

    Run it once per NATS deployment, and again after an upgrade, with an administrative identity
    (`steth nats-config --admin NAME`): agent identities may only look these up. It creates what is
    missing and brings an existing bucket or stream to steth's configuration: no rollup headers (an agent
    could otherwise wipe every presence entry with `Nats-Rollup: all`) and no per-message TTLs. A presence
    bucket that allows per-message TTLs cannot be changed by the server and is re-created (agents rewrite
    their entries within a heartbeat). Prints what it did; exit 0, 4 when NATS refused or did not answer.

    \b
    Examples:
      steth setup
      STETH_NATS_NKEY_SEED=/etc/steth/admin-ops.nk steth setup --replicas 3 -f json
    """
    import re

    from steth import streams
    from steth.natsconn import connect

    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", results_stream):
        raise UsageError(f"--results-stream {results_stream!r}: letters, digits, '_' and '-' only")
    group = click.get_current_context().find_root().obj or {}
    inv = Invocation(group, Selection((), (), False), None, None, False)

    async def go():
        denied: list[str] = []

        async def on_error(exc: Exception) -> None:
            if "permissions violation" in str(exc).lower():
                denied.append(str(exc))

        nc = await connect(inv.nats_options(), error_cb=on_error)
        try:
            js = nc.jetstream(timeout=5)
            n = replicas or streams.presence_replicas(None, getattr(nc, "_server_info", None) or {})
            wanted = [
                streams.presence_config(presence_ttl, n),
                streams.results_config(results_stream, results_max_age, results_max_msgs, results_max_bytes, n),
            ]
            done = []
            for config in wanted:
                try:
                    done.append(await streams.apply(js, config, recreate_ok=config.name == streams.PRESENCE_STREAM))
                except Exception as exc:
                    await asyncio.sleep(0.1)  # the server's permissions error comes just after the timeout
                    why = denied[-1] if denied else f"{exc.__class__.__name__}: {exc}".rstrip(": ")
                    raise StethError(
                        f"cannot set up {config.name}: {why} (is this an admin identity? `steth nats-config --admin NAME`)"
                    ) from exc
            return done
        finally:
            try:
                await asyncio.wait_for(nc.close(), timeout=2)
            except Exception:
                pass

    outcomes = run_async(go())

    def changes(o) -> str:
        return ", ".join(f"{k} {a}->{b}" for k, (a, b) in o.changes.items()) or "-"

    emit(
        View(
            [Column("STREAM"), Column("ACTION"), Column("CHANGES")],
            [[o.stream, o.action, changes(o)] for o in outcomes],
            doc={"streams": [o.as_dict() for o in outcomes]},
        )
    )
