"""The entry point of the agent's helper children (`python -m MODULE JOB-JSON`), standard library only, so a
child that needs nothing heavier starts in tens of milliseconds."""

from __future__ import annotations

import json
import os
import sys


def child_main(run_child) -> None:
    """One JSON job in argv, one JSON line out, then exit at once (no helper thread may keep it alive)."""
    try:
        result = run_child(json.loads(sys.argv[1]))
    except Exception as exc:  # one line for the agent: it becomes the probe's message
        result = {"error": f"{exc.__class__.__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)
