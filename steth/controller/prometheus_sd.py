"""`steth agents --write-sd FILE`: Prometheus file-based service discovery from presence.

Each agent that serves metrics (its presence entry carries `metrics_address`) becomes one target group
labelled with its node, roles and version. An agent that vanished from presence stays in the file for a
while (`--sd-keep`), so Prometheus keeps scraping it, `up` turns 0, and the agent-down alert fires instead
of the target silently disappearing. The file is replaced atomically: Prometheus never reads half of it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

LAST_SEEN = "__meta_steth_last_seen"  # dropped by Prometheus after relabelling; kept in the file


def target_groups(
    present: dict[str, Any], selection, previous: list[dict], keep_s: float, now: float | None = None
) -> tuple[list[dict], int]:
    """(groups, how many of them are kept from `previous` though absent from presence)."""
    now = time.time() if now is None else now
    groups: dict[str, dict] = {}
    for name, p in sorted(present.items()):
        info = p.info
        if not info.metrics_address or not selection.matches(info):
            continue
        labels = {"node": info.node, "roles": ",".join(info.roles), "version": info.version, LAST_SEEN: f"{now:.0f}"}
        groups[name] = {"targets": [info.metrics_address], "labels": labels}
    kept = 0
    for group in previous:
        labels = group.get("labels") or {}
        node = labels.get("node")
        try:
            last_seen = float(labels.get(LAST_SEEN, 0))
        except (TypeError, ValueError):
            continue
        if node and node not in groups and node not in present and now - last_seen <= keep_s:
            groups[node] = group
            kept += 1
    return [groups[n] for n in sorted(groups)], kept


def read_previous(path: Path) -> list[dict]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [g for g in doc if isinstance(g, dict)] if isinstance(doc, list) else []


def write_atomically(path: Path, groups: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(groups, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
