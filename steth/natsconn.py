"""Connecting to NATS the same way from the agent and the CLI: fail fast, clear errors."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from steth.errors import StethError

DEFAULT_URL = "nats://127.0.0.1:4222"

# The CLI fails fast when no server answers at first, but once connected it keeps trying to reconnect
# (0.5 s apart, per server) so that a restart or failover during a gather loses nothing.
CLI_RECONNECT_ATTEMPTS = 40


class NatsUnavailable(StethError):
    """No NATS server answered (exit 4)."""

    hint = "check -s/--server, NATS_URL, --context or STETH_NATS_URL"


class NatsConfig(BaseModel):
    """The `[nats]` table: the agent's config and the controller's (`steth`) config file, one model for both."""

    model_config = ConfigDict(extra="forbid")

    servers: list[str] = Field(default_factory=lambda: [DEFAULT_URL])
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None  # a .creds file: JWT and nkey seed
    nkey_seed: str | None = None  # a file holding an nkey seed
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    connect_timeout_s: float = Field(2.0, gt=0, le=60)

    def options(self, **extra: Any) -> NatsOptions:
        return NatsOptions(**self.model_dump(), **extra)


class NatsOptions(NatsConfig):
    """A connection's options: the `[nats]` table's fields and what the program adds to them."""

    name: str = "steth"
    inbox_prefix: str = "_INBOX"  # agents use their own (steth/natsauth.py), so permissions can pin it
    origin: str = ""  # where the servers came from (`NATS_URL`, `context prod`), named when none answers

    def tls_context(self) -> ssl.SSLContext | None:
        if not (self.tls_ca or self.tls_cert):
            if any(s.startswith("tls://") for s in self.servers):
                return ssl.create_default_context()
            return None
        ctx = ssl.create_default_context(cafile=self.tls_ca or None)
        if self.tls_cert:
            ctx.load_cert_chain(self.tls_cert, self.tls_key or None)
        return ctx


class _QuietSslEof:
    """asyncio logs "returning true from eof_received() has no effect when using ssl" at WARNING whenever a
    TLS connection to NATS closes (nats-py's protocol returns True): noise, not a problem."""

    def filter(self, record) -> bool:
        return "eof_received()" not in record.getMessage()


def _quiet_ssl_eof() -> None:
    import logging

    log = logging.getLogger("asyncio")
    if not any(isinstance(f, _QuietSslEof) for f in log.filters):
        log.addFilter(_QuietSslEof())


async def connect(opts: NatsOptions, *, persistent: bool = False, **callbacks: Any):
    """Connect, or raise NatsUnavailable within a few seconds.

    nats-py retries for minutes by default, and forever with reconnects off, so the first connection
    is bounded by an outer timeout. `persistent` (the agent) keeps reconnecting for good afterwards.
    """
    import nats

    _quiet_ssl_eof()
    kwargs: dict[str, Any] = dict(
        servers=opts.servers,
        name=opts.name,
        connect_timeout=opts.connect_timeout_s,
        reconnect_time_wait=0.5 if not persistent else 1.0,
        max_reconnect_attempts=-1 if persistent else 2,
        allow_reconnect=True,
        tls=opts.tls_context(),
        inbox_prefix=opts.inbox_prefix,
        **callbacks,
    )
    if opts.user:
        kwargs.update(user=opts.user, password=opts.password or "")
    if opts.token:
        kwargs["token"] = opts.token
    if opts.creds:
        kwargs["user_credentials"] = opts.creds
    if opts.nkey_seed:
        kwargs["nkeys_seed"] = opts.nkey_seed
    # A refused login or an untrusted certificate shows up only in error_cb (then a timeout or "no servers
    # available"): remember them to say so.
    refused: list[str] = []
    untrusted: list[str] = []
    user_error_cb = kwargs.get("error_cb", _quiet)

    async def error_cb(exc: Exception) -> None:
        import ssl

        if "authorization" in str(exc).lower() or "authentication" in str(exc).lower():
            refused.append(str(exc))
        elif isinstance(exc, ssl.SSLCertVerificationError):
            untrusted.append(exc.verify_message or str(exc))
        await user_error_cb(exc)

    kwargs["error_cb"] = error_cb
    budget = opts.connect_timeout_s * (len(opts.servers) * 2 + 1) + 1.0
    where = ", ".join(opts.servers) + (f" (from {opts.origin})" if opts.origin else "")
    try:
        nc = await asyncio.wait_for(nats.connect(**kwargs), timeout=budget)
        if not persistent:  # connected: now ride out a server restart or a cluster failover for a while
            nc.options["max_reconnect_attempts"] = CLI_RECONNECT_ATTEMPTS
        return nc
    except (TimeoutError, OSError) as exc:
        if refused:
            raise NatsUnavailable(
                f"NATS at {where} refused the login (authorization violation): check the user, password, creds or nkey"
            ) from exc
        if untrusted:
            raise NatsUnavailable(
                f"NATS at {where} answered with a certificate this client does not trust ({untrusted[-1]}): "
                "give the CA that signed it (--tlsca, STETH_NATS_TLS_CA or [nats] tls_ca)"
            ) from exc
        raise NatsUnavailable(f"no NATS server answered at {where}") from exc
    except Exception as exc:  # nats-py's own errors: auth, TLS, protocol
        if refused:
            raise NatsUnavailable(
                f"NATS at {where} refused the login (authorization violation): check the user, password, creds or nkey"
            ) from exc
        raise NatsUnavailable(f"cannot connect to NATS at {where}: {exc}") from exc


async def _quiet(exc: Exception) -> None:
    """nats-py prints every reconnect error otherwise; the caller reports what matters."""
