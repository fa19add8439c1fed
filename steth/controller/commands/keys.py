from __future__ import annotations

from pathlib import Path

import click

from steth.controller.output import emit_document

DEFAULT_KEY = Path("~/.config/steth/signing.key")


@click.group("keys")
def command() -> None:
    """The ed25519 key the controller signs requests with.

    Agents that list its public half in `[security] trusted_keys` verify every request; with
    `require_signed = true` they refuse unsigned ones. See docs/security.md.
    """


@command.command("create")
@click.option(
    "--out",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=str(DEFAULT_KEY),
    show_default=True,
    help="Private key file; the public key goes to the same path plus .pub.",
)
@click.option("--comment", default="", metavar="TEXT", help="Text after the public key (default: user@host).")
@click.option("--force", is_flag=True, help="Replace existing key files.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
def create_cmd(path: Path, comment: str, force: bool, output: str) -> None:
    """Write a new keypair: the private key (mode 0600) and its .pub line for the agents."""
    import getpass
    import socket

    from steth.controller.signing import create

    signer = create(path.expanduser(), comment or f"{getpass.getuser()}@{socket.gethostname()}", force=force)
    _emit(signer, path.expanduser(), output)


@command.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default=str(DEFAULT_KEY))
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
def show_cmd(path: Path, output: str) -> None:
    """Print the public key line and key id of a private key file."""
    from steth.controller.signing import load

    _emit(load(path), path.expanduser(), output)


def _emit(signer, path: Path, output: str) -> None:
    doc = {
        "private_key": str(path),
        "public_key_file": f"{path}.pub",
        "key_id": signer.kid,
        "public_key": signer.public_line,
    }
    if output != "table":
        emit_document(doc, output)
        return
    click.echo(f"private key: {path} (keep it secret: mode 0600)")
    click.echo(f"key id:      {signer.kid}")
    click.echo(f"public key:  {signer.public_line}")
    click.echo("Agents trust it with, in their config:")
    click.echo(f'  [security]\n  trusted_keys = ["{" ".join(signer.public_line.split()[:2])}"]')
