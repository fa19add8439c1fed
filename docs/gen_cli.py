"""Regenerate docs/cli.md: run every core command against a fresh local lab and record its real output.

Usage (root, from the repository): .venv/bin/python docs/gen_cli.py
It brings up its own lab (STETH_LAB_NAME=doc), runs the commands below, writes docs/cli.md, and takes the
lab down again, also on failure. GEN_CLI_LAB, GEN_CLI_MGMT_CIDR and GEN_CLI_DATA_CIDR move that lab (name,
management and data-plane /24s) when another lab uses the defaults; the page then shows the lab as `doc` and
its addresses as they are.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = os.environ.get("GEN_CLI_LAB", "doc")
MGMT_CIDR = os.environ.get("GEN_CLI_MGMT_CIDR", "10.79.0.0/24")
DATA_CIDR = os.environ.get("GEN_CLI_DATA_CIDR", "10.78.0.0/24")
os.environ["STETH_LAB_NAME"] = LAB
MESH = "[mesh]\nenabled = true\nk = 2\ninterval_s = 2\njitter_s = 0.2\ncount = 3\n"


def run(cmd: str, env: dict) -> tuple[str, int]:
    done = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    out = (done.stdout + done.stderr).rstrip()
    out = re.sub(rf"/run/steth-lab-{LAB}", "/run/steth-lab", out)
    return out, done.returncode


def section(title: str, prose: str, cmds: list[str], env: dict) -> str:
    text = f"## {title}\n\n{prose.strip()}\n\n"
    for cmd in cmds:
        if cmd.startswith("!"):  # set-up for the next command, not shown
            run(cmd[1:], env)
            continue
        out, code = run(cmd, env)
        shown = cmd.replace(f"{sys.executable} -m steth.controller.cli", "steth")
        shown = shown.replace(f"{sys.executable} -m steth", "python -m steth")
        text += f"```\n$ {shown}\n{out}\n```\nexit code: {code}\n\n"
    return text


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from steth.lab import fleet

    fleet.down()
    state = fleet.up(
        compute=2,
        network=1,
        mgmt_cidr=MGMT_CIDR,
        data_cidr=DATA_CIDR,
        heartbeat_s=1.0,
        extra_config=lambda name: MESH,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STETH_")}
    env = {k: v for k, v in env.items() if not k.startswith(("NATS_", "OS_"))}  # only the lab counts
    env.update(STETH_LAB_NAME=LAB, PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    network1 = next(n for n in state["nodes"] if n["name"] == "network-1")
    try:
        time.sleep(5)  # let the mesh schedule publish a few results for `watch` and `history`
        parts = [HEADER.replace("10.78.0.0/24", DATA_CIDR)]
        for title, prose, cmds in COMMANDS:
            cmds = [
                c.format(network1_pid=network1["pid"], nats=state["nats_url"], data_net=DATA_CIDR.rsplit(".", 1)[0])
                for c in cmds
            ]
            parts.append(section(title, prose, cmds, env))
        (ROOT / "docs" / "cli.md").write_text("\n".join(parts).rstrip() + "\n" + FOOTER)
    finally:
        fleet.down()


HEADER = """# The steth CLI

Every example below is real output, recorded by `docs/gen_cli.py` from a local lab (`steth lab up`:
compute-1, compute-2, network-1 in network namespaces, a nats-server with JetStream, one agent per node,
each pinging two peers every 2 s on a schedule). Addresses are the lab's (data plane 10.78.0.0/24).

Conventions shared by every command (the habits of python-openstackclient and the `nats` CLI):

- **Selectors** `--node NAME` (repeatable), `--role ROLE` (repeatable), `--all` (the default). The expected
  set is the present agents matching them, plus every `--node` named even if it is not present.
- **Output** as the openstack client has it, before or after the command (after wins):
  `-f/--format table|json|yaml|value|csv`, `-c/--column NAME` (repeatable: a header such as `LOSS` or its field
  name `loss`), `--sort-column NAME` (repeatable) with `--sort-ascending`/`--sort-descending`, `--noindent`.
  A table is for people; `value` prints only the cells (`steth agents -f value -c node`), `csv` a header and the
  rows. `json`/`yaml` print the command's one document, or, once `-c` or `--sort-column` is given, the table's
  rows as a list of objects. For a gathered command the rows are the table's: one per node and result row.
  Everything but the output itself (the footer, a verdict) goes to stderr unless the format is `table`.
  `-o` is the old spelling of `-f`.
