"""Regenerate the captured tool outputs the unit tests parse (run as root; needs iputils ping, nft, ip).

    python tests/unit/data/capture.py

Builds a throwaway namespace `h1cap`, runs the real tools in it and writes one JSON file per case
(argv, returncode, stdout, stderr) under tests/unit/data/. The namespace is removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
NS = "h1cap"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def ns(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", NS, *argv, check=check)


def nft_drop(rule: str) -> None:
    ns("nft", "flush", "chain", "inet", "h1t", "in")
    if rule:
        ns("nft", "add", "rule", "inet", "h1t", "in", *rule.split())


def capture(name: str, argv: list[str]) -> None:
    done = ns(*argv, check=False)
    doc = {"argv": argv, "returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    (HERE / "ping" / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(name, done.returncode, done.stdout.strip().splitlines()[-2:] or done.stderr.strip())


def main() -> None:
    (HERE / "ping").mkdir(exist_ok=True)
    (HERE / "ip").mkdir(exist_ok=True)
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    try:
        ns("ip", "link", "set", "lo", "up")
        ns("ip", "link", "add", "h1a", "type", "veth", "peer", "name", "h1b")
        ns("ip", "addr", "add", "10.86.1.1/24", "dev", "h1a")
        ns("ip", "addr", "add", "fd00:86::1/64", "dev", "h1a")
        ns("ip", "link", "set", "h1a", "up")
        ns("ip", "link", "set", "h1b", "up")
        ns("ip", "link", "add", "h1down", "type", "veth", "peer", "name", "h1down-p")  # left down
        ns("ip", "addr", "add", "10.86.2.1/24", "dev", "h1down")
        ns("ip", "route", "add", "default", "via", "10.86.1.254", "dev", "h1a")
        ns("nft", "add", "table", "inet", "h1t")
        ns("nft", "add", "chain", "inet", "h1t", "in", "{ type filter hook input priority 0; }")
        base = ["ping", "-n", "-q", "-W", "1"]
        capture("ok_ipv4", [*base, "-c", "3", "-i", "0.2", "-s", "56", "127.0.0.1"])
        capture("ok_ipv6", [*base, "-c", "3", "-i", "0.2", "-s", "56", "::1"])
        nft_drop("icmp type echo-reply drop")
        capture("loss_total", [*base, "-c", "3", "-i", "0.2", "-s", "56", "127.0.0.1"])
        nft_drop("icmp type echo-reply numgen random mod 100 < 40 drop")
        capture("loss_partial", [*base, "-c", "20", "-i", "0.01", "-s", "56", "127.0.0.1"])
        nft_drop("icmpv6 type echo-reply numgen random mod 100 < 40 drop")
        capture("loss_partial_ipv6", [*base, "-c", "20", "-i", "0.01", "::1"])
        nft_drop("")
        # No neighbour answers ARP: the kernel reports "Destination Host Unreachable" as errors.
        capture("unreachable_errors", [*base, "-c", "8", "-i", "0.5", "-s", "56", "10.86.1.98"])
        capture("unknown_host", [*base, "-c", "2", "-i", "0.2", "nonexistent.invalid"])
        capture("no_such_interface", [*base, "-c", "2", "-i", "0.2", "-I", "nosuchif0", "127.0.0.1"])
        ns("ip", "route", "del", "default")
        capture("network_unreachable", [*base, "-c", "2", "-i", "0.2", "192.0.2.1"])
        ns("ip", "route", "add", "default", "via", "10.86.1.254", "dev", "h1a")
        for name, argv in {
            "addr": ["ip", "-j", "addr", "show"],
            "route_default": ["ip", "-j", "route", "show", "default"],
        }.items():
            (HERE / "ip" / f"{name}.json").write_text(ns(*argv).stdout)
        ns("ip", "route", "del", "default")
        (HERE / "ip" / "route_default_none.json").write_text(ns("ip", "-j", "route", "show", "default").stdout)
    finally:
        sh("ip", "netns", "del", NS, check=False)


if __name__ == "__main__":
    main()
