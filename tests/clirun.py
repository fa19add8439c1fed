"""The real `steth` entry point run in-process (its error handling included), for the CLI unit tests."""

from __future__ import annotations

import sys
import time

from click.testing import CliRunner


def run_main(args: list[str], env: dict) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, seconds) of `steth ARGS` with `env` (None values unset a variable)."""
    from steth.controller.cli import main

    runner = CliRunner()
    started = time.monotonic()
    with runner.isolation(env=env) as (out, err, _):
        saved = sys.argv
        sys.argv = ["steth", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = saved
        return code, out.getvalue().decode(), err.getvalue().decode(), time.monotonic() - started
