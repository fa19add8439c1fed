"""Bounded value types shared by probe params: nothing here can become an option of a tool."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

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


def no_zone(value: str) -> str:
    """Refuse an IPv6 zone id: Python's ipaddress accepts `fe80::1%<anything>`, and tools take what follows
    `%` as more than a scope (ovs-vsctl splits its --db value at ','). Name the interface with its own option."""
    if "%" in value or "," in value:
        raise ValueError(f"{value!r}: '%' and ',' are not accepted in an address (give the interface on its own)")
    return value


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(no_zone(value)))  # rebuilt from the parsed address


IPAddress = Annotated[str, AfterValidator(_ip)]


class _Marker:
    """Tags a type so that the agent's policy (steth/agent/policy.py) finds its fields by type."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


VLAN = _Marker("VLAN")
VlanId = Annotated[int, Field(ge=1, le=4094), VLAN]  # an 802.1Q VLAN id: checked against allowed_vlans

_UNIX_PATH = re.compile(r"^/[A-Za-z0-9_.+/-]{1,200}$")


def ovsdb_remote(value: str) -> str:
    """unix:/absolute/path or tcp:IP:PORT, rebuilt from its parts: nothing else reaches ovs-vsctl's --db.

    A client takes a comma-separated list of connection methods (ovsdb(7), "Connection Methods"; the form for
    a clustered database) and passive ones (`punix:`) bind and unlink the socket on exit, so one value must
    never carry a second method."""
    kind, _, rest = no_zone(value).partition(":")
    if kind == "unix":
        if not _UNIX_PATH.match(rest) or "/../" in rest + "/" or "/./" in rest + "/" or "//" in rest:
            raise ValueError("unix:/absolute/path/to/db.sock (letters, digits, _ . + - /)")
        return f"unix:{rest}"
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        try:
            ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
        except ValueError:
            raise ValueError("tcp:IP:PORT with an IP address ([IPv6] in brackets)") from None
        if ip.version == 6 and not bracketed:
            raise ValueError("tcp:[IPv6]:PORT: an IPv6 address goes in brackets")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("tcp:IP:PORT with a port 1..65535")
        return f"tcp:[{ip}]:{int(port)}" if ip.version == 6 else f"tcp:{ip}:{int(port)}"
    raise ValueError("unix:/path/to/db.sock or tcp:IP:PORT")


OvsdbRemote = Annotated[str, AfterValidator(ovsdb_remote)]

# RFC 1123 host names: labels of letters, digits and '-', never starting with '-'.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?$")


def split_host_port(value: str) -> tuple[str, int]:
    """'10.0.0.1:5672', 'rabbit.example:5672' or '[fd00::1]:5672' to (host, port); ValueError otherwise."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError("an IPv6 target reads [ADDRESS]:PORT")
        host = str(ipaddress.IPv6Address(no_zone(host)))  # raises ValueError; rebuilt from the parsed address
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise ValueError("expected HOST:PORT")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not _HOSTNAME.match(host):
                raise ValueError(f"{host!r} is neither an IPv4 address nor a host name") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be 1..65535, not {port!r}")
    return host, int(port)


def host_port(value: str) -> str:
    """HOST:PORT rebuilt from its parsed parts."""
    host, port = split_host_port(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


HostPort = Annotated[str, Field(max_length=270), AfterValidator(host_port)]


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
