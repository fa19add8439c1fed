"""The `steth` command. Subcommands are imported only when run, so `steth --help` starts fast."""

from __future__ import annotations

import importlib
import os
import sys

import click

from steth import __version__
from steth.controller.os_options import os_options
from steth.controller.output import format_options

# Commands written by hand: name -> (module under steth.controller.commands, one-line help for `steth --help`).
# Recipes span nodes or probes, or do more than params -> one gather -> a table (resolve node:NAME, render their
# own view); commands that send no probe. A summary of None is the declaration's: the command runs the probe of
# its name. Every other probe that declares a `command` gets one generated from its spec (controller.generated).
HANDWRITTEN: dict[str, tuple[str, str | None]] = {
    "agents": ("agents", "List the agents in presence: roles, version, addresses, heartbeat age."),
    "ping": ("ping", None),
    "mesh": ("mesh", "Every selected node pings every other: a loss and RTT matrix."),
    "probes": ("probes", "List the probe types, or show one's parameters and result."),
    "lab": ("lab", "A real local fleet in network namespaces: up, status, env, down."),
    "port-check": ("port_check", "One Neutron port end to end (wiring, DHCP path, dnsmasq, reach): the failing hop."),
    "vm-check": ("vm_check", "A server's ports end to end (port-check for each): the failing hop."),
    "network-check": (
        "network_check",
        "A Neutron network: its DHCP agents' dnsmasq and the segment between its hosts.",
    ),
    "watch": ("watch", "Show the agents' scheduled results live (mesh, [[schedule]] entries)."),
    "history": ("history", "Read scheduled results back from the results stream: --probe, --since 1h."),
    "ovs": ("ovs", None),
    "vlan-check": ("vlan_check", None),
    "send": ("send", None),
    "keys": ("keys", "Create or show the ed25519 key that signs requests; agents trust its public half."),
    "nats-config": ("nats_config", "Write a nats-server authorization block: per-identity subject permissions."),
    "setup": ("setup", "Create or update the presence bucket and the results stream (an admin identity)."),
    "address-check": ("address", "Which nodes hold each address, on which interface; duplicates are findings."),
    "mtu": ("mtu", None),
    "bandwidth": (
        "bandwidth",
        "iperf3 between node pairs, one pair at a time: bits/s, retransmits, UDP jitter and loss.",
    ),
    "capture": ("capture", None),
    "validate": ("validate", "Check a site against its plan (YAML): one pass/fail line per requirement, HTML/JUnit."),
    "deploy": (
        "deploy",
        "The systemd units, configs, Prometheus rules and dashboard shipped with steth: list, export.",
    ),
    "link": ("link", "Create and remove steth-marked links (veth, macvlan, bridge, VLAN); mutating, policy-gated."),
}

# Probes with no command of their own: the command that sends them.
INTERNAL: dict[str, str] = {
    "address": "address-check",
    "br-tun": "port-check",
    "capture-fetch": "capture",
    "dhcp-watch": "port-check",
    "iperf-client": "bandwidth",
    "iperf-server": "bandwidth",
    "iperf-stop": "bandwidth",
    "link-add-vlan": "link",
    "link-setup": "link",
    "link-teardown": "link",
    "neutron-ns": "port-check",
    "ovs-uplinks": "network-check",
    "vif": "port-check",
}


def commands() -> dict[str, str]:
    """Every command, sorted, with its one-line summary (read without importing the probes)."""
    from steth.controller.catalog import declared

    probes = declared()
    found = {name: probes[name].summary for name, d in probes.items() if d.generated}
    found.update({name: summary or probes[name].summary for name, (_, summary) in HANDWRITTEN.items()})
    return dict(sorted(found.items()))


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(commands())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in HANDWRITTEN:
            return importlib.import_module(f"steth.controller.commands.{HANDWRITTEN[name][0]}").command
        from steth.controller.catalog import declared

        probe = declared().get(name)
        if probe is None or not probe.generated:
            return None
        from steth.controller.generated import command_for

        return command_for(importlib.import_module(f"steth.schemas.probes.{probe.module}").SPEC)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(commands().items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="steth", message="%(prog)s %(version)s")
