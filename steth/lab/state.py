"""The lab's state file: written before each step, so `steth lab down` can undo a half-built lab."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def lab_dir() -> Path:
    if os.environ.get("STETH_LAB_DIR"):
        return Path(os.environ["STETH_LAB_DIR"])
    return Path("/run/steth-lab") if os.geteuid() == 0 else Path(f"/tmp/steth-lab-{os.getuid()}")


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
