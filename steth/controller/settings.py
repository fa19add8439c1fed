"""Where the CLI finds NATS, as the `nats` CLI does, next to steth's own settings. For each setting, first wins:

1. a flag: `-s/--server`, `--user`, `--password`, `--token`, `--creds`, `--nkey`, `--tlscert`, `--tlskey`, `--tlsca`;
2. steth's variables: `STETH_NATS_URL` (or `STETH_NATS_SERVERS`), `STETH_NATS_USER`, ... `STETH_NATS_TLS_CA`;
3. the `nats` CLI's variables: `NATS_URL`, `NATS_USER`, `NATS_PASSWORD`, `NATS_CREDS`, `NATS_NKEY`, `NATS_CERT`,
   `NATS_KEY`, `NATS_CA`;
4. the context named by `--context NAME` or `NATS_CONTEXT` (a `nats` CLI context file, or a path to one);
5. the `[nats]` table of steth's config file (`--config`, `STETH_CONFIG`, ~/.config/steth/steth.toml,
   /etc/steth/steth.toml), validated by the agent's own model (steth.natsconn.NatsConfig);
6. the `nats` CLI's selected context (`nats context select`: ~/.config/nats/context.txt);
7. a local lab that is up: its servers and, on a secure lab, its CA and controller nkey seed (only when no
   earlier source named the servers: another server's settings never mix with the lab's);
8. nats://127.0.0.1:4222.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_PATHS = (Path("~/.config/steth/steth.toml").expanduser(), Path("/etc/steth/steth.toml"))
DEFAULT_URL = "nats://127.0.0.1:4222"
FIELDS = ("servers", "user", "password", "token", "creds", "nkey_seed", "tls_ca", "tls_cert", "tls_key")
PATH_FIELDS = ("creds", "nkey_seed", "tls_ca", "tls_cert", "tls_key")

STETH_ENV = {
    "servers": ("STETH_NATS_URL", "STETH_NATS_SERVERS"),
    "user": ("STETH_NATS_USER",),
    "password": ("STETH_NATS_PASSWORD",),
    "token": ("STETH_NATS_TOKEN",),
    "creds": ("STETH_NATS_CREDS",),
    "nkey_seed": ("STETH_NATS_NKEY_SEED", "STETH_NATS_NKEY"),
    "tls_ca": ("STETH_NATS_TLS_CA",),
    "tls_cert": ("STETH_NATS_TLS_CERT",),
    "tls_key": ("STETH_NATS_TLS_KEY",),
}
NATS_ENV = {
    "servers": ("NATS_URL",),
    "user": ("NATS_USER",),
    "password": ("NATS_PASSWORD",),
    "creds": ("NATS_CREDS",),
    "nkey_seed": ("NATS_NKEY",),
    "tls_cert": ("NATS_CERT",),
    "tls_key": ("NATS_KEY",),
    "tls_ca": ("NATS_CA",),
}
# A `nats` CLI context file's keys (nats context add/edit write them; ADR-21 documents the format).
CONTEXT_KEYS = {
    "servers": "url",
    "user": "user",
    "password": "password",
    "token": "token",
    "creds": "creds",
    "nkey_seed": "nkey",
    "tls_cert": "cert",
    "tls_key": "key",
    "tls_ca": "ca",
}


def _usage(message: str) -> Exception:
    from steth.controller.errors import UsageError

    return UsageError(message)


def split_urls(text: str | list[str]) -> list[str]:
    items = text if isinstance(text, list) else text.split(",")
    return [u.strip() for u in items if u and u.strip()]


# --- steth's config file ---------------------------------------------------------------------------------


def config_file_path(explicit: str | None = None) -> Path | None:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise _usage(f"config file {path} does not exist")
        return path
    return next((p for p in CONFIG_PATHS if p.is_file()), None)


def config_file_nats(explicit: str | None = None) -> dict[str, Any]:
    """The [nats] table of the controller's config file, validated; only the keys it sets."""
    from pydantic import ValidationError

    from steth.natsconn import NatsConfig
    from steth.schemas.types import describe_validation_error

    path = config_file_path(explicit)
    if path is None:
        return {}
    try:
        table = tomllib.loads(path.read_text()).get("nats", {})
    except tomllib.TOMLDecodeError as exc:
        raise _usage(f"config file {path} is not valid TOML: {exc}") from None
    try:
        model = NatsConfig.model_validate(table)
    except ValidationError as exc:
        raise _usage(f"config file {path}: [nats] {describe_validation_error(exc)}") from None
    return {k: getattr(model, k) for k in model.model_fields_set if k in (*FIELDS, "connect_timeout_s")}


# --- the nats CLI's contexts -----------------------------------------------------------------------------


