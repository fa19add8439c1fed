"""Exit codes and the errors that carry them."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_UNAVAILABLE = 4  # steth itself could not work: NATS unreachable, OpenStack API error


class StethError(Exception):
    """An error shown to the operator as one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_UNAVAILABLE):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(StethError):
    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)
