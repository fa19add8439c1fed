"""Minting NATS JWTs for tests (operator -> account -> user), so that `.creds` files can be tested without
the `nsc` tool. The format is nats-io/jwt v2's: base64url(header).base64url(claims).base64url(ed25519
signature of the first two parts by the issuer's nkey); claims carry iss, sub, iat, jti and a `nats` object
whose `type` is operator, account or user (jwt/v2 operator_claims.go, account_claims.go, user_claims.go).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import nkeys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keypair(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def encode(claims: dict, issuer: nkeys.KeyPair) -> str:
    claims = {"iat": int(time.time()), "iss": issuer.public_key.decode(), **claims}
    # jti: a hash of the claims without it (jwt/v2 uses SHA-512/256 in base32; the server does not re-check it)
    claims["jti"] = base64.b32encode(hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()).decode()
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(issuer.sign(f'{head}.{body}'.encode()))}"


UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1}
JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


class Operator:
    """One operator, a system account and one account with JetStream, as `nsc` would set them up."""

    def __init__(self) -> None:
        self.key = keypair(nkeys.PREFIX_BYTE_OPERATOR)
        self.jwt = encode(
            {"sub": self.key.public_key.decode(), "name": "steth-test", "nats": {"type": "operator", "version": 2}},
            self.key,
        )
        self.system, self.system_jwt = self._account("SYS", jetstream=False)
        self.account, self.account_jwt = self._account("STETH", jetstream=True)

    def _account(self, name: str, jetstream: bool) -> tuple[nkeys.KeyPair, str]:
        key = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        limits = {**UNLIMITED, "leaf": -1, **(JETSTREAM if jetstream else {})}
        nats = {"type": "account", "version": 2, "limits": limits, "default_permissions": {"pub": {}, "sub": {}}}
        return key, encode({"sub": key.public_key.decode(), "name": name, "nats": nats}, self.key)

    def server_config(self) -> str:
        """The lines a nats-server.conf needs to trust this operator (the accounts preloaded in memory)."""
        return "\n".join(
            [
                f"operator: {self.jwt}",
                f"system_account: {self.system.public_key.decode()}",
                "resolver: MEMORY",
                "resolver_preload: {",
                f"  {self.system.public_key.decode()}: {self.system_jwt}",
                f"  {self.account.public_key.decode()}: {self.account_jwt}",
                "}",
            ]
        )

    def user_creds(self, path: Path, name: str, permissions: dict | None = None) -> Path:
        """A .creds file for a user of the STETH account with steth's permissions (natsauth's dict shape)."""
        user = keypair(nkeys.PREFIX_BYTE_USER)
        nats = {"type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1}
        if permissions:
            nats["pub"] = permissions.get("publish", {})
            nats["sub"] = permissions.get("subscribe", {})
            if "allow_responses" in permissions:  # jwt: resp {max, ttl in nanoseconds}
                nats["resp"] = {"max": permissions["allow_responses"]["max"], "ttl": 60_000_000_000}
        jwt = encode({"sub": user.public_key.decode(), "name": name, "nats": nats}, self.account)
        path.write_text(
            f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n------END USER NKEY SEED------\n"
        )
        path.chmod(0o600)
        return path
