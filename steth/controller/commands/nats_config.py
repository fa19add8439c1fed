from __future__ import annotations

from pathlib import Path

import click

from steth.controller.errors import StethError, UsageError
from steth.controller.output import Column, View, emit, format_options


@click.command("nats-config")
@click.option(
    "--agent",
    "agents",
    multiple=True,
    metavar="NODE[=ROLE,...]",
    help="An agent identity: its node name and roles (repeatable).",
)
@click.option(
    "--controller",
    "controllers",
    multiple=True,
    metavar="NAME",
    help="A controller identity (repeatable; default: one named 'steth').",
)
@click.option(
    "--admin",
    "admins",
    multiple=True,
    metavar="NAME",
    help="An administrative identity for `steth setup` (repeatable; default: none).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for auth.conf and one <identity>.env per identity (created, mode 0700).",
)
@click.option("--bcrypt", is_flag=True, help="Put bcrypt hashes, not passwords, into auth.conf.")
@click.option(
    "--nkeys",
    "use_nkeys",
    is_flag=True,
    help="An nkey seed file per identity (<identity>.nk) instead of a password; auth.conf holds public keys only.",
)
@click.option(
    "--rotate", is_flag=True, help="New passwords or seeds for everyone (default: keep those in existing files)."
)
@format_options
def command(
    agents: tuple[str, ...],
    controllers: tuple[str, ...],
    admins: tuple[str, ...],
    out_dir: Path,
    bcrypt: bool,
    use_nkeys: bool,
    rotate: bool,
) -> None:
    """Write a nats-server authorization block with per-identity subject permissions.

    \b
    controller: publish requests (steth.v1.req.>), read presence (KV watch) and results; nothing else.
    agent NODE: receive only its own node, role and all subjects; reply only to inboxes that asked
                (allow_responses); write only its own presence key and results subjects.
    admin NAME: create and update the presence bucket and the results stream (`steth setup`); nothing else.

    Include OUT/auth.conf in nats-server.conf (`include auth.conf`) and give each identity its
    OUT/<identity>.env (STETH_NATS_USER, STETH_NATS_PASSWORD; with --nkeys STETH_NATS_NKEY_SEED and the
    seed file OUT/<identity>.nk) as an EnvironmentFile. Exit 2 on a bad name.
    """
    from steth.controller.natsconf import parse_admin, parse_agent, parse_controller, write

    if not agents:
        raise UsageError("name at least one --agent NODE[=ROLE,...]")
    try:
        identities = [parse_agent(a) for a in agents] + [parse_controller(c) for c in controllers or ("steth",)]
        identities += [parse_admin(a) for a in admins]
        if bcrypt and use_nkeys:
            raise ValueError("--bcrypt and --nkeys exclude each other: nkeys put no secret into auth.conf")
        conf = write(identities, out_dir, bcrypt=bcrypt, rotate=rotate, nkeys=use_nkeys)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise StethError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    rows = [
        {"user": i.user, "kind": i.kind, "name": i.name, "roles": i.roles, "env_file": str(i.env_file)}
        for i in identities
    ]
    wrote = (
        f"wrote {conf} ({'public nkeys' if use_nkeys else 'bcrypt hashes' if bcrypt else 'plain passwords: keep it mode 0600'}); "
        f"in nats-server.conf: include {conf.name}"
    )
    emit(
        View(
            [Column("USER"), Column("KIND"), Column("ROLES"), Column("CREDENTIALS", "env_file")],
            [[r["user"], r["kind"], ",".join(r["roles"]) or "-", r["env_file"]] for r in rows],
            doc={
                "auth_conf": str(conf),
                "authentication": "nkeys" if use_nkeys else "bcrypt" if bcrypt else "password",
                "password_hashing": "bcrypt" if bcrypt else "plain",
                "identities": rows,
            },
            after=[wrote],
        )
    )
