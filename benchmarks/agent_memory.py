"""Agent memory: resident set of an idle real agent (`python -m steth.agent.main run`) after it is in
presence and has answered a few requests, next to bare Python baselines.

Each agent runs as its own process against a private nats-server, with a default config (and once more
with the Prometheus endpoint on, as deployed). It must show up in presence, answer 5 `hello` requests and
one `ping` of 127.0.0.1 (a real tool run), then idle for a few seconds; then VmRSS, VmHWM (peak) and
RssAnon are read from /proc/<pid>/status.

    python benchmarks/agent_memory.py                # writes results/agent_memory.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import NatsServer, machine, proc_status_kb, write_result  # noqa: E402

TARGET_MB = 60.0
FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
BASELINES = {
    "python -c (sleep)": "import time; time.sleep(60)",
    # The libraries every agent loads, without any steth code: the floor for a Python agent on NATS.
    "python + nats/pydantic/msgpack/click": "import asyncio, nats, pydantic, msgpack, click, time; time.sleep(60)",
}


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def read_memory(pid: int) -> dict[str, float]:
    return {f"{f}_mb": _mb(proc_status_kb(pid, f)) for f in FIELDS}


def baseline(code: str, settle_s: float = 1.0) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(settle_s)
        return read_memory(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def exercise(url: str, node: str, hellos: int = 5) -> dict:
    """Wait for the agent in presence, then send it requests and check every answer."""
    from steth.controller.gather import gather
    from steth.natsconn import NatsOptions, connect
    from steth.presence import read_presence
    from steth.schemas import subjects
    from steth.schemas.envelope import Request

    nc = await connect(NatsOptions(servers=[url], name="bench-memory"))
    try:
        t0 = time.monotonic()
        while node not in (await read_presence(nc, timeout=2) or {}):
            if time.monotonic() - t0 > 30:
                raise RuntimeError(f"agent {node} not in presence after 30 s")
            await asyncio.sleep(0.2)
        present_after = time.monotonic() - t0
        statuses = []
        for probe, args in [("hello", {})] * hellos + [("ping", {"targets": ["127.0.0.1"], "count": 2})]:
            deadline = time.time() + 5
            g = await gather(
                nc,
                [(subjects.req_node(node, probe), Request(probe=probe, args=args, deadline=deadline))],
                deadline,
                {node},
            )
            statuses.append(f"{probe}:{g.nodes[0].status.value}")
        return {"present_after_s": round(present_after, 2), "replies": statuses}
    finally:
        await nc.close()


def measure_agent(url: str, directory: Path, name: str, metrics: bool, idle_s: float) -> dict:
    config = directory / f"{name}.toml"
    text = (
        "insecure = true  # its own open nats-server\n"
        + f'node = "{name}"\nroles = ["compute"]\n[nats]\nservers = ["{url}"]\n'
    )
    if metrics:
        text += f'[metrics]\nlisten = "127.0.0.1:{free_port()}"\n'
    config.write_text(text)
    log = open(directory / f"{name}.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}  # only our file configures it
    proc = subprocess.Popen(
        [sys.executable, "-m", "steth.agent.main", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    try:
        started = time.monotonic()
        info = asyncio.run(exercise(url, name))
        bad = [r for r in info["replies"] if not r.endswith(":ok")]
        if bad:
            # ping may be refused where ICMP sockets are not allowed: say so, do not hide it
            print(f"  {name}: not ok: {bad}", file=sys.stderr)
        time.sleep(idle_s)
        mem = read_memory(proc.pid)
        mem.update(info, metrics_endpoint=metrics, uptime_s=round(time.monotonic() - started, 1))
        return mem
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="agents started per configuration")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds idle after the requests, before reading")
    ap.add_argument("--output", default="agent_memory", help="results/<name>.json ('-' for none)")
    args = ap.parse_args()

    doc: dict = {"benchmark": "agent_memory", "machine": machine(), "baselines": {}, "agents": {}}
    for label, code in BASELINES.items():
        doc["baselines"][label] = baseline(code)
    with tempfile.TemporaryDirectory(prefix="steth-bench-mem-") as tmp, NatsServer(Path(tmp)) as server:
        for metrics in (False, True):
            label = "agent (metrics endpoint on)" if metrics else "agent (default config)"
            runs = [
                measure_agent(server.url, Path(tmp), f"mem-{int(metrics)}-{i}", metrics, args.idle)
                for i in range(args.repeat)
            ]
            doc["agents"][label] = {
                "runs": runs,
                **{
                    f"median_{k}": statistics.median(r[k] for r in runs) for k in ("VmRSS_mb", "VmHWM_mb", "RssAnon_mb")
                },
                "max_VmHWM_mb": max(r["VmHWM_mb"] for r in runs),
            }
    worst = max(a["max_VmHWM_mb"] for a in doc["agents"].values())
    doc["target"] = {
        "max_mb": TARGET_MB,
        "measure": "VmHWM (peak RSS), worst run",
        "worst_mb": worst,
        "met": worst <= TARGET_MB,
    }

    print(f"{'process':<38} {'VmRSS':>8} {'VmHWM':>8} {'RssAnon':>8}")
    for label, m in doc["baselines"].items():
        print(f"{label:<38} {m['VmRSS_mb']:6.1f}MB {m['VmHWM_mb']:6.1f}MB {m['RssAnon_mb']:6.1f}MB")
    for label, a in doc["agents"].items():
        print(
            f"{label:<38} {a['median_VmRSS_mb']:6.1f}MB {a['median_VmHWM_mb']:6.1f}MB {a['median_RssAnon_mb']:6.1f}MB"
            f"   (median of {len(a['runs'])}; replies {a['runs'][0]['replies'][-1]}, ...)"
        )
    print(f"target: idle agent <= {TARGET_MB:g} MB (peak): {'MET' if doc['target']['met'] else 'MISSED'} ({worst} MB)")
    if args.output != "-":
        print(f"wrote {write_result(args.output, doc)}", file=sys.stderr)


if __name__ == "__main__":
    main()
