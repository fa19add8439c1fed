"""The conventions operators bring from python-openstackclient and the `nats` CLI (issue 13), through Click's
CliRunner and the real entry point: --version, python -m steth, -f/-c/--sort-column, errors naming the option
and the command, the NATS settings' precedence, OpenStack options on either side of the command, completion."""

from __future__ import annotations

import subprocess
import sys
import time

from click.testing import CliRunner

from steth import __version__
from steth.controller.cli import cli, main

CLEAN_ENV = {
    "STETH_LAB_NAME": "h13none",
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