- **Footer** `N/M nodes replied in T s`, then `no reply from: ...` naming every silent node.
- **Deadline** `--timeout S` (default: computed from the probe's params).
- **NATS** as the `nats` CLI has it: `-s/--server URL`, `--context NAME`, `--user`, `--password`, `--token`,
  `--creds FILE`, `--nkey FILE`, `--tlscert`, `--tlskey`, `--tlsca`; `NATS_URL`, `NATS_CONTEXT`, `NATS_CREDS`,
  `NATS_NKEY`, `NATS_CERT`, `NATS_KEY`, `NATS_CA` and the context `nats context select` chose. Precedence: flag >
  `STETH_NATS_*` > `NATS_*` > `--context`/`NATS_CONTEXT` > config file `[nats]` > selected nats context > running
  lab > 127.0.0.1:4222 ([configuration.md](configuration.md#controller-steth) has the table).
- **OpenStack** as the openstack client has it, before or after the command: `--os-cloud`, `--os-region-name`,
  `--os-cacert`, `--insecure`, `--os-api-timeout`; `--debug` logs the API traffic.
- **One name per idea**: what a probe goes to is the positional `TARGET` (`ping`, `tcp-check`, `mtu`, `send`;
  `mtu --to` and `send --dst` still work, unlisted); nodes are chosen with `--node`, except `bandwidth`'s
  `--server NODE --client NODE`, which name iperf3's two roles; a VLAN is `--vlan` (`link add-vlan --vlan-id`
  still works, unlisted). Errors name the option as typed and the command: `steth capture: error: --max-pcap: ...`.
- **Exit codes** 0 all ok, 1 findings, 2 usage, 3 incomplete (no_reply, timeout, aborted, invalid,
  error), 4 steth could not work (NATS unreachable, OpenStack API error).
- **Version** `steth --version`, `steth-agent --version`; `python -m steth` runs the CLI where the entry point is
  not on PATH.

The probe catalogue (interface, netns, address-check, tcp-check, arping, mtu, bandwidth, capture, link,
send, vlan-check, ovs) is in [probes.md](probes.md) with real output of each; the OpenStack diagnosis
commands (`port-check`, `vm-check`, `network-check`, `agents --inventory`) are in
[diagnosis.md](diagnosis.md); `keys` and `nats-config` in [security.md](security.md); `watch`, `history`
and the metrics in [metrics.md](metrics.md).
"""

FOOTER = """
## Errors

One line on stderr naming the command and the option as typed, and a meaningful exit code:

```
$ steth ping 10.0.0.1 --count 0
steth ping: error: --count: Input should be greater than or equal to 1          (exit 2)
$ steth ping 10.0.0.1 --interface -x
steth ping: error: --interface: '-x' is not an interface name: 1-15 letters, digits, '_', '.', ':', '@', '-', not starting with '-' or '.'   (exit 2)
$ steth vlan-check --interface trunk0 --vlan 5000
steth vlan-check: error: --vlan 5000: Input should be less than or equal to 4094   (exit 2)
$ steth capture
steth capture: error: Missing option '--interface'. (see 'steth capture --help')   (exit 2)
$ steth -s nats://127.0.0.1:1 agents
steth agents: error: cannot connect to NATS at nats://127.0.0.1:1 (from the command line): nats: no servers available for connection (check -s/--server, NATS_URL, --context or STETH_NATS_URL)   (exit 4)
```

`--debug` (or `STETH_DEBUG=1`) shows the traceback instead, and the OpenStack API requests and responses.

## Shell completion

Click's completion, for bash, zsh and fish. It completes commands and options, probe names (`probes show`,
`--probe`), and node and role names (`--node`, `--role`) from presence when NATS answers within a second (the
same `-s`, `--context`, `NATS_URL` as the command); when it does not, it offers nothing, silently.

```
# bash: in ~/.bashrc
eval "$(_STETH_COMPLETE=bash_source steth)"
# zsh: in ~/.zshrc
eval "$(_STETH_COMPLETE=zsh_source steth)"
# fish: in ~/.config/fish/completions/steth.fish
_STETH_COMPLETE=fish_source steth | source
```

To avoid running steth at every shell start, write the script once (`_STETH_COMPLETE=bash_source steth >
~/.local/share/bash-completion/completions/steth`).
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
        [f"{S} lab status", f"{S} lab status -f json", f"{S} lab status -f csv -c node -c data", f"{S} lab env"],
    ),
    (
        "steth agents",
        "The agents in presence (their heartbeat entries in JetStream; no request is sent): "
        "roles, version, heartbeat age, alive or stale, data-plane address, probes offered, addresses per "
        "interface. Exit 3 when one is stale or a `--node` named is missing.",
        [
            f"{S} agents",
            f"{S} agents --node compute-1 --node compute-9",
            f"{S} agents --role network -f yaml",
            f"{S} agents -f value -c node -c data_plane",
        ],
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
            f"{S} ping {{data_net}}.250 node:network-1 --node compute-1 --count 2",
            f"{S} ping node:network-1 --node compute-2 --count 2 -f json",
            f"{S} ping node:compute-2 node:network-1 --role compute --count 2 -f value -c node -c target -c loss",
            f"{S} ping node:compute-2 node:network-1 --role compute --count 2 -f csv -c node -c target -c avg "
            "--sort-column avg",
            f"{S} ping node:compute-2 --role compute --count 2 -f json -c node -c loss --noindent",
        ],
    ),
    (
        "steth mesh",
        "Every selected node pings every other: rows are the sender, columns the target, cells "
        "loss and average RTT. JSON lists the pairs.",
        [
            f"{S} mesh",
            f"{S} mesh --role compute --count 2 -f json",
            f"{S} mesh --count 2 --sort-column avg -c from -c to -c avg",
        ],
    ),
    (
        "steth probes",
        "The probe types and their parameters, from their declarations: each parameter as the command line "
        "takes it (an option, or the positional TARGET).",
        [f"{S} probes", f"{S} probes show ping", f"{S} probes show ping -f value -c option"],
    ),
    (
        "steth --version",
        "The version, from the one place it is written (`steth.__version__`); `python -m steth` is the same CLI.",
        [f"{S} --version", f"{sys.executable} -m steth --version"],
    ),
    (
        "steth watch and steth history",
        "Scheduled results, live or read back from the JetStream results "
        "stream (here the agents' built-in mesh: each pings up to K=2 peers every 2 s).",
        [f"{S} watch --duration 3 --node compute-1", f"{S} history --since 1m --limit 4 --node compute-2"],
    ),
]

if __name__ == "__main__":
    main()
