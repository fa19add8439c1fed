"""Scheduled probes: the `[[schedule]]` entries and the built-in mesh, each on its own timer.

Every run goes through `AgentRuntime.execute`, the code path of requests (same slots, deadline, probe code).
A schedule's runs follow one another in a single task, so a run never overlaps the one before; each run is
bounded by its timeout. A run that could not happen (a node:NAME not in presence, no free slot, a tool
missing) is counted as a run that did not succeed. Each result goes to the metrics and, as a
`ScheduledResult`, to `steth.v1.results.<node>.<probe>`, which a JetStream stream keeps for a while.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from steth import __version__, codec
from steth.agent import rendezvous
from steth.agent.presence_watch import PresenceWatch
from steth.agent.schedule_config import ScheduleConfig
from steth.schemas import subjects
from steth.schemas.envelope import Status, new_request_id
from steth.schemas.probes import registry
from steth.schemas.results import ScheduledResult
from steth.schemas.types import describe_validation_error

log = logging.getLogger("steth.agent.scheduler")

MESH = "mesh"
STREAM_RETRY_S = 60.0


@dataclass
class Job:
    name: str
    probe: str
    interval_s: float
    jitter_s: float
    plane: str | None
    entry: ScheduleConfig | None = None  # None: the mesh
    publish: bool = True
    targets: set[str] = field(default_factory=set)  # target labels it probes now (for metrics clean-up)

    @property
    def plane_label(self) -> str:
        return self.plane or "default"


class Scheduler:
    def __init__(self, runtime: Any):
        self.rt = runtime
        self.config = runtime.config
        self.metrics = runtime.metrics
        self.node = self.config.node
        self.presence = PresenceWatch(lambda: self.rt.nc, self.node, self.config.heartbeat_s, self._presence_changed)
        self.jobs = [
            Job(e.name, e.probe, e.interval_s, e.jitter_s, e.plane, e, e.publish) for e in self.config.schedule
        ]
        m = self.config.mesh
        if m.enabled:
            self.jobs.append(Job(MESH, "ping", m.interval_s, m.jitter_s, m.plane))
        if self.metrics is not None:
            for job in self.jobs:
                self.metrics.declare_schedule(job.name, job.probe)
        self.mesh_peers: dict[str, str] = {}  # node -> address the mesh pings now
        self._tasks: list[asyncio.Task] = []
        self._stream_ready = False
        self._stream_tried = 0.0

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.presence.run(), name="presence-watch"))
        for job in self.jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"schedule-{job.name}"))
        if self.jobs:
            log.info("scheduler: %s", ", ".join(f"{j.name} ({j.probe} every {j.interval_s:g} s)" for j in self.jobs))

    async def stop(self) -> None:
        """Cancel every schedule; a run in progress is cancelled too, which kills its tools."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self._tasks.clear()

    async def _loop(self, job: Job) -> None:
        if job.jitter_s:  # agents started together do not all probe at the same moment
            await asyncio.sleep(random.uniform(0, min(job.jitter_s, job.interval_s)))
        try:  # node:NAME targets and the mesh need the current presence first
            await asyncio.wait_for(self.presence.ready.wait(), timeout=10)
        except TimeoutError:
            pass
        while True:
            began = time.monotonic()
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the schedule
                log.exception("schedule %s failed unexpectedly", job.name)
                self._record(job, Status.ERROR, f"agent error: {exc}", None, {}, None, time.time(), None)
            wait = job.interval_s + (random.uniform(-job.jitter_s, job.jitter_s) if job.jitter_s else 0.0)
            # The next run starts after this one ended, however long it took: runs never overlap.
            await asyncio.sleep(max(began + wait - time.monotonic(), min(1.0, job.interval_s / 10)))

    # --- one run -------------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        if job.entry is None:
            await self._run_mesh(job)
        else:
            await self._run_entry(job)

    async def _run_entry(self, job: Job) -> None:
        entry = job.entry
        names: dict[str, str] = {}  # address -> node, for node:NAME targets
        unresolved: list[str] = []

        def resolve(target: str) -> str | None:
            if not target.startswith("node:"):
                return target
            address = self._address_of(target[5:], entry.plane)
            if address is None:
                unresolved.append(target)
                return None
            names[address] = target[5:]
            return address

        runs = entry.param_sets(resolve)
        labels = {names.get(a, a) for args in runs for a in _targets_of(args, entry.target_param)}
        self._set_targets(job, labels)
        problem = (
            f"not in presence or no address on {entry.plane or 'the data plane'}: {', '.join(unresolved)}"
            if unresolved
            else ""
        )
        if not runs:
            self._record(job, Status.ABORTED, problem, None, names, None, time.time(), None)
            return
        if unresolved and entry.per_target:  # each target is its own run: the missing ones are runs too
            for target in unresolved:
                self._record(
                    job, Status.ABORTED, f"{target}: not in presence or no address", None, {}, target, time.time(), None
                )
            problem = ""
        for args in runs:
            target = names.get(args.get(entry.target_param), args.get(entry.target_param)) if entry.per_target else None
            await self._execute(job, args, names, problem, target)

    async def _run_mesh(self, job: Job) -> None:
        peers = self._pick_mesh()
        if not peers:
            return  # nobody to ping (a one-node fleet): not a failure of this node
        m = self.config.mesh
        args = {
            "targets": sorted(set(peers.values())),
            "count": m.count,
            "interval_s": m.packet_interval_s,
            "max_loss": m.max_loss,
        }
        names = {}
        for node, address in peers.items():
            names.setdefault(address, node)
        await self._execute(job, args, names, "", None)

    async def _execute(self, job: Job, args: dict, names: dict[str, str], problem: str, target: str | None) -> None:
        spec = registry()[job.probe]
        submitted = time.time()
        try:
            params = spec.params.model_validate(args)
        except ValidationError as exc:  # e.g. node:NAME resolved to an address the params refuse
            self._record(
                job,
                Status.ABORTED,
                f"bad params: {describe_validation_error(exc)}",
                None,
                names,
                target,
                submitted,
                None,
            )
            return
        timeout = job.entry.timeout_s if job.entry and job.entry.timeout_s else spec.timeout_for(params)
        run_id = new_request_id()
        outcome, started = await self.rt.execute(job.probe, params, submitted + timeout, run_id)
        status, message = outcome.status, outcome.message
        if problem and status is Status.OK:
            status, message = Status.ABORTED, problem  # some targets could not be probed: not a success
        elif problem:
            message = f"{message}; {problem}"
        self._record(job, status, message, outcome.result, names, target, started or submitted, run_id)

    def _record(
        self,
        job: Job,
        status: Status,
        message: str,
        result: dict | None,
        names: dict[str, str],
        target: str | None,
        started: float,
        run_id: str | None,
    ) -> None:
        finished = time.time()
        if self.metrics is not None:
            m = self.metrics
            m.observe_run(job.name, job.probe, status is Status.OK, finished - started, finished)
            # A peer that left while this run was in flight already lost its series: do not bring them back.
            if job.probe == "ping" and result:
                rows = [
                    r for r in result.get("targets") or [] if names.get(r.get("target"), r.get("target")) in job.targets
                ]
                m.observe_ping(rows, names, job.plane_label)
            elif result and (not target or target in job.targets):
                m.observe_values(job.name, target or "", job.plane_label, result)
        if status is not Status.OK:
            log.info("schedule %s: %s%s", job.name, status.value, f": {message}" if message else "")
        if self.config.results.publish and job.publish:
            record = ScheduledResult(
                id=run_id or new_request_id(),
                node=self.node,
                probe=job.probe,
                status=status,
                message=message,
                result=result,
                started=started,
                finished=finished,
                agent_version=__version__,
                schedule=job.name,
                roles=self.config.roles,
                peers=names,
                plane=job.plane or "",
            )
            task = asyncio.get_running_loop().create_task(self._publish(record))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task) -> None:
        try:
            self._tasks.remove(task)
        except ValueError:
            pass

    # --- presence, the mesh and metric clean-up ------------------------------------------------

    def _address_of(self, node: str, plane: str | None) -> str | None:
        info = self.rt.info if node == self.node else self.presence.info(node)
        return info.address_on(plane) if info is not None else None

    def _pick_mesh(self) -> dict[str, str]:
        """node -> address of the K peers this node pings: rendezvous-ranked among alive, eligible peers."""
        m = self.config.mesh
        candidates: dict[str, str] = {}
        for node in self.presence.peers():
            info = self.presence.info(node)
            if info is None or (m.roles and not set(m.roles) & set(info.roles)):
                continue
            address = info.address_on(m.plane)
            if address:
                candidates[node] = address
        chosen = {n: candidates[n] for n in rendezvous.pick(self.node, candidates, m.k)}
        if chosen != self.mesh_peers:
            log.info("mesh peers: %s", ", ".join(sorted(chosen)) or "none")
            self.mesh_peers = chosen
        mesh_job = next((j for j in self.jobs if j.entry is None), None)
        if mesh_job is not None:
            self._set_targets(mesh_job, set(chosen))
            if self.metrics is not None:
                self.metrics.set_mesh_peers(chosen, mesh_job.plane_label)
        return chosen

    def _presence_changed(self, joined: set[str], departed: set[str]) -> None:
        if self.metrics is not None:
            self.metrics.presence_peers.set(len(self.presence.peers()))
        if self.config.mesh.enabled:
            self._pick_mesh()  # a departed peer's series go now, not at the next run
        for job in self.jobs:
            if job.entry is not None and job.targets & departed:
                self._set_targets(job, job.targets - departed)

    def _set_targets(self, job: Job, labels: set[str]) -> None:
        job.targets = set(labels)
        if self.metrics is not None:
            self.metrics.set_targets(job.name, job.targets)

    # --- results stream ------------------------------------------------------------------------

    async def _publish(self, record: ScheduledResult) -> None:
        nc = self.rt.nc
        try:
            await self._ensure_stream()
            try:
                data = codec.encode(record.model_dump(mode="json"), limit=nc.max_payload)
            except codec.PayloadTooLarge as exc:
                record.result, record.message = None, f"result not published: {exc}"
                data = codec.encode(record.model_dump(mode="json"))
            await nc.publish(subjects.results(self.node, record.probe), data)
        except Exception as exc:  # NATS away: metrics still have the run
            log.warning("could not publish a %s result: %s", record.schedule, exc)

    async def _ensure_stream(self) -> None:
        if self._stream_ready or time.monotonic() - self._stream_tried < STREAM_RETRY_S and self._stream_tried:
            return
        self._stream_tried = time.monotonic()
        self._stream_ready = await ensure_results_stream(
            self.rt.nc, self.config.results, getattr(self.rt, "_denied", None)
        )


async def ensure_results_stream(nc: Any, cfg: Any, denied: Any = None) -> bool:
    """Whether the results stream exists; created when missing if this identity may (an open server: the lab,
    development). `steth setup` creates it otherwise: an agent identity has no STREAM.CREATE right."""
    from nats.js.errors import NotFoundError

    from steth import streams

    js = nc.jetstream(timeout=5)
    try:
        await js.stream_info(cfg.stream)
        return True
    except NotFoundError:
        pass
    wanted = streams.results_config(cfg.stream, cfg.max_age_s, cfg.max_msgs, cfg.max_bytes, cfg.replicas)
    try:
        await streams.create_missing(js, wanted, "the results stream", denied)
        log.info("results stream %s ready", cfg.stream)
    except streams.SetupNeeded as exc:
        log.error("%s; results are published without being kept until then", exc)
        return False
    return True


def _targets_of(args: dict, param: str | None) -> list[str]:
    if not param or param not in args:
        return []
    value = args[param]
    return list(value) if isinstance(value, list) else [value]
