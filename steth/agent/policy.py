"""The agent's allow-lists and switches, enforced once for every probe by looking at the validated params.

Fields are found by type: a params field typed `InterfaceName`, `NetnsName`, `VlanId`, `HostPort` or
`OvsdbRemote` (or a list/optional of one, at any depth of nested models) holds that kind of value.
Addresses are also found by value: any other string (or ipaddress object) that is an IP address is an
address the probe sends to or binds to, and one with a prefix (192.0.2.10/24) is a network it adds to the
host, whichever type or validator the probe declared it with. The runtime checks them against `[policy]`
(allowed_interfaces, allowed_target_cidrs, allowed_vlans, allow_other_namespaces) and the probe's declared
effects against allow_capture / allow_traffic before the probe runs, so no probe reimplements it. A host
name is checked where it is resolved: tcp-check connects only to addresses the policy allows. OVSDB
remotes are always checked, against `allowed_ovsdb` or, by default, Open vSwitch's own socket: ovs-vsctl
runs as root and must not be pointed at another database or a listening method.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import typing
from functools import cache

from pydantic import AfterValidator, BaseModel, StringConstraints

from steth.schemas import types
from steth.schemas.probe import CAPTURE, TRAFFIC

INTERFACE, ADDRESS, OVSDB, VLAN, NETNS, HOSTPORT = "interface", "address", "ovsdb", "vlan", "netns", "host:port"


def _kind_of_metadata(metadata: typing.Iterable[object]) -> str | None:
    for m in metadata:
        if isinstance(m, StringConstraints) and m.pattern == types.IFNAME_PATTERN:
            return INTERFACE
        if isinstance(m, StringConstraints) and m.pattern == types.NETNS_PATTERN:
            return NETNS
        if m is types.VLAN:
            return VLAN
        if isinstance(m, AfterValidator) and m.func is types.host_port:
            return HOSTPORT
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
        from steth.agent.config import vlan_range

        self.interfaces = list(config.allowed_interfaces) if config.allowed_interfaces is not None else None
        self.networks = (
            [ipaddress.ip_network(c, strict=False) for c in config.allowed_target_cidrs]
            if config.allowed_target_cidrs is not None
            else None
        )
        self.ovsdb = list(config.allowed_ovsdb) if config.allowed_ovsdb is not None else None
        self.vlans = (
            frozenset(v for entry in config.allowed_vlans for v in vlan_range(entry))
            if config.allowed_vlans is not None
            else None
        )
        self.switches = {CAPTURE: config.allow_capture, TRAFFIC: config.allow_traffic}
        self.namespaces = config.allow_other_namespaces

    @property
    def active(self) -> bool:
        """Whether any value in params can be refused (OVSDB remotes are checked regardless)."""
        return self.interfaces is not None or self.networks is not None or self.vlans is not None or not self.namespaces

    def check_effects(self, spec) -> str | None:
        for effect in spec.effects:
            if not self.switches[effect]:
                return f"{spec.name} {EFFECT_WORDS[effect]}: allow_{effect} is off in this agent's policy"
        return None

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

    def check_network(self, cidr: str) -> str | None:
        """An address with its prefix or a network a probe adds to the host: all of it must be allowed."""
        if self.networks is None:
            return None
        net = ipaddress.ip_interface(cidr).network
        if any(net.version == n.version and net.subnet_of(n) for n in self.networks):
            return None
        return f"network {net} is not inside this agent's allowed_target_cidrs"

    def check_vlan(self, vlan: int) -> str | None:
        if self.vlans is None or vlan in self.vlans:
            return None
        return f"VLAN {vlan} is not in this agent's allowed_vlans"

    def check_netns(self, name: str) -> str | None:
        return None if self.namespaces else f"namespace {name}: allow_other_namespaces is off in this agent's policy"

    def check_host_port(self, target: str) -> str | None:
        """An IP given as HOST:PORT is checked here; a host name when it is resolved (tcp-check does it)."""
        host, _ = types.split_host_port(target)
        return self.check_address(host) if _is_address(host) else None

    def check(self, params: BaseModel, spec=None) -> str | None:
        """The first reason to refuse these (validated) params, or None; with the spec, its effects too."""
        if spec is not None and (reason := self.check_effects(spec)):
            return reason
        if not self.active and not names_ovsdb(type(params)):
            return None  # the common case: no allow-list configured, nothing always checked
        kinds = {name: kind for name, kind, _ in plan(type(params))}
        for name in type(params).model_fields:
            kind = kinds.get(name)
            for value in _values(getattr(params, name, None)):
                if isinstance(value, BaseModel):
                    reason = self.check(value)
                elif kind in self._BY_KIND and isinstance(value, (str, int)):
                    reason = self._BY_KIND[kind](self, value) if self.active or kind == OVSDB else None
                elif not self.active:
                    reason = None
                elif isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                    reason = self.check_address(str(value))
                elif isinstance(value, str) and _is_address(value):
                    reason = self.check_address(value)
                elif isinstance(value, str) and _is_network(value):
                    reason = self.check_network(value)
                else:
                    reason = None
                if reason:
                    return f"{name}: {reason}"
        return None

    _BY_KIND = {
        OVSDB: check_ovsdb,
        INTERFACE: check_interface,
        VLAN: check_vlan,
        NETNS: check_netns,
        HOSTPORT: check_host_port,
        ADDRESS: check_address,
    }


EFFECT_WORDS = {CAPTURE: "captures traffic", TRAFFIC: "generates traffic"}


def _is_network(text: str) -> bool:
    if "/" not in text or len(text) > 49 or not (text[0].isdigit() or ":" in text):
        return False
    try:
        ipaddress.ip_interface(text)
        return True
    except ValueError:
        return False


def _is_address(text: str) -> bool:
    if not text or len(text) > 45 or not (text[0].isdigit() or ":" in text):
        return False  # cheap pre-check: most strings are not addresses
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
