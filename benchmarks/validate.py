"""`steth validate` of docs/examples/site.yaml against a real lab: the wall time of the whole run and per phase.

Needs root: it brings up its own lab (3 nodes), which holds what the plan names (mgmt0, data0, the data fabric
carrying every VLAN, `controller` with NATS on 4222 and stand-ins for keystone, rabbitmq and mariadb:
steth.lab.fleet). The plan is docs/examples/site.yaml as it is, except a short bandwidth test (--duration,
default 2 s per pair) and a 200 Mbit/s minimum: two planes, 200 VLANs, MTU 1500 (all pairs), a bandwidth ring,
four endpoints. Each run is the real CLI in its own process (`steth validate PLAN -o json --progress json`);
phases are the report's (one per group of the schedule), requirements their own time.

    python benchmarks/validate.py                     # writes results/validate.json
    python benchmarks/validate.py --runs 5 --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, add_lab_options, machine, own_lab, summarize, write_result  # noqa: E402

TARGET_S = 60.0


def plan_for(duration: float) -> str:
    import yaml

    plan = yaml.safe_load((HERE.parent / "docs" / "examples" / "site.yaml").read_text())
    data = next(p for p in plan["planes"] if p["name"] == "data")
    data["bandwidth"]["duration_s"] = duration
    data["bandwidth"]["min_bps"] = "200M"  # the lab's veths carry several Gbit/s, less on a busy machine
    return yaml.safe_dump(plan, sort_keys=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0, help="seconds of iperf3 per bandwidth pair")
    add_lab_options(ap, "stbv", "10.89.0.0/24", "10.88.0.0/24", "validate")
    args = ap.parse_args()
    own_lab(args)
    from steth.lab import fleet

    fleet.down()
    state = fleet.up(mgmt_cidr=args.mgmt_cidr, data_cidr=args.data_cidr)
    runs = []
    try:
        text = plan_for(args.duration)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
        env.update(STETH_LAB_NAME=args.lab, STETH_NATS_URL=state["nats_url"])
        with tempfile.TemporaryDirectory(prefix="steth-bench-validate-") as folder:
            plan = Path(folder) / "site.yaml"
            plan.write_text(text)
            for k in range(args.runs):
                started = time.monotonic()
                done = subprocess.run(
                    [sys.executable, "-m", "steth.controller.cli", "validate", str(plan), "-o", "json"]
                    + ["--progress", "json", "--report", f"{folder}/r.html", "--junit", f"{folder}/r.xml"],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=300,
                )
                wall = time.monotonic() - started
                doc = json.loads(done.stdout)
                runs.append(
                    {
                        "exit_code": done.returncode,
                        "wall_s": round(wall, 3),
                        "elapsed_s": doc["elapsed_s"],
                        "phases": doc["phases"],
                        "requirements": {r["id"]: r["duration_s"] for r in doc["requirements"]},
                        "statuses": {r["id"]: r["status"] for r in doc["requirements"]},
                    }
                )
                print(f"run {k + 1}: exit {done.returncode}, {wall:.2f} s wall, {doc['elapsed_s']:.2f} s in validate")
    finally:
        fleet.down()
    phases = list(runs[0]["phases"])
    table = {p: summarize([r["phases"][p] for r in runs]) for p in phases}
    walls = summarize([r["wall_s"] for r in runs])
    rows = [(p, table[p]) for p in phases] + [("whole run (the CLI process, wall)", walls)]
    width = max(len(name) for name, _ in rows)
    print(f"\n{'phase':<{width}} {'median s':>9} {'min':>7} {'max':>7}")
    for name, s in rows:
        print(f"{name:<{width}} {s['median_s']:9.2f} {s['min_s']:7.2f} {s['max_s']:7.2f}")
    print(f"target: <= {TARGET_S:.0f} s: {'met' if walls['max_s'] <= TARGET_S else 'MISSED'}")
    if args.output != "-":
        doc = {
            "benchmark": "validate",
            "machine": machine(),
            "plan": text,
            "bandwidth_duration_s": args.duration,
            "target_s": TARGET_S,
            "wall_s": walls,
            "phases": table,
            "runs": runs,
        }
        print("wrote", write_result(args.output, doc))


if __name__ == "__main__":
    main()
