"""CLI start-up: `steth --help` next to `python -c pass`, hyperfine-style (warm-up, then N timed runs).

The commands run interleaved (one of each per round) so that a busy moment on the machine hits all of
them alike. Times are wall-clock from fork to exit, output discarded.

    python benchmarks/cli_startup.py                 # N = 20; writes results/cli_startup.json
    python benchmarks/cli_startup.py --runs 50
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, summarize, write_result  # noqa: E402

BIN = Path(sys.executable).parent
TARGET_S = 0.25


def commands() -> dict[str, list[str]]:
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "steth --help": [str(BIN / "steth"), "--help"],
        "steth probes": [str(BIN / "steth"), "probes"],  # loads every probe declaration (pydantic models)
        "steth-agent --help": [str(BIN / "steth-agent"), "--help"],
    }


def time_once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--output", default="cli_startup", help="results/<name>.json ('-' for none)")
    args = ap.parse_args()

    cmds = commands()
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.warmup):
        for argv in cmds.values():
            time_once(argv)
    for _ in range(args.runs):
        for name, argv in cmds.items():
            samples[name].append(time_once(argv))

    base = statistics.median(samples["python -c pass"])
    results = {}
    for name, values in samples.items():
        s = summarize(values)
        s["mean_s"] = round(statistics.mean(values), 6)
        s["stdev_s"] = round(statistics.stdev(values), 6) if len(values) > 1 else 0.0
        s["over_python_s"] = round(s["median_s"] - base, 6)
        results[name] = s
    help_median = results["steth --help"]["median_s"]
    doc = {
        "benchmark": "cli_startup",
        "machine": machine(),
        "runs": args.runs,
        "warmup_runs": args.warmup,
        "commands": results,
        "target": {
            "command": "steth --help",
            "max_s": TARGET_S,
            "median_s": help_median,
            "met": help_median <= TARGET_S,
        },
    }
    print(f"{'command':<20} {'median':>9} {'p90':>9} {'min':>9} {'max':>9} {'over python':>12}")
    for name, s in results.items():
        print(
            f"{name:<20} {s['median_s'] * 1000:7.1f}ms {s['p90_s'] * 1000:7.1f}ms {s['min_s'] * 1000:7.1f}ms "
            f"{s['max_s'] * 1000:7.1f}ms {s['over_python_s'] * 1000:+10.1f}ms"
        )
    print(f"target: steth --help <= {TARGET_S} s: {'MET' if doc['target']['met'] else 'MISSED'} ({help_median:.3f} s)")
    if args.output != "-":
        print(f"wrote {write_result(args.output, doc)}", file=sys.stderr)


if __name__ == "__main__":
    main()
