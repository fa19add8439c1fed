"""Exit codes and the errors that carry them (defined in steth.errors, shared with steth.natsconn)."""

from __future__ import annotations

from steth.errors import (
    EXIT_FINDINGS,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    StethError,
    UsageError,
)

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "StethError",
    "UsageError",
]
