"""Agent configuration: a TOML file, then STETH_* environment variables on top."""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from steth.agent.schedule_config import MeshConfig, ResultsConfig, ScheduleConfig, host_port, unique_names
from steth.natsconn import NatsConfig  # the [nats] table, shared with the controller
from steth.schemas.subjects import NODE_NAME_RE, ROLE_RE


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def vlan_range(entry: str) -> range:
    """'100' or '100-199' to the VLAN ids it names (1..4094)."""
    low, _, high = str(entry).strip().partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise ValueError("a VLAN id or a range like 100-199")
    first, last = int(low), int(high or low)
    if not 1 <= first <= last <= 4094:
        raise ValueError("VLAN ids are 1..4094, the range low to high")
    return range(first, last + 1)


class PolicyConfig(_Section):
    allow_mutating: bool = False
    # Enforced by the runtime on every params field typed as an interface name or an IP address
    # (steth/agent/policy.py). None: anything the schema accepts.
    allowed_interfaces: list[str] | None = None  # names or shell-style patterns: ["eth*", "br-ex"]
    allowed_target_cidrs: list[str] | None = None  # ["10.0.0.0/8", "fd00::/8"]
    # OVSDB remotes a request may name (`db`), exact or shell-style patterns. None: only Open vSwitch's own
    # socket ($OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock): a root agent reads no other database.
    allowed_ovsdb: list[str] | None = None
    allowed_vlans: list[str] | None = None  # VLAN ids or ranges a request may tag or create: ["100-199", "300"]
    # Switches for what a probe does beyond reading the host (docs/security.md says why each is on by default:
    # the diagnosis recipes need them; turn one off on a node that must never do it).
    allow_capture: bool = True  # capture, capture-fetch, dhcp-watch: read other traffic on an interface
    allow_traffic: bool = True  # iperf-client/-server, send, vlan-check: load or crafted frames
    allow_other_namespaces: bool = True  # any probe's --netns: run inside a tenant's qdhcp-/qrouter- namespace

    @field_validator("allowed_target_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str] | None) -> list[str] | None:
        import ipaddress

        for cidr in v or []:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"allowed_target_cidrs: {cidr!r} is not a network (like 10.0.0.0/8)") from None
        return v

    @field_validator("allowed_vlans")
    @classmethod
    def _vlans(cls, v: list[str] | None) -> list[str] | None:
        for entry in v or []:
            try:
                vlan_range(entry)
            except ValueError as exc:
                raise ValueError(f"allowed_vlans: {entry!r}: {exc}") from None
        return v

    @field_validator("allowed_ovsdb")
    @classmethod
    def _ovsdb(cls, v: list[str] | None) -> list[str] | None:
        from steth.schemas.types import ovsdb_remote

        for remote in v or []:
            try:
                ovsdb_remote(remote.replace("*", "x").replace("?", "x"))  # a pattern must be a remote once filled
            except ValueError as exc:
                raise ValueError(f"allowed_ovsdb: {remote!r}: {exc}") from None
        return v


class SecurityConfig(_Section):
    """Signed requests (docs/security.md): who may ask, and for how long a signed request is valid."""

    # Public keys (base64, or the `steth-ed25519 KEY comment` line `steth keys create` prints) or paths of
    # .pub files holding such lines.
    trusted_keys: list[str] = Field(default_factory=list)
    require_signed: bool = False  # True: unsigned requests answer `invalid`
    # A signed request whose deadline is further ahead than this is refused; seen request ids are kept
    # until their deadline passes, so this also bounds the replay cache's memory.
    # None: the longest probe's own deadline (600 s), which is also the most a value here can give.
    replay_window_s: float | None = Field(None, ge=1, le=86400)
    clock_skew_s: float = Field(5.0, ge=0, le=600)  # tolerated difference between controller and agent clocks
    replay_cache_size: int = Field(100_000, ge=100, le=10_000_000)
    # This agent's own ed25519 private key (`steth keys create`): replies are signed with it, and a controller
    # given the public half (`--agent-keys`) verifies them. None: replies are not signed.
    signing_key: str | None = None

    @model_validator(mode="after")
    def _signed_needs_keys(self) -> SecurityConfig:
        if self.require_signed and not self.trusted_keys:
            raise ValueError("require_signed = true needs trusted_keys: no signature could be verified")
        return self

    @field_validator("signing_key")
    @classmethod
    def _own_key(cls, v: str | None) -> str | None:
        if v:
            from steth.agent.auth import ReplySigner

            ReplySigner(v)  # raises ValueError naming the file
        return v or None

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        from steth.agent.auth import load_trusted_keys

        load_trusted_keys(v)  # raises ValueError naming the bad entry
        return v


