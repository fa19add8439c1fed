"""The agent's allow-lists, enforced once for every probe by looking at the validated params.

Interfaces are found by type: a params field typed `InterfaceName` (or a list/optional of it, at any
depth of nested models) names an interface. Addresses are found by value: any other string (or
ipaddress object) in the params that is an IP address is an address the probe sends to or binds to,
whichever type or validator the probe declared it with (`IPAddress`, a local IPv4-only type, ...). The
runtime checks them against `[policy] allowed_interfaces` (names or shell-style patterns) and
`allowed_target_cidrs` before the probe runs, so no probe reimplements it. Probes that resolve host
names themselves call `ctx.extra["policy"].check_address()` on what they resolved. OVSDB remotes (a
field typed `OvsdbRemote`) are always checked, against `allowed_ovsdb` or, by default, Open vSwitch's own
socket: ovs-vsctl runs as root and must not be pointed at another database or a listening method.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import typing
from functools import cache

from pydantic import AfterValidator, BaseModel, StringConstraints

from steth.schemas import types

INTERFACE, ADDRESS, OVSDB = "interface", "address", "ovsdb"


def _kind_of_metadata(metadata: typing.Iterable[object]) -> str | None:
    for m in metadata:
        if isinstance(m, StringConstraints) and m.pattern == types.IFNAME_PATTERN:
            return INTERFACE
        if isinstance(m, AfterValidator) and m.func is types._ip:
            return ADDRESS
        if isinstance(m, AfterValidator) and m.func is types.ovsdb_remote:
            return OVSDB
    return None


def _walk(annotation: object) -> tuple[str | None, list[type[BaseModel]]]:
    """(the checked kind this annotation holds, nested models to look into) for one field's type."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        kind = _kind_of_metadata(metadata)
        if kind:
            return kind, []
        return _walk(base)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None, [annotation]
    kind, models = None, []
    for arg in typing.get_args(annotation):  # list[X], X | None, dict[str, X], tuple[...]
        k, m = _walk(arg)
        kind = kind or k
        models += m
    return kind, models


@cache
def plan(model: type[BaseModel]) -> tuple[tuple[str, str | None, tuple[type[BaseModel], ...]], ...]:
    """For each field worth a look: (name, kind or None, nested models). Cached per params class."""
    out = []
    for name, field in model.model_fields.items():
        kind = _kind_of_metadata(field.metadata)
        nested: list[type[BaseModel]] = []
        if kind is None:
            kind, nested = _walk(field.annotation)
        if kind or nested:
            out.append((name, kind, tuple(nested)))
    return tuple(out)


@cache
def names_ovsdb(model: type[BaseModel]) -> bool:
    """Whether these params (or models nested in them) can name an OVSDB remote: always checked."""
    return any(kind == OVSDB or any(names_ovsdb(m) for m in nested) for _, kind, nested in plan(model))


def _values(value: object) -> typing.Iterator[object]:
    if isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _values(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _values(v)
    elif value is not None:
        yield value


class Policy:
    def __init__(self, config) -> None:
        self.interfaces = list(config.allowed_interfaces) if config.allowed_interfaces is not None else None
        self.networks = (
            [ipaddress.ip_network(c, strict=False) for c in config.allowed_target_cidrs]
            if config.allowed_target_cidrs is not None
            else None
        )
        self.ovsdb = list(config.allowed_ovsdb) if config.allowed_ovsdb is not None else None

    @property
    def active(self) -> bool:
        return self.interfaces is not None or self.networks is not None

    def check_ovsdb(self, remote: str) -> str | None:
        from steth.agent.ovsdb import default_db  # read at check time: OVS_RUNDIR is the agent's environment

        allowed = self.ovsdb if self.ovsdb is not None else [default_db()]
        if any(fnmatch.fnmatchcase(remote, p) for p in allowed):
            return None
        return f"OVSDB {remote} is not in this agent's allowed_ovsdb (default: Open vSwitch's own socket)"

    def check_interface(self, name: str) -> str | None:
        if self.interfaces is None or any(fnmatch.fnmatchcase(name, p) for p in self.interfaces):
            return None
        return f"interface {name!r} is not in this agent's allowed_interfaces"

    def check_address(self, address: str) -> str | None:
        if self.networks is None:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return f"{address!r} is not an address"
        if any(ip.version == n.version and ip in n for n in self.networks):
            return None
        return f"address {address} is not in this agent's allowed_target_cidrs"

    def check(self, params: BaseModel) -> str | None:
        """The first reason to refuse these (validated) params, or None."""
        if not self.active and not names_ovsdb(type(params)):
            return None  # the common case: no allow-list configured, nothing always checked
        kinds = {name: kind for name, kind, _ in plan(type(params))}
        for name in type(params).model_fields:
            for value in _values(getattr(params, name, None)):
                if isinstance(value, BaseModel):
                    reason = self.check(value)
                elif kinds.get(name) == OVSDB and isinstance(value, str):
                    reason = self.check_ovsdb(value)
                elif not self.active:
                    reason = None
                elif kinds.get(name) == INTERFACE and isinstance(value, str):
                    reason = self.check_interface(value)
                elif isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                    reason = self.check_address(str(value))
                elif isinstance(value, str) and _is_address(value):
                    reason = self.check_address(value)
                else:
                    reason = None
                if reason:
                    return f"{name}: {reason}"
        return None


def _is_address(text: str) -> bool:
    if not text or len(text) > 45 or not (text[0].isdigit() or ":" in text):
        return False  # cheap pre-check: most strings are not addresses
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
