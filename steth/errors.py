"""The root of steth's own errors and the exit codes they carry (shared by the CLI and the agent).

Imports nothing from steth: steth.natsconn (used by both sides) and steth.controller build on it.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_UNAVAILABLE = 4  # steth itself could not work: NATS unreachable, OpenStack API error


class StethError(Exception):
    """An error shown to the operator as one line, with its exit code."""

    exit_code = EXIT_UNAVAILABLE
    hint = ""  # appended in parentheses to the one line the CLI prints

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(StethError):
    exit_code = EXIT_USAGE

    def __init__(self, message: str):
        super().__init__(message)
