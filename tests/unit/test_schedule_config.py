"""[[schedule]], [mesh], [results] and [metrics] in the agent config; metrics labels; sd_notify; file_sd."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from steth.agent.config import AgentConfig, load
from steth.schemas.probes import registry


def config(**extra) -> AgentConfig:
    return AgentConfig.model_validate({"node": "compute-1", **extra})


def test_schedule_entry_defaults_and_targets():
    c = config(schedule=[{"probe": "ping", "targets": ["10.0.0.1", "node:compute-2"], "interval_s": 10}])
    entry = c.schedule[0]
    assert entry.name == "ping" and entry.target_param == "targets" and not entry.per_target
    runs = entry.param_sets(lambda t: "10.0.0.2" if t == "node:compute-2" else t)
    assert runs == [{"targets": ["10.0.0.1", "10.0.0.2"]}]
    assert entry.param_sets(lambda t: None if t.startswith("node:") else t) == [{"targets": ["10.0.0.1"]}]


@pytest.mark.skipif("mtu" not in registry(), reason="no mtu probe")
def test_single_target_probe_runs_once_per_target():
    c = config(schedule=[{"probe": "mtu", "targets": ["10.0.0.1", "node:network-1"], "params": {"max_bytes": 1500}}])
    entry = c.schedule[0]
    assert entry.target_param == "target" and entry.per_target
    assert entry.param_sets(lambda t: "10.0.0.9" if t.startswith("node:") else t) == [
        {"max_bytes": 1500, "target": "10.0.0.1"},
        {"max_bytes": 1500, "target": "10.0.0.9"},
    ]


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"probe": "nosuch"}, "unknown probe"),
        ({"probe": "ping", "targets": ["-c1"]}, "neither an IP address nor node:NAME"),
        ({"probe": "ping", "targets": ["node:bad name"]}, "invalid node name"),
        ({"probe": "ping", "targets": ["10.0.0.1"], "params": {"count": 10**6}}, "bad params"),
        ({"probe": "ping", "targets": ["10.0.0.1"], "params": {"targets": ["10.0.0.2"]}}, "not both"),
        ({"probe": "ping", "targets": ["10.0.0.1"], "interval_s": 0.1}, "interval_s"),
        ({"probe": "ping", "targets": ["10.0.0.1"], "name": "Bad Name"}, "schedule name"),
        ({"probe": "ping", "targets": ["10.0.0.1"], "params": {"interface": "-x"}}, "bad params"),
        ({"probe": "ping"}, "bad params"),  # ping needs targets from somewhere
        ({"probe": "ping", "targets": ["10.0.0.1"], "surprise": 1}, "extra"),
    ],
)
def test_bad_schedule_entries_are_refused(entry, message):
    with pytest.raises(ValidationError) as exc:
        config(schedule=[entry])
    assert message.lower() in str(exc.value).lower()


def test_mutating_probes_cannot_be_scheduled():
    mutating = [name for name, spec in registry().items() if spec.mutating]
    if not mutating:
        pytest.skip("no mutating probe declared")
    with pytest.raises(ValidationError, match="cannot be scheduled"):
        config(schedule=[{"probe": mutating[0]}])


def test_schedule_names_are_unique_and_mesh_is_reserved():
    entry = {"probe": "ping", "targets": ["10.0.0.1"]}
    with pytest.raises(ValidationError, match="two schedules"):
        config(schedule=[entry, entry])
    with pytest.raises(ValidationError, match="two schedules"):
        config(schedule=[{**entry, "name": "mesh"}], mesh={"enabled": True})
    assert len(config(schedule=[entry, {**entry, "name": "gw"}]).schedule) == 2


def test_mesh_results_metrics_sections_and_env_overrides(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(
        'node = "compute-1"\n[metrics]\nlisten = "10.0.0.5:9273"\n[mesh]\nenabled = true\nk = 3\nplane = "10.98.0.0/24"\n'
        '[results]\nmax_age_s = 3600\n[[schedule]]\nname = "gw"\nprobe = "ping"\ntargets = ["10.0.0.1"]\ninterval_s = 30\n'
    )
    c = load(path, environ={"STETH_MESH_K": "5", "STETH_MESH_ROLES": "compute,network", "STETH_SCHEDULE": "ignored"})
    assert c.metrics.listen == "10.0.0.5:9273" and c.mesh.enabled and c.mesh.k == 5
    assert c.mesh.roles == ["compute", "network"] and c.results.max_age_s == 3600 and c.schedule[0].name == "gw"
    for bad in (
        {"metrics": {"listen": "nonsense"}},
        {"metrics": {"listen": "1.2.3.4:99999"}},
        {"mesh": {"k": 0}},
        {"mesh": {"roles": ["Bad"]}},
        {"results": {"stream": "a.b"}},
    ):
        with pytest.raises(ValidationError):
            config(**bad)


def test_advertised_metrics_address():
    from steth.agent.metrics import advertised_address

    assert advertised_address("10.0.0.5:9273", None, "compute-1") == "10.0.0.5:9273"
    assert advertised_address(":9273", None, "compute-1.example.org") == "compute-1.example.org:9273"
    assert advertised_address("0.0.0.0:9273", "198.51.100.7:19273", "c1") == "198.51.100.7:19273"
    assert advertised_address("[fd00::5]:9273", None, "c1") == "[fd00::5]:9273"
    assert advertised_address(None, None, "c1") == ""


def _samples(metrics) -> dict[tuple, float]:
    out = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_series_follow_targets_and_stay_bounded(monkeypatch):
    from steth.agent import metrics as metrics_mod

    m = metrics_mod.AgentMetrics("compute-1", ["compute"], "0.1.0", lambda: None)
    rows = [
        {"target": "10.0.0.2", "sent": 5, "received": 4, "rtt_avg_ms": 0.5},
        {"target": "10.0.0.3", "sent": 5, "received": 0, "rtt_avg_ms": None},
    ]
    m.set_targets("mesh", {"compute-2", "compute-3"})
    m.observe_ping(rows, {"10.0.0.2": "compute-2", "10.0.0.3": "compute-3"}, "default")
    s = _samples(m)
    assert s[("steth_ping_sent_total", (("plane", "default"), ("target", "compute-2")))] == 5
    assert s[("steth_ping_received_total", (("plane", "default"), ("target", "compute-3")))] == 0
    rtt = ("steth_ping_rtt_seconds", (("plane", "default"), ("target", "compute-2")))
    assert s[("steth_ping_rtt_seconds_count",) + rtt[1:]] == 4
    assert s[("steth_ping_rtt_seconds_sum",) + rtt[1:]] == pytest.approx(0.002)
    assert not any(name.endswith("_created") for name, _ in s)
    # compute-3 leaves: its series go, compute-2's stay.
    m.set_targets("mesh", {"compute-2"})
    s = _samples(m)
    assert not any(dict(labels).get("target") == "compute-3" for _, labels in s)
    assert any(dict(labels).get("target") == "compute-2" for _, labels in s)
    # More distinct targets than the cap share one label.
    monkeypatch.setattr(metrics_mod, "MAX_TARGETS", 3)
    many = [{"target": f"10.1.0.{i}", "sent": 1, "received": 1, "rtt_avg_ms": 1.0} for i in range(10)]
    m.observe_ping(many, {}, "default")
    targets = {dict(labels).get("target") for name, labels in _samples(m) if name == "steth_ping_sent_total"}
    assert len(targets) <= 4 and metrics_mod.OTHER in targets
    # Requests: an unknown probe name from the network becomes "unknown", not a new label value.
    m.count_request("made-up-probe", "unknown_probe", known=False)
    assert _samples(m)[("steth_agent_requests_total", (("probe", "unknown"), ("status", "unknown_probe")))] == 1


def test_metrics_values_from_results():
    from steth.agent.metrics import AgentMetrics

    m = AgentMetrics("compute-1", [], "0.1.0", lambda: None)
    m.observe_values("iperf", "network-1", "default", {"sent_bps": 9.1e8, "received_bps": 9e8, "retransmits": 3})
    m.observe_values("mtu", "10.0.0.1", "default", {"target": "10.0.0.1", "path_mtu_bytes": 1450})
    s = _samples(m)
    labels = (("direction", "received"), ("plane", "default"), ("schedule", "iperf"), ("target", "network-1"))
    assert s[("steth_bandwidth_bytes_per_second", labels)] == 9e8 / 8  # base unit: bytes
    assert s[("steth_path_mtu_bytes", (("plane", "default"), ("schedule", "mtu"), ("target", "10.0.0.1")))] == 1450


def test_a_schedule_has_its_runs_and_successes_series_before_its_first_run():
    """StethScheduleFailing compares the two counters: a schedule that never succeeds must export successes 0."""
    from steth.agent.metrics import AgentMetrics

    m = AgentMetrics("compute-1", [], "0.1.0", lambda: None)
    m.declare_schedule("gw", "ping")
    labels = (("probe", "ping"), ("schedule", "gw"))
    assert _samples(m)[("steth_schedule_runs_total", labels)] == 0
    assert _samples(m)[("steth_schedule_successes_total", labels)] == 0
    m.observe_run("gw", "ping", False, 0.5, 1.0)
    assert _samples(m)[("steth_schedule_runs_total", labels)] == 1
    assert _samples(m)[("steth_schedule_successes_total", labels)] == 0


def test_sd_notify_sends_one_datagram(monkeypatch):
    from steth.agent.sdnotify import notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False  # not under systemd: nothing to do
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(5)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
            assert notify("READY=1", "STATUS=answering") is True
            assert sock.recv(4096) == b"READY=1\nSTATUS=answering"


def test_file_sd_keeps_departed_agents_for_a_while(tmp_path):
    from steth.controller.prometheus_sd import LAST_SEEN, read_previous, target_groups, write_atomically
    from steth.controller.session import Selection
    from steth.presence import Present
    from steth.schemas.agent_info import AgentInfo

    now = time.time()
    present = {
        "compute-1": Present(AgentInfo(node="compute-1", roles=["compute"], metrics_address="10.0.0.11:9273"), 1.0),
        "network-1": Present(AgentInfo(node="network-1", roles=["network"]), 1.0),  # no metrics: not a target
    }
    old = [
        {"targets": ["10.0.0.12:9273"], "labels": {"node": "compute-2", LAST_SEEN: f"{now - 600:.0f}"}},
        {"targets": ["10.0.0.13:9273"], "labels": {"node": "compute-3", LAST_SEEN: f"{now - 7200:.0f}"}},
    ]
    groups, kept = target_groups(present, Selection(), old, keep_s=3600, now=now)
    assert [g["labels"]["node"] for g in groups] == ["compute-1", "compute-2"] and kept == 1
    assert groups[0] == {
        "targets": ["10.0.0.11:9273"],
        "labels": {"node": "compute-1", "roles": "compute", "version": "", LAST_SEEN: f"{now:.0f}"},
    }
    path = tmp_path / "sd" / "agents.json"
    write_atomically(path, groups)
    assert read_previous(path) == groups and json.loads(path.read_text()) == groups
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    groups, _ = target_groups(present, Selection(roles=("network",)), [], keep_s=0, now=now)
    assert groups == []
    assert read_previous(Path(tmp_path / "missing.json")) == []