@click.option(
    "-s",
    "--server",
    metavar="URL[,URL]",
    help="NATS server(s) [env: STETH_NATS_URL, NATS_URL; else --context, the config file, the selected nats "
    "context, a running lab, nats://127.0.0.1:4222].",
)
@click.option("--nats-url", hidden=True)
@click.option(
    "--context",
    metavar="NAME",
    help="A `nats` CLI context (~/.config/nats/context/NAME.json, or a path) [env: NATS_CONTEXT].",
)
@click.option(
    "--config",
    "config_path",
    envvar="STETH_CONFIG",
    metavar="FILE",
    help="Controller config (TOML, [nats] table). Default: ~/.config/steth/steth.toml, /etc/steth/steth.toml.",
)
@click.option("--user", help="NATS user name [env: STETH_NATS_USER, NATS_USER].")
@click.option("--password", help="NATS password (prefer the variable) [env: STETH_NATS_PASSWORD, NATS_PASSWORD].")
@click.option("--token", help="NATS token (prefer the variable) [env: STETH_NATS_TOKEN].")
@click.option(
    "--creds", metavar="FILE", help="NATS credentials file (JWT and nkey) [env: STETH_NATS_CREDS, NATS_CREDS]."
)
@click.option("--nkey", metavar="FILE", help="File holding an nkey seed [env: STETH_NATS_NKEY_SEED, NATS_NKEY].")
@click.option("--nkey-seed", hidden=True)
@click.option(
    "--tlscert", metavar="FILE", help="Client certificate (mutual TLS) [env: STETH_NATS_TLS_CERT, NATS_CERT]."
)
@click.option("--tlskey", metavar="FILE", help="Client key (mutual TLS) [env: STETH_NATS_TLS_KEY, NATS_KEY].")
@click.option("--tlsca", metavar="FILE", help="CA bundle to verify the server [env: STETH_NATS_TLS_CA, NATS_CA].")
@click.option("--tls-cert", hidden=True)
@click.option("--tls-key", hidden=True)
@click.option("--tls-ca", hidden=True)
@click.option(
    "--signing-key",
    envvar="STETH_SIGNING_KEY",
    metavar="FILE",
    help="Sign requests with this ed25519 key (`steth keys create`); default: [security] signing_key.",
)
@click.option(
    "--agent-keys",
    envvar="STETH_AGENT_KEYS",
    metavar="FILE|DIR",
    help="Verify replies against the agents' public keys: a file of `NODE steth-ed25519 KEY` lines or a folder "
    "of NODE.pub files; default: [security] agent_keys.",
)
@click.option(
    "--expect-from",
    type=click.Choice(["presence", "openstack"]),
    envvar="STETH_EXPECT_FROM",
    default="presence",
    show_default=True,
    help="Who must answer a --role/--all broadcast: the agents in presence, or also every host OpenStack "
    "lists (hypervisors: compute; DHCP/L3/metadata agents: network), so a host without an agent is named.",
)
@os_options
@format_options
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=None,
    metavar="S",
    help="Seconds to wait for replies (default: from the probe and its params).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and the OpenStack API traffic.")
@click.pass_context
def cli(ctx: click.Context, **options) -> None:
    """steth: probe OpenStack networking from every node at once.

    Agents on the compute and network nodes answer over NATS; steth broadcasts a probe, gathers the
    replies by a deadline and names every node that did not answer.

    \b
    Exit codes: 0 all ok, 1 findings, 2 usage, 3 incomplete (no reply, timeout, aborted, invalid),
                4 steth could not work (NATS unreachable, OpenStack API error).

    \b
    Examples:
      steth agents
      steth ping node:compute-2 10.0.0.1 --role compute -o json
      steth mesh --role compute
    """
    ctx.obj = options


def _debug_requested() -> bool:
    return "--debug" in sys.argv or os.environ.get("STETH_DEBUG", "") not in ("", "0")


def command_path(args: list[str]) -> str:
    """`steth lab status` for the arguments given: the command an error message names (parsed again, quietly)."""
    try:
        ctx = cli.make_context("steth", list(args), resilient_parsing=True)
        rest = [*ctx._protected_args, *ctx.args]
        while rest and isinstance(ctx.command, click.Group):
            name, cmd, rest = ctx.command.resolve_command(ctx, rest)
            if cmd is None:
                break
            ctx = cmd.make_context(name, rest, parent=ctx, resilient_parsing=True)
            rest = [*ctx._protected_args, *ctx.args]
        return ctx.command_path
    except Exception:
        return "steth"


def main() -> None:
    from steth.controller.errors import EXIT_UNAVAILABLE, StethError

    args = sys.argv[1:]
    try:
        code = cli.main(args=args, prog_name="steth", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.UsageError as exc:  # one line, not click's usage block
        where = exc.ctx.command_path if exc.ctx else command_path(args)
        click.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"{command_path(args)}: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo(f"{command_path(args)}: aborted", err=True)
        sys.exit(130)
    except StethError as exc:  # NatsUnavailable, InventoryError, UsageError, ...
        if _debug_requested():
            raise
        hint = f" ({exc.hint})" if exc.hint else ""
        click.echo(f"{command_path(args)}: error: {exc}{hint}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if _debug_requested():
            raise
        click.echo(
            f"{command_path(args)}: internal error: {exc.__class__.__name__}: {exc} (--debug shows the traceback)",
            err=True,
        )
        sys.exit(EXIT_UNAVAILABLE)


if __name__ == "__main__":
    main()
