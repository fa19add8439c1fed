#!/usr/bin/env bash
# Install everything, then run the whole test suite (unit and lab integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The HTML report test renders in a real headless chromium: installed here when root (CI), skipped otherwise.
if [ "$(id -u)" = 0 ]; then scripts/setup-browser.sh; fi
.venv/bin/ruff check --quiet . && .venv/bin/ruff format --check --quiet . || { echo "test: ruff found problems (ruff check --fix . && ruff format .)" >&2; exit 1; }
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
