"""The virtualenv holding Neutron (PyPI `neutron` 29.x and `uwsgi`) for the real-Neutron lab.

Neutron pins its own versions of oslo.*, SQLAlchemy and friends: it lives in a venv of its own beside the
project's (<repo>/.venv-neutron by default, STETH_NEUTRON_VENV to use another). scripts/setup.sh creates it
when run as root; `steth lab up --openstack --neutron real` creates it on first use (about 80 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from steth.lab.shell import LabError

NEUTRON_REQUIREMENT = "neutron>=29,<30"
# neutron.conf's [database] connection is mysql+pymysql (kolla-ansible's neutron.conf.j2); neutron itself
# does not depend on PyMySQL.
PACKAGES = (NEUTRON_REQUIREMENT, "uwsgi", "PyMySQL")
# What the lab runs from the venv: a venv missing any of them is (re)installed.
BINARIES = (
    "uwsgi",
    "neutron-rpc-server",
    "neutron-db-manage",
    "neutron-openvswitch-agent",
    "neutron-dhcp-agent",
    "neutron-l3-agent",
    "privsep-helper",
)


def venv_dir() -> Path:
    if os.environ.get("STETH_NEUTRON_VENV"):
        return Path(os.environ["STETH_NEUTRON_VENV"])
    return Path(__file__).resolve().parents[2] / ".venv-neutron"


def binary(name: str) -> str:
    return str(venv_dir() / "bin" / name)


def ready() -> bool:
    return all((venv_dir() / "bin" / name).exists() for name in BINARIES) and _has_pymysql()


def _has_pymysql() -> bool:
    python = venv_dir() / "bin" / "python"
    return (
        python.exists() and subprocess.run([str(python), "-c", "import pymysql"], capture_output=True).returncode == 0
    )


def ensure(progress=lambda msg: None) -> Path:
    """The venv, installing Neutron into it first if it is missing or incomplete."""
    if ready():
        return venv_dir()
    target = venv_dir()
    progress(f"installing Neutron into {target} (once; about 80 s)")
    if not (target / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, capture_output=True)
    done = subprocess.run(
        [str(target / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *PACKAGES],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not ready():
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"installing Neutron into {target} failed: {last[0]}")
    return target
