"""The `steth` CLI in-process through Click's CliRunner: help of every command, usage errors as one line
with exit 2 before any network, and NATS that does not answer as one line with exit 4 within seconds."""

from __future__ import annotations

import json
import re
import socket

import click
import clirun
import pytest
from click.testing import CliRunner

from steth.controller.cli import cli, commands
from steth.schemas.probes import registry

# No lab, no config file, no URL from the environment: only what a test passes counts.
CLEAN_ENV = {"STETH_LAB_NAME": "h1none", "STETH_NATS_URL": None, "STETH_CONFIG": None, "STETH_DEBUG": None}
DEAD_URL = "nats://127.0.0.1:1"  # connection refused at once


def run_main(args: list[str], env: dict | None = None) -> tuple[int, str, str, float]:
    """The real entry point in-process with this module's clean environment."""
    return clirun.run_main(args, {**CLEAN_ENV, **(env or {})})


def all_command_paths() -> list[list[str]]:
    """Every command and subcommand: ["ping"], ["lab", "up"], ..."""
    paths = []
    ctx = click.Context(cli)
    for name in commands():
        paths.append([name])
        try:
            command = cli.get_command(ctx, name)
        except ImportError:  # listed but not importable: its own help test fails and says so
            continue
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in sorted(command.commands)]
    return paths


# --- help -----------------------------------------------------------------------------------------


def test_top_level_help_lists_every_command_and_the_exit_codes():
    result = CliRunner().invoke(cli, ["--help"], env=CLEAN_ENV)
    assert result.exit_code == 0
    for name, summary in commands().items():
        assert name in result.output and summary[:30] in result.output
    assert "Exit codes: 0 all ok, 1 findings, 2 usage, 3 incomplete" in result.output


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p))
def test_help_of_every_command(path):
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(cli, [*path, flag], env=CLEAN_ENV)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: cli {' '.join(path)}") or result.output.startswith("Usage: ")
        assert "Options:" in result.output
        assert "Traceback" not in result.output


def test_gathering_commands_share_the_selectors():
    for name in ("ping", "mesh", "hello", "agents"):
        text = CliRunner().invoke(cli, [name, "--help"], env=CLEAN_ENV).output
        for option in ("--node NAME", "--role ROLE", "--all", "-f, --format", "-c, --column COLUMN", "--timeout S"):
            assert option in text, (name, option)


def test_help_through_the_entry_point_exits_0():
    code, out, err, _ = run_main(["ping", "--help"])
    assert code == 0 and "TARGET..." in out and err == ""


# --- usage errors: exit 2, one line, nothing sent -------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["ping"], "Missing argument 'TARGET...'"),
        (["ping", "--count", "abc", "10.0.0.1"], "'abc' is not a valid integer"),
        (["ping", "--count", "0", "10.0.0.1"], "--count: Input should be greater than or equal to 1"),
        (["ping", "--count", "1001", "10.0.0.1"], "--count: Input should be less than or equal to 1000"),
        (["ping", "--interval", "0.001", "10.0.0.1"], "--interval: Input should be greater than or equal to 0.01"),
        (["ping", "--max-loss", "2", "10.0.0.1"], "--max-loss: Input should be less than or equal to 1"),
        (["ping", "--", "-rf"], "'-rf' does not appear to be an IPv4 or IPv6 address"),
        (["ping", "10.0.0.1; reboot"], "does not appear to be an IPv4 or IPv6 address"),
        (["ping", "--interface", "-evil", "10.0.0.1"], "is not an interface name"),
        (["ping", "--netns", "../x", "10.0.0.1"], "is not a namespace name"),
        (["ping", "--node", "-x", "10.0.0.1"], "invalid node name '-x'"),
        (["ping", "--role", "Compute", "10.0.0.1"], "invalid role 'Compute'"),
        (["ping", "-o", "xml", "10.0.0.1"], "'xml' is not one of"),
        (["ping", "--bogus", "10.0.0.1"], "No such option '--bogus'"),
        (["mesh", "--count", "5000"], "--count: Input should be less than or equal to 1000"),
        (["hello", "--timeout", "0"], "0.0 is not in the range 0.1<=x<=3600"),
        (["--timeout", "99999", "agents"], "is not in the range"),
        (["nope"], "No such command 'nope'"),
        (["probes", "show", "nope"], "no probe 'nope'"),
        (["lab", "up", "--compute", "0", "--network", "0"], "a lab needs at least one node"),
        (["lab", "up", "--ovn", "--ovs"], "--ovn builds its own Open vSwitch per node"),
        (["ovn-binding", "not-a-port-id"], "IFACE_ID not-a-port-id: String should match pattern"),
        (["ovn-port", "--node", "network-1"], "PORT_ID"),
    ],
)
def test_usage_errors_exit_2_with_one_line_before_any_network(args, words):
    # A dead NATS URL: reaching the network would exit 4, so exit 2 proves validation came first.
    code, out, err, seconds = run_main(["--nats-url", DEAD_URL, *args])
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert words in lines[0] and lines[0].startswith("steth"), lines[0]
    assert out == "" and "Traceback" not in err
    assert seconds < 2


