"""Verifying agents' signed replies: which node really answered (docs/security.md, "Signed replies").

An agent with `[security] signing_key` signs each reply over `reply_signing_payload(request id, subject, the
reply's bytes)` (steth/schemas/envelope.py) and sends the signature in NATS headers. Given the nodes' public
keys (`--agent-keys FILE|DIR`, `STETH_AGENT_KEYS`, or `[security] agent_keys` in the controller's config), the
gather marks each reply:

- `verified`: signed by the key of the node the reply names, for this request and a subject it was sent on;
- `unverified`: no key is known for that node (nothing to check against);
- `bad`: a key is known but the reply is unsigned, signed by another key, or the signature does not match.
  It is not taken as that node's answer: the node's row is `error` "reply signature does not verify" unless
  a verified reply from it arrives too.

Nothing is verified, and no header is read, when no key is configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any

from steth.controller.errors import UsageError
from steth.schemas.envelope import REPLY_KID_HEADER, REPLY_SIG_HEADER, REPLY_SUBJECT_HEADER, reply_signing_payload
from steth.schemas.subjects import NODE_NAME_RE

TAG = "steth-ed25519"
VERIFIED, UNVERIFIED, BAD = "verified", "unverified", "bad"


def _raw(text: str, where: str) -> bytes:
    parts = text.split()
    if parts and parts[0] == TAG:
        parts = parts[1:]
    try:
        raw = base64.b64decode(parts[0], validate=True) if parts else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"agent key {where}: not an ed25519 public key (`steth-ed25519 BASE64`)")
    return raw


def parse(entries: dict[str, str]) -> dict[str, bytes]:
    """{node: public key line} -> {node: raw key}; UsageError naming a bad entry."""
    keys = {}
    for node, line in entries.items():
        if not NODE_NAME_RE.match(node):
            raise UsageError(f"agent key for {node!r}: not a node name")
        keys[node] = _raw(str(line), f"for {node}")
    return keys


def load(path: str | Path) -> dict[str, bytes]:
    """A file of `NODE steth-ed25519 BASE64 [comment]` lines, or a folder of `NODE.pub` files (as
    `steth keys create --out DIR/NODE` writes them)."""
    path = Path(path).expanduser()
    entries: dict[str, str] = {}
    try:
        if path.is_dir():
            for pub in sorted(path.glob("*.pub")):
                lines = [ln for ln in pub.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
                if lines:
                    entries[pub.name[: -len(".pub")]] = lines[0]
        else:
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    node, _, rest = line.strip().partition(" ")
                    if not rest:
                        raise UsageError(f"agent keys {path}:{n}: `NODE steth-ed25519 BASE64` expected")
                    entries[node] = rest
    except OSError as exc:
        raise UsageError(f"agent keys {path}: {exc.strerror or exc}") from None
    return parse(entries)


def configured(flag: str | None, config_path: str | None) -> dict[str, bytes] | None:
    """--agent-keys / STETH_AGENT_KEYS, else `[security] agent_keys` (a path, or a table node = key line)."""
    if flag:
        return load(flag)
    from steth.controller.signing import _config_security

    value = _config_security(config_path).get("agent_keys")
    if isinstance(value, dict):
        return parse(value)
    if isinstance(value, str) and value:
        return load(value)
    return None


class ReplyVerifier:
    def __init__(self, keys: dict[str, bytes]) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        self.keys = {
            node: (hashlib.sha256(raw).hexdigest()[:16], Ed25519PublicKey.from_public_bytes(raw))
            for node, raw in keys.items()
        }

    def check(
        self, node: str, data: bytes, headers: dict[str, str] | None, request_id: str, subjects: set[str]
    ) -> tuple[str, str]:
        """(verdict, why) for one reply's bytes and headers."""
        from cryptography.exceptions import InvalidSignature

        known = self.keys.get(node)
        if known is None:
            return UNVERIFIED, ""
        kid, public = known
        headers = headers or {}
        sig, subject = headers.get(REPLY_SIG_HEADER), headers.get(REPLY_SUBJECT_HEADER, "")
        if not sig:
            return BAD, "reply is not signed, but this node's key is known"
        if headers.get(REPLY_KID_HEADER) != kid:
            return BAD, f"reply signed by key {headers.get(REPLY_KID_HEADER, '')[:16]!r}, not this node's"
        if subject not in subjects:
            return BAD, "reply answers a subject this request was not sent on"
        try:
            public.verify(base64.b64decode(sig, validate=True), reply_signing_payload(request_id, subject, data))
        except (InvalidSignature, binascii.Error, ValueError):
            return BAD, "signature mismatch"
        return VERIFIED, ""


def from_environment(flag: str | None, config_path: str | None) -> ReplyVerifier | None:
    keys = configured(flag or os.environ.get("STETH_AGENT_KEYS"), config_path)
    return ReplyVerifier(keys) if keys else None


def headers_of(msg: Any) -> dict[str, str] | None:
    return getattr(msg, "headers", None)
