"""Regenerate the real iperf3 and tcpdump outputs that tests/unit/test_traffic_parse.py parses (run as root).

    python tests/unit/data/traffic/capture.py

Builds two throwaway namespaces joined by a veth pair, runs iperf3 (TCP, TCP reverse with two streams,
UDP, a TCP test through a tbf rate limit, a refused connection) and tcpdump (5 pings, written and read
back), and stores each tool's own output here. The namespaces are removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
A, B = "h5tra", "h5trb"
ADDR_A, ADDR_B = "10.85.5.1", "10.85.5.2"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def ns(name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", name, *argv, check=check)


def iperf(name: str, *client_args: str, port: int = 5201) -> None:
    server = subprocess.Popen(
        ["ip", "netns", "exec", B, "iperf3", "-s", "-1", "-B", ADDR_B, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    argv = ["iperf3", "-c", ADDR_B, "-p", str(port), "-J", *client_args]
    done = ns(A, *argv, check=False)
    server.wait(timeout=10)
    (HERE / f"iperf_{name}.json").write_text(done.stdout)
    (HERE / f"iperf_{name}.argv").write_text(json.dumps(argv) + "\n")
    print("iperf", name, done.returncode)


def main() -> None:
    for n in (A, B):
        sh("ip", "netns", "del", n, check=False)
        sh("ip", "netns", "add", n)
        ns(n, "ip", "link", "set", "lo", "up")
    try:
        sh("ip", "link", "add", "h5tva", "netns", A, "type", "veth", "peer", "name", "h5tvb", "netns", B)
        ns(A, "ip", "addr", "add", f"{ADDR_A}/24", "dev", "h5tva")
        ns(B, "ip", "addr", "add", f"{ADDR_B}/24", "dev", "h5tvb")
        ns(A, "ip", "link", "set", "h5tva", "up")
        ns(B, "ip", "link", "set", "h5tvb", "up")
        time.sleep(0.5)
        iperf("tcp", "-t", "2")
        iperf("tcp_reverse_p2", "-t", "2", "-R", "-P", "2")
        iperf("udp_20m", "-t", "2", "-u", "-b", "20M")
        ns(A, "tc", "qdisc", "add", "dev", "h5tva", "root", "tbf", "rate", "50mbit", "burst", "64kb", "latency", "50ms")
        iperf("tcp_tbf_50mbit", "-t", "3")
        ns(A, "tc", "qdisc", "del", "dev", "h5tva", "root")
        done = ns(A, "iperf3", "-c", ADDR_B, "-p", "5299", "-J", "-t", "1", check=False)
        (HERE / "iperf_refused.json").write_text(done.stdout)

        folder = Path(tempfile.mkdtemp())
        pcap = folder / "icmp.pcap"
        dump = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                A,
                "tcpdump",
                "-i",
                "h5tva",
                "-n",
                "-U",
                "--immediate-mode",
                "-Z",
                "root",
                "-c",
                "100",
                "-w",
                str(pcap),
                "--",
                "icmp",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        ns(B, "ping", "-c", "5", "-i", "0.05", "-q", ADDR_A)
        time.sleep(0.3)
        dump.send_signal(2)
        _, err = dump.communicate(timeout=5)
        (HERE / "tcpdump_stderr.txt").write_text(err)
        shutil.copy(pcap, HERE / "icmp10.pcap")
        read = sh("tcpdump", "-r", str(pcap), "-n", "-tt")
        (HERE / "tcpdump_read.txt").write_text(read.stdout)
        bad = ns(A, "tcpdump", "-i", "h5tva", "-n", "-w", str(folder / "x.pcap"), "--", "icmp and ((", check=False)
        (HERE / "tcpdump_bad_filter.txt").write_text(bad.stderr)
        nodev = ns(A, "tcpdump", "-i", "nosuch0", "-n", "-w", str(folder / "x.pcap"), check=False)
        (HERE / "tcpdump_no_device.txt").write_text(nodev.stderr)
        shutil.rmtree(folder)
        print("tcpdump", err.strip().splitlines()[-3:])
    finally:
        for n in (A, B):
            sh("ip", "netns", "del", n, check=False)


if __name__ == "__main__":
    main()
