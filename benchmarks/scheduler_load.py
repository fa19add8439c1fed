"""Scheduler load: one agent pinging 100 peers every 10 s, next to the same agent idle, in one run.

Two real `steth-agent run` processes in one network namespace, with the same config except that the
busy one has a [[schedule]] pinging 100 addresses every interval (5 echo requests each, 0.2 s apart,
through the real ping probe: 100 iputils ping processes per run). The 100 peers are 100 addresses on
the far end of a veth in a second namespace, so every echo is answered by a real kernel. NATS
(JetStream) runs in the agents' namespace; both agents serve /metrics, which this script scrapes every
15 s as Prometheus would. After a warm-up, CPU (user+system of the agent process, and with its reaped
children, the ping processes, added) and resident memory are read from /proc over the same window.

    python benchmarks/scheduler_load.py                      # 100 peers, 10 s, 180 s window
    python benchmarks/scheduler_load.py --peers 200 --window 60

Needs root (namespaces). Target: the busy agent under 3 % of one core and under 80 MB resident.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, nats_server_binary, proc_status_kb, write_result  # noqa: E402

TARGET_CPU_PCT, TARGET_RSS_MB = 3.0, 80.0


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def cpu_times(pid: int) -> tuple[float, float]:
    """(own user+system, reaped children's user+system) in seconds, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def scrape(address: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in (
                "steth_schedule_runs_total",
                "steth_schedule_successes_total",
                "steth_ping_sent_total",
                "steth_ping_received_total",
            ):
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


