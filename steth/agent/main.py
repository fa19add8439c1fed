"""steth-agent: run the daemon, or check a config file."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

import click

from steth import __version__


def _load_or_exit(path: str | None):
    from pydantic import ValidationError

    from steth.agent.config import load
    from steth.schemas.types import describe_validation_error

    try:
        return load(path)
    except ValidationError as exc:
        click.echo(f"steth-agent: bad configuration: {describe_validation_error(exc, limit=10)}", err=True)
    except ValueError as exc:
        click.echo(f"steth-agent: {exc}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="steth-agent", message="%(prog)s %(version)s")
def main() -> None:
    """The steth agent: answers probe requests from NATS on this node."""


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="STETH_CONFIG",
    help="TOML config file (STETH_* variables override it).",
)
def run(config_path: str | None) -> None:
    """Run the agent until SIGTERM or SIGINT, then drain in-flight requests and leave presence.

    It refuses to start (exit 2) without TLS, without NATS credentials or while it would accept unsigned
    requests, unless the config says `insecure = true` (`steth-agent check-config` says what is missing)."""
    config = _load_or_exit(config_path)
    from steth.agent import logfmt
    from steth.agent.config import security_gaps

    gaps = security_gaps(config)
    if gaps and not config.insecure:
        for gap in gaps:
            click.echo(f"steth-agent: insecure configuration: {gap}", err=True)
        click.echo(
            "steth-agent: refusing to start (`steth-agent check-config` explains; insecure = true runs anyway)",
            err=True,
        )
        sys.exit(2)
    logfmt.setup(config.log_level, config.node)
    for gap in gaps:
        logging.getLogger("steth.agent").warning("insecure = true: %s", gap)
    _pidfd_child_watcher()
    try:
        asyncio.run(_serve(config))
    except KeyboardInterrupt:
        pass


def _pidfd_child_watcher() -> None:
    """Python 3.11 waits for each tool process in a thread of its own; a pidfd in the event loop is
    cheaper (a scheduled mesh starts hundreds of pings a minute) and is 3.12's default anyway."""
    import os
    import warnings

    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))  # the kernel must support it (Linux 5.3+)
    except OSError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


async def _serve(config) -> None:
    from steth.agent.runtime import AgentRuntime

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime = AgentRuntime(config)
    watchdog = asyncio.create_task(_feed_watchdog(), name="watchdog")
    try:
        await _run_until_stopped(config, runtime, stop)
    finally:
        watchdog.cancel()


async def _run_until_stopped(config, runtime, stop: asyncio.Event) -> None:
    from steth.agent.sdnotify import notify
    from steth.natsconn import NatsUnavailable

    while True:  # the first connection: keep trying until a server answers or we are told to stop
        try:
            await runtime.start()
            break
        except NatsUnavailable as exc:
            logging.getLogger("steth.agent").error("%s; retrying in 2 s", exc)
            notify(f"STATUS=waiting for NATS: {exc}")
            try:
                await asyncio.wait_for(stop.wait(), timeout=2)
                return
            except TimeoutError:
                continue
    notify("READY=1", f"STATUS=answering as {config.node}")  # systemd Type=notify: connected and present
    await stop.wait()
    notify("STOPPING=1", "STATUS=draining in-flight requests")
    await runtime.stop()


async def _feed_watchdog() -> None:
    """WATCHDOG=1 from the event loop every WatchdogSec/2: a loop that hangs stops feeding and systemd restarts
    the agent. A lost NATS connection does not stop it (the client reconnects by itself)."""
    from steth.agent.sdnotify import notify, watchdog_interval

    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


@main.command("check-config")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="STETH_CONFIG",
    help="TOML config file to check (with STETH_* overrides applied).",
)
def check_config(config_path: str | None) -> None:
    """Validate the config and print the effective settings as JSON (secrets hidden).

    Then, on stderr, what makes the agent insecure and how to fix each: exit 2 when there is any (the agent
    would refuse to start), unless the config says `insecure = true` (then they are warnings, exit 0)."""
    config = _load_or_exit(config_path)
    from steth.agent.config import security_gaps

    shown = config.model_dump()
    for key in ("password", "token"):
        if shown["nats"].get(key):
            shown["nats"][key] = "***"
    click.echo(json.dumps(shown, indent=2))
    gaps = security_gaps(config)
    if not gaps:
        return
    word = "warning (insecure = true)" if config.insecure else "error"
    for gap in gaps:
        click.echo(f"steth-agent: {word}: {gap}", err=True)
    if not config.insecure:
        click.echo(
            "steth-agent: `steth-agent run` refuses this config; fix the above, or set insecure = true at the top "
            "of the file to run an open agent anyway (a lab, never a production node)",
            err=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
