#!/usr/bin/env bash
# The main job: bring a local fleet up, run steth against it, tear it down (also on Ctrl-C or failure).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit $?
export PATH="$PWD/.venv/bin:$PATH"
# `steth` finds the lab's server and, the lab being secure, its CA, controller seed and signing key with no
# flags; any NATS setting of the caller's would win over them. STETH_LAB_NAME (default sth) picks the lab.
for v in $(compgen -e | grep -E '^(STETH_NATS_|NATS_)|^STETH_(SIGNING_KEY|CONFIG)$'); do unset "$v"; done
trap 'steth lab down >/dev/null' EXIT
steth lab down >/dev/null
steth lab up --compute 2 --network 1 || exit $?
run() { echo; echo "\$ $*"; "$@"; echo "(exit $?)"; }
url=$(steth lab status -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["nats_url"])')
echo; echo "# the lab is secure: a client with the address alone (no CA, no identity) is refused"
run env STETH_NATS_URL="$url" steth hello
run steth agents
run steth ping node:compute-2 node:network-1 --role compute --count 3
run steth mesh
echo; echo "\$ steth mesh --count 5 -o json   # summary and the first two pairs"
steth mesh --count 5 -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"summary": d["summary"], "pairs": d["pairs"][:2]}, indent=1))'
# A silent node is named, not waited for: freeze network-1's agent and ask everyone.
pid=$(steth lab status -o json | python3 -c 'import json,sys; print(next(n["agent_pid"] for n in json.load(sys.stdin)["nodes"] if n["name"]=="network-1"))')
echo; echo "# freezing network-1's agent (SIGSTOP)"
kill -STOP -- "-$pid"
run steth hello --timeout 2
kill -CONT -- "-$pid"
