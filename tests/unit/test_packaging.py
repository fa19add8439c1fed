"""What the wheel promises: one version, a licence, extras that match what each side imports, true floors,
and the deployment files shipped with a place to go."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

import steth
from steth.controller.commands import deploy

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# import name -> distribution name, for every third-party module steth imports
DISTRIBUTIONS = {
    "nats": "nats-py",
    "msgpack": "msgpack",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "click": "click",
    "cryptography": "cryptography",
    "prometheus_client": "prometheus-client",
    "scapy": "scapy",
    "openstack": "openstacksdk",
    "keystoneauth1": "openstacksdk",  # openstacksdk's own dependency (its exceptions)
    "yaml": "pyyaml",
    "bcrypt": "bcrypt",
    "nkeys": "nkeys",
}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def _imports(*paths: Path) -> set[str]:
    """Top-level modules imported anywhere in these files and folders (lazy imports inside functions included)."""
    found = set()
    for path in [f for p in paths for f in (p.rglob("*.py") if p.is_dir() else [p])]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"steth", "__future__"}


def _third_party(*paths: Path) -> set[str]:
    modules = _imports(*paths)
    unknown = modules - set(DISTRIBUTIONS)
    assert not unknown, f"imports with no distribution in DISTRIBUTIONS: {unknown}"
    return {DISTRIBUTIONS[m] for m in modules}


def test_the_version_is_written_once():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "steth.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", steth.__version__)


def test_licence_file_is_shipped():
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]


def test_extras_match_what_each_side_imports():
    """An agent host (core + agent) never needs openstacksdk; a controller (core + controller) never scapy."""
    core = _names(PROJECT["dependencies"])
    extras = {k: _names(v) for k, v in PROJECT["optional-dependencies"].items()}
    # steth/natsauth.py imports bcrypt lazily, for nats-config only
    assert _third_party(ROOT / "steth/schemas", *(ROOT / "steth").glob("*.py")) - {"bcrypt"} <= core
    agent = _third_party(ROOT / "steth/agent")
    controller = _third_party(ROOT / "steth/controller")
    assert agent <= core | extras["agent"], agent - core - extras["agent"]
    assert controller <= core | extras["controller"], controller - core - extras["controller"]
    assert "openstacksdk" not in agent and "openstacksdk" not in core | extras["agent"]
    assert "scapy" not in controller and "scapy" not in core | extras["controller"]
    assert extras["all"] == {"steth"} and "steth" in extras["dev"]  # setup.sh's `.[dev]` installs everything


def test_prometheus_client_floor_has_what_the_agent_calls():
    """remove_by_labels (departed targets) arrived in prometheus-client 0.24."""
    floor = next(r for r in PROJECT["optional-dependencies"]["agent"] if r.startswith("prometheus-client"))
    assert floor == "prometheus-client>=0.24"
    assert "remove_by_labels" in (ROOT / "steth/agent/metrics.py").read_text()


def test_bcrypt_hash_is_one_nats_server_accepts():
    bcrypt = pytest.importorskip("bcrypt")
    from steth.natsauth import bcrypt_hash

    hashed = bcrypt_hash("s3cret", rounds=4)
    assert re.fullmatch(r"\$2a\$04\$[./A-Za-z0-9]{53}", hashed)
    assert bcrypt.checkpw(b"s3cret", hashed.encode()) and not bcrypt.checkpw(b"other", hashed.encode())
    assert "import crypt\n" not in "".join(p.read_text() for p in (ROOT / "steth").rglob("*.py"))


def test_every_deployment_file_is_shipped_and_has_a_place():
    shipped = deploy.files()
    on_disk = {
        str(p.relative_to(ROOT / "deploy"))
        for p in (ROOT / "deploy").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    }
    assert set(shipped) == on_disk and set(deploy.INSTALL_PATHS) == on_disk
    unit = deploy.render("systemd/steth-agent.service", shipped["systemd/steth-agent.service"], "/opt/steth/bin")
    assert "ExecStart=/opt/steth/bin/steth-agent run" in unit and "/usr/local/bin" not in unit


def test_export_writes_the_files_and_refuses_to_overwrite(tmp_path):
    from click.testing import CliRunner

    from steth.controller.cli import cli

    # Through the `steth` group, as an operator runs it: invoking the subcommand alone would leave Click's
    # cached help option without `-h` on it for the rest of the test run.
    runner = CliRunner()
    done = runner.invoke(cli, ["deploy", "export", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    env = tmp_path / "out/systemd/steth-agent.env"
    assert env.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out/prometheus/steth/steth.rules.yml").read_text() == deploy.files()[
        "prometheus/steth/steth.rules.yml"
    ]
    again = runner.invoke(cli, ["deploy", "export", str(tmp_path / "out")])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(cli, ["deploy", "export", "--force", str(tmp_path / "out")]).exit_code == 0
