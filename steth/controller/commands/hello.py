from __future__ import annotations

import click

from steth.controller.options import Invocation, gathering_command
from steth.controller.output import emit_gathered


@click.command("hello")
@gathering_command
def command(inv: Invocation) -> None:
    """Ask the selected agents to answer: who is reachable over NATS right now.

    Unlike `steth agents` (which reads heartbeats), this sends a request and waits for each reply.
    """
    from steth.schemas.probes import get

    spec = get("hello")
    gathered = inv.gather("hello", spec.params())
    emit_gathered(gathered, spec, inv.output)
    click.get_current_context().exit(gathered.exit_code())
