"""Bounded value types shared by probe params: nothing here can become an option of a tool."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

IFNAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}$"
NETNS_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
# What a pattern means, for error messages people can act on.
PATTERN_MEANING = {
    IFNAME_PATTERN: "an interface name: 1-15 letters, digits, '_', '.', ':', '@', '-', not starting with '-' or '.'",
    NETNS_PATTERN: "a namespace name: 1-64 letters, digits, '_', '.', '-', not starting with '-' or '.'",
}

# Linux interface names: at most 15 bytes, no leading '-', no slashes, spaces or shell metacharacters.
InterfaceName = Annotated[str, StringConstraints(pattern=IFNAME_PATTERN)]
# Network namespace names as `ip netns` makes them (qdhcp-<uuid> is 42 characters).
NetnsName = Annotated[str, StringConstraints(pattern=NETNS_PATTERN)]


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value))


IPAddress = Annotated[str, AfterValidator(_ip)]


class Params(BaseModel):
    """Base of every probe's params: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")

    def expected_duration_s(self) -> float:
        """How long the probe should run with these params; the request deadline adds a margin."""
        return 1.0


class Result(BaseModel):
    model_config = ConfigDict(extra="ignore")


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """A pydantic error as one line: `field: problem; field: problem`."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"])
        meaning = PATTERN_MEANING.get((err.get("ctx") or {}).get("pattern", ""))
        text = f"{err['input']!r} is not {meaning}" if meaning else err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {text}" if where else text)  # a check across fields has no single field
    more = f" (+{exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more