def test_a_bad_config_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "steth.toml"
    bad.write_text("[nats\n")
    code, _, err, _ = run_main(["--config", str(bad), "agents"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is not valid TOML" in err
    code, _, err, _ = run_main(["--config", str(tmp_path / "none.toml"), "agents"])
    assert code == 2 and "does not exist" in err


# --- NATS that does not answer: exit 4, one line, within seconds -----------------------------------


def assert_unavailable(code: int, out: str, err: str, seconds: float, url: str, limit: float) -> None:
    assert code == 4, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(r"^steth [a-z-]+: error:", lines[0]) and url in lines[0] and "--server" in lines[0]
    assert out == ""
    assert seconds < limit, f"took {seconds:.1f} s"


@pytest.mark.parametrize("command", [["agents"], ["hello"], ["ping", "10.0.0.1"], ["mesh"]])
def test_refused_connection_exits_4_quickly(command):
    code, out, err, seconds = run_main(["--nats-url", DEAD_URL, *command])
    assert_unavailable(code, out, err, seconds, DEAD_URL, limit=4)


def test_url_from_the_environment():
    code, out, err, seconds = run_main(["agents"], env={"STETH_NATS_URL": DEAD_URL})
    assert_unavailable(code, out, err, seconds, DEAD_URL, limit=4)


def test_several_dead_servers_are_all_named():
    urls = f"{DEAD_URL},nats://127.0.0.1:2"
    code, out, err, seconds = run_main(["--nats-url", urls, "agents"])
    assert_unavailable(code, out, err, seconds, "nats://127.0.0.1:2", limit=8)
    assert DEAD_URL in err


def test_a_server_that_accepts_but_never_speaks():
    """Blackhole-ish: TCP connects (the kernel completes the handshake) but no NATS INFO ever comes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # never accepted, never answered
        url = f"nats://127.0.0.1:{silent.getsockname()[1]}"
        code, out, err, seconds = run_main(["--nats-url", url, "agents"])
    assert_unavailable(code, out, err, seconds, url, limit=8)


def test_debug_shows_the_traceback():
    runner = CliRunner()
    result = runner.invoke(cli, ["--nats-url", DEAD_URL, "--debug", "agents"], env=CLEAN_ENV)
    from steth.natsconn import NatsUnavailable

    assert isinstance(result.exception, NatsUnavailable)


# --- commands that need no NATS -------------------------------------------------------------------


def test_probes_lists_every_declaration_as_json():
    code, out, err, _ = run_main(["probes", "-o", "json"])
    assert code == 0, err
    doc = json.loads(out)
    assert [p["name"] for p in doc["probes"]] == sorted(registry())
    ping = next(p for p in doc["probes"] if p["name"] == "ping")
    count = next(p for p in ping["params"] if p["name"] == "count")
    assert count["option"] == "--count" and count["default"] == 3
    assert sorted(count["bounds"].values()) == [1, 1000]


def test_probes_show_table():
    code, out, _, _ = run_main(["probes", "show", "ping"])
    assert code == 0 and out.startswith("ping: ") and "--interval" in out and "rtt_avg_ms" not in out.split("result")[0]


def test_lab_env_and_status_without_a_lab():
    code, out, err, _ = run_main(["lab", "env"])
    assert code == 3 and "no lab is up" in err and out == ""
    code, out, err, _ = run_main(["lab", "status", "-o", "json"])
    assert code == 3 and json.loads(out) == {"up": False, "nodes": []}
