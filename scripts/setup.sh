#!/usr/bin/env bash
# Install what steth needs on a fresh Debian machine: apt tools (as root, only the missing ones) and a venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# mariadb-server rabbitmq-server conntrack udhcpc: the real-Neutron lab (steth lab up --openstack --neutron real):
# its database and message broker, conntrack for Neutron's iptables firewall, a DHCP client in its VMs.
# ovn-central ovn-host: the OVN lab (steth lab up --ovn): NB/SB schemas, ovn-northd, ovn-controller.
# keepalived: HA routers in the real-Neutron lab (steth lab up --neutron real --routers ha).
APT_PACKAGES=(iproute2 iputils-ping iperf3 tcpdump arping ethtool openvswitch-switch dnsmasq-base nftables iptables procps psmisc prometheus systemd
  mariadb-server rabbitmq-server conntrack udhcpc ovn-central ovn-host keepalived)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # No init system here: keep packages from starting their daemons on the host.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
else
  echo "setup: not root: skipping apt packages; lab tests run agents as local processes" >&2
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "setup: Python 3.11+ is required" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v -E "^WARNING: Location" >&2 || true
.venv/bin/python -c 'import steth, nats, msgpack, pydantic, click' || { echo "setup: the venv is incomplete" >&2; exit 1; }

# Neutron itself (PyPI neutron 29.x, uwsgi) in a venv of its own for the real-Neutron lab; its pins differ from
# the project's. As root only (the lab needs root); about 80 s the first time.
if [ "$(id -u)" = 0 ]; then
  .venv/bin/python -c 'from steth.lab import neutron_venv as v; v.ensure(lambda m: print("setup: " + m, flush=True))' >&2 \
    || { echo "setup: the Neutron venv could not be made (the real-Neutron lab will try again)" >&2; }
fi
