"""The `steth` command. Subcommands are imported only when run, so `steth --help` starts fast."""

from __future__ import annotations

import importlib
import os
import sys

import click

# name -> (module under steth.controller.commands, one-line help shown by `steth --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "agents": ("agents", "List the agents in presence: roles, version, addresses, heartbeat age."),
    "ping": ("ping", "Ping targets from the selected nodes; loss above --max-loss is a finding."),
    "mesh": ("mesh", "Every selected node pings every other: a loss and RTT matrix."),
    "probes": ("probes", "List the probe types, or show one's parameters and result."),
    "hello": ("hello", "Ask the selected agents to answer: who is reachable over NATS right now."),
    "lab": ("lab", "A real local fleet in network namespaces: up, status, env, down."),
    "port-check": ("port_check", "One Neutron port end to end (wiring, DHCP path, dnsmasq, reach): the failing hop."),
    "vm-check": ("vm_check", "A server's ports end to end (port-check for each): the failing hop."),
    "network-check": (
        "network_check",
        "A Neutron network: its DHCP agents' dnsmasq and the segment between its hosts.",
    ),
    "watch": ("watch", "Show the agents' scheduled results live (mesh, [[schedule]] entries)."),
    "history": ("history", "Read scheduled results back from the results stream: --probe, --since 1h."),
    "ovs": ("ovs", "Open vSwitch bridges and ports from OVSDB; dead ports, ofport -1, broken patches are findings."),
    "vlan-check": ("vlan_check", "Which VLANs pass between which nodes: 802.1Q frames, a VLAN x node-pair matrix."),
    "send": ("send", "Send one crafted packet (DHCP DISCOVER, ARP, ICMP, TCP SYN, UDP) and show what came back."),
    "keys": ("keys", "Create or show the ed25519 key that signs requests; agents trust its public half."),
    "nats-config": ("nats_config", "Write a nats-server authorization block: per-identity subject permissions."),
    "interface": ("interface", "Links on the selected nodes: state, carrier, MTU, MAC, addresses, counters."),
    "address-check": ("address", "Which nodes hold each address, on which interface; duplicates are findings."),
    "tcp-check": ("tcp_check", "TCP connect to HOST:PORT from the selected nodes: handshake time or the error."),
    "netns": ("netns", "Network namespaces (qdhcp-, qrouter-, snat-, fip-, ...) with interfaces and addresses."),
    "arping": ("arping", "ARP-ping an address on an interface: replies and the answering MACs."),
    "mtu": ("mtu", "Path MTU to an address or node: largest don't-fragment packet that passes."),
    "bandwidth": (
        "bandwidth",
        "iperf3 between node pairs, one pair at a time: bits/s, retransmits, UDP jitter and loss.",
    ),
    "capture": ("capture", "tcpdump on the selected nodes, bounded: packet summaries, and a pcap per node with -w."),
    "link": ("link", "Create and remove steth-marked links (veth, macvlan, bridge, VLAN); mutating, policy-gated."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"steth.controller.commands.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--nats-url",
    envvar="STETH_NATS_URL",
    metavar="URL[,URL]",
    help="NATS server(s). Default: STETH_NATS_URL, the config file, a running lab, nats://127.0.0.1:4222.",
)
@click.option(
    "--config",
    "config_path",
    envvar="STETH_CONFIG",
    metavar="FILE",
    help="Controller config (TOML, [nats] table). Default: ~/.config/steth/steth.toml, /etc/steth/steth.toml.",
)
@click.option("--user", envvar="STETH_NATS_USER", help="NATS user name.")
@click.option("--password", envvar="STETH_NATS_PASSWORD", help="NATS password (prefer the variable).")
@click.option("--creds", envvar="STETH_NATS_CREDS", metavar="FILE", help="NATS credentials file (JWT and nkey).")
@click.option("--nkey-seed", envvar="STETH_NATS_NKEY_SEED", metavar="FILE", help="File holding an nkey seed.")
@click.option("--tls-ca", envvar="STETH_NATS_TLS_CA", metavar="FILE", help="CA bundle to verify the server.")
@click.option("--tls-cert", envvar="STETH_NATS_TLS_CERT", metavar="FILE", help="Client certificate (mutual TLS).")
@click.option("--tls-key", envvar="STETH_NATS_TLS_KEY", metavar="FILE", help="Client key (mutual TLS).")
@click.option(
    "--signing-key",
    envvar="STETH_SIGNING_KEY",
    metavar="FILE",
    help="Sign requests with this ed25519 key (`steth keys create`); default: [security] signing_key.",
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
@click.option("--os-cloud", envvar="OS_CLOUD", metavar="NAME", help="Cloud in clouds.yaml for --expect-from openstack.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "yaml"]),
    default=None,
    help="Output format (also accepted after the command).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=None,
    metavar="S",
    help="Seconds to wait for replies (default: from the probe and its params).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
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


def main() -> None:
    from steth.controller.errors import EXIT_UNAVAILABLE, StethError

    try:
        code = cli.main(prog_name="steth", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.UsageError as exc:  # one line, not click's usage block
        where = exc.ctx.command_path if exc.ctx else "steth"
        click.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"steth: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("steth: aborted", err=True)
        sys.exit(130)
    except StethError as exc:  # NatsUnavailable, InventoryError, UsageError, ...
        if _debug_requested():
            raise
        hint = f" ({exc.hint})" if exc.hint else ""
        click.echo(f"steth: error: {exc}{hint}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if _debug_requested():
            raise
        click.echo(f"steth: internal error: {exc.__class__.__name__}: {exc} (--debug shows the traceback)", err=True)
        sys.exit(EXIT_UNAVAILABLE)


if __name__ == "__main__":
    main()