class MetricsConfig(_Section):
    listen: str | None = None  # "10.99.0.11:9273"; None: no metrics endpoint
    advertise: str | None = None  # HOST:PORT Prometheus should scrape, when listen is ":9273" or behind NAT

    @field_validator("listen", "advertise")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is not None:
            host_port(v)
        return v


class OvnConfig(_Section):
    """[ovn]: where this node reaches OVN's databases, as Neutron's ml2_conf.ini [ovn] ovn_nb_connection /
    ovn_sb_connection name them. Only these remotes are ever read by the OVN probes (a request names none)."""

    nb_connection: str | None = None  # "tcp:192.0.2.5:6641" or "unix:/var/run/ovn/ovnnb_db.sock"
    sb_connection: str | None = None  # "tcp:192.0.2.5:6642"

    @field_validator("nb_connection", "sb_connection")
    @classmethod
    def _remote(cls, v: str | None) -> str | None:
        from steth.schemas.types import ovsdb_remote

        return ovsdb_remote(v) if v else None  # one method, unix:/path or tcp:IP:PORT, rebuilt from its parts


class AgentConfig(_Section):
    # The agent refuses to start without TLS, without NATS credentials or while it accepts unsigned requests
    # (security_gaps below), unless this says so in so many words. Loopback is no exception.
    insecure: bool = False
    node: str = Field(default_factory=socket.gethostname)
    roles: list[str] = Field(default_factory=list)
    data_plane: str | None = None  # CIDR or interface name; None: the default route's interface
    heartbeat_s: float = Field(5.0, ge=0.2, le=300)
    presence_ttl_s: float = Field(15.0, ge=1, le=3600)
    # Of the presence bucket, when an agent creates it; None: 3 on a cluster of 3 or more servers, else 1.
    presence_replicas: int | None = Field(None, ge=1, le=5)
    log_level: str = "info"
    # Requests of one probe that may run at once; "default" applies to probes not listed.
    concurrency: dict[str, int] = Field(default_factory=lambda: {"default": 4})
    # Requests of one probe waiting for a slot; beyond this they answer `aborted` (busy) at once instead of
    # holding their params in memory (200 waiting 1 MB requests held 388 MiB).
    max_waiting: int = Field(32, ge=0, le=10_000)
    nats: NatsConfig = Field(default_factory=NatsConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    schedule: list[ScheduleConfig] = Field(default_factory=list)  # [[schedule]] tables: probes on a timer
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    results: ResultsConfig = Field(default_factory=ResultsConfig)
    ovn: OvnConfig = Field(default_factory=OvnConfig)

    @field_validator("node")
    @classmethod
    def _node_name(cls, v: str) -> str:
        if not NODE_NAME_RE.match(v):
            raise ValueError(f"invalid node name {v!r}: use letters, digits, '.', '-' and '_'")
        return v

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        if v.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError(f"invalid log level {v!r}: use debug, info, warning, error or critical")
        return v.lower()

    @field_validator("roles")
    @classmethod
    def _role_names(cls, v: list[str]) -> list[str]:
        for role in v:
            if not ROLE_RE.match(role):
                raise ValueError(f"invalid role {role!r}: use lower-case letters, digits, '-' and '_'")
        return v

    @field_validator("concurrency")
    @classmethod
    def _limits(cls, v: dict[str, int]) -> dict[str, int]:
        for probe, n in v.items():
            if not 1 <= n <= 256:
                raise ValueError(f"concurrency for {probe!r} must be 1..256, not {n}")
        return {"default": 4, **v}

    @model_validator(mode="after")
    def _ttl_spans_heartbeats(self) -> AgentConfig:
        # An entry that expires before the next heartbeat rewrites it makes the agent flap in presence.
        if self.presence_ttl_s < 2 * self.heartbeat_s:
            raise ValueError(
                f"presence_ttl_s ({self.presence_ttl_s:g}) must be at least twice heartbeat_s ({self.heartbeat_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _schedule_names(self) -> AgentConfig:
        unique_names(self.schedule, self.mesh)
        return self

    def concurrency_for(self, probe: str) -> int:
        return self.concurrency.get(probe, self.concurrency["default"])


def security_gaps(config: AgentConfig) -> list[str]:
    """What makes this agent steerable by someone else, one line each with its fix; [] when secure.

    An agent runs as root: it needs TLS to its NATS servers (nobody on the path reads or changes requests),
    its own NATS identity (user/password, an nkey seed or a .creds file: the broker's permissions then bind
    what it may do), and signed requests (`require_signed` with `trusted_keys`: a leaked controller login or
    another application on the bus cannot ask). `insecure = true` starts it anyway, with a warning.
    """
    nats, sec = config.nats, config.security
    gaps = []
    tls = bool(nats.tls_ca or nats.tls_cert) or any(s.startswith("tls://") for s in nats.servers)
    if not tls:
        gaps.append(
            'no TLS to NATS: set [nats] tls_ca = "/etc/steth/ca.pem" (the CA of the servers\' certificates) or use '
            "tls:// server URLs (deploy/nats/nats-server.conf turns TLS on at the server)"
        )
    if not (nats.creds or nats.nkey_seed or (nats.user and nats.password)):
        gaps.append(
            'no NATS credentials: set [nats] nkey_seed = "/etc/steth/agent.nk" (or creds, or user and password; '
            "STETH_NATS_NKEY_SEED in /etc/steth/steth-agent.env): `steth nats-config --nkeys` makes one per node"
            + (" (a shared token is not an identity)" if nats.token else "")
        )
    if not (sec.require_signed and sec.trusted_keys):
        gaps.append(
            "unsigned requests are accepted: set [security] require_signed = true and trusted_keys = "
            '["/etc/steth/ops.pub"] (`steth keys create` on the operators\' host writes it)'
        )
    return gaps


def _coerce(text: str, annotation: Any) -> Any:
    """An environment string as the type the field wants: lists are comma-separated."""
    kind = str(annotation)
    if kind.startswith("list"):
        return [item.strip() for item in text.split(",") if item.strip()]
    if "bool" in kind:  # pydantic parses true/false/yes/no/on/off/1/0; anything else is an error, not False
        return text.strip()
    return text


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """STETH_NODE, STETH_ROLES=a,b, STETH_NATS_SERVERS=u1,u2, STETH_POLICY_ALLOW_MUTATING=true, ..."""
    environ = dict(os.environ if environ is None else environ)
    out: dict[str, Any] = {}
    for name, field in AgentConfig.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):  # a [section] (schedule_config's too)
            for sub_name, sub_field in sub.model_fields.items():
                key = f"STETH_{name}_{sub_name}".upper()
                if key in environ:
                    out.setdefault(name, {})[sub_name] = _coerce(environ[key], sub_field.annotation)
        else:
            key = f"STETH_{name}".upper()
            if key in environ and name not in ("concurrency", "schedule"):
                out[name] = _coerce(environ[key], field.annotation)
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def load(path: str | Path | None, environ: dict[str, str] | None = None) -> AgentConfig:
    """Read the file (if any), apply the environment, validate. Raises ValueError with a clear message."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    return AgentConfig.model_validate(_merge(data, env_overrides(environ)))
