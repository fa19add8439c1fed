"""A healthy `steth port-check` in the --openstack lab: the DHCP watch ending with the exchange (the default)
against listening out the whole window (`--full-window`), in one run, interleaved.

Needs root: it brings up its own lab (steth.lab.ml2: 2 compute nodes, 1 network node, the agents allowed to
inject). Each run is the real CLI in its own process (`steth port-check PORT -o json`), alternating the two
modes and the two VM ports (vm-1 hybrid, vm-2 native), so load on the machine falls on both alike. Recorded per
run: the CLI process's wall time, the diagnosis's own elapsed time and its phases (openstack, probes), and how
long each probe took (dhcp-watch, neutron-ns in qdhcp and qrouter, vif), from the JSON document.

    python benchmarks/port_check.py                  # writes results/port_check.json
    python benchmarks/port_check.py --runs 15 --listen 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_lab_options, machine, own_lab, summarize, write_result  # noqa: E402

TARGET_S = 2.0  # median of a healthy port-check, issue 10 item 6
MODES = {"early": [], "full-window": ["--full-window"]}


def one(port: str, mode: str, listen: float, env: dict[str, str]) -> dict:
    argv = [sys.executable, "-m", "steth.controller.cli", "port-check", port, "-o", "json", "--listen", str(listen)]
    started = time.monotonic()
    done = subprocess.run(argv + MODES[mode], capture_output=True, text=True, env=env, timeout=120)
    wall = time.monotonic() - started
    doc = json.loads(done.stdout)
    probes = doc["probes"][port]
    return {
        "mode": mode,
        "port": port,
        "exit_code": done.returncode,
        "verdict": doc["verdict"]["status"],
        "wall_s": round(wall, 3),
        "elapsed_s": doc["elapsed_s"],
        "openstack_s": doc["timings_s"]["openstack"],
        "probes_s": doc["timings_s"]["probes"],
        "per_probe_s": {name: p["elapsed_s"] for name, p in probes.items()},
        "complete": all(n["result"]["complete"] for n in probes["dhcp-watch"]["nodes"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per mode and port")
    ap.add_argument("--listen", type=float, default=5.0, help="the DHCP window (port-check --listen)")
    add_lab_options(ap, "stbp", "10.74.0.0/24", "10.73.0.0/24", "port_check")
    args = ap.parse_args()
    own_lab(args)
    from steth.lab import fleet, ml2

    fleet.down()
    state = ml2.up(2, 1, args.mgmt_cidr, args.data_cidr, 1.0, True)
    runs: list[dict] = []
    loads = []
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STETH_", "OS_"))}
        env.update(
            STETH_LAB_NAME=args.lab,
            OS_CLOUD=state["openstack"]["cloud"],
            OS_CLIENT_CONFIG_FILE=state["openstack"]["clouds_yaml"],
        )
        ports = [p["id"] for p in state["openstack"]["design"]["ports"] if p.get("server")]
        for port in ports:  # warm-up: the first call of each agent pays for its imports
            one(port, "early", args.listen, env)
        for k in range(args.runs):
            order = list(MODES) if k % 2 == 0 else list(reversed(MODES))
            for port in ports:
                for mode in order:
                    runs.append(one(port, mode, args.listen, env))
                    r = runs[-1]
                    print(
                        f"{mode:<11} {port[:8]} exit {r['exit_code']} {r['wall_s']:.2f} s wall, "
                        f"{r['elapsed_s']:.2f} s diagnosis (openstack {r['openstack_s']:.2f}, probes {r['probes_s']:.2f})"
                    )
            loads.append(float(Path("/proc/loadavg").read_text().split()[0]))
    finally:
        fleet.down()
    table = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        table[mode] = {
            "wall_s": summarize([r["wall_s"] for r in mine]),
            "elapsed_s": summarize([r["elapsed_s"] for r in mine]),
            "openstack_s": summarize([r["openstack_s"] for r in mine]),
            "probes_s": summarize([r["probes_s"] for r in mine]),
            "per_probe_s": {name: summarize([r["per_probe_s"][name] for r in mine]) for name in mine[0]["per_probe_s"]},
            "all_ok": all(r["exit_code"] == 0 for r in mine),
            "all_complete": all(r["complete"] for r in mine),
        }
    early, full = table["early"], table["full-window"]
    pairs = [sorted(runs[i : i + 2], key=lambda r: r["mode"]) for i in range(0, len(runs), 2)]  # early, full
    paired = [f["elapsed_s"] / e["elapsed_s"] for e, f in pairs]
    print(f"\n{'median s':<24} {'early':>8} {'full-window':>12} {'ratio':>7}")
    rows = [
        ("CLI wall", "wall_s"),
        ("diagnosis", "elapsed_s"),
        ("  openstack", "openstack_s"),
        ("  probes", "probes_s"),
    ]
    for label, key in rows:
        e, f = early[key]["median_s"], full[key]["median_s"]
        print(f"{label:<24} {e:8.2f} {f:12.2f} {f / e:7.2f}")
    for name in early["per_probe_s"]:
        e, f = early["per_probe_s"][name]["median_s"], full["per_probe_s"][name]["median_s"]
        print(f"{'  ' + name:<24} {e:8.2f} {f:12.2f} {f / e:7.2f}")
    met = early["elapsed_s"]["median_s"] <= TARGET_S
    print(f"target: diagnosis median <= {TARGET_S:.0f} s: {'met' if met else 'MISSED'}; load average {loads}")
    if args.output != "-":
        doc = {
            "benchmark": "port_check",
            "machine": machine(),
            "listen_s": args.listen,
            "target_s": TARGET_S,
            "modes": table,
            "ratio_of_median_elapsed": round(full["elapsed_s"]["median_s"] / early["elapsed_s"]["median_s"], 3),
            "paired_ratio_median": round(sorted(paired)[len(paired) // 2], 3),
            "loadavg_during": loads,
            "runs": runs,
        }
        print("wrote", write_result(args.output, doc))


if __name__ == "__main__":
    main()