def nats_config_dir(environ: dict[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or str(Path.home()), ".config")
    return Path(base) / "nats"


def selected_context(environ: dict[str, str]) -> str | None:
    """The context `nats context select` chose (~/.config/nats/context.txt), if any."""
    path = nats_config_dir(environ) / "context.txt"
    try:
        name = path.read_text().strip()
    except OSError:
        return None
    return name or None


def read_context(name: str, environ: dict[str, str]) -> dict[str, Any]:
    """A context's settings (as NatsConfig keys): NAME in ~/.config/nats/context/, or a path to a .json file."""
    if name.endswith(".json") or os.sep in name:
        path = Path(name).expanduser()
    else:
        path = nats_config_dir(environ) / "context" / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise _usage(f"NATS context {name!r}: no file {path} (`nats context ls` lists them)") from None
    except (OSError, ValueError) as exc:
        raise _usage(f"NATS context {name!r}: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise _usage(f"NATS context {name!r}: {path} is not a JSON object")
    out: dict[str, Any] = {}
    for key, ctx_key in CONTEXT_KEYS.items():
        value = data.get(ctx_key)
        if isinstance(value, str) and value.strip():
            out[key] = split_urls(value) if key == "servers" else value
    return out


# --- resolving -------------------------------------------------------------------------------------------


LAB_ORIGIN = "the running lab"


def lab_nats_url() -> str | None:
    """The NATS URL of a local lab that is up, so `steth` works against it with no flags."""
    from steth.lab.state import load_state

    state = load_state()
    return state.get("nats_url") if state and state.get("up") else None


def lab_settings() -> dict[str, Any]:
    """A lab that is up: its servers, and on a secure lab the CA and the controller's nkey seed."""
    from steth.lab.state import load_state

    state = load_state()
    if not (state and state.get("up") and state.get("nats_url")):
        return {}
    found: dict[str, Any] = {"servers": [state["nats_url"]]}
    sec = state.get("security") or {}
    if sec and not sec.get("insecure"):
        found.update(tls_ca=sec.get("ca"), nkey_seed=sec.get("controller_seed"))
    return found


def lab_signing_key() -> str | None:
    """The controller signing key of a secure lab that is up (used when the servers came from the lab)."""
    from steth.lab.state import load_state

    state = load_state()
    sec = (state or {}).get("security") or {}
    return sec.get("signing_key") if state and state.get("up") and not sec.get("insecure") else None


@dataclass
class Resolved:
    values: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # field -> where it came from

    def take(self, layer: dict[str, Any], origin: str) -> None:
        for key, value in layer.items():
            if value not in (None, "", [], ()) and key not in self.values:
                self.values[key] = value
                self.origin[key] = origin


def _env_layer(table: dict[str, tuple[str, ...]], environ: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values, names = {}, {}
    for key, variables in table.items():
        for var in variables:
            if environ.get(var):
                values[key] = split_urls(environ[var]) if key == "servers" else environ[var]
                names[key] = var
                break
    return values, names


def resolve(
    flags: dict[str, Any],
    config_path: str | None = None,
    context: str | None = None,
    environ: dict[str, str] | None = None,
) -> Resolved:
    """Every NATS setting from the first source that sets it (the order in this module's docstring)."""
    environ = dict(os.environ if environ is None else environ)
    r = Resolved()
    r.take({k: (split_urls(v) if k == "servers" and v else v) for k, v in flags.items()}, "the command line")
    for table in (STETH_ENV, NATS_ENV):
        values, names = _env_layer(table, environ)
        for key, value in values.items():
            r.take({key: value}, names[key])
    context = context or environ.get("NATS_CONTEXT") or None
    if context:
        r.take(read_context(context, environ), f"NATS context {context}")
    file_nats = config_file_nats(config_path or environ.get("STETH_CONFIG"))
    r.take(file_nats, "the config file's [nats]")
    if "connect_timeout_s" in file_nats:
        r.values.setdefault("connect_timeout_s", file_nats["connect_timeout_s"])
    selected = None if context else selected_context(environ)
    if selected:
        r.take(read_context(selected, environ), f"the selected NATS context {selected}")
    if "servers" not in r.values:
        r.take(lab_settings(), LAB_ORIGIN)
    r.take({"servers": [DEFAULT_URL]}, "")
    for key in PATH_FIELDS:
        if key in r.values:
            r.values[key] = os.path.expanduser(r.values[key])
    return r


def resolve_servers(flag_url: str | None, config_path: str | None = None) -> tuple[list[str], dict]:
    """(servers, the config file's nats table): kept for callers that only need the servers."""
    r = resolve({"servers": flag_url}, config_path)
    return r.values["servers"], config_file_nats(config_path or os.environ.get("STETH_CONFIG"))


def nats_flags(group: dict[str, Any]) -> dict[str, Any]:
    """The NATS flags given on the command line (new spellings first, then the old hidden ones)."""
    pick = lambda *keys: next((group[k] for k in keys if group.get(k)), None)  # noqa: E731
    return {
        "servers": pick("server", "nats_url"),
        "user": pick("user"),
        "password": pick("password"),
        "token": pick("token"),
        "creds": pick("creds"),
        "nkey_seed": pick("nkey", "nkey_seed"),
        "tls_cert": pick("tlscert", "tls_cert"),
        "tls_key": pick("tlskey", "tls_key"),
        "tls_ca": pick("tlsca", "tls_ca"),
    }
