#!/usr/bin/env bash
# Install Debian's chromium for the HTML report test (tests/unit/test_validate_report.py renders the report
# in a real headless browser). Separate from setup.sh: chromium is large (see docs/validate.md) and only that
# one test needs it; the test skips with a clear reason when chromium is absent.
set -euo pipefail

if command -v chromium >/dev/null; then
  echo "setup-browser: chromium already installed: $(chromium --version 2>/dev/null || echo unknown version)" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup-browser: not root or no apt-get: install chromium yourself (the browser test skips without it)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# No init system here: keep packages from starting daemons on the host (as setup.sh does).
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y --no-install-recommends chromium
chromium --version >&2
