"""The lab's state file: written before each step, so `steth lab down` can undo a half-built lab."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

DEFAULT_LAB = "sth"
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")  # short: it prefixes interface names (15 bytes at most)


def lab_name() -> str:
    """Several labs can run side by side (tests next to a demo): STETH_LAB_NAME picks one."""
    name = os.environ.get("STETH_LAB_NAME") or DEFAULT_LAB
    if not LAB_NAME_RE.match(name):
        raise ValueError(f"STETH_LAB_NAME {name!r}: 1 to 6 lower-case letters and digits, starting with a letter")
    return name


def namespace_for(node: str) -> str:
    """The default lab's namespaces carry the bare node names; other labs prefix theirs."""
    name = lab_name()
    return node if name == DEFAULT_LAB else f"{name}-{node}"


def lab_dir() -> Path:
    if os.environ.get("STETH_LAB_DIR"):
        return Path(os.environ["STETH_LAB_DIR"])
    suffix = "" if lab_name() == DEFAULT_LAB else f"-{lab_name()}"
    return Path(f"/run/steth-lab{suffix}") if os.geteuid() == 0 else Path(f"/tmp/steth-lab{suffix}-{os.getuid()}")


def state_path() -> Path:
    return lab_dir() / "state.json"


def load_state() -> dict[str, Any] | None:
    try:
        return json.loads(state_path().read_text())
    except (FileNotFoundError, json.JSONDecodeError, NotADirectoryError):
        return None


def save_state(state: dict[str, Any]) -> None:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def lab_uuid(kind: str, name: str) -> str:
    """Ids derived from the lab's name: a lab describes itself the same way each time."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"steth-lab:{lab_name()}:{kind}:{name}"))
