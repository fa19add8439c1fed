"""Verifying signed requests: trusted ed25519 keys, expiry and a bounded replay cache.

The controller signs `signing_payload(request, subject)` (steth/schemas/envelope.py) with its ed25519
key; this module checks the signature against the keys in the agent's `[security] trusted_keys`, refuses
requests whose deadline has passed or lies too far ahead, and refuses a (key, id, subject) seen before.
Seen entries are kept until their deadline, which is at most the replay window ahead (`replay_window_s`,
never longer than the longest probe's own deadline): the cache is bounded by that window and by
`replay_cache_size` (when full, new signed requests are refused as busy rather than forgetting an entry and
allowing its replay). The send time is signed too: a request sent before the agent started is refused, so a
restart, which empties the cache, does not open a replay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import time
from dataclasses import dataclass
from pathlib import Path

from steth.agent.errors import Busy, RequestRefused

PUBLIC_KEY_TAG = "steth-ed25519"


def key_id(raw_public_key: bytes) -> str:
    """A short, stable name of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def parse_public_key(text: str) -> bytes:
    """`steth-ed25519 BASE64 [comment]` or a bare BASE64 -> the 32 raw key bytes; ValueError otherwise."""
    parts = text.strip().split()
    if parts and parts[0] == PUBLIC_KEY_TAG:
        parts = parts[1:]
    if not parts:
        raise ValueError("empty public key")
    try:
        raw = base64.b64decode(parts[0], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"public key {parts[0][:20]!r} is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"public key {parts[0][:20]!r} is {len(raw)} bytes, an ed25519 key has 32")
    return raw


def load_trusted_keys(entries: list[str]) -> dict[str, bytes]:
    """Config entries (keys, or paths of files of key lines) -> {key id: raw public key}."""
    keys: dict[str, bytes] = {}
    for entry in entries:
        lines = [entry]
        # A base64 key may start with "/" (one key in 64 does): an entry that is a key is never read as a path.
        if _is_path(entry):
            path = Path(entry).expanduser()
            try:
                lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            except OSError as exc:
                raise ValueError(f"trusted key file {entry}: {exc.strerror or exc}") from None
            if not lines:
                raise ValueError(f"trusted key file {entry} holds no key")
        for line in lines:
            try:
                raw = parse_public_key(line)
            except ValueError as exc:
                raise ValueError(f"trusted_keys: {exc}") from None
            keys[key_id(raw)] = raw
    return keys


def _is_path(entry: str) -> bool:
    if not (entry.startswith(("/", "./", "~")) or entry.endswith(".pub")):
        return False
    try:
        parse_public_key(entry)
    except ValueError:
        return True
    return False


class ReplySigner:
    """The agent's own ed25519 key (`[security] signing_key`, a `steth keys create` file): every reply carries
    its signature in NATS headers, so a controller that knows this node's public key can tell it answered."""

    def __init__(self, path: str) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(Path(path).expanduser().read_bytes(), password=None)
        except OSError as exc:
            raise ValueError(f"signing_key {path}: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"signing_key {path} is not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"signing_key {path} is not an ed25519 key (make one with `steth keys create`)")
        from cryptography.hazmat.primitives import serialization as ser

        raw = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        self.key, self.kid = key, key_id(raw)

    def headers(self, request_id: str, subject: str, data: bytes) -> dict[str, str]:
        from steth.schemas.envelope import (
            REPLY_KID_HEADER,
            REPLY_SIG_HEADER,
            REPLY_SUBJECT_HEADER,
            reply_signing_payload,
        )

        sig = self.key.sign(reply_signing_payload(request_id, subject, data))
        return {
            REPLY_KID_HEADER: self.kid,
            REPLY_SUBJECT_HEADER: subject,
            REPLY_SIG_HEADER: base64.b64encode(sig).decode(),
        }


@dataclass
class Verdict:
    signed: bool
    kid: str = ""


class Verifier:
    """One per agent runtime. `check` raises RequestRefused (`invalid`) or Busy (`aborted`: the
    replay cache is full), or returns who signed."""

    def __init__(self, security) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from steth.schemas.probes import registry

        self.require_signed = security.require_signed
        # No signed request may outlive the longest probe: its id need not be remembered for longer.
        longest = max(spec.max_timeout_s for spec in registry().values())
        self.window_s = min(security.replay_window_s or longest, longest)
        # Ids seen before a restart are forgotten, so what was sent before this agent started is refused.
        self.started = time.time()
        self.skew_s = security.clock_skew_s
        self.cache_size = security.replay_cache_size
        self.keys = {
            kid: Ed25519PublicKey.from_public_bytes(raw)
            for kid, raw in load_trusted_keys(security.trusted_keys).items()
        }
        self._seen: set[tuple[str, str, str]] = set()
        self._expiry: list[tuple[float, tuple[str, str, str]]] = []  # heap of (deadline, key)

    @property
    def active(self) -> bool:
        return bool(self.keys) or self.require_signed

    def check(self, request, subject: str, now: float | None = None) -> Verdict:
        from cryptography.exceptions import InvalidSignature

        from steth.schemas.envelope import signing_payload

        if not request.sig:
            if self.require_signed:
                raise RequestRefused("unsigned request: this agent requires signed requests")
            return Verdict(False)
        if not self.keys:
            return Verdict(False)  # nothing to verify against: treated as unsigned, which is allowed here
        key = self.keys.get(request.kid)
        if key is None:
            raise RequestRefused(f"signed by an untrusted key {request.kid[:16]!r}")
        try:
            signature = base64.b64decode(request.sig, validate=True)
            key.verify(signature, signing_payload(request, subject))
        except (InvalidSignature, binascii.Error, ValueError, TypeError):
            raise RequestRefused("bad signature") from None
        now = time.time() if now is None else now
        if request.sent < self.started - self.skew_s:
            raise RequestRefused(f"sent {self.started - request.sent:.1f} s before this agent started (a replay?)")
        if request.sent > now + self.skew_s:
            raise RequestRefused(f"sent {request.sent - now:.1f} s in the future (clocks apart?)")
        if request.deadline < now - self.skew_s:
            raise RequestRefused(f"expired: the deadline passed {now - request.deadline:.1f} s ago")
        if request.deadline > now + self.window_s + self.skew_s:
            raise RequestRefused(
                f"deadline {request.deadline - now:.0f} s ahead is beyond the replay window ({self.window_s:g} s)"
            )
        self._forget_expired(now)
        seen = (request.kid, request.id, subject)
        if seen in self._seen:
            raise RequestRefused(f"replayed request {request.id!r}")
        if len(self._seen) >= self.cache_size:
            raise Busy("busy: replay cache full")
        self._seen.add(seen)
        heapq.heappush(self._expiry, (request.deadline + self.skew_s, seen))
        return Verdict(True, request.kid)

    def _forget_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            _, seen = heapq.heappop(self._expiry)
            self._seen.discard(seen)

    def __len__(self) -> int:
        return len(self._seen)
