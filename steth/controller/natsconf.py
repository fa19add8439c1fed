"""Write a nats-server authorization block and one credentials file per identity.

The permissions themselves live in steth/natsauth.py. Passwords are random (24 bytes, URL-safe); the
server side holds them in plain text unless `bcrypt` is asked for, in which case only bcrypt hashes go
into the server's file and the clear passwords only into each identity's own environment file.
Existing environment files are reused, so adding a node does not rotate everybody's password.
With `nkeys`, each identity gets an nkey seed file (<user>.nk, mode 0600) instead of a password: the server's
file holds only public keys (U...), and the identity proves itself by signing the server's nonce.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from steth.natsauth import admin_permissions, agent_permissions, controller_permissions
from steth.schemas.subjects import NODE_NAME_RE, ROLE_RE

IDENTITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass
class Identity:
    kind: str  # "agent", "controller" or "admin"
    name: str  # node name for an agent, a free name for a controller
    roles: list[str] = field(default_factory=list)
    password: str = ""
    env_file: Path | None = None

    @property
    def user(self) -> str:
        return f"{self.kind}-{self.name}"

    def permissions(self) -> dict:
        if self.kind == "agent":
            return agent_permissions(self.name, self.roles)
        return admin_permissions() if self.kind == "admin" else controller_permissions()


def parse_agent(spec: str) -> Identity:
    """`NODE` or `NODE=ROLE[,ROLE]` -> an agent identity; ValueError with a one-line reason."""
    node, _, roles_text = spec.partition("=")
    roles = [r.strip() for r in roles_text.split(",") if r.strip()]
    if not NODE_NAME_RE.match(node):
        raise ValueError(f"invalid node name {node!r}: letters, digits, '.', '-' and '_'")
    for role in roles:
        if not ROLE_RE.match(role):
            raise ValueError(f"invalid role {role!r} for {node}: lower-case letters, digits, '-' and '_'")
    return Identity("agent", node, roles)


def parse_controller(name: str, kind: str = "controller") -> Identity:
    if not IDENTITY_RE.match(name):
        raise ValueError(f"invalid {kind} name {name!r}: letters, digits, '.', '-' and '_'")
    return Identity(kind, name)


def parse_admin(name: str) -> Identity:
    """An administrative identity: `steth setup` creates the presence bucket and the results stream with it."""
    return parse_controller(name, "admin")


def _read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key] = value
    return values


def _bcrypt(password: str) -> str:
    from steth.natsauth import bcrypt_hash

    return bcrypt_hash(password)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _nkey(seed_file: Path, rotate: bool) -> str:
    """The public user nkey (U...) of the seed in seed_file, written first (a new random seed) when missing."""
    import nkeys

    if rotate or not seed_file.exists():
        _write_private(seed_file, nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode() + "\n")
    return nkeys.from_seed(seed_file.read_text().strip().encode()).public_key.decode()


def write(
    identities: list[Identity], out_dir: Path, *, bcrypt: bool = False, rotate: bool = False, nkeys: bool = False
) -> Path:
    """Write out_dir/auth.conf and out_dir/<user>.env for each identity; returns the auth.conf path."""
    users = [i.user for i in identities]
    dupes = sorted({u for u in users if users.count(u) > 1})
    if dupes:
        raise ValueError(f"identity given twice: {', '.join(dupes)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)
    entries = []
    for ident in identities:
        ident.env_file = out_dir / f"{ident.user}.env"
        if nkeys:
            seed_file = (out_dir / f"{ident.user}.nk").resolve()
            public = _nkey(seed_file, rotate)
            _write_private(
                ident.env_file,
                f"# steth {ident.kind} identity {ident.name}: its NATS nkey seed (keep both files mode 0600)\n"
                f"STETH_NATS_NKEY_SEED={seed_file}\n",
            )
            entries.append({"nkey": public, "permissions": ident.permissions()})
            continue
        old = _read_env(ident.env_file) if ident.env_file.exists() and not rotate else {}
        ident.password = old.get("STETH_NATS_PASSWORD") or secrets.token_urlsafe(24)
        _write_private(
            ident.env_file,
            (
                f"# steth {ident.kind} identity {ident.name}: NATS credentials (keep mode 0600)\n"
                f"STETH_NATS_USER={ident.user}\nSTETH_NATS_PASSWORD={ident.password}\n"
            ),
        )
        entries.append(
            {
                "user": ident.user,
                "password": _bcrypt(ident.password) if bcrypt else ident.password,
                "permissions": ident.permissions(),
            }
        )
    # nats-server's config syntax is a superset of JSON; json.dumps quotes every string correctly.
    body = json.dumps({"users": entries}, indent=2)
    conf = out_dir / "auth.conf"
    _write_private(conf, f"# Written by `steth nats-config`: include it in nats-server.conf.\nauthorization: {body}\n")
    return conf
