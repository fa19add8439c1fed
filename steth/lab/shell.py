"""Shell helpers every part of the lab uses (fleet, Open vSwitch, the OpenStack lab, dnsmasq): run a command,
in a namespace, and stop a process group. Kept apart from steth.lab.fleet so that modules fleet itself
uses (steth.lab.ovs) need not import fleet back (tests/unit/test_layering.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


class LabError(RuntimeError):
    pass


def sh(*argv: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run argv (with `env` added to the environment); LabError with its stderr when it fails and check is set."""
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env} if env else None)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


def in_ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *argv, check=check)


def wait_for(condition, timeout: float, message: str, interval: float = 0.02) -> None:
    """Poll `condition` until it holds; LabError(message) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(message)
        time.sleep(interval)


def alive(pid: int) -> bool:
    if pid <= 0:  # never signal a process group or every process
        return False
    try:  # a zombie has exited: its parent (init here) may take seconds to reap it
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (FileNotFoundError, IndexError, PermissionError):
        pass
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_pid(pid: int, grace: float = 5.0) -> None:
    if pid <= 0:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)  # agents run in their own session: the whole group goes
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                return
        deadline = time.time() + grace
        while time.time() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                if not alive(pid):
                    return
            time.sleep(0.05)
