"""The real-Neutron lab's control plane, started by the lab as plain processes with data under the lab dir:
MariaDB (Debian), RabbitMQ (Debian) with an epmd of its own, the Neutron API under uWSGI and
neutron-rpc-server (both from the Neutron venv, steth.lab.neutron_venv).

Everything listens on the lab's management bridge address (where the nodes reach it) or on loopback / a
unix socket; every pid goes into the lab's state before anything can fail, so `steth lab down` stops it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from steth.lab import neutron_conf, neutron_venv
from steth.lab.shell import LabError, sh
from steth.lab.state import lab_name, save_state

MARIADB_PORT = 3306
RABBIT_PORT = 5672
NEUTRON_PORT = 9696
RABBIT_USER = RABBIT_PASSWORD = "guest"  # RabbitMQ's default user; loopback_users = none lets nodes use it


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def spawn(state: dict, key: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A daemon in a session of its own, its pid in the state at once (fleet.down stops every pid there)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {}), "STETH_LAB_PROCESS": lab_name()},
            start_new_session=True,
        )
    state["pids"][key] = proc.pid
    save_state(state)
    return proc


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise LabError(f"{what}: the process exited {proc.returncode}" + (f": see {log}" if log else ""))
        time.sleep(0.1)
    raise LabError(f"{what}: not ready after {timeout:.0f} s" + (f": see {log}" if log else ""))


# --- MariaDB ---------------------------------------------------------------------------------------


def mariadb(state: dict, base: Path, host: str) -> str:
    """mysqld with its data under base; returns neutron's [database] connection (through the unix socket)."""
    if not shutil.which("mariadb-install-db"):
        raise LabError("mariadb-install-db not found: install mariadb-server (scripts/setup.sh)")
    data, sock = base / "data", base / "mysqld.sock"
    base.mkdir(parents=True, exist_ok=True)
    sh(
        "mariadb-install-db",
        "--no-defaults",
        f"--datadir={data}",
        "--user=root",
        "--auth-root-authentication-method=normal",
    )
    log = base / "mysqld.log"
    proc = spawn(
        state,
        "mysqld",
        [
            "mysqld",
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--pid-file={base / 'mysqld.pid'}",
            f"--bind-address={host}",
            f"--port={MARIADB_PORT}",
            "--user=root",
            f"--log-error={log}",
            "--skip-log-bin",
        ],
        base / "mysqld.out",
    )
    wait_for(sock.exists, 30, "MariaDB", proc, log)
    wait_for(
        lambda: sh("mariadb", f"--socket={sock}", "-uroot", "-e", "SELECT 1", check=False).returncode == 0,
        30,
        "MariaDB",
        proc,
        log,
    )
    sh("mariadb", f"--socket={sock}", "-uroot", "-e", "CREATE DATABASE IF NOT EXISTS neutron")
    state["neutron"]["mariadb"] = {"socket": str(sock), "address": f"{host}:{MARIADB_PORT}"}
    save_state(state)
    return f"mysql+pymysql://root@localhost/neutron?unix_socket={sock}"


# --- RabbitMQ --------------------------------------------------------------------------------------

RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the /usr/sbin wrapper switches user (LAB-NOTES)


