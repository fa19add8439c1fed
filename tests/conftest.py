"""Shared fixtures: a real local fleet (its own lab name and addresses, so it never touches a demo lab)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (network namespaces)")

# Parallel sessions on one machine pick their own name and subnets with these variables.
TEST_LAB = os.environ.get("STETH_TEST_LAB_NAME", "stt")
TEST_MGMT = os.environ.get("STETH_TEST_MGMT_CIDR", "10.97.0.0/24")
TEST_DATA = os.environ.get("STETH_TEST_DATA_CIDR", "10.96.0.0/24")


_KERNEL_8021Q: list[bool] = []


def kernel_has_8021q() -> bool:
    """Whether this kernel makes 802.1Q subinterfaces: tried once, in a scratch namespace of its own (a veth
    and a VLAN on it), so nothing of a lab is touched; the namespace goes with everything in it."""
    if not _KERNEL_8021Q:
        if os.path.isdir("/proc/net/vlan"):
            _KERNEL_8021Q.append(True)
        else:
            ns = f"st8021q-{os.getpid()}"
            run = lambda *argv: subprocess.run(argv, capture_output=True, timeout=10).returncode == 0  # noqa: E731
            try:
                made = (
                    run("ip", "netns", "add", ns)
                    and run("ip", "-n", ns, "link", "add", "q0", "type", "veth", "peer", "name", "q1")
                    and run("ip", "-n", ns, "link", "add", "link", "q0", "name", "q0.7", "type", "vlan", "id", "7")
                )
            finally:
                run("ip", "netns", "del", ns)
            _KERNEL_8021Q.append(bool(made))
    return _KERNEL_8021Q[0]


@contextlib.contextmanager
def lab_named(name: str):
    """steth.lab reads STETH_LAB_NAME: switch to another lab for a block, then back."""
    before = os.environ.get("STETH_LAB_NAME")
    os.environ["STETH_LAB_NAME"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("STETH_LAB_NAME", None)
        else:
            os.environ["STETH_LAB_NAME"] = before


@dataclass
class Lab:
    state: dict
    name: str = TEST_LAB
    extra: list[subprocess.Popen] = field(default_factory=list)

    @property
    def nats_url(self) -> str:
        return self.state["nats_url"]

    @property
    def dir(self) -> Path:
        return Path(self.state["dir"])

    def node(self, name: str) -> dict:
        return next(n for n in self.state["nodes"] if n["name"] == name)

    def names(self, role: str | None = None) -> list[str]:
        return sorted(n["name"] for n in self.state["nodes"] if role is None or role in n["roles"])

    @property
    def secure(self) -> bool:
        from steth.lab.fleet import is_secure

        return is_secure(self.state)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a `steth` CLI against this lab. It names only the lab: the CLI finds the lab's
        NATS URL, and on a secure lab its CA, controller seed and signing key, in the lab's state (as an
        operator's `steth` does with no flags). A test that sets STETH_NATS_URL to a server of its own gets
        none of the lab's credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
        env.update(STETH_LAB_NAME=self.name, **extra)
        return env

    def nats_auth(self) -> dict[str, str]:
        """The controller's TLS CA and nkey seed on a secure lab ({} on an open one): NatsOptions(**auth),
        natsservers.presence(urls, **auth)."""
        if not self.secure:
            return {}
        sec = self.state["security"]
        return {"tls_ca": sec["ca"], "nkey_seed": sec["controller_seed"]}

    def nats_options(self, name: str = "steth-test", **kw):
        from steth.natsconn import NatsOptions

        return NatsOptions(servers=[self.nats_url], name=name, **{**self.nats_auth(), **kw})

    def signer(self):
        """The lab's controller signing key (None on an open lab): sign raw requests with it."""
        from steth.controller import signing

        return signing.load(self.state["security"]["signing_key"]) if self.secure else None

    def agent_security(self, name: str, roles: list[str], insecure: bool = False) -> tuple[str, str]:
        """(top-level lines, [nats] lines and [security] table) for an extra agent: a NATS identity of its
        own minted on the lab's server, or `insecure = true` when asked (a test's own open server)."""
        from steth.lab import fleet

        if insecure or not self.secure:
            return "insecure = true\n", ""
        with lab_named(self.name):
            fleet.add_identity(self.state, name, roles)
        return fleet.agent_security(self.state, name)

    def cli(self, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run the real `steth` CLI in a separate process against this lab."""
        return subprocess.run(
            [sys.executable, "-m", "steth.controller.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or self.env(),
        )

    def cli_json(self, *args: str, **kw) -> tuple[int, dict]:
        done = self.cli(*args, "-o", "json", **kw)
        try:
            return done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {done.returncode}): {done.stdout!r} {done.stderr!r}") from None

    def in_ns(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        ns = self.node(node)["namespace"]
        cmd = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
        return subprocess.run(cmd, capture_output=True, text=True, check=check)

    def spawn_agent(
        self,
        name: str,
        roles: list[str],
        netns: str | None = None,
        heartbeat_s: float = 1.0,
        insecure: bool | None = None,
        **settings: str,
    ) -> subprocess.Popen:
        """An extra agent for tests that stop or kill it (the lab's own agents stay untouched).

        On a secure lab it gets an identity of its own (TLS, its seed, the lab's key, signed requests).
        `insecure` (by default: when STETH_NATS_SERVERS points it at a test's own server) writes
        `insecure = true` and none of the lab's credentials: the test gives what it wants in `settings`."""
        if insecure is None:
            insecure = "STETH_NATS_SERVERS" in settings
        top, tables = self.agent_security(name, roles, insecure)
        config = self.dir / f"extra-{name}.toml"
        config.write_text(
            f'{top}node = "{name}"\nroles = {json.dumps(roles)}\nheartbeat_s = {heartbeat_s}\n'
            f'presence_ttl_s = {heartbeat_s * 3}\n[nats]\nservers = ["{self.nats_url}"]\n{tables}'
        )
        argv = [sys.executable, "-m", "steth.agent.main", "run", "--config", str(config)]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
        env.update(settings)
        log = open(self.dir / f"extra-{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.extra.append(proc)
        return proc

    def wait_present(self, names: set[str], timeout: float = 20, absent: bool = False) -> float:
        """Wait until all names are present (or all absent); returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            code, doc = self.cli_json("agents")
            present = {a["node"] for a in doc.get("agents", [])}
            if (absent and not (names & present)) or (not absent and names <= present):
                return time.monotonic() - started
            time.sleep(0.3)
        raise AssertionError(f"{'still present' if absent else 'not present'} after {timeout} s: {names}")

    def stop_extra(self) -> None:
        for proc in self.extra:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        self.extra.clear()


@pytest.fixture(scope="session", autouse=True)
def own_lab_names(request):
    """Only one test run at a time may use a lab name: every lab fixture tears down a leftover of its name
    before building it, which would destroy the lab of another run that is still using it (seen when two runs
    on one machine both used the default). Taken when the run has lab tests; the lock goes with this process,
    however it ends."""
    import fcntl

    if not any(item.get_closest_marker("lab") for item in request.session.items):
        yield
        return
    lock_dir = Path("/run/lock" if ROOT else "/tmp")
    handle = open(lock_dir / f"steth-test-{TEST_LAB}.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pytest.exit(
            f"another test run (pid {handle.read().strip() or '?'}) uses the lab name {TEST_LAB!r}: set "
            "STETH_TEST_LAB_NAME and the STETH_TEST_*_CIDR variables to run beside it",
            returncode=4,
        )
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    yield
    handle.close()


@pytest.fixture(scope="session")
def lab():
    """compute-1, compute-2 and network-1 with a real nats-server; torn down at the end."""
    os.environ["STETH_LAB_NAME"] = TEST_LAB
    from steth.lab import fleet

    fleet.down()
    state = fleet.up(compute=2, network=1, mgmt_cidr=TEST_MGMT, data_cidr=TEST_DATA, heartbeat_s=1.0)
    the_lab = Lab(state)
    try:
        yield the_lab
    finally:
        the_lab.stop_extra()
        fleet.down()


@pytest.fixture
def extra_agents(lab):
    yield lab
    lab.stop_extra()
