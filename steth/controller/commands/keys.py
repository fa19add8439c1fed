from __future__ import annotations

from pathlib import Path

import click

from steth.controller.output import emit, format_options, record

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
@format_options
def create_cmd(path: Path, comment: str, force: bool) -> None:
    """Write a new keypair: the private key (mode 0600) and its .pub line for the agents."""
    import getpass
    import socket

    from steth.controller.signing import create

    signer = create(path.expanduser(), comment or f"{getpass.getuser()}@{socket.gethostname()}", force=force)
    _emit(signer, path.expanduser())


@command.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default=str(DEFAULT_KEY))
@format_options
def show_cmd(path: Path) -> None:
    """Print the public key line and key id of a private key file."""
    from steth.controller.signing import load

    _emit(load(path), path.expanduser())


def _emit(signer, path: Path) -> None:
    doc = {
        "private_key": str(path),
        "public_key_file": f"{path}.pub",
        "key_id": signer.kid,
        "public_key": signer.public_line,
    }
    text = "\n".join(
        [
            f"private key: {path} (keep it secret: mode 0600)",
            f"key id:      {signer.kid}",
            f"public key:  {signer.public_line}",
            "Agents trust it with, in their config:",
            f'  [security]\n  trusted_keys = ["{" ".join(signer.public_line.split()[:2])}"]',
        ]
    )
    emit(record(doc, text=text))  # `-f value -c public_key` prints just the key
