"""Fan-out: N agents answer the no-op `hello` probe; time from publish to the last reply gathered.

steth side: N instances of the real agent runtime (steth.agent.runtime.AgentRuntime), spread over a few
worker processes that share one NATS connection each, gathered by the real controller gather
(steth.controller.gather.gather with the expected set: it returns as soon as all N replies are in,
and the time includes decoding and validating every reply).

Bare side, in the same run, against the same nats-server and worker processes: N plain nats-py
responders with the same three subscriptions per responder, each replying a small msgpack map; the
requester publishes once on its own inbox and counts replies up to N.

Rounds alternate steth/bare (and which goes first) so that both see the same machine state.

    python benchmarks/fanout.py                     # N = 100, 1000, 5000; writes results/fanout.json
    python benchmarks/fanout.py --sizes 1000 --rounds 5 --profile-dir /tmp/prof --only steth
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import NatsServer, cpu_seconds, machine, summarize, write_result  # noqa: E402

BARE_PREFIX = "bench.bare"
ROLE = "compute"
DEADLINE_S = 10.0
DEFAULT_ROUNDS = {100: 15, 1000: 11, 5000: 7}
TARGET_N, TARGET_S, TARGET_RATIO = 1000, 0.5, 2.0


# --- worker process: N/W real agents and N/W bare responders --------------------------------


async def _worker(url: str, names: list[str], index: int, profile_dir: str | None) -> None:
    import msgpack
    import nats

    from steth.agent.config import AgentConfig, NatsConfig
    from steth.agent.runtime import AgentRuntime
    from steth.natsconn import NatsOptions, connect

    started = time.monotonic()
    nc = await connect(NatsOptions(servers=[url], name=f"bench-agents-{index}"), persistent=True)
    runtimes = [
        AgentRuntime(
            AgentConfig(node=name, roles=[ROLE], heartbeat_s=300, presence_ttl_s=3600, nats=NatsConfig(servers=[url])),
            nc=nc,
            gather_interfaces=False,
        )
        for name in names
    ]
    await runtimes[0].start()  # the first one may create the presence bucket
    for i in range(1, len(runtimes), 200):
        await asyncio.gather(*(rt.start() for rt in runtimes[i : i + 200]))
    await nc.flush()

    bare = await nats.connect(url, name=f"bench-bare-{index}")

    def responder(node: str):
        async def on_request(msg) -> None:
            await bare.publish(msg.reply, msgpack.packb({"node": node, "status": "ok"}))

        return on_request

    for name in names:
        cb = responder(name)
        for pattern in (
            f"{BARE_PREFIX}.req.all.*",
            f"{BARE_PREFIX}.req.node.{name}.*",
            f"{BARE_PREFIX}.req.role.{ROLE}.*",
        ):
            await bare.subscribe(pattern, cb=cb)
    await bare.flush()

    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    print(json.dumps({"ready": True, "agents": len(runtimes), "start_s": time.monotonic() - started}), flush=True)
    # Run until the parent closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(os.path.join(profile_dir, f"worker-{index}.prof"))
    await bare.close()
    await nc.close()


# --- controller side -----------------------------------------------------------------------


async def steth_round(nc, expected: set[str]) -> tuple[float, dict]:
    from steth.controller.gather import gather
    from steth.schemas import subjects
    from steth.schemas.envelope import Request

    t0 = time.perf_counter()
    deadline = time.time() + DEADLINE_S
    request = Request(probe="hello", deadline=deadline, sender="bench@localhost")
    gathered = await gather(nc, [(subjects.req_all("hello"), request)], deadline, expected)
    elapsed = time.perf_counter() - t0
    return elapsed, gathered.summary()


async def bare_round(nc, n: int) -> tuple[float, dict]:
    import msgpack

    t0 = time.perf_counter()
    count = 0
    everyone = asyncio.Event()

    async def on_reply(msg) -> None:
        nonlocal count
        count += 1
        if count >= n:
            everyone.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        await nc.publish(f"{BARE_PREFIX}.req.all.hello", msgpack.packb({"probe": "hello"}), reply=inbox)
        await nc.flush()
        try:
            await asyncio.wait_for(everyone.wait(), timeout=DEADLINE_S)
        except TimeoutError:
            pass
    finally:
        await sub.unsubscribe()
    return time.perf_counter() - t0, {"expected": n, "replied": count}


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


async def measure(
    url: str, names: list[str], worker_pids: list[int], nats_pid: int, rounds: int, warmup: int, only: str | None
) -> dict:
    from steth.natsconn import NatsOptions, connect
    from steth.presence import read_presence

    n = len(names)
    expected = set(names)
    nc = await connect(NatsOptions(servers=[url], name="bench-controller"))
    try:
        # Every agent must be in presence (the controller's expected set comes from there in real use);
        # the time of one full presence read is reported as well.
        for attempt in range(1, 11):
            t0 = time.perf_counter()
            present = await read_presence(nc, timeout=60)
            presence_s = time.perf_counter() - t0
            missing = expected - set(present or {})
            if not missing:
                break
            print(
                f"  presence read {attempt}: {'no bucket' if present is None else len(present)} entries, "
                f"{len(missing)} agents missing; retrying",
                file=sys.stderr,
            )
            await asyncio.sleep(1)
        else:
            raise RuntimeError(f"{len(missing)} agents not in presence, e.g. {sorted(missing)[:3]}")

        sides = {"steth": [], "bare": []}
        cpu = {
            "steth": {"workers": [], "nats_server": [], "controller": []},
            "bare": {"workers": [], "nats_server": [], "controller": []},
        }
        incomplete = {"steth": 0, "bare": 0}
        for r in range(warmup + rounds):
            order = ["steth", "bare"] if r % 2 == 0 else ["bare", "steth"]
            for side in order:
                if only and side != only:
                    continue
                await asyncio.sleep(0.2)  # let the previous round's stragglers settle
                w0, s0, c0 = _cpu(worker_pids), cpu_seconds(nats_pid), time.process_time()
                if side == "steth":
                    elapsed, summary = await steth_round(nc, expected)
                    complete = summary["ok"] == n and summary["replied"] == n
                else:
                    elapsed, summary = await bare_round(nc, n)
                    complete = summary["replied"] == n
                w1, s1, c1 = _cpu(worker_pids), cpu_seconds(nats_pid), time.process_time()
                if r < warmup:
                    continue
                if not complete:
                    incomplete[side] += 1
                    print(f"  {side}: incomplete round: {summary}", file=sys.stderr)
                sides[side].append(elapsed)
                cpu[side]["workers"].append(w1 - w0)
                cpu[side]["nats_server"].append(s1 - s0)
                cpu[side]["controller"].append(c1 - c0)
                print(f"  N={n} round {r - warmup + 1}/{rounds} {side:5s} {elapsed * 1000:8.1f} ms", file=sys.stderr)
    finally:
        await nc.close()

    out: dict = {
        "agents": n,
        "workers": len(worker_pids),
        "rounds": rounds,
        "warmup_rounds": warmup,
        "presence_read_s": round(presence_s, 4),
        "presence_entries": len(present or {}),
    }
    for side in ("steth", "bare"):
        if not sides[side]:
            continue
        out[side] = summarize(sides[side])
        out[side]["incomplete_rounds"] = incomplete[side]
        # CPU per reply, averaged over all rounds (/proc ticks are 10 ms: one round alone is too coarse).
        out[side]["cpu_per_reply_us"] = {k: round(sum(v) / len(v) / n * 1e6, 1) for k, v in cpu[side].items()}
    if "steth" in out and "bare" in out:
        out["ratio_median"] = round(out["steth"]["median_s"] / out["bare"]["median_s"], 2)
        out["ratio_p90"] = round(out["steth"]["p90_s"] / out["bare"]["p90_s"], 2)
        # steth/bare within each round (the two ran back to back): less sensitive to other work on the machine
        out["ratio_paired_median"] = round(statistics.median(a / b for a, b in zip(sides["steth"], sides["bare"])), 2)
    return out


def run_size(n: int, workers: int, rounds: int, warmup: int, only: str | None, profile_dir: str | None) -> dict:
    names = [f"node-{n}-{i:05d}" for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="steth-bench-fanout-") as tmp, NatsServer(Path(tmp)) as server:
        procs: list[subprocess.Popen] = []
        try:
            per = [names[i::workers] for i in range(workers)]
            for index, chunk in enumerate(per):
                argv = [sys.executable, __file__, "--worker", "--url", server.url, "--index", str(index)]
                if profile_dir:
                    argv += ["--profile-dir", profile_dir]
                procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
                procs[-1].stdin.write("\n".join(chunk) + "\n\n")  # names, then a blank line
                procs[-1].stdin.flush()
            t0 = time.monotonic()
            starts = []
            for proc in procs:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"worker {proc.pid} exited before it was ready")
                starts.append(json.loads(line)["start_s"])
            print(f"N={n}: {n} agents + {n} bare responders ready in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            result = asyncio.run(
                measure(server.url, names, [p.pid for p in procs], server.proc.pid, rounds, warmup, only)
            )
            result["agents_start_s"] = round(max(starts), 2)
            result["loadavg_1m_after"] = float(Path("/proc/loadavg").read_text().split()[0])
            return result
        finally:
            for proc in procs:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000,5000", help="comma-separated agent counts")
    ap.add_argument("--workers", type=int, default=4, help="worker processes hosting the agents")
    ap.add_argument("--rounds", type=int, default=None, help="measured rounds per side (default by size)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", choices=["steth", "bare"], help="measure one side only (profiling)")
    ap.add_argument("--profile-dir", help="write cProfile stats of each worker here")
    ap.add_argument("--output", default="fanout", help="results/<name>.json ('-' for none)")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        names = []
        for line in sys.stdin:
            if not line.strip():
                break
            names.append(line.strip())
        asyncio.run(_worker(args.url, names, args.index, args.profile_dir))
        return

    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    doc = {"benchmark": "fanout", "machine": machine(), "deadline_s": DEADLINE_S, "sizes": []}
    for n in sizes:
        rounds = args.rounds or DEFAULT_ROUNDS.get(n, 7)
        doc["sizes"].append(run_size(n, args.workers, rounds, args.warmup, args.only, args.profile_dir))
    at_target = next((s for s in doc["sizes"] if s["agents"] == TARGET_N and "steth" in s and "bare" in s), None)
    if at_target:
        st = at_target["steth"]
        doc["target"] = {
            "agents": TARGET_N,
            "time": {
                "max_s": TARGET_S,
                "median_s": st["median_s"],
                "p90_s": st["p90_s"],
                "met": st["p90_s"] <= TARGET_S,
            },
            "ratio": {
                "max": TARGET_RATIO,
                "median": at_target["ratio_median"],
                "paired_median": at_target["ratio_paired_median"],
                "met": at_target["ratio_median"] <= TARGET_RATIO,
            },
        }
    print_table(doc)
    if args.output != "-":
        print(f"wrote {write_result(args.output, doc)}", file=sys.stderr)


def print_table(doc: dict) -> None:
    print(
        f"{'agents':>7} {'steth med':>10} {'steth p90':>10} {'bare med':>9} {'bare p90':>9} {'ratio':>6} {'paired':>6}  CPU us/reply workers+controller: steth / bare"
    )
    for s in doc["sizes"]:
        st, ba = s.get("steth"), s.get("bare")
        f = lambda d, k: f"{d[k] * 1000:8.1f}ms" if d else "         -"  # noqa: E731
        ratio = f"{s['ratio_median']:6.2f} {s['ratio_paired_median']:6.2f}" if "ratio_median" in s else "     -      -"
        cpu = " / ".join(
            f"{d['cpu_per_reply_us']['workers']:.1f}+{d['cpu_per_reply_us']['controller']:.1f}" if d else "-"
            for d in (st, ba)
        )
        print(
            f"{s['agents']:>7} {f(st, 'median_s'):>10} {f(st, 'p90_s'):>10} {f(ba, 'median_s'):>9} {f(ba, 'p90_s'):>9} {ratio}  {cpu}"
        )
    if "target" in doc:
        t = doc["target"]
        verdict = lambda ok: "MET" if ok else "MISSED"  # noqa: E731
        print(
            f"target: {t['agents']} agents gathered <= {t['time']['max_s']} s (p90): {verdict(t['time']['met'])} "
            f"({t['time']['p90_s']:.3f} s); <= {t['ratio']['max']}x bare: {verdict(t['ratio']['met'])} "
            f"({t['ratio']['median']}x, paired {t['ratio']['paired_median']}x)"
        )


if __name__ == "__main__":
    main()
