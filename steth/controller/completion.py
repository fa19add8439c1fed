"""Shell completion (Click's): node and role names from presence, probe names from the declarations.

Node and role names come from the agents' presence entries when NATS answers within a second (the same NATS
settings as every command: -s, --context, NATS_URL, ...); otherwise there is silently nothing to offer, so a
Tab never hangs and never prints an error into the shell. docs/cli.md shows how to enable it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click
from click.shell_completion import CompletionItem

BUDGET_S = 1.0  # connect and read presence within this, or offer nothing


def _present(ctx: click.Context) -> dict[str, Any]:
    from steth.controller.settings import nats_flags, resolve
    from steth.natsconn import NatsOptions, connect
    from steth.presence import read_presence

    root = ctx.find_root().params
    try:
        r = resolve(nats_flags(root), root.get("config_path"), root.get("context"))
        opts = NatsOptions(
            **{k: v for k, v in r.values.items() if k != "connect_timeout_s"},
            name="steth-complete",
            connect_timeout_s=BUDGET_S / 2,
        )
    except Exception:
        return {}

    async def go() -> dict[str, Any]:
        nc = await connect(opts)
        try:
            return await read_presence(nc, timeout=BUDGET_S / 2) or {}
        finally:
            await nc.close()

    try:
        return asyncio.run(asyncio.wait_for(go(), BUDGET_S))
    except BaseException:  # no server, no bucket, too slow: nothing to offer
        return {}


def nodes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    present = _present(ctx)
    return [
        CompletionItem(name, help=",".join(p.info.roles))
        for name, p in sorted(present.items())
        if name.startswith(incomplete)
    ]


def roles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    found = sorted({r for p in _present(ctx).values() for r in p.info.roles})
    return [CompletionItem(r) for r in found if r.startswith(incomplete)]


def probes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from steth.controller.catalog import declared

    return [CompletionItem(n, help=d.summary) for n, d in sorted(declared().items()) if n.startswith(incomplete)]
