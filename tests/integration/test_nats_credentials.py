"""NATS identities that carry no password: nkey seeds (`steth nats-config --nkeys`) and JWT `.creds` files.

Real nats-servers on the lab's management bridge (one with the nkey users `steth nats-config --nkeys` writes,
one in operator mode trusting JWTs minted here by tests/natsjwt.py), real agents in the lab's namespaces
connecting with a seed or a .creds file and steth's permissions, the real CLI doing the same. Whoever holds
no trusted key is refused at the login (exit 4), and the server's files hold no secret.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import needs_root
from natsjwt import Operator
from natsservers import NatsServer, host_of, read_env, wait_present

from steth.natsauth import admin_permissions, agent_permissions, controller_permissions

pytestmark = [needs_root, pytest.mark.lab]


def stop(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def setup(lab, server: NatsServer, **credentials: str) -> None:
    """`steth setup` with an admin identity: the presence bucket (TTL 3 s: the agents beat every second)."""
    env = {**lab.env(), "STETH_NATS_URL": server.url, **credentials}
    done = lab.cli("setup", "--presence-ttl", "3", "-f", "json", env=env)
    assert done.returncode == 0, done.stderr
    assert {d["stream"] for d in json.loads(done.stdout)["streams"]} == {"KV_steth_presence", "STETH_RESULTS"}


def hello(lab, server: NatsServer, node: str, **credentials: str) -> tuple[int, dict, str]:
    env = {**lab.env(), "STETH_NATS_URL": server.url, **credentials}
    done = lab.cli("hello", "--node", node, "--timeout", "10", "-o", "json", env=env)
    return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else {}), done.stderr


def test_nkey_seeds(lab, tmp_path):
    auth = tmp_path / "auth"
    done = lab.cli(
        "nats-config",
        "--nkeys",
        "--agent",
        "cred-n=compute",
        "--controller",
        "ops",
        "--admin",
        "ops",
        "--out",
        str(auth),
    )
    assert done.returncode == 0, done.stderr
    conf = (auth / "auth.conf").read_text()
    seeds = {p.stem: p.read_text().strip() for p in auth.glob("*.nk")}
    assert set(seeds) == {"agent-cred-n", "controller-ops", "admin-ops"} and all(
        s.startswith("SU") for s in seeds.values()
    )
    assert not any(seed in conf for seed in seeds.values()) and '"nkey": "U' in conf  # public keys only
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in auth.iterdir())

    server = NatsServer(tmp_path / "nats", host_of(lab.nats_url), auth_conf=auth / "auth.conf").start()
    setup(lab, server, **read_env(auth / "admin-ops.env"))  # agent identities may not create the bucket
    agent = lab.spawn_agent(
        "cred-n",
        ["compute"],
        netns=lab.node("compute-1")["namespace"],
        STETH_NATS_SERVERS=server.url,
        **read_env(auth / "agent-cred-n.env"),
    )
    try:
        ops = read_env(auth / "controller-ops.env")
        wait_present([server.url], {"cred-n"}, timeout=60, nkey_seed=ops["STETH_NATS_NKEY_SEED"])
        code, doc, err = hello(lab, server, "cred-n", **ops)
        assert code == 0 and doc["nodes"][0]["status"] == "ok", (doc, err)
        # The agent's own seed cannot ask (its permissions have no steth.v1.req.> publish)...
        code, doc, err = hello(lab, server, "cred-n", **read_env(auth / "agent-cred-n.env"))
        assert code != 0, doc
        # ...and a seed the server does not know cannot even log in.
        done = lab.cli("nats-config", "--nkeys", "--agent", "x", "--out", str(tmp_path / "other"))
        assert done.returncode == 0, done.stderr
        stranger = tmp_path / "other" / "controller-steth.nk"
        code, _, err = hello(lab, server, "cred-n", STETH_NATS_NKEY_SEED=str(stranger))
        assert code == 4 and "refused the login" in err, err
    finally:
        stop([agent])
        server.stop()


def test_creds_files_with_jwts(lab, tmp_path):
    operator = Operator()
    (tmp_path / "operator.conf").write_text(operator.server_config() + "\n")
    server = NatsServer(tmp_path / "nats", host_of(lab.nats_url), auth_conf=tmp_path / "operator.conf").start()
    agent_creds = operator.user_creds(tmp_path / "cred-j.creds", "cred-j", agent_permissions("cred-j", ["compute"]))
    ops_creds = operator.user_creds(tmp_path / "ops.creds", "ops", controller_permissions())
    admin_creds = operator.user_creds(tmp_path / "admin.creds", "admin", admin_permissions())
    setup(lab, server, STETH_NATS_CREDS=str(admin_creds))
    agent = lab.spawn_agent(
        "cred-j",
        ["compute"],
        netns=lab.node("compute-2")["namespace"],
        STETH_NATS_SERVERS=server.url,
        STETH_NATS_CREDS=str(agent_creds),
    )
    try:
        wait_present([server.url], {"cred-j"}, timeout=60, creds=str(ops_creds))
        code, doc, err = hello(lab, server, "cred-j", STETH_NATS_CREDS=str(ops_creds))
        assert code == 0 and doc["nodes"][0]["status"] == "ok", (doc, err)
        # A user signed by another operator's account is refused at the login.
        foreign = Operator().user_creds(tmp_path / "foreign.creds", "ops", controller_permissions())
        code, _, err = hello(lab, server, "cred-j", STETH_NATS_CREDS=str(foreign))
        assert code == 4 and "refused the login" in err, err
    finally:
        stop([agent])
        server.stop()
