"""ed25519 keys and request signatures on the controller side (agents verify: steth/agent/auth.py).

Key files: the private key is PKCS#8 PEM (mode 0600); the public key is one line
`steth-ed25519 BASE64 COMMENT`, which is also what an agent's `[security] trusted_keys` accepts.
The key id is the first 16 hex digits of the SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steth.controller.errors import UsageError

PUBLIC_KEY_TAG = "steth-ed25519"


def key_id(raw_public_key: bytes) -> str:
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


@dataclass
class Signer:
    private_key: Any  # Ed25519PrivateKey
    kid: str
    public_line: str

    def sign(self, request, subject: str) -> None:
        """Set request.kid and request.sig over signing_payload(request, subject)."""
        from steth.schemas.envelope import signing_payload

        request.kid = self.kid
        request.sig = base64.b64encode(self.private_key.sign(signing_payload(request, subject))).decode()


def _raw_public(private_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def create(path: Path, comment: str, force: bool = False) -> Signer:
    """Write PATH (private, 0600) and PATH.pub; refuse to overwrite unless force."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub_path = Path(f"{path}.pub")
    for existing in (path, pub_path):
        if existing.exists() and not force:
            raise UsageError(f"{existing} exists: pick another path or pass --force to replace it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    raw = _raw_public(key)
    line = f"{PUBLIC_KEY_TAG} {base64.b64encode(raw).decode()} {comment}".rstrip()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.chmod(path, 0o600)
        pub_path.write_text(line + "\n")
    except OSError as exc:
        from steth.controller.errors import StethError

        raise StethError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Signer(key, key_id(raw), line)


def load(path: str | Path) -> Signer:
    """The signer of a private key file; UsageError (exit 2) with one line when it cannot be used."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"signing key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"signing key {path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"signing key {path} is not an ed25519 key (make one with `steth keys create`)")
    raw = _raw_public(key)
    return Signer(key, key_id(raw), f"{PUBLIC_KEY_TAG} {base64.b64encode(raw).decode()}")


def configured(flag: str | None, config_path: str | None) -> Signer | None:
    """--signing-key / STETH_SIGNING_KEY, else `[security] signing_key` of the controller's config file."""
    if flag:
        return load(flag)
    path = _config_security(config_path).get("signing_key")
    return load(path) if path else None


def _config_security(explicit: str | None) -> dict:
    """The [security] table of the controller's config file (the same file settings.py reads [nats] from)."""
    import tomllib

    from steth.controller.settings import CONFIG_PATHS

    explicit = explicit or os.environ.get("STETH_CONFIG")
    for path in [Path(explicit)] if explicit else list(CONFIG_PATHS):
        if path.is_file():
            try:
                return tomllib.loads(path.read_text()).get("security", {})
            except tomllib.TOMLDecodeError:
                return {}  # settings.py reports the broken file when it reads [nats]
    return {}
