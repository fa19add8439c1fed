"""`steth deploy`: the deployment files that ship inside the package (deploy/ in the repository).

Imports nothing but click and the standard library: it works on a bare `pip install steth`, before any extra.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import click

from steth.controller.output import format_options

# Where each file goes on a host (docs/deployment.md walks through them), relative to deploy/.
INSTALL_PATHS = {
    "systemd/steth-agent.service": "/etc/systemd/system/steth-agent.service",
    "systemd/steth-agent.env": "/etc/steth/steth-agent.env",
    "systemd/agent.toml.example": "/etc/steth/agent.toml",
    "nats/nats-server.conf": "/etc/nats/nats-server.conf",
    "prometheus/prometheus.yml": "/etc/prometheus/prometheus.yml (merge the steth job)",
    "prometheus/steth/steth.rules.yml": "/etc/prometheus/steth/steth.rules.yml",
    "prometheus/steth/steth.rules.test.yml": "/etc/prometheus/steth/steth.rules.test.yml",
    "prometheus/steth-sd.service": "/etc/systemd/system/steth-sd.service",
    "prometheus/steth-sd.timer": "/etc/systemd/system/steth-sd.timer",
    "grafana/steth-dashboard.json": "Grafana: Dashboards, New, Import",
}
DEFAULT_BIN_DIR = "/usr/local/bin"


def files() -> dict[str, str]:
    """Relative path -> text of every shipped deployment file."""
    root = importlib.resources.files("steth.deploy_files")
    out = {}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                if entry.name != "__pycache__":
                    stack.append((entry, f"{name}/"))
            elif not entry.name.endswith((".py", ".pyc")):
                out[name] = entry.read_text()
    return dict(sorted(out.items()))


def render(name: str, text: str, bin_dir: str) -> str:
    """The file as written out: units run the executables from `bin_dir`."""
    if name.endswith((".service", ".timer")) and bin_dir.rstrip("/") != DEFAULT_BIN_DIR:
        text = text.replace(f"{DEFAULT_BIN_DIR}/", f"{bin_dir.rstrip('/')}/")
    return text


@click.group("deploy")
def command() -> None:
    """The systemd units, configs, NATS config, Prometheus rules and Grafana dashboard shipped with steth.

    `steth deploy list` shows them and where each goes; `steth deploy export DIR` writes them out.
    docs/deployment.md installs them step by step.
    """


@command.command("list")
@format_options
def list_cmd() -> None:
    """Every deployment file and where it goes on a host."""
    from steth.controller.output import Column, View, emit

    rows = [[name, INSTALL_PATHS.get(name, "-")] for name in files()]
    emit(View([Column("FILE"), Column("INSTALL AS", "install_as")], rows))


@command.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--bin-dir",
    default=DEFAULT_BIN_DIR,
    show_default=True,
    metavar="DIR",
    help="Where steth and steth-agent are installed: the units' ExecStart= points there "
    "(e.g. /opt/steth/bin for a virtualenv).",
)
@click.option("--force", is_flag=True, help="Replace files that exist.")
def export_cmd(directory: Path, bin_dir: str, force: bool) -> None:
    """Write every deployment file under DIRECTORY, in the layout of deploy/ (systemd/, prometheus/, ...)."""
    shipped = files()
    targets = {name: directory / name for name in shipped}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise click.UsageError(f"{existing[0]} exists ({len(existing)} file(s)); --force replaces them")
    for name, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        # The environment file holds secrets once edited: never world-readable.
        mode = 0o600 if name.endswith(".env") else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(render(name, shipped[name], bin_dir))
        os.chmod(path, mode)
    click.echo(f"wrote {len(targets)} file(s) to {directory}", err=True)
