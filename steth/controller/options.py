"""Options every gathering command takes after its name, and the per-command context they build."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from steth.controller.session import Selection


@dataclass
class Invocation:
    """A command's resolved options: where NATS is, what to select, how to print."""

    group: dict[str, Any]
    selection: Selection
    _output: str | None  # unused: the format lives on the root context (steth.controller.output.Format)
    timeout: float | None
    yes: bool

    @property
    def output(self) -> str:
        from steth.controller.output import current_format

        return current_format().format

    @property
    def fmt(self):
        from steth.controller.output import current_format

        return current_format()

    def nats_options(self):
        """NATS settings from flags, variables, contexts, the config file, a lab (steth.controller.settings)."""
        from steth.controller.settings import nats_flags, resolve
        from steth.natsconn import NatsOptions

        r = resolve(nats_flags(self.group), self.group.get("config_path"), self.group.get("context"))
        return NatsOptions(
            **{k: v for k, v in r.values.items() if k != "connect_timeout_s"},
            name="steth-cli",
            connect_timeout_s=min(r.values.get("connect_timeout_s", 1.0), 5.0),
            origin=r.origin.get("servers", ""),
        )

    def session(self):
        from steth.controller import replysig
        from steth.controller.session import Session
        from steth.controller.signing import configured

        opts = self.nats_options()
        config_path = self.group.get("config_path")
        signer = configured(self.group.get("signing_key"), config_path)
        if signer is None:  # a secure lab found with no flags: its controller signing key too
            from steth.controller.settings import LAB_ORIGIN, lab_signing_key

            key = lab_signing_key() if opts.origin == LAB_ORIGIN else None
            if key:
                from steth.controller.signing import load

                signer = load(key)
        session = Session(
            opts, signer=signer, verifier=replysig.from_environment(self.group.get("agent_keys"), config_path)
        )
        if self.group.get("expect_from") == "openstack":
            session.also_expected = self.openstack_hosts()
        return session

    def openstack_hosts(self) -> dict[str, str]:
        """The hosts OpenStack says should run an agent for the selected roles, each with a no-reply reason."""
        from steth.controller.inventory import Inventory

        sel = self.selection
        roles = [r for r in sel.roles if r in ("compute", "network")]
        if sel.all or sel.empty:
            roles = ["compute", "network"]
        inventory = Inventory.from_options()
        hosts: dict[str, str] = {}
        for role in roles:
            for host in sorted(inventory.hosts_for_role(role)):
                hosts.setdefault(host, f"OpenStack lists it as a {role} host, but it has no steth agent in presence")
        return hosts

    def timeout_or(self, default: float) -> float:
        return self.timeout if self.timeout is not None else default

    def gather(self, probe: str, params) -> Any:
        """Send one probe with validated params to the selection; the Gathered replies."""
        from steth.controller.params import wire_args
        from steth.schemas.probes import get

        timeout = self.timeout_or(get(probe).timeout_for(params))

        async def go():
            async with self.session() as s:
                return await s.run(probe, self.selection, timeout, wire_args(params))

        return run_async(go())


def output_options(f: Callable) -> Callable:
    from steth.controller.output import format_options

    f = click.option("--debug", "_debug", is_flag=True, hidden=True)(f)
    f = click.option(
        "--timeout",
        type=click.FloatRange(0.1, 3600),
        default=None,
        metavar="S",
        help="Seconds to wait for replies (default: from the probe and its params).",
    )(f)
    return format_options(f)


def selector_options(f: Callable) -> Callable:
    from steth.controller import completion

    f = click.option("--all", "select_all", is_flag=True, help="Every node (the default when no selector is given).")(f)
    f = click.option(
        "--role",
        "roles",
        multiple=True,
        metavar="ROLE",
        shell_complete=completion.roles,
        help="Nodes with this role (repeatable).",
    )(f)
    f = click.option(
        "--node",
        "nodes",
        multiple=True,
        metavar="NAME",
        shell_complete=completion.nodes,
        help="This node (repeatable).",
    )(f)
    return f


def gathering_command(f: Callable) -> Callable:
    """Selectors plus output options; the command gets an `inv: Invocation` first argument."""

    @functools.wraps(f)
    def wrapper(
        *args: Any,
        nodes=(),
        roles=(),
        select_all=False,
        timeout=None,
        _debug=False,
        yes=False,
        **kwargs: Any,
    ):
        group = click.get_current_context().find_root().obj or {}
        selection = Selection(tuple(nodes), tuple(roles), select_all)
        selection.validate()
        inv = Invocation(
            group,
            selection,
            None,
            timeout if timeout is not None else group.get("timeout"),
            yes,
        )
        return f(inv, *args, **kwargs)

    return selector_options(output_options(wrapper))


def run_async(coro) -> Any:
    return asyncio.run(coro)
