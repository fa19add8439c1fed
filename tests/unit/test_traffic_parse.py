"""Parsers and guards of the traffic probes (bandwidth, capture, link), fed real tool output.

tests/unit/data/traffic holds iperf3 -J documents and tcpdump output captured on this kind of machine
(regenerate with tests/unit/data/traffic/capture.py). The job table is exercised with real processes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import click
import pytest
from pydantic import ValidationError

from steth import codec
from steth.agent.jobs import OWNER_FILE, JobTable, sweep_orphans
from steth.agent.probes.capture import (
    finish_pcap,
    parse_stats,
    parse_summaries,
    start_error,
    tcpdump_argv,
    walk_pcap,
)
from steth.agent.probes.iperf_client import client_argv, parse_iperf, verdict
from steth.agent.probes.iperf_server import log_error, server_argv
from steth.agent.probes.linkutil import mark_for, parse_mark
from steth.controller.commands.bandwidth import Rate, plan_pairs
from steth.controller.commands.capture import chunk_size, pcap_path
from steth.schemas.envelope import Reply, Status
from steth.schemas.probes.capture import CaptureParams
from steth.schemas.probes.capture_fetch import MAX_CHUNK_BYTES, CaptureFetchParams, CaptureFetchResult
from steth.schemas.probes.iperf_client import IperfClientParams
from steth.schemas.probes.link_add_vlan import LinkAddVlanParams
from steth.schemas.probes.link_setup import LinkSetupParams
from steth.schemas.probes.link_teardown import LinkTeardownParams

DATA = Path(__file__).parent / "data" / "traffic"


def iperf_doc(name: str) -> str:
    return (DATA / f"iperf_{name}.json").read_text()


# --- iperf3 -J ------------------------------------------------------------------------------------


def test_tcp_result_from_real_output():
    p = IperfClientParams(server="10.85.5.2", duration_s=2)
    r = parse_iperf(iperf_doc("tcp"), p)
    assert r.error == ""
    assert r.sent_bps > 1e8 and r.received_bps > 1e8  # a veth pair: gigabits
    assert abs(r.sent_bytes - r.received_bytes) <= r.sent_bytes * 0.01
    assert isinstance(r.retransmits, int)
    assert r.jitter_ms is None and r.loss is None  # UDP only
    assert 1.9 < r.duration_s < 2.2
    assert verdict(r, p) == (Status.OK, "")


def test_tcp_reverse_two_streams():
    p = IperfClientParams(server="10.85.5.2", reverse=True, parallel=2)
    doc = json.loads(iperf_doc("tcp_reverse_p2"))
    assert doc["start"]["test_start"]["reverse"] == 1 and doc["start"]["test_start"]["num_streams"] == 2
    r = parse_iperf(iperf_doc("tcp_reverse_p2"), p)
    assert r.reverse and r.parallel == 2
    assert r.received_bps > 1e8 and r.retransmits is not None


def test_udp_jitter_and_loss_from_the_receiver():
    p = IperfClientParams(server="10.85.5.2", protocol="udp", bitrate_bps=20_000_000)
    r = parse_iperf(iperf_doc("udp_20m"), p)
    assert r.received_bps == pytest.approx(20e6, rel=0.02)
    assert r.packets > 0 and r.lost_packets is not None
    assert r.loss == pytest.approx(r.lost_packets / r.packets)
    assert r.jitter_ms is not None and r.jitter_ms >= 0
    assert r.retransmits is None


def test_tbf_limited_tcp_is_within_ten_percent_of_the_limit():
    # captured through `tc qdisc ... tbf rate 50mbit`: goodput is the limit less Ethernet/IP/TCP headers
    r = parse_iperf(iperf_doc("tcp_tbf_50mbit"), IperfClientParams(server="10.85.5.2"))
    assert r.received_bps == pytest.approx(50e6, rel=0.10)


def test_refused_connection_is_an_error_without_numbers():
    p = IperfClientParams(server="10.85.5.2", port=5299)
    r = parse_iperf((DATA / "iperf_refused.json").read_text(), p)
    assert "Connection refused" in r.error
    assert r.received_bps is None
    status, message = verdict(r, p)
    assert status is Status.FAILED and "Connection refused" in message


def test_no_json_at_all():
    r = parse_iperf("iperf3: error - unable to connect\n", IperfClientParams(server="10.0.0.1"))
    assert r.error.startswith("iperf3 gave no JSON") and r.received_bps is None
    assert parse_iperf("", IperfClientParams(server="10.0.0.1")).error == "iperf3 gave no JSON"


def test_min_bps_makes_a_finding():
    p = IperfClientParams(server="10.85.5.2", min_bps=100e6)
    r = parse_iperf(iperf_doc("tcp_tbf_50mbit"), p)
    status, message = verdict(r, p)
    assert status is Status.FAILED and "below the minimum 100.00 Mbit/s" in message


def test_client_argv_carries_every_option_and_nothing_else():
    p = IperfClientParams(
        server="10.0.0.2",
        port=5205,
        protocol="udp",
        duration_s=3,
        omit_s=1,
        parallel=4,
        bitrate_bps=500_000_000,
        reverse=True,
        bind="10.0.0.1",
    )
    argv = client_argv(p)
    assert argv[:3] == ["iperf3", "-c", "10.0.0.2"] and "-J" in argv
    for flag, value in (("-p", "5205"), ("-t", "3"), ("-O", "1"), ("-P", "4"), ("-b", "500000000"), ("-B", "10.0.0.1")):
        assert argv[argv.index(flag) + 1] == value
    assert "-u" in argv and "-R" in argv
    assert "-u" not in client_argv(IperfClientParams(server="10.0.0.2"))


def test_server_argv_serves_once_and_flushes():
    argv = server_argv("10.0.0.2", 5203, 17.5)
    assert argv[:3] == ["iperf3", "-s", "-1"] and "--forceflush" in argv
    assert argv[argv.index("-B") + 1] == "10.0.0.2" and argv[argv.index("-p") + 1] == "5203"
    assert argv[argv.index("--idle-timeout") + 1] == "17"
    assert log_error("iperf3: error - unable to start listener for connections: Address already in use\n").endswith(
        "Address already in use"
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"server": "-x"},
        {"server": "10.0.0.1; reboot"},
        {"server": "10.0.0.1", "parallel": 1000},
        {"server": "10.0.0.1", "duration_s": 100000},
        {"server": "10.0.0.1", "port": 22},
        {"server": "10.0.0.1", "protocol": "sctp"},
        {"server": "10.0.0.1", "extra": 1},
    ],
)
def test_bad_client_params_are_refused(bad):
    with pytest.raises(ValidationError):
        IperfClientParams.model_validate(bad)


def test_rates_and_pairs():
    rate = Rate()
    assert rate.convert("100M", None, None) == 100e6
    assert rate.convert("2.5G", None, None) == 2.5e9
    assert rate.convert("250000", None, None) == 250000
    assert rate.convert("900Mbit/s", None, None) == 900e6
    with pytest.raises(click.BadParameter):
        rate.convert("fast", None, None)
    assert plan_pairs(["c", "a", "b"], "ring") == [("b", "a"), ("c", "b"), ("a", "c")]
    assert plan_pairs(["a", "b"], "ring") == [("b", "a"), ("a", "b")]
    assert len(plan_pairs(["a", "b", "c"], "all")) == 6
    assert all(s != c for s, c in plan_pairs(["a", "b", "c", "d"], "all"))


# --- tcpdump --------------------------------------------------------------------------------------


def test_tcpdump_counters_from_real_stderr():
    stats = parse_stats((DATA / "tcpdump_stderr.txt").read_text())
    assert stats == {"captured": 10, "received_by_filter": 10, "dropped_by_kernel": 0}
    assert parse_stats("tcpdump: listening on x\n") == {
        "captured": None,
        "received_by_filter": None,
        "dropped_by_kernel": None,
    }
    assert parse_stats("1 packet captured\n1 packet received by filter\n")["captured"] == 1


def test_summaries_one_per_packet():
    lines = parse_summaries((DATA / "tcpdump_read.txt").read_text(), limit=1000)
    assert len(lines) == 10
    assert lines[0].summary.startswith("IP 10.85.5.2 > 10.85.5.1: ICMP echo request")
    assert lines[1].summary.startswith("IP 10.85.5.1 > 10.85.5.2: ICMP echo reply")
    assert lines[0].time < lines[-1].time < lines[0].time + 5
    assert len(parse_summaries((DATA / "tcpdump_read.txt").read_text(), limit=3)) == 3


def test_start_errors_bad_filter_is_invalid_missing_device_aborted():
    p = CaptureParams(interface="h5tva", filter="icmp and ((")
    bad = start_error((DATA / "tcpdump_bad_filter.txt").read_text(), p)
    assert bad.status is Status.INVALID and "can't parse filter expression" in str(bad)
    nodev = start_error((DATA / "tcpdump_no_device.txt").read_text(), CaptureParams(interface="nosuch0"))
    assert nodev.status is Status.ABORTED and "no interface nosuch0" in str(nodev)


def test_walk_a_real_pcap():
    data = (DATA / "icmp10.pcap").read_bytes()
    walk = walk_pcap(data)
    assert (walk.packets, walk.valid_bytes, walk.complete) == (10, len(data), True)
    cut = walk_pcap(data[:-5])  # a file that ends inside its last record
    assert (cut.packets, cut.complete) == (9, False)
    limited = walk_pcap(data, limit=24 + 3 * (16 + 98))  # 98-byte ICMP frames: exactly three records fit
    assert (limited.packets, limited.valid_bytes) == (3, 24 + 3 * 114)
    assert walk_pcap(data[:10]).packets == 0
    with pytest.raises(ValueError):
        walk_pcap(b"\x00" * 64)


def test_finish_pcap_cuts_to_whole_records(tmp_path):
    path = tmp_path / "c.pcap"
    shutil.copy(DATA / "icmp10.pcap", path)
    packets, size, digest = finish_pcap(path, max_pcap_bytes=500)
    assert packets == 4 and size == 24 + 4 * 114 == path.stat().st_size
    assert walk_pcap(path.read_bytes()).complete
    assert len(digest) == 64


def test_tcpdump_argv_puts_the_filter_after_double_dash(tmp_path):
    p = CaptureParams(interface="data0", filter="icmp or arp", count=20, snaplen_bytes=128)
    argv = tcpdump_argv(p, tmp_path / "c.pcap")
    assert argv[-2:] == ["--", "icmp or arp"]
    assert argv[argv.index("-c") + 1] == "20" and argv[argv.index("-s") + 1] == "128"
    assert argv[argv.index("-i") + 1] == "data0" and "-Z" in argv
    assert "--" not in tcpdump_argv(CaptureParams(interface="data0"), tmp_path / "c.pcap")


@pytest.mark.parametrize(
    "bad",
    [
        {"interface": "-x"},
        {"interface": "data0", "filter": "icmp; reboot"},
        {"interface": "data0", "filter": "$(id)"},
        {"interface": "data0", "filter": "icmp `id`"},
        {"interface": "data0", "filter": "-w /etc/passwd"},
        {"interface": "data0", "filter": "port 22 || 'x'"},
        {"interface": "data0", "filter": "a" * 600},
        {"interface": "data0", "filter": "   "},
        {"interface": "data0", "count": 1_000_000},
        {"interface": "data0", "duration_s": 100000},
        {"interface": "data0", "max_pcap_bytes": 10**10},
        {"interface": "data0", "snaplen_bytes": 10**6},
        {"interface": "data0", "lines": 10**6},
    ],
)
def test_bad_capture_params_are_refused(bad):
    with pytest.raises(ValidationError):
        CaptureParams.model_validate(bad)


def test_good_filters_pass_normalised():
    for text in (
        "icmp",
        "tcp[13] & 2 != 0",
        "host 10.0.0.1 and (port 67 or port 68)",
        "vlan 100 and ip6",
        "ether[0] & 1 = 1",
    ):
        assert CaptureParams(interface="data0", filter=text).filter == text
    assert CaptureParams(interface="data0", filter="  icmp \n or  arp ").filter == "icmp or arp"


def test_a_full_chunk_fits_the_nats_payload_limit():
    chunk = chunk_size(codec.NATS_DEFAULT_MAX_PAYLOAD)
    assert chunk == MAX_CHUNK_BYTES
    result = CaptureFetchResult(
        capture_id="0123456789abcdef",
        offset_bytes=10**7,
        length_bytes=chunk,
        size_bytes=10**8,
        sha256="f" * 64,
        eof=False,
        data_b64=base64.b64encode(os.urandom(chunk)).decode(),
    )
    reply = Reply(id="x" * 16, node="n" * 253, probe="capture-fetch", status=Status.OK, result=result.model_dump())
    assert len(codec.encode(reply.model_dump(mode="json"))) < codec.NATS_DEFAULT_MAX_PAYLOAD
    assert chunk_size(256 * 1024) < 192 * 1024  # a server with a smaller limit gets smaller chunks
    with pytest.raises(ValidationError):
        CaptureFetchParams(capture_id="0123456789abcdef", length_bytes=MAX_CHUNK_BYTES + 1)
    with pytest.raises(ValidationError):
        CaptureFetchParams(capture_id="../../etc/passwd")


def test_pcap_names_per_node(tmp_path):
    assert pcap_path(str(tmp_path / "cap.pcap"), "compute-1") == tmp_path / "cap.compute-1.pcap"
    assert pcap_path(str(tmp_path / "cap"), "n1") == tmp_path / "cap.n1.pcap"
    assert pcap_path(str(tmp_path / "{node}-x.pcap"), "n1") == tmp_path / "n1-x.pcap"


# --- link plumbing params and the mark ------------------------------------------------------------


def test_mark_round_trip():
    mark = mark_for("abc123", 1795630000.7)
    assert mark == "steth:abc123:1795630000"
    assert parse_mark(mark) == ("abc123", 1795630000.0)
    assert parse_mark("uplink to switch 3") is None and parse_mark(None) is None and parse_mark("") is None
    assert parse_mark("steth:by-hand")[1] == float("inf")  # marked by hand: never expires by itself


def test_link_params():
    p = LinkSetupParams(name="st0", cidr="192.0.2.10/24")
    assert p.kind == "veth" and p.peer == "st0p"
    assert LinkAddVlanParams(parent="data0", vlan_id=100).name == "data0.100"
    bad = [
        dict(name="-x"),
        dict(name="st0", kind="macvlan"),
        dict(name="st0", parent="data0"),
        dict(name="st0", kind="bridge", peer="x"),
        dict(name="st0", cidr="192.0.2.0/24"),
        dict(name="st0", cidr="192.0.2.255/24"),
        dict(name="st0", cidr="192.0.2.10"),
        dict(name="st0", cidr="127.0.0.2/8"),
        dict(name="st0", cidr="10.0.0.1/33"),
        dict(name="st0", cidr="10.0.0.1/24; reboot"),
        dict(name="st0", check="192.0.2.1"),
        dict(name="abcdefghijklmno"),
        dict(name="st0", ttl_s=10**7),
        dict(name="st0", peer="st0"),
        dict(name="st0", kind="dummy"),
    ]
    for args in bad:
        with pytest.raises(ValidationError):
            LinkSetupParams.model_validate(args)
    with pytest.raises(ValidationError):
        LinkAddVlanParams(parent="data0", vlan_id=4095)
    with pytest.raises(ValidationError):
        LinkAddVlanParams(parent="abcdefghijklmn", vlan_id=100)  # PARENT.VLAN would pass 15 characters
    with pytest.raises(ValidationError):
        LinkTeardownParams()
    with pytest.raises(ValidationError):
        LinkTeardownParams(names=["st0"], all_marked=True)
    assert LinkSetupParams(name="st0", cidr="192.0.2.1/31").cidr == "192.0.2.1/31"


# --- the job table, with real processes -----------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_a_job_dies_at_its_deadline_with_its_folder():
    async def go():
        table = JobTable()
        job = table.add("test", 1.0, directory=True)
        await table.spawn(job, ["sleep", "30"], output="out.log")
        pid, folder = job.proc.pid, job.directory
        assert alive(pid) and folder.is_dir() and len(table) == 1
        started = time.monotonic()
        while len(table) and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
        return pid, folder, time.monotonic() - started

    pid, folder, took = asyncio.run(go())
    assert 0.8 < took < 2.5
    assert not alive(pid) and not folder.exists()


def test_close_ends_everything_and_end_on_exit_reaps():
    async def go():
        table = JobTable()
        long = [table.add("test", 60, directory=True) for _ in range(3)]
        for job in long:
            await table.spawn(job, ["sleep", "60"])
        short = table.add("test", 60, end_on_exit=True)
        await table.spawn(short, ["true"])
        for _ in range(60):
            if table.get(short.id) is None:
                break
            await asyncio.sleep(0.05)
        reaped = table.get(short.id) is None
        pids = [j.proc.pid for j in long]
        await table.close()
        return reaped, pids, [j.directory for j in long], len(table)

    reaped, pids, folders, left = asyncio.run(go())
    assert reaped and left == 0
    assert not any(alive(p) for p in pids) and not any(f.exists() for f in folders)


def test_job_limit():
    async def go():
        table = JobTable(max_jobs=2)
        table.add("t", 5)
        table.add("t", 5)
        with pytest.raises(Exception, match="limit 2"):
            table.add("t", 5)
        await table.close()

    asyncio.run(go())


def test_folders_of_a_dead_agent_are_swept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / "steth-capture-0123456789abcdef-x1"
    orphan.mkdir()
    (orphan / OWNER_FILE).write_text(str(dead.pid))
    live = tmp_path / "steth-capture-fedcba9876543210-x2"
    live.mkdir()
    (live / OWNER_FILE).write_text(str(os.getpid()))
    unrelated = tmp_path / "steth-bench-fanout-x3"
    unrelated.mkdir()

    async def go():
        table = JobTable(base_dir=str(tmp_path))  # sweeps when it is made
        job = table.add("capture", 5, directory=True)
        assert (job.directory / OWNER_FILE).read_text() == str(os.getpid())
        await table.close()

    asyncio.run(go())
    assert not orphan.exists() and live.exists() and unrelated.exists()
    assert sweep_orphans(str(tmp_path)) == 0
