"""The agent config's sections for continuous probing: [[schedule]], [mesh] and [results].

Checked when the config loads (so `steth-agent check-config` catches a bad schedule): the probe exists and
does not change the host, its params validate, targets are addresses or `node:NAME`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from steth.schemas.subjects import NODE_NAME_RE, ROLE_RE

SCHEDULE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_SCHEDULES = 64
# Params that take the targets of a schedule, in the order they are looked for.
TARGET_PARAMS = ("targets", "target", "server")
PLACEHOLDER = "127.0.0.1"  # stands in for node:NAME targets when params are checked at load time


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def host_port(text: str) -> tuple[str, int]:
    """'10.0.0.5:9273', '[fd00::5]:9273' or ':9273' (every address) to (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$", host):
                raise ValueError(f"{text!r}: {host!r} is neither an address nor a host name") from None
    return host, int(port)


def check_target(target: str) -> str:
    if target.startswith("node:"):
        if not NODE_NAME_RE.match(target[5:]):
            raise ValueError(f"target {target!r}: invalid node name")
        return target
    try:
        return str(ipaddress.ip_address(target))
    except ValueError:
        raise ValueError(f"target {target!r} is neither an IP address nor node:NAME") from None


class ScheduleConfig(_Section):
    """One probe run on a timer. Results go to metrics and to the results stream."""

    probe: str
    name: str | None = None  # label in metrics and results; default: the probe name
    params: dict[str, Any] = Field(default_factory=dict)
    targets: list[str] = Field(default_factory=list, max_length=256)  # addresses or node:NAME
    target_param: str | None = None  # the param the targets fill; default: targets, target or server
    plane: str | None = None  # where node:NAME resolves: CIDR or interface; default: the peer's data plane
    interval_s: float = Field(60.0, ge=1, le=86400)
    jitter_s: float = Field(0.0, ge=0, le=3600)  # each wait is interval_s +- up to jitter_s
    timeout_s: float | None = Field(None, gt=0, le=3600)  # default: the probe's own timeout for these params
    publish: bool = True  # also publish each result to the results stream

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        return [check_target(t) for t in v]

    @model_validator(mode="after")
    def _probe_and_params(self) -> ScheduleConfig:
        from steth.schemas.probes import registry
        from steth.schemas.types import describe_validation_error

        spec = registry().get(self.probe)
        if spec is None:
            raise ValueError(f"unknown probe {self.probe!r} (known: {', '.join(registry())})")
        if spec.mutating:
            raise ValueError(f"probe {self.probe!r} changes the host: it cannot be scheduled")
        self.name = self.name or self.probe
        if not SCHEDULE_NAME_RE.match(self.name):
            raise ValueError(f"schedule name {self.name!r}: lower-case letters, digits, '-' and '_'")
        fields = spec.params.model_fields
        if self.target_param is None and self.targets:
            self.target_param = next((p for p in TARGET_PARAMS if p in fields), None)
            if self.target_param is None:
                raise ValueError(f"probe {self.probe!r} has no targets/target param: set target_param")
        if self.target_param is not None:
            if self.target_param not in fields:
                raise ValueError(f"probe {self.probe!r} has no param {self.target_param!r}")
            if self.target_param in self.params:
                raise ValueError(f"give the targets either in `targets` or in params.{self.target_param}, not both")
            if not self.targets:
                raise ValueError(f"target_param {self.target_param!r} is set but `targets` is empty")
        try:
            for sample in self.param_sets(lambda t: PLACEHOLDER if t.startswith("node:") else t):
                spec.params.model_validate(sample)
        except ValidationError as exc:
            raise ValueError(f"schedule {self.name!r}: bad params: {describe_validation_error(exc)}") from None
        return self

    @property
    def per_target(self) -> bool:
        """A probe with one target param runs once per target; a list param takes them all in one run."""
        return bool(self.targets) and not self._is_list_param()

    def _is_list_param(self) -> bool:
        from steth.schemas.probes import registry

        field = registry()[self.probe].params.model_fields[self.target_param]
        return "list" in str(field.annotation)

    def param_sets(self, resolve) -> list[dict[str, Any]]:
        """The params of each run, with targets resolved by `resolve` (None drops a target)."""
        if not self.target_param:
            return [dict(self.params)]
        resolved = [a for a in (resolve(t) for t in self.targets) if a]
        if self._is_list_param():
            return [{**self.params, self.target_param: resolved}] if resolved else []
        return [{**self.params, self.target_param: a} for a in resolved]


class MeshConfig(_Section):
    """Ping up to K peers from presence, picked by rendezvous hashing: a bounded, stable mesh."""

    enabled: bool = False
    k: int = Field(8, ge=1, le=64)
    plane: str | None = None  # CIDR or interface of the peers' addresses; default: each peer's data plane
    roles: list[str] = Field(default_factory=list)  # only peers with one of these roles; empty: every peer
    interval_s: float = Field(30.0, ge=1, le=3600)
    jitter_s: float = Field(2.0, ge=0, le=600)
    count: int = Field(5, ge=1, le=100)  # echo requests per peer and run
    packet_interval_s: float = Field(0.2, ge=0.01, le=10)
    max_loss: float = Field(0.0, ge=0, le=1)  # loss above this makes the run `failed`

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        for role in v:
            if not ROLE_RE.match(role):
                raise ValueError(f"invalid role {role!r}")
        return v


class ResultsConfig(_Section):
    """Where scheduled results go: a JetStream stream with bounded retention (created if missing)."""

    publish: bool = True
    stream: str = Field("STETH_RESULTS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    max_age_s: float = Field(86400.0, ge=60, le=90 * 86400)
    max_msgs: int = Field(1_000_000, ge=100, le=100_000_000)
    max_bytes: int = Field(1 << 30, ge=1 << 20, le=1 << 40)
    replicas: int = Field(1, ge=1, le=5)


def unique_names(schedules: list[ScheduleConfig], mesh: MeshConfig) -> None:
    seen: set[str] = {"mesh"} if mesh.enabled else set()
    if len(schedules) > MAX_SCHEDULES:
        raise ValueError(f"at most {MAX_SCHEDULES} [[schedule]] entries, not {len(schedules)}")
    for entry in schedules:
        if entry.name in seen:
            raise ValueError(f"two schedules are named {entry.name!r} (the mesh is named 'mesh'): set `name`")
        seen.add(entry.name)
