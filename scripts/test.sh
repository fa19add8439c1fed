#!/usr/bin/env bash
# Install everything, then run the whole test suite (unit and lab integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
