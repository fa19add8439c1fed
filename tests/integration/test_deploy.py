"""deploy/ as an operator gets it: a wheel built here and installed in a fresh virtualenv, whose `steth deploy
export` writes the files that systemd-analyze, promtool and nats-server check; the Grafana dashboard; and the
three-server NATS example run for real with an agent that reports readiness the way systemd expects."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
needs_promtool = pytest.mark.skipif(
    not shutil.which("promtool"), reason="promtool missing (apt-get install prometheus)"
)
needs_systemd_analyze = pytest.mark.skipif(
    not shutil.which("systemd-analyze"), reason="systemd-analyze missing (apt-get install systemd)"
)
# systemd-analyze security's exposure score for the agent unit must stay at or below this.
MAX_EXPOSURE = 3.0


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """The wheel (pip wheel --no-deps .) in a fresh virtualenv with only what `steth deploy` needs (click),
    and its files exported with the units pointed at that virtualenv's bin/."""
    base = tmp_path_factory.mktemp("wheel")
    began = time.monotonic()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(base / "dist"), str(REPO)], check=True, capture_output=True)
    (wheel,) = (base / "dist").glob("steth-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # This pip installs into the fresh interpreter (pip --python): no pip bootstrap in the new venv.
    subprocess.run(
        [*pip, "--python", str(venv / "bin/python"), "install", "--no-deps", str(wheel), "click"],
        check=True,
        capture_output=True,
    )
    out = base / "export"
    done = subprocess.run(
        [str(venv / "bin/steth"), "deploy", "export", str(out), "--bin-dir", str(venv / "bin")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {"wheel": wheel, "venv": venv, "dir": out, "seconds": time.monotonic() - began}


def test_the_wheel_holds_the_deployment_files_and_the_licence(installed):
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "steth/deploy_files/systemd/steth-agent.service" in names
    assert "steth/deploy_files/grafana/steth-dashboard.json" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    shipped = {str(p.relative_to(installed["dir"])) for p in installed["dir"].rglob("*") if p.is_file()}
    in_repo = {str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert shipped == in_repo
    for name in in_repo - {"systemd/steth-agent.service", "prometheus/steth-sd.service"}:
        assert (installed["dir"] / name).read_text() == (DEPLOY / name).read_text(), name
    # The bare install runs `steth deploy` without any extra: nothing but click next to it.
    site = next(installed["venv"].glob("lib/python*/site-packages"))
    assert not {"nats", "pydantic", "openstack", "scapy"} & {p.name for p in site.iterdir()}


@needs_promtool
def test_promtool_checks_the_config_and_rules(installed):
    done = subprocess.run(
        ["promtool", "check", "config", "prometheus.yml"],
        cwd=installed["dir"] / "prometheus",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


@needs_promtool
def test_promtool_rule_unit_tests_pass(installed):
    """Including StethPacketLoss firing on injected (synthetic) 50 % loss and nothing on clean pairs."""
    done = subprocess.run(
        ["promtool", "test", "rules", "steth.rules.test.yml"],
        cwd=installed["dir"] / "prometheus/steth",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


@needs_promtool
def test_rule_unit_tests_would_catch_a_broken_rule(tmp_path):
    """The unit tests are not vacuous: a loss threshold of 60 % makes them fail."""
    rules = (
        (DEPLOY / "prometheus/steth/steth.rules.yml")
        .read_text()
        .replace("steth:ping_loss:ratio_5m > 0.02", "steth:ping_loss:ratio_5m > 0.6")
    )
    (tmp_path / "steth.rules.yml").write_text(rules)
    shutil.copy(DEPLOY / "prometheus/steth/steth.rules.test.yml", tmp_path)
    done = subprocess.run(
        ["promtool", "test", "rules", "steth.rules.test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0 and "StethPacketLoss" in done.stdout + done.stderr


@needs_systemd_analyze
def test_systemd_units_verify(installed):
    """The exported units, ExecStart= in the fresh virtualenv (steth deploy export --bin-dir)."""
    units = sorted(str(p) for p in installed["dir"].rglob("*") if p.suffix in (".service", ".timer"))
    assert len(units) == 3
    agent = (installed["dir"] / "systemd/steth-agent.service").read_text()
    assert f"ExecStart={installed['venv']}/bin/steth-agent run" in agent
    done = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_systemd_analyze
def test_agent_unit_exposure_score(installed):
    """`systemd-analyze security` (offline: no running systemd needed) rates the agent unit MAX_EXPOSURE or better."""
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(installed["dir"] / "systemd/steth-agent.service")],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for steth-agent.service: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def secure_files(directory: Path, sans: list[str], agents: list[str] = ("compute-1",)) -> dict[str, Path]:
    """What the shipped nats-server.conf expects beside it, made as its comments say: a CA and a server
    certificate (throwaway, with the `cryptography` package) and `steth nats-config --nkeys` identities in
    steth/auth.conf. Returns the paths a client needs."""
    from steth.controller import natsconf
    from steth.lab import pki

    ca = pki.make_ca(directory / "tls")
    pki.make_cert(ca, directory / "tls", "server", sans)
    identities = [natsconf.parse_agent(f"{a}=compute") for a in agents]
    identities += [natsconf.parse_controller("ops"), natsconf.parse_admin("ops")]
    natsconf.write(identities, directory / "steth", nkeys=True)
    return {
        "ca": ca.cert,
        "controller_seed": directory / "steth" / "controller-ops.nk",
        "admin_seed": directory / "steth" / "admin-ops.nk",
        **{f"agent_seed:{a}": directory / "steth" / f"agent-{a}.nk" for a in agents},
    }


def localised(text: str, directory: Path) -> str:
    """The shipped file with its TLS paths pointed at `directory`/tls (the include is relative already)."""
    return text.replace("/etc/nats/tls/", f"{directory}/tls/")


def test_nats_example_config_is_secure_and_valid(installed, tmp_path):
    """The shipped file: TLS on the client and the cluster port, the identities `steth nats-config` writes
    (the file name it writes, auth.conf, is the one included), and `nats-server -t` accepts it."""
    env = {**os.environ, "NATS_SERVER_NAME": "nats-1"}
    shipped = (installed["dir"] / "nats/nats-server.conf").read_text()
    blocks = re.findall(r"(?ms)^(?:tls|  tls) \{.*?\}", shipped)
    assert len(blocks) == 2, "TLS on the client port and on the cluster port"
    assert all("cert_file" in b and "key_file" in b and "ca_file" in b for b in blocks)
    assert "verify: true" in blocks[1]  # routes: mutual TLS
    assert re.search(r"(?m)^include \./steth/auth\.conf$", shipped)
    assert "steth-auth.conf" not in shipped
    secure_files(tmp_path, ["nats-1.example.org", "127.0.0.1"])
    conf = tmp_path / "nats-server.conf"
    conf.write_text(localised(shipped, tmp_path))
    done = subprocess.run([_nats_server(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    # Without the identities the test fails: the include is really read.
    (tmp_path / "steth" / "auth.conf").unlink()
    done = subprocess.run([_nats_server(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env)
    assert done.returncode != 0


def test_grafana_dashboard_is_importable_json():
    doc = json.loads((DEPLOY / "grafana/steth-dashboard.json").read_text())
    panels = doc["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and doc["uid"] and doc["schemaVersion"] >= 36
    kinds = {p["type"] for p in panels}
    assert {"heatmap", "timeseries", "stat"} <= kinds
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert any("steth:ping_loss:ratio_5m" in e for e in exprs)  # the mesh loss heatmap
    assert any("steth_ping_rtt_seconds" in e for e in exprs) and any(
        "steth_bandwidth_bytes_per_second" in e for e in exprs
    )
    # Imported with its datasource variable: no __inputs left unused; every panel follows the $node filter.
    text = json.dumps(doc)
    assert all(f"${{{i['name']}}}" in text for i in doc.get("__inputs", []))
    assert "node" in [v["name"] for v in doc["templating"]["list"]]
    for expr in exprs:
        assert 'node=~"$node"' in expr, expr
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24


# --- the NATS cluster example, for real --------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _nats_server() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else (shutil.which("nats-server") or pytest.skip("no nats-server"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """deploy/nats/nats-server.conf, three times on loopback: only addresses, ports and paths rewritten."""
    base = tmp_path_factory.mktemp("nats-cluster")
    secrets = secure_files(base, ["127.0.0.1"], agents=["deploy-test"])
    example = localised((DEPLOY / "nats/nats-server.conf").read_text(), base)
    ports = _free_ports(9)
    client, route, http = ports[0:3], ports[3:6], ports[6:9]
    procs = []
    for i in range(3):
        text = example.replace("listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{client[i]}")
        text = text.replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{route[i]}")
        text = text.replace("http: 127.0.0.1:8222", f"http: 127.0.0.1:{http[i]}")
        text = text.replace("/var/lib/nats/jetstream", str(base / f"js-{i + 1}"))
        for j in range(3):
            text = text.replace(f"nats-{j + 1}.example.org:6222", f"127.0.0.1:{route[j]}")
        live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert "example.org" not in live and "0.0.0.0" not in live and "/etc/nats" not in live
        conf = base / f"nats-{i + 1}.conf"
        conf.write_text(text)
        env = {**os.environ, "NATS_SERVER_NAME": f"nats-{i + 1}"}
        check = subprocess.run([_nats_server(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        log = open(base / f"nats-{i + 1}.log", "ab")
        procs.append(
            subprocess.Popen(
                [_nats_server(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        )
    urls = [f"tls://127.0.0.1:{p}" for p in client]
    try:
        asyncio.run(_wait_for_jetstream(urls, secrets))
        # As docs/deployment.md says: the admin identity creates the bucket and the stream (agents may not).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STETH_", "NATS_"))}
        env.update(
            STETH_NATS_URL=",".join(urls),
            STETH_NATS_TLS_CA=str(secrets["ca"]),
            STETH_NATS_NKEY_SEED=str(secrets["admin_seed"]),
        )
        done = subprocess.run(
            [sys.executable, "-m", "steth.controller.cli", "setup", "--presence-ttl", "3", "-f", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        made = {row["stream"]: row["action"] for row in json.loads(done.stdout)["streams"]}
        assert made == {"KV_steth_presence": "created", "STETH_RESULTS": "created"}, made
        yield {"urls": urls, "procs": procs, "dir": base, "http": http, "secrets": secrets}
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


async def _operator(urls: list[str], secrets: dict[str, Path]):
    """A controller identity of the cluster (TLS with the test CA, its nkey seed)."""
    import ssl

    import nats

    tls = ssl.create_default_context(cafile=str(secrets["ca"]))
    return await nats.connect(
        servers=urls, connect_timeout=2, max_reconnect_attempts=5, tls=tls, nkeys_seed=str(secrets["controller_seed"])
    )


async def _wait_for_jetstream(urls: list[str], secrets: dict[str, Path], timeout: float = 60) -> None:
    from nats.js.errors import NotFoundError

    deadline = time.monotonic() + timeout
    nc = await _operator(urls, secrets)
    try:
        while True:
            try:  # a controller may ask about steth's streams only: "not found" means JetStream answers
                await nc.jetstream(timeout=2).stream_info("STETH_RESULTS")
                return
            except NotFoundError:
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await nc.close()


async def _stream_state(urls: list[str], stream: str, secrets: dict[str, Path]) -> tuple[int, int, str | None]:
    """(messages, replicas beside the leader, leader) of a stream."""
    nc = await _operator(urls, secrets)
    try:
        info = await nc.jetstream(timeout=5).stream_info(stream)
        cluster = info.cluster
        return info.state.messages, len(cluster.replicas or []) if cluster else 0, cluster.leader if cluster else None
    finally:
        await nc.close()


def test_agent_on_the_cluster_reports_ready_and_survives_a_server_loss(cluster, tmp_path):
    """A real agent on the three-server example: READY=1 to $NOTIFY_SOCKET once present, presence and
    results replicated three times, results still stored with one server down, STOPPING=1 on SIGTERM."""
    metrics_port = _free_ports(1)[0]
    secrets = cluster["secrets"]
    from steth.controller import signing

    ops = signing.create(tmp_path / "ops.key", "ops@deploy-test")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'node = "deploy-test"\nroles = ["compute"]\nheartbeat_s = 1\npresence_ttl_s = 3\npresence_replicas = 3\n'
        f'[nats]\nservers = {json.dumps(cluster["urls"])}\ntls_ca = "{secrets["ca"]}"\n'
        f'nkey_seed = "{secrets["agent_seed:deploy-test"]}"\n'
        f'[security]\ntrusted_keys = ["{ops.public_line}"]\nrequire_signed = true\n'
        f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
        f'[results]\nreplicas = 3\n[[schedule]]\nname = "loopback"\nprobe = "ping"\ntargets = ["127.0.0.1"]\n'
        f"interval_s = 1\nparams = {{ count = 1 }}\n"
    )
    notify_path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.settimeout(60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
    env["NOTIFY_SOCKET"] = notify_path
    env["WATCHDOG_USEC"] = "1000000"  # WatchdogSec=1: a WATCHDOG=1 every 0.5 s
    log = open(tmp_path / "agent.log", "ab")
    st = os.fstat(log.fileno())
    env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"  # stderr is "the journal": <priority> lines
    agent = subprocess.Popen(
        [sys.executable, "-m", "steth.agent.main", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        messages = []
        while not any(m.startswith(b"READY=1") for m in messages):
            messages.append(sock.recv(4096))  # STATUS=waiting... may come first
        assert b"STATUS=answering as deploy-test" in messages[-1]

        def stored() -> tuple[int, int, str | None]:
            return asyncio.run(_stream_state(cluster["urls"], "STETH_RESULTS", secrets))

        deadline = time.monotonic() + 60
        while (state := _try(stored)) is None or state[0] < 2:
            assert time.monotonic() < deadline, f"no results stored: {state}"
            time.sleep(0.5)
        assert state[1] == 2 and state[2]  # a leader and two replicas
        presence = asyncio.run(_stream_state(cluster["urls"], "KV_steth_presence", secrets))
        assert presence[1] == 2

        # One server goes: with two of three left, JetStream keeps storing results.
        victim = next(i for i, name in enumerate(("nats-1", "nats-2", "nats-3")) if name != state[2])
        cluster["procs"][victim].terminate()
        cluster["procs"][victim].wait(timeout=15)
        urls = [u for i, u in enumerate(cluster["urls"]) if i != victim]
        before = state[0]
        deadline = time.monotonic() + 60
        while (after := _try(lambda: asyncio.run(_stream_state(urls, "STETH_RESULTS", secrets)))) is None or after[
            0
        ] < before + 3:
            assert time.monotonic() < deadline, f"results stopped: {before} -> {after}"
            time.sleep(0.5)

        agent.send_signal(signal.SIGTERM)
        while not messages[-1].startswith(b"STOPPING=1"):
            messages.append(sock.recv(4096))
        # The watchdog was fed all along (the test ran for seconds: at least a few pings at 0.5 s).
        assert messages.count(b"WATCHDOG=1") >= 4, messages
        assert agent.wait(timeout=30) == 0
        lines = (tmp_path / "agent.log").read_text().splitlines()
        assert lines and all(re.match(r"<[2-7]>[A-Z]+ ", line) for line in lines), lines[:5]
        assert any(line.startswith("<6>INFO ") for line in lines)
    finally:
        sock.close()
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()


def _try(fn):
    try:
        return fn()
    except Exception:
        return None


def test_a_config_error_exits_with_the_status_the_unit_does_not_restart(installed, tmp_path):
    unit = (installed["dir"] / "systemd/steth-agent.service").read_text()
    status = re.search(r"(?m)^RestartPreventExitStatus=(\d+)$", unit).group(1)
    assert "Restart=on-failure" in unit and re.search(r"(?m)^WatchdogSec=\d+", unit)
    assert "ReadWritePaths=-/run/openvswitch -/run/netns" in unit  # optional paths: the unit starts without them
    bad = tmp_path / "agent.toml"
    bad.write_text('roles = ["nonsense"]\nheartbeat_s = -1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
    done = subprocess.run(
        [sys.executable, "-m", "steth.agent.main", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == int(status), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "bad configuration" in done.stderr