def rabbitmq(state: dict, base: Path, host: str):
    """RabbitMQ listening on the management address only; its Erlang distribution and epmd on loopback, on
    ports of their own so that several labs (and their epmds) do not meet. Returns the transport_url and a
    function that waits until the broker listens (it boots in about 6 s: the lab does other work meanwhile)."""
    if not Path(RABBIT_SERVER).exists():
        raise LabError(f"{RABBIT_SERVER} not found: install rabbitmq-server (scripts/setup.sh)")
    base.mkdir(parents=True, exist_ok=True)
    epmd_port, dist_port = free_port(), free_port()
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.1 = {host}:{RABBIT_PORT}\nloopback_users = none\n"
        f"log.file = {base / 'rabbit.log'}\nlog.console = false\n"
    )
    # The distribution port binds 0.0.0.0 unless told otherwise (LAB-NOTES).
    (base / "advanced.config").write_text("[{kernel,[{inet_dist_use_interface,{127,0,0,1}}]}].\n")
    (base / "enabled_plugins").write_text("[].\n")
    env = {
        "HOME": str(base),  # the Erlang cookie
        "RABBITMQ_NODENAME": f"steth{lab_name()}@localhost",
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    # Our own epmd first: Erlang would otherwise start one that outlives the lab.
    spawn(state, "epmd", ["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"], base / "epmd.out", env)
    wait_for(lambda: _listening("127.0.0.1", epmd_port), 10, "epmd")
    log = base / "rabbitmq.out"
    proc = spawn(state, "rabbitmq", [RABBIT_SERVER], log, env)
    state["neutron"]["rabbitmq"] = {"address": f"{host}:{RABBIT_PORT}", "epmd_port": epmd_port, "dist_port": dist_port}
    save_state(state)
    url = f"rabbit://{RABBIT_USER}:{RABBIT_PASSWORD}@{host}:{RABBIT_PORT}/"
    return url, lambda: wait_for(lambda: _listening(host, RABBIT_PORT), 60, "RabbitMQ", proc, log)


# --- Neutron server ----------------------------------------------------------------------------------


def venv_env() -> dict[str, str]:
    """Neutron's commands find their helpers (privsep-helper, neutron-rootwrap) on PATH."""
    return {"PATH": f"{neutron_venv.venv_dir() / 'bin'}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}


def api_paste(base: Path) -> Path:
    """api-paste.ini as the package ships it (<venv>/etc/neutron/api-paste.ini)."""
    shipped = neutron_venv.venv_dir() / "etc" / "neutron" / "api-paste.ini"
    if not shipped.exists():
        raise LabError(f"{shipped} not found: the Neutron venv is incomplete")
    target = base / "api-paste.ini"
    shutil.copyfile(shipped, target)
    return target


def migrate(base: Path, configs: list[Path]) -> None:
    argv = [neutron_venv.binary("neutron-db-manage")]
    for c in configs:
        argv += ["--config-file", str(c)]
    done = subprocess.run([*argv, "upgrade", "heads"], capture_output=True, text=True, env={**os.environ, **venv_env()})
    (base / "db-manage.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise LabError(f"neutron-db-manage upgrade heads failed: see {base / 'db-manage.log'}")


def api(state: dict, base: Path, host: str, configs: list[Path]) -> str:
    """The API: uWSGI serving neutron.wsgi.api:application (29.x has no neutron-server command)."""
    log = base / "neutron-api.uwsgi.log"
    argv = [
        neutron_venv.binary("uwsgi"),
        "--http-socket",
        f"{host}:{NEUTRON_PORT}",
        "--module",
        "neutron.wsgi.api:application",
        "--virtualenv",
        str(neutron_venv.venv_dir()),
        "--master",
        "--processes",
        "1",
        "--threads",
        "2",
        "--enable-threads",
        "--lazy-apps",
        "--die-on-term",
        "--buffer-size",
        "65535",
        "--add-header",
        "Connection: close",
    ]
    # neutron/server/__init__.py _get_config_files reads OS_NEUTRON_CONFIG_FILES (';'-separated) when run by a WSGI server.
    env = {**venv_env(), "OS_NEUTRON_CONFIG_FILES": ";".join(str(c) for c in configs)}
    proc = spawn(state, "neutron-api", argv, log, env)
    url = f"http://{host}:{NEUTRON_PORT}"
    wait_for(lambda: _http_ok(f"{url}/v2.0/networks"), 120, "the Neutron API", proc, base / "neutron-api.log")
    return url


def rpc_server(state: dict, base: Path, configs: list[Path]) -> None:
    argv = [neutron_venv.binary("neutron-rpc-server")]
    for c in configs:
        argv += ["--config-file", str(c)]
    argv += ["--log-file", str(base / "neutron-rpc-server.log")]  # the API logs to neutron.conf's log_file
    spawn(state, "neutron-rpc-server", argv, base / "neutron-rpc-server.out", venv_env())


def _http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_backends(state: dict[str, Any], base: Path, host: str, progress) -> dict[str, str]:
    """MariaDB and RabbitMQ (booting side by side); returns the database connection and the transport_url."""
    progress("starting RabbitMQ and MariaDB")
    transport_url, rabbit_ready = rabbitmq(state, base / "rabbitmq", host)
    database = mariadb(state, base / "mariadb", host)
    rabbit_ready()
    return {"database": database, "transport_url": transport_url}


def start_server(
    state: dict[str, Any],
    base: Path,
    host: str,
    backends: dict[str, str],
    dhcp_agents_per_network: int,
    progress,
    l3_ha: bool = False,
) -> str:
    """The schema, neutron-rpc-server and the API; returns the API's URL once it answers."""
    server = base / "server"
    server.mkdir(parents=True, exist_ok=True)
    common = neutron_conf.common(
        host="controller",
        state_path=server,
        transport_url=backends["transport_url"],
        dhcp_agents_per_network=dhcp_agents_per_network,
        log_file=server / "neutron-server.log",
        l3_ha=l3_ha,
    )
    extra = neutron_conf.server_sections(
        bind_host=host, bind_port=NEUTRON_PORT, database=backends["database"], api_paste=api_paste(server)
    )
    conf = neutron_conf.neutron_conf(server / "neutron.conf", common, extra)
    ml2 = neutron_conf.ml2_conf(server / "ml2_conf.ini")
    progress("migrating Neutron's database (neutron-db-manage upgrade heads)")
    migrate(server, [conf, ml2])
    progress("starting neutron-rpc-server and the Neutron API (uWSGI)")
    rpc_server(state, server, [conf, ml2])
    url = api(state, server, host, [conf, ml2])
    state["neutron"].update(url=url, transport_url=backends["transport_url"], server_dir=str(server))
    save_state(state)
    return url
