"""The conventions operators bring from python-openstackclient and the `nats` CLI (issue 13), through Click's
CliRunner and the real entry point: --version, python -m steth, -f/-c/--sort-column, errors naming the option
and the command, the NATS settings' precedence, OpenStack options on either side of the command, completion."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from steth import __version__
from steth.controller.cli import cli, main

CLEAN_ENV = {
    "STETH_LAB_NAME": "hcnone",
    "STETH_NATS_URL": None,
    "STETH_CONFIG": None,
    "STETH_DEBUG": None,
    "NATS_URL": None,
    "NATS_CONTEXT": None,
    "NATS_CREDS": None,
    "NATS_NKEY": None,
    "NATS_CERT": None,
    "NATS_KEY": None,
    "NATS_CA": None,
    "OS_CLOUD": None,
}


def run_main(args: list[str], env: dict | None = None) -> tuple[int, str, str]:
    """The real entry point in-process (its error handling included): (exit code, stdout, stderr)."""
    runner = CliRunner()
    with runner.isolation(env={**CLEAN_ENV, **(env or {})}) as (out, err, _):
        saved = sys.argv
        sys.argv = ["steth", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = saved
        return code, out.getvalue().decode(), err.getvalue().decode()


# --- 1. --version, python -m steth ----------------------------------------------------------------


def test_version_of_steth():
    result = CliRunner().invoke(cli, ["--version"], env=CLEAN_ENV)
    assert result.exit_code == 0 and result.output.strip() == f"steth {__version__}"


def test_version_of_steth_agent():
    from steth.agent.main import main as agent_main

    result = CliRunner().invoke(agent_main, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"steth-agent {__version__}"


def test_python_dash_m_steth():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "steth", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"steth {__version__}", done.stderr
    done = subprocess.run([sys.executable, "-m", "steth", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Usage: steth ")
    assert time.monotonic() - started < 30


# --- 2. -f/--format, -c/--column, --sort-column, --noindent: one renderer for every command --------------


def fake_ping(monkeypatch) -> None:
    """`steth ping` without NATS: Invocation.gather answers two nodes (compute-2 with two targets)."""
    from steth.controller.gather import Gathered, NodeResult
    from steth.controller.options import Invocation
    from steth.schemas.envelope import Status

    def row(target: str, loss: float, avg: float) -> dict:
        return {
            "target": target,
            "sent": 4,
            "received": 4 - int(loss * 4),
            "loss": loss,
            "rtt_min_ms": avg / 2,
            "rtt_avg_ms": avg,
            "rtt_max_ms": avg * 2,
            "rtt_mdev_ms": 0.01,
            "error": None,
        }

    gathered = Gathered(
        "ping",
        "req-1",
        0.25,
        {"compute-1", "compute-2"},
        [
            NodeResult(
                "compute-2",
                Status.FAILED,
                "loss 50% to 10.0.0.9",
                0.2,
                {"targets": [row("10.0.0.1", 0.0, 0.5), row("10.0.0.9", 0.5, 0.2)]},
            ),
            NodeResult("compute-1", Status.OK, "", 0.1, {"targets": [row("10.0.0.1", 0.0, 0.3)]}),
        ],
    )

    class FakeSession:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return None

        async def run(self, *args, **kwargs):
            return gathered

    monkeypatch.setattr(Invocation, "session", lambda self: FakeSession())


PING = ["ping", "10.0.0.1", "10.0.0.9", "--count", "4"]


def test_table_is_the_default_and_shows_a_node_once(monkeypatch):
    fake_ping(monkeypatch)
    code, out, err = run_main(PING)
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATUS", "TARGET"]
    assert lines[1].startswith("compute-2") and lines[2].split()[0] == "10.0.0.9"  # continuation row
    assert "2/2 nodes replied" in out


def test_value_with_columns_prints_cells_only(monkeypatch):
    fake_ping(monkeypatch)
    code, out, err = run_main([*PING, "-f", "value", "-c", "node", "-c", "TARGET"])
    assert code == 1
    assert out.splitlines() == ["compute-2 10.0.0.1", "compute-2 10.0.0.9", "compute-1 10.0.0.1"]
    assert "2/2 nodes replied" in err  # the footer is not in the way of a script


def test_format_before_the_command_and_after_it(monkeypatch):
    fake_ping(monkeypatch)
    _, before, _ = run_main(["-f", "value", "-c", "node", *PING])
    _, after, _ = run_main([*PING, "--format", "value", "--column", "node"])
    _, both, _ = run_main(["-f", "json", *PING, "-f", "value", "-c", "node"])  # after the command wins
    assert before == after == both == "compute-2\ncompute-2\ncompute-1\n"


def test_sort_column_numeric_and_descending(monkeypatch):
    fake_ping(monkeypatch)
    _, out, _ = run_main([*PING, "-f", "value", "-c", "node", "-c", "avg", "--sort-column", "AVG"])
    assert [line.split()[1] for line in out.splitlines()] == ["0.200", "0.300", "0.500"]
    _, out, _ = run_main([*PING, "-f", "value", "-c", "avg", "--sort-column", "avg", "--sort-descending"])
    assert out.split() == ["0.500", "0.300", "0.200"]
    _, out, _ = run_main([*PING, "--sort-column", "node"])  # a sorted table repeats the node on each row
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["compute-1", "compute-2", "compute-2"]


def test_csv_has_a_header_and_quotes(monkeypatch):
    fake_ping(monkeypatch)
    _, out, _ = run_main([*PING, "-f", "csv", "-c", "node", "-c", "message"])
    assert out.splitlines() == [
        "NODE,MESSAGE",
        "compute-2,loss 50% to 10.0.0.9",
        "compute-2,loss 50% to 10.0.0.9",
        "compute-1,",
    ]
    import csv

    rows = list(csv.reader(run_main([*PING, "-f", "csv"])[1].splitlines()))
    assert rows[0][:3] == ["NODE", "STATUS", "TARGET"] and len(rows) == 4


def test_json_is_the_document_unless_columns_are_asked(monkeypatch):
    import json

    fake_ping(monkeypatch)
    _, out, err = run_main([*PING, "-f", "json"])
    doc = json.loads(out)
    assert doc["probe"] == "ping" and doc["summary"]["failed"] == 1 and len(doc["nodes"]) == 2
    assert "2/2 nodes replied" in err
    _, out, _ = run_main([*PING, "-f", "json", "-c", "node", "-c", "loss", "--noindent"])
    assert out.count("\n") == 1  # --noindent: one line
    assert json.loads(out) == [
        {"node": "compute-2", "loss": 0.0},
        {"node": "compute-2", "loss": 0.5},
        {"node": "compute-1", "loss": 0.0},
    ]
    _, out, _ = run_main([*PING, "-f", "yaml", "-c", "node", "--sort-column", "node"])
    assert out.splitlines()[0] == "- node: compute-1"


def test_old_dash_o_still_works_but_is_hidden(monkeypatch):
    import json

    fake_ping(monkeypatch)
    _, out, _ = run_main([*PING, "-o", "json"])
    assert json.loads(out)["probe"] == "ping"
    _, out, _ = run_main(["--output", "json", *PING])
    assert json.loads(out)["probe"] == "ping"
    help_text = CliRunner().invoke(cli, ["ping", "--help"], env=CLEAN_ENV).output
    assert "-f, --format [table|json|yaml|value|csv]" in help_text and "--output" not in help_text


def test_an_unknown_column_names_the_columns(monkeypatch):
    fake_ping(monkeypatch)
    code, out, err = run_main([*PING, "-c", "nope"])
    assert code == 2 and out == ""
    assert err.startswith("steth ping: error: -c/--column 'nope': no such column; columns: NODE, STATUS, TARGET")


@pytest.mark.parametrize("fmt", ["table", "json", "yaml", "value", "csv"])
def test_probes_honours_every_format(fmt):
    code, out, err = run_main(["probes", "-f", fmt])
    assert code == 0 and err == "" and "ping" in out
    code, out, _ = run_main(["-f", fmt, "probes", "show", "ping"])
    assert code == 0 and "--count" in out


def test_probes_value_column():
    from steth.schemas.probes import registry

    _, out, _ = run_main(["probes", "-f", "value", "-c", "probe", "--sort-column", "probe"])
    assert out.split() == sorted(registry())
    _, out, _ = run_main(["probes", "show", "ping", "-f", "value", "-c", "option"])
    assert "--count" in out.split()


@pytest.mark.parametrize("fmt", ["table", "json", "yaml", "value", "csv"])
def test_lab_status_honours_every_format(fmt):
    code, out, _ = run_main(["lab", "status", "-f", fmt])
    assert code == 3  # no lab
    if fmt in ("json", "yaml"):
        assert "up: false" in out or '"up": false' in out
    if fmt == "csv":
        assert out.startswith("NODE,ROLES,NAMESPACE")


def test_deploy_list_value():
    _, out, _ = run_main(["deploy", "list", "-f", "value", "-c", "file"])
    assert "steth-agent.service" in " ".join(out.split())
