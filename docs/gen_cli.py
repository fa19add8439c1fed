"""Regenerate docs/cli.md: run every core command against a fresh local lab and record its real output.

Usage (root, from the repository): .venv/bin/python docs/gen_cli.py
It brings up its own lab (STETH_LAB_NAME=doc), runs the commands below, writes docs/cli.md, and takes the
lab down again, also on failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["STETH_LAB_NAME"] = "doc"
MESH = "[mesh]\nenabled = true\nk = 2\ninterval_s = 2\njitter_s = 0.2\ncount = 3\n"


def run(cmd: str, env: dict) -> tuple[str, int]:
    done = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    out = (done.stdout + done.stderr).rstrip()
    out = re.sub(r"/run/steth-lab-doc", "/run/steth-lab", out)
    return out, done.returncode


def section(title: str, prose: str, cmds: list[str], env: dict) -> str:
    text = f"## {title}\n\n{prose.strip()}\n\n"
    for cmd in cmds:
        if cmd.startswith("!"):  # set-up for the next command, not shown
            run(cmd[1:], env)
            continue
        out, code = run(cmd, env)
        shown = cmd.replace(f"{sys.executable} -m steth.controller.cli", "steth")
        text += f"```\n$ {shown}\n{out}\n```\nexit code: {code}\n\n"
    return text


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from steth.lab import fleet

    fleet.down()
    state = fleet.up(
        compute=2,
        network=1,
        mgmt_cidr="10.79.0.0/24",
        data_cidr="10.78.0.0/24",
        heartbeat_s=1.0,
        extra_config=lambda name: MESH,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
    env.update(STETH_LAB_NAME="doc", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    network1 = next(n for n in state["nodes"] if n["name"] == "network-1")
    try:
        time.sleep(5)  # let the mesh schedule publish a few results for `watch` and `history`
        parts = [HEADER]
        for title, prose, cmds in COMMANDS:
            cmds = [c.format(network1_pid=network1["pid"], nats=state["nats_url"]) for c in cmds]
            parts.append(section(title, prose, cmds, env))
        (ROOT / "docs" / "cli.md").write_text("\n".join(parts).rstrip() + "\n" + FOOTER)
    finally:
        fleet.down()


HEADER = """# The steth CLI

Every example below is real output, recorded by `docs/gen_cli.py` from a local lab (`steth lab up`:
compute-1, compute-2, network-1 in network namespaces, a nats-server with JetStream, one agent per node,
each pinging two peers every 2 s on a schedule). Addresses are the lab's (data plane 10.78.0.0/24).

Conventions shared by every command that asks agents:

- **Selectors** `--node NAME` (repeatable), `--role ROLE` (repeatable), `--all` (the default). The expected
  set is the present agents matching them, plus every `--node` named even if it is not present.
- **Output** `-o table|json|yaml` (after the command or before it); JSON/YAML is one document on stdout
  and the footer goes to stderr.
- **Footer** `N/M nodes replied in T s`, then `no reply from: ...` naming every silent node.
- **Deadline** `--timeout S` (default: computed from the probe's params).
- **Exit codes** 0 all ok, 1 findings, 2 usage, 3 incomplete (no_reply, timeout, aborted, invalid,
  error), 4 steth could not work (NATS unreachable, OpenStack API error).

The probe catalogue (interface, netns, address-check, tcp-check, arping, mtu, bandwidth, capture, link,
send, vlan-check, ovs) is in [probes.md](probes.md) with real output of each; the OpenStack diagnosis
commands (`port-check`, `vm-check`, `network-check`, `agents --inventory`) are in
[diagnosis.md](diagnosis.md); `keys` and `nats-config` in [security.md](security.md); `watch`, `history`
and the metrics in [metrics.md](metrics.md).
"""

FOOTER = """
## Errors

One line on stderr, and a meaningful exit code:

```
$ steth ping 10.0.0.1 --count 0
steth: error: count: Input should be greater than or equal to 1          (exit 2)
$ steth ping 10.0.0.1 --interface -x
steth: error: interface: '-x' is not an interface name: 1-15 letters, digits, '_', '.', ':', '@', '-', not starting with '-' or '.'   (exit 2)
$ steth --nats-url nats://127.0.0.1:1 agents
steth: error: no NATS server answered at nats://127.0.0.1:1 (check --nats-url or STETH_NATS_URL)   (exit 4)
```

`--debug` (or `STETH_DEBUG=1`) shows the traceback instead.
"""

S = f"{sys.executable} -m steth.controller.cli"
COMMANDS = [
    ("steth --help", "The command list; every command has `--help` with examples.", [f"{S} --help"]),
    (
        "steth lab",
        "A real local fleet for demos, tests and benchmarks. `lab up` returns once every agent is "
        "present; `lab down` removes everything it made (namespaces, links, processes, files), also after a "
        "crash of `lab up`, and is idempotent. `--ovs` adds an Open vSwitch fabric with VLAN trunks, "
        "`--openstack` a miniature ML2/OVS deployment with an OpenStack API stand-in.",
        [f"{S} lab status", f"{S} lab status -o json", f"{S} lab env"],
    ),
    (
        "steth agents",
        "The agents in presence (their heartbeat entries in JetStream; no request is sent): "
        "roles, version, heartbeat age, alive or stale, data-plane address, probes offered, addresses per "
        "interface. Exit 3 when one is stale or a `--node` named is missing.",
        [f"{S} agents", f"{S} agents --node compute-1 --node compute-9", f"{S} agents --role network -o yaml"],
    ),
    (
        "steth hello",
        "A request every selected agent answers at once: who is reachable over NATS right now. "
        "Here network-1's agent is frozen (SIGSTOP) first: it is named, not waited for.",
        [f"{S} hello", "!kill -STOP {network1_pid}", f"{S} hello --timeout 2", "!kill -CONT {network1_pid}"],
    ),
    (
        "steth ping",
        "Ping targets from the selected nodes, all targets of a node at once. A target is an "
        "address or `node:NAME` (that agent's address on `--plane`, default its data plane). Loss above "
        "`--max-loss` (default 0) is a finding (exit 1).",
        [
            f"{S} ping node:compute-2 node:network-1 --role compute",
            f"{S} ping 10.78.0.250 node:network-1 --node compute-1 --count 2",
            f"{S} ping node:network-1 --node compute-2 --count 2 -o json",
        ],
    ),
    (
        "steth mesh",
        "Every selected node pings every other: rows are the sender, columns the target, cells "
        "loss and average RTT. JSON lists the pairs.",
        [f"{S} mesh", f"{S} mesh --role compute --count 2 -o json"],
    ),
    ("steth probes", "The probe types and their parameters, from their declarations.", [f"{S} probes show ping"]),
    (
        "steth watch and steth history",
        "Scheduled results, live or read back from the JetStream results "
        "stream (here the agents' built-in mesh: each pings up to K=2 peers every 2 s).",
        [f"{S} watch --duration 3 --node compute-1", f"{S} history --since 1m --limit 4 --node compute-2"],
    ),
]

if __name__ == "__main__":
    main()
