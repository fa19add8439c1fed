"""Where the CLI finds NATS: flags, then STETH_* variables, then a config file, then a running lab."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

CONFIG_PATHS = (Path("~/.config/steth/steth.toml").expanduser(), Path("/etc/steth/steth.toml"))
DEFAULT_URL = "nats://127.0.0.1:4222"


def config_file_nats(explicit: str | None = None) -> dict:
    """The [nats] table of the controller's config file, if there is one."""
    paths = [Path(explicit)] if explicit else list(CONFIG_PATHS)
    for path in paths:
        if path.is_file():
            try:
                return tomllib.loads(path.read_text()).get("nats", {})
            except tomllib.TOMLDecodeError as exc:
                from steth.controller.errors import UsageError

                raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
        elif explicit:
            from steth.controller.errors import UsageError

            raise UsageError(f"config file {path} does not exist")
    return {}


def lab_nats_url() -> str | None:
    """The NATS URL of a local lab that is up, so `steth` works against it with no flags."""
    from steth.lab.state import load_state

    state = load_state()
    return state.get("nats_url") if state and state.get("up") else None


def resolve_servers(flag_url: str | None, config_path: str | None = None) -> tuple[list[str], dict]:
    """(servers, the config file's nats table): the first source that names servers wins."""
    file_nats = config_file_nats(config_path or os.environ.get("STETH_CONFIG"))
    if flag_url:  # --nats-url or STETH_NATS_URL (click reads the variable)
        return [u.strip() for u in flag_url.split(",") if u.strip()], file_nats
    if file_nats.get("servers"):
        return list(file_nats["servers"]), file_nats
    lab = lab_nats_url()
    return [lab or DEFAULT_URL], file_nats
