"""The agent's Prometheus metrics: its own registry, served on `[metrics] listen` at /metrics.

Labels come only from bounded sets: probe names (the registry), statuses (the enum), schedule names (the
config), targets (the configured ones and at most K mesh peers). A target no schedule probes any more (a
departed peer, a peer the mesh rotated out) has its series removed, so Prometheus sees them end.
docs/metrics.md lists every metric.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from steth.agent.schedule_config import host_port

log = logging.getLogger("steth.agent.metrics")

# A runaway config cannot blow up Prometheus: targets past this share the label "_other".
MAX_TARGETS = 1024
OTHER = "_other"

RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RTT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


def advertised_address(listen: str | None, advertise: str | None, node: str) -> str:
    """HOST:PORT Prometheus should scrape: `advertise`, else `listen`, with the node name for a wildcard host."""
    if advertise:
        return advertise
    if not listen:
        return ""
    host, port = host_port(listen)
    if host in ("", "0.0.0.0", "::"):
        host = node  # Nova host names resolve in most clouds; set `advertise` where they do not
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _NatsCollector:
    """NATS connection state, read from the client at scrape time."""

    def __init__(self, connection: Callable[[], Any]):
        self._connection = connection

    def collect(self) -> Iterable:
        nc = self._connection()
        connected = bool(nc is not None and nc.is_connected)
        yield GaugeMetricFamily(
            "steth_nats_connected", "1 while the agent's NATS connection is up.", value=int(connected)
        )
        reconnects = nc.stats.get("reconnects", 0) if nc is not None else 0
        yield CounterMetricFamily("steth_nats_reconnects", "Times the agent reconnected to NATS.", value=reconnects)


class AgentMetrics:
    def __init__(self, node: str, roles: list[str], version: str, connection: Callable[[], Any]):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self._disable_created()
        Info("steth_agent", "The agent: node, version, roles.", registry=r).info(
            {"node": node, "version": version, "roles": ",".join(roles)}
        )
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        r.register(_NatsCollector(connection))
        self.requests = Counter(
            "steth_agent_requests", "Requests answered, by probe and status.", ["probe", "status"], registry=r
        )
        self.presence_peers = Gauge("steth_presence_peers", "Other agents alive in presence.", registry=r)
        self.mesh_peer = Gauge(
            "steth_mesh_peer", "1 for each peer the mesh currently pings.", ["peer", "plane"], registry=r
        )
        labels = ["schedule", "probe"]
        self.runs = Counter("steth_schedule_runs", "Scheduled probe runs.", labels, registry=r)
        self.successes = Counter("steth_schedule_successes", "Scheduled runs that ended ok.", labels, registry=r)
        self.duration = Histogram(
            "steth_schedule_duration_seconds", "Duration of scheduled runs.", labels, buckets=RUN_BUCKETS, registry=r
        )
        self.last_run = Gauge(
            "steth_schedule_last_run_timestamp_seconds", "When a schedule last finished a run.", labels, registry=r
        )
        target = ["target", "plane"]
        self.ping_sent = Counter("steth_ping_sent", "Echo requests sent by scheduled pings.", target, registry=r)
        self.ping_received = Counter(
            "steth_ping_received", "Echo replies received by scheduled pings.", target, registry=r
        )
        self.ping_rtt = Histogram(
            "steth_ping_rtt_seconds",
            "Echo round-trip time (each reply at its run's average).",
            target,
            buckets=RTT_BUCKETS,
            registry=r,
        )
        self.bandwidth = Gauge(
            "steth_bandwidth_bytes_per_second",
            "Throughput measured by a scheduled probe (bytes: the base unit; multiply by 8 for bits).",
            ["schedule", "target", "plane", "direction"],
            registry=r,
        )
        self.mtu = Gauge(
            "steth_path_mtu_bytes",
            "Path MTU measured by a scheduled probe.",
            ["schedule", "target", "plane"],
            registry=r,
        )
        self._targets_by_owner: dict[str, set[str]] = {}
        self._live_targets: set[str] = set()
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _disable_created() -> None:
        # `_created` series double every counter's series count; nobody alerts on them.
        from prometheus_client import disable_created_metrics

        disable_created_metrics()

    # --- the endpoint ------------------------------------------------------------------------

    def serve(self, listen: str) -> bool:
        """Start /metrics on HOST:PORT (once); False, logged, when the address cannot be bound."""
        if self._server is not None:
            return True
        from prometheus_client import start_http_server

        host, port = host_port(listen)
        try:
            self._server, self._thread = start_http_server(port, addr=host or "0.0.0.0", registry=self.registry)
        except OSError as exc:
            log.error("cannot serve metrics on %s: %s", listen, exc)
            return False
        log.info("metrics on http://%s/metrics", listen)
        return True

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- what the agent counts ----------------------------------------------------------------

    def count_request(self, probe: str, status: str, known: bool) -> None:
        self.requests.labels(probe if known else "unknown", status).inc()

    def declare_schedule(self, schedule: str, probe: str) -> None:
        """Runs and successes at 0 from the start: a schedule that never succeeds still has a successes series."""
        self.runs.labels(schedule, probe)
        self.successes.labels(schedule, probe)

    def observe_run(self, schedule: str, probe: str, ok: bool, duration_s: float, finished: float) -> None:
        self.runs.labels(schedule, probe).inc()
        if ok:
            self.successes.labels(schedule, probe).inc()
        self.duration.labels(schedule, probe).observe(max(0.0, duration_s))
        self.last_run.labels(schedule, probe).set(finished)

    def target_label(self, target: str) -> str:
        with self._lock:
            if target in self._live_targets or len(self._live_targets) < MAX_TARGETS:
                self._live_targets.add(target)
                return target
        return OTHER

    def observe_ping(self, rows: list[dict], names: dict[str, str], plane: str) -> None:
        """Counters and RTT from a ping result's rows; `names` maps addresses to node names."""
        for row in rows:
            if not row.get("sent"):
                continue  # the tool failed before sending: the run already counts as not ok
            label = self.target_label(names.get(row["target"], row["target"]))
            self.ping_sent.labels(label, plane).inc(row["sent"])
            received = int(row.get("received") or 0)
            self.ping_received.labels(label, plane).inc(received)
            rtt = row.get("rtt_avg_ms")
            if rtt is not None and received:
                child = self.ping_rtt.labels(label, plane)
                for _ in range(received):  # ping -q gives the average: _sum and _count stay exact
                    child.observe(rtt / 1000.0)

    def observe_values(self, schedule: str, target: str, plane: str, result: dict | None) -> None:
        """Bandwidth (fields ending in _bps) and path MTU gauges from a result, where it has them."""
        if not result:
            return
        label = self.target_label(target)
        for key, value in result.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if key.endswith("_bps"):
                self.bandwidth.labels(schedule, label, plane, key[: -len("_bps")] or "total").set(value / 8)
            elif key == "path_mtu_bytes":
                self.mtu.labels(schedule, label, plane).set(value)

    def set_mesh_peers(self, peers: Iterable[str], plane: str) -> None:
        self.mesh_peer.clear()
        for peer in peers:
            self.mesh_peer.labels(peer, plane).set(1)

    def set_targets(self, owner: str, targets: set[str]) -> None:
        """The target labels one schedule probes now; labels nobody probes any more lose their series."""
        with self._lock:
            before = set().union(*self._targets_by_owner.values()) if self._targets_by_owner else set()
            self._targets_by_owner[owner] = set(targets)
            after = set().union(*self._targets_by_owner.values())
            gone = before - after
            self._live_targets -= gone
        for target in gone:
            self.forget_target(target)

    def forget_target(self, target: str) -> None:
        for metric in (self.ping_sent, self.ping_received, self.ping_rtt, self.bandwidth, self.mtu):
            metric.remove_by_labels({"target": target})
        self.mesh_peer.remove_by_labels({"peer": target})
