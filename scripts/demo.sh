#!/usr/bin/env bash
# The main job: bring a local fleet up, run steth against it, tear it down (also on Ctrl-C or failure).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
trap 'steth lab down >/dev/null' EXIT
steth lab down >/dev/null
steth lab up --compute 2 --network 1 || exit $?
run() { echo; echo "\$ $*"; "$@"; echo "(exit $?)"; }
run steth agents
run steth ping node:compute-2 node:network-1 --role compute --count 3
run steth mesh
run steth mesh -o json