class Setup:
    """Namespaces <prefix>a (agents, NATS) and <prefix>p (peers), joined by one veth pair."""

    def __init__(self, prefix: str, cidr: str, peers: int):
        self.agent_ns, self.peer_ns = f"{prefix}a", f"{prefix}p"
        self.net = ipaddress.ip_network(cidr)
        self.peers = [str(self.net[10 + i]) for i in range(peers)]
        if 10 + peers >= self.net.num_addresses - 1:
            raise SystemExit(f"{cidr} is too small for {peers} peers")

    def up(self) -> None:
        self.down()
        for ns in (self.agent_ns, self.peer_ns):
            sh("ip", "netns", "add", ns)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        sh(
            "ip",
            "link",
            "add",
            "benchv0",
            "netns",
            self.agent_ns,
            "type",
            "veth",
            "peer",
            "name",
            "benchv1",
            "netns",
            self.peer_ns,
        )
        sh(
            "ip",
            "netns",
            "exec",
            self.agent_ns,
            "ip",
            "addr",
            "add",
            f"{self.net[1]}/{self.net.prefixlen}",
            "dev",
            "benchv0",
        )
        sh("ip", "netns", "exec", self.agent_ns, "ip", "link", "set", "benchv0", "up")
        batch = "".join(f"address add {a}/{self.net.prefixlen} dev benchv1\n" for a in self.peers)
        subprocess.run(["ip", "netns", "exec", self.peer_ns, "ip", "-batch", "-"], input=batch, text=True, check=True)
        sh("ip", "netns", "exec", self.peer_ns, "ip", "link", "set", "benchv1", "up")

    def down(self) -> None:
        for ns in (self.agent_ns, self.peer_ns):
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sh("ip", "netns", "del", ns, check=False)

    def spawn(self, argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.agent_ns, *argv],
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def agent_config(
    directory: Path, name: str, nats_url: str, metrics: str, targets: list[str] | None, interval_s: float
) -> Path:
    path = directory / f"{name}.toml"
    text = (
        f"insecure = true  # its own open nats-server\n"
        f'node = "{name}"\nroles = ["compute"]\nheartbeat_s = 5\npresence_ttl_s = 15\nlog_level = "warning"\n'
        f'[nats]\nservers = ["{nats_url}"]\n[metrics]\nlisten = "{metrics}"\n'
    )
    if targets:
        text += (
            f'[[schedule]]\nname = "peers"\nprobe = "ping"\ninterval_s = {interval_s}\n'
            f"targets = {json.dumps(targets)}\nparams = {{ count = 5, interval_s = 0.2 }}\n"
        )
    path.write_text(text)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=100)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between runs of the schedule")
    ap.add_argument("--warmup", type=float, default=25.0)
    ap.add_argument("--window", type=float, default=180.0, help="seconds measured")
    ap.add_argument("--prefix", default="stbl", help="namespace name prefix")
    ap.add_argument("--cidr", default="10.76.0.0/24")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: network namespaces")

    setup = Setup(args.prefix, args.cidr, args.peers)
    setup.up()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="steth-bench-") as tmp:
        d = Path(tmp)
        try:
            nats = setup.spawn(
                [nats_server_binary(), "-a", "127.0.0.1", "-p", "14222", "-js", "-sd", str(d / "js")], d / "nats.log"
            )
            procs.append(nats)
            time.sleep(1.0)
            url = "nats://127.0.0.1:14222"
            env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
            agents = {}
            for name, port, targets in (("idle", 19301, None), ("busy", 19302, setup.peers)):
                cfg = agent_config(d, name, url, f"127.0.0.1:{port}", targets, args.interval)
                proc = setup.spawn(
                    [sys.executable, "-m", "steth.agent.main", "run", "--config", str(cfg)], d / f"{name}.log", env
                )
                procs.append(proc)
                agents[name] = {"proc": proc, "metrics": f"127.0.0.1:{port}"}

            def scrape_in_ns(address: str) -> dict[str, float]:
                # /metrics lives in the agents' namespace: read it from there.
                here = str(Path(__file__).resolve().parent)
                code = (
                    f"import sys, json; sys.path.insert(0, {here!r}); from scheduler_load import scrape; "
                    f"print(json.dumps(scrape({address!r})))"
                )
                done = sh("ip", "netns", "exec", setup.agent_ns, sys.executable, "-c", code)
                return json.loads(done.stdout)

            print(f"warming up {args.warmup:.0f} s ({args.peers} peers every {args.interval:g} s)...", file=sys.stderr)
            time.sleep(args.warmup)
            for a in agents.values():
                if a["proc"].poll() is not None:
                    raise SystemExit(f"an agent exited: see {d}")
            start = {
                n: (time.monotonic(), cpu_times(a["proc"].pid), scrape_in_ns(a["metrics"])) for n, a in agents.items()
            }
            end_at = time.monotonic() + args.window
            while time.monotonic() < end_at:  # scrape every 15 s, as Prometheus would
                time.sleep(min(15.0, max(0.0, end_at - time.monotonic())))
                for a in agents.values():
                    scrape_in_ns(a["metrics"])
            results = {}
            for name, a in agents.items():
                t0, (own0, kids0), m0 = start[name]
                own1, kids1 = cpu_times(a["proc"].pid)
                m1 = scrape_in_ns(a["metrics"])
                wall = time.monotonic() - t0
                results[name] = {
                    "wall_s": round(wall, 1),
                    "cpu_pct_one_core": round(100 * (own1 - own0) / wall, 2),
                    "cpu_pct_with_ping_children": round(100 * ((own1 - own0) + (kids1 - kids0)) / wall, 2),
                    "rss_mb": round(proc_status_kb(a["proc"].pid, "VmRSS") / 1024, 1),
                    "peak_rss_mb": round(proc_status_kb(a["proc"].pid, "VmHWM") / 1024, 1),
                    "runs": int(m1.get("steth_schedule_runs_total", 0) - m0.get("steth_schedule_runs_total", 0)),
                    "successful_runs": int(
                        m1.get("steth_schedule_successes_total", 0) - m0.get("steth_schedule_successes_total", 0)
                    ),
                    "echo_sent": int(m1.get("steth_ping_sent_total", 0) - m0.get("steth_ping_sent_total", 0)),
                    "echo_received": int(
                        m1.get("steth_ping_received_total", 0) - m0.get("steth_ping_received_total", 0)
                    ),
                }
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
            setup.down()

    busy = results["busy"]
    doc = {
        "benchmark": "scheduler_load",
        "params": {
            "peers": args.peers,
            "interval_s": args.interval,
            "count": 5,
            "packet_interval_s": 0.2,
            "warmup_s": args.warmup,
            "window_s": args.window,
        },
        "targets": {"cpu_pct_one_core": TARGET_CPU_PCT, "rss_mb": TARGET_RSS_MB},
        "results": results,
        "meets_targets": busy["cpu_pct_one_core"] < TARGET_CPU_PCT and busy["rss_mb"] < TARGET_RSS_MB,
        "machine": machine(),
    }
    path = write_result("scheduler_load", doc)
    print(
        f"{'agent':6} {'CPU % (agent)':>14} {'CPU % (+ping)':>14} {'RSS MB':>7} {'peak MB':>8} {'runs':>5} {'ok':>4} {'echo sent/recv':>15}"
    )
    for name in ("idle", "busy"):
        r = results[name]
        print(
            f"{name:6} {r['cpu_pct_one_core']:>14.2f} {r['cpu_pct_with_ping_children']:>14.2f} {r['rss_mb']:>7.1f} "
            f"{r['peak_rss_mb']:>8.1f} {r['runs']:>5} {r['successful_runs']:>4} {r['echo_sent']:>7}/{r['echo_received']}"
        )
    print(
        f"targets: busy agent < {TARGET_CPU_PCT} % of one core and < {TARGET_RSS_MB:g} MB: "
        f"{'met' if doc['meets_targets'] else 'NOT met'}; wrote {path}"
    )


if __name__ == "__main__":
    main()
