"""The agent runtime: subscriptions, presence, dispatch of requests to probes, replies.

Several runtimes can share one NATS connection (benchmarks run thousands in a few processes).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from steth import __version__, codec
from steth.agent import netinfo
from steth.agent.auth import ReplySigner, Verifier
from steth.agent.config import AgentConfig
from steth.agent.errors import Busy, DeadlineReached, NotAllowed, ProbeError, RequestRefused
from steth.agent.jobs import JobTable
from steth.agent.policy import Policy
from steth.agent.probes import Outcome, ProbeContext, load
from steth.schemas import subjects
from steth.schemas.agent_info import AgentInfo
from steth.schemas.envelope import PROTOCOL_VERSION, PROTOCOL_VERSIONS, Reply, Request, Status, unspoken_version
from steth.schemas.probes import registry
from steth.schemas.types import describe_validation_error
from steth.streams import SetupNeeded, presence_replicas

log = logging.getLogger("steth.agent")

# The reply must reach the controller before its deadline: probes stop this much earlier.
REPLY_MARGIN_S = 0.15
# A failed presence write is retried this often (not at the next heartbeat): an entry must not expire while
# NATS fails over to another server (docs/reliability.md).
PRESENCE_RETRY_S = 0.5
SETUP_LOG_EVERY_S = 300.0  # a missing bucket `steth setup` must create: the error again this often
# The audit line shows this much of a request's args (JSON, so nothing in them can forge a log line).
AUDIT_ARGS_CHARS = 240
AUDIT_SUBJECT_CHARS = 120  # the request's subject and reply inbox (NATS subjects are short)


@dataclass
class Settled:
    """How one run of a probe ended, as a reply carries it: status, message, the result dumped."""

    status: Status
    message: str = ""
    result: dict[str, Any] | None = None


def settle(ended: Outcome | BaseException, probe: str = "") -> Settled:
    """The one place where how a probe ended becomes a node's status.

    An Outcome is a finding (ok or failed); a ProbeError answers the status its class declares
    (steth.agent.errors), with its message and partial result; any other exception is `error`. The result
    model is dumped here, once, as the wire has always carried it (model_dump(), then the reply's JSON mode).
    """
    if isinstance(ended, Outcome):
        status, message, result = ended.status, ended.message, ended.result
    elif isinstance(ended, ProbeError):
        status, message, result = ended.status, str(ended), ended.result
    else:
        log.error("probe %s failed unexpectedly", probe or "?", exc_info=ended)
        return Settled(Status.ERROR, f"agent error: {ended}")
    return Settled(status, message, result.model_dump() if result is not None else None)


class AgentRuntime:
    def __init__(self, config: AgentConfig, nc: Any = None, *, gather_interfaces: bool = True):
        self.config = config
        self.nc = nc
        self._own_connection = nc is None
        self._gather_interfaces = gather_interfaces
        self._subs: list[Any] = []
        self._inflight: set[asyncio.Task] = set()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._waiting: collections.Counter[str] = collections.Counter()  # per probe, for max_waiting
        self._kv: Any = None
        self._permission_errors: collections.deque[str] = collections.deque(maxlen=16)
        self._heartbeat_task: asyncio.Task | None = None
        # Set to rewrite the presence entry now (NATS reconnected, or the last write failed): see _heartbeat_loop.
        self._beat_now = asyncio.Event()
        # Signed requests and allow-lists (docs/security.md); no verifier when nothing is configured.
        sec = config.security
        self.verifier = Verifier(sec) if (sec.trusted_keys or sec.require_signed) else None
        self.reply_signer = ReplySigner(sec.signing_key) if sec.signing_key else None
        self.policy = Policy(config.policy)
        self.jobs = JobTable()  # background jobs (iperf3 servers, kept pcaps, links): ended in stop()
        self.started = time.time()
        self.info = AgentInfo(
            node=config.node,
            roles=config.roles,
            version=__version__,
            probes=list(registry()),
            started=self.started,
            heartbeat_s=config.heartbeat_s,
            mutating_allowed=config.policy.allow_mutating,
        )
        self.requests_handled = 0
        # Scheduled probes and /metrics (steth/agent/scheduler.py, metrics.py): only when configured.
        self.metrics: Any = None
        self.scheduler: Any = None
        if config.metrics.listen or config.schedule or config.mesh.enabled:
            from steth.agent.metrics import AgentMetrics, advertised_address

            self.metrics = AgentMetrics(config.node, config.roles, __version__, lambda: self.nc)
            self.info.metrics_address = advertised_address(config.metrics.listen, config.metrics.advertise, config.node)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        import os

        from steth.natsconn import connect

        self.info.pid = os.getpid()
        if self.metrics is not None and self.config.metrics.listen:  # before NATS: it reports NATS down too
            self.metrics.serve(self.config.metrics.listen)
        if self.nc is None:
            self.nc = await connect(self._nats_options(), persistent=True, **self._callbacks())
        await self._refresh_info()
        node = subjects.token(self.config.node)
        patterns = [f"{subjects.PREFIX}.req.all.*", f"{subjects.PREFIX}.req.node.{node}.*"]
        patterns += [f"{subjects.PREFIX}.req.role.{role}.*" for role in self.config.roles]
        for pattern in patterns:  # no queue group: every matching agent answers
            self._subs.append(await self.nc.subscribe(pattern, cb=self._on_request))
        try:
            await self._write_presence()
        except SetupNeeded:  # the heartbeat loop says it, and keeps looking
            self._beat_now.set()
        except Exception as exc:  # JetStream not ready (a cluster electing a leader): requests work, retry presence
            log.warning(
                "presence not written yet (%s: %s); retrying every %g s", exc.__class__.__name__, exc, PRESENCE_RETRY_S
            )
            self._beat_now.set()
        await self._announce("up")
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())
        if self.metrics is not None:
            from steth.agent.scheduler import Scheduler

            self.scheduler = Scheduler(self)
            self.scheduler.start()
        log.info("agent %s up: roles=%s data_plane=%s", self.config.node, self.config.roles, self.info.data_plane)

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Stop taking requests, let in-flight ones finish (bounded), leave presence, close."""
        if self.scheduler is not None:
            await self.scheduler.stop()
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        self._subs.clear()
        if self._inflight:
            log.info("draining %d in-flight request(s)", len(self._inflight))
            await asyncio.wait(self._inflight, timeout=drain_timeout)
        await self.jobs.close()
        if self._heartbeat_task:
            self._heartbeat_task.cancel()
        try:
            if self._kv is not None:
                await asyncio.wait_for(self._kv.delete(self.config.node), timeout=2)
            await self._announce("down")
            await asyncio.wait_for(self.nc.flush(), timeout=2)
        except Exception as exc:
            log.warning("could not leave presence cleanly: %s", exc)
        if self._own_connection and self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.close(), timeout=5)
            except Exception:
                pass
        if self.metrics is not None:
            self.metrics.close()
        log.info("agent %s stopped after %d request(s)", self.config.node, self.requests_handled)

    def _nats_options(self):
        from steth.natsauth import agent_inbox_prefix

        return self.config.nats.options(
            name=f"steth-agent {self.config.node}", inbox_prefix=agent_inbox_prefix(self.config.node)
        )

    def _callbacks(self) -> dict[str, Any]:
        async def disconnected() -> None:
            log.warning("disconnected from NATS; reconnecting")

        async def reconnected() -> None:
            log.info("reconnected to NATS at %s", self.nc.connected_url.netloc if self.nc else "?")
            # Rewrite presence at once: the entry may be close to its TTL after the time spent reconnecting.
            self._beat_now.set()

        async def error(exc: Exception) -> None:
            text = str(exc).lower()
            if "permissions violation" in text:  # kept for _denied; the broker's answer to a refused publish
                self._permission_errors.append(text)

        return {"disconnected_cb": disconnected, "reconnected_cb": reconnected, "error_cb": error}

    # --- presence --------------------------------------------------------------------------

    async def _open_presence(self) -> None:
        from nats.js.errors import BucketNotFoundError

        from steth import streams

        # Each write waits at most a heartbeat (1..5 s) for JetStream: a write lost in a failover is retried
        # PRESENCE_RETRY_S later, well before the entry's TTL (3 heartbeats or more) runs out.
        js = self.nc.jetstream(timeout=min(5.0, max(1.0, self.info.heartbeat_s)))
        try:
            self._kv = await js.key_value(subjects.PRESENCE_BUCKET)
        except BucketNotFoundError:
            # `steth setup` makes it; an agent on an open server (the lab, development) may make it itself.
            replicas = presence_replicas(self.config.presence_replicas, getattr(self.nc, "_server_info", None) or {})
            for n in dict.fromkeys((replicas, 1)):  # 3 where the cluster cannot place 3 (not advertised): then 1
                cfg = streams.presence_config(self.config.presence_ttl_s, n)
                try:
                    await streams.create_missing(js, cfg, "the presence bucket", self._denied)
                    break
                except SetupNeeded as exc:
                    if n == 1 or self.config.presence_replicas is not None or self._denied(streams.PRESENCE_STREAM):
                        raise
                    log.warning("cannot create the presence bucket with %d replicas (%s); trying 1", n, exc)
            self._kv = await js.key_value(subjects.PRESENCE_BUCKET)
            log.info("presence bucket %s ready", streams.PRESENCE_STREAM)
        await self._fit_heartbeat_to_ttl()

    def _denied(self, subject: str) -> bool:
        """Whether the server reported a permissions violation for a publish to `subject` (or, given a stream
        name, to its STREAM.CREATE) on this connection lately."""
        if not subject.startswith("$"):
            subject = f"$JS.API.STREAM.CREATE.{subject}"
        needle = f'publish to "{subject.lower()}"'
        return any(needle in text for text in self._permission_errors)

    async def _fit_heartbeat_to_ttl(self) -> None:
        """The bucket's TTL is whatever its creator configured: beat often enough to stay in it, or flap."""
        try:
            ttl = (await self._kv.status()).ttl
        except Exception:  # an old server or a permission: keep the configured interval
            return
        if ttl and self.info.heartbeat_s * 2 > ttl:
            log.warning(
                "presence bucket TTL is %.1f s: heartbeat every %.2f s, not %.1f s", ttl, ttl / 3, self.info.heartbeat_s
            )
            self.info.heartbeat_s = ttl / 3

    async def _refresh_info(self) -> None:
        if not self._gather_interfaces:
            return
        try:
            ifaces, default_dev = await netinfo.interfaces()
        except Exception as exc:  # ip missing or odd output: presence still works
            log.warning("cannot list interfaces: %s", exc)
            return
        self.info.interfaces = ifaces
        self.info.data_plane = netinfo.data_plane_address(ifaces, self.config.data_plane, default_dev)

    async def _heartbeat(self) -> None:
        self.info.heartbeat = time.time()
        await self._kv.put(self.config.node, codec.encode(self.info.model_dump(mode="json")))

    async def _write_presence(self) -> None:
        if self._kv is None:
            await self._open_presence()
        await self._heartbeat()

    async def _heartbeat_loop(self) -> None:
        """Rewrite the presence entry every heartbeat; at once when NATS reconnects (_beat_now); and, after a
        failed write, every PRESENCE_RETRY_S until one succeeds rather than a whole heartbeat later."""
        failed = False
        setup_said = 0.0  # when the missing-bucket error was last logged
        while True:
            # the configured interval (or shorter, to fit the TTL), cut short by a reconnect or a failed write;
            # a bucket that only `steth setup` can create is looked for again every heartbeat
            wait = PRESENCE_RETRY_S if failed and not setup_said else self.info.heartbeat_s
            try:
                await asyncio.wait_for(self._beat_now.wait(), timeout=wait)
            except TimeoutError:
                pass
            self._beat_now.clear()
            try:
                await self._refresh_info()
                await self._write_presence()
                if failed:
                    log.info("presence written again")
                failed, setup_said = False, 0.0
            except asyncio.CancelledError:
                raise
            except SetupNeeded as exc:  # an identity without CREATE rights and no bucket yet: say so, keep trying
                if time.monotonic() - setup_said > SETUP_LOG_EVERY_S or not setup_said:
                    log.error("%s; retrying every %g s", exc, self.info.heartbeat_s)
                    setup_said = time.monotonic()
                failed = True
            except Exception as exc:  # NATS down or JetStream electing a leader: retry soon
                if not failed:
                    log.warning("heartbeat failed: %s; retrying every %g s", exc.__class__.__name__, PRESENCE_RETRY_S)
                failed = True

    async def _announce(self, kind: str) -> None:
        await self.nc.publish(
            subjects.presence_event(kind, self.config.node), codec.encode(self.info.model_dump(mode="json"))
        )

    # --- requests --------------------------------------------------------------------------

    async def _on_request(self, msg: Any) -> None:
        """nats-py calls this in order per subscription: hand off at once, never block."""
        spec = registry().get(msg.subject.rsplit(".", 1)[-1])
        if spec is not None and spec.inline:  # cannot block: answering now is cheaper than a task
            await self._handle(msg)
            return
        task = asyncio.create_task(self._handle(msg))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _handle(self, msg: Any) -> None:
        # The hot path of a broadcast (benchmarks/fanout.py): every reply is built once, complete.
        probe = msg.subject.rsplit(".", 1)[-1]
        received = time.time()
        audit: dict[str, Any] = {"subject": msg.subject, "inbox": msg.reply or ""}
        try:
            reply = await self._dispatch(probe, msg.data, received, msg.subject, audit)
        except Exception as exc:  # nothing a request carries may crash the agent
            log.exception("request on %s failed unexpectedly", msg.subject)
            reply = Reply(
                node=self.config.node,
                probe=probe,
                status=Status.ERROR,
                message=f"agent error: {exc}",
                started=received,
                finished=time.time(),
                agent_version=__version__,
            )
        if reply is None:
            return
        self.requests_handled += 1
        if self.metrics is not None:
            self.metrics.count_request(probe, reply.status.value, probe in registry())
        if log.isEnabledFor(logging.INFO):
            self._audit(reply, probe, audit)
        if not msg.reply:
            return
        try:
            data = codec.encode(reply.model_dump(mode="json"), limit=self.nc.max_payload)
        except codec.PayloadTooLarge as exc:
            reply = Reply(id=reply.id, node=self.config.node, probe=probe, status=Status.ERROR, message=str(exc))
            data = codec.encode(reply.model_dump(mode="json"))
        try:
            if self.reply_signer is None:
                await self.nc.publish(msg.reply, data)
            else:  # signed over the bytes as sent, the request id and the subject this copy came on
                await self.nc.publish(msg.reply, data, headers=self.reply_signer.headers(reply.id, msg.subject, data))
        except Exception as exc:
            log.warning("could not send reply %s: %s", reply.id, exc)

    def _audit(self, reply: Reply, probe: str, audit: dict[str, Any]) -> None:
        """One line per request: who asked (sender, signing key, NATS reply inbox), what, with which args, how
        it ended. NATS does not tell a subscriber who published: the verified key is the proof of who asked;
        the subject it came on (all/role/node) and the reply inbox are what the broker let through (only
        controller identities may publish requests and read `_INBOX.>`, docs/security.md)."""
        try:
            args = json.dumps(audit.get("args", {}), sort_keys=True, separators=(",", ":"), default=repr)
        except ValueError:  # a circular or odd value: the line must still be written
            args = "?"
        if len(args) > AUDIT_ARGS_CHARS:
            args = args[:AUDIT_ARGS_CHARS] + "..."
        if audit.get("kid"):
            key = f"{audit['kid']}(verified)"
        else:
            key = f"{json.dumps(audit['claimed_kid'])}(not-verified)" if audit.get("claimed_kid") else "unsigned"
        log.info(
            "request id=%s probe=%s status=%s duration=%.3fs sender=%s key=%s subject=%s inbox=%s args=%s%s",
            json.dumps(reply.id or "-"),
            json.dumps(probe),
            reply.status.value,
            reply.duration_s,
            json.dumps(audit.get("sender", "")),
            key,
            json.dumps(str(audit.get("subject") or "")[:AUDIT_SUBJECT_CHARS]),
            json.dumps(str(audit.get("inbox") or "")[:AUDIT_SUBJECT_CHARS]),
            args,
            f" message={json.dumps(reply.message)}" if reply.message else "",
        )

    async def _dispatch(
        self, probe: str, data: bytes, received: float, subject: str | None = None, audit: dict | None = None
    ) -> Reply | None:
        node = self.config.node
        audit = {} if audit is None else audit

        def answer(
            status: Status, message: str, req_id: str = "", result: dict | None = None, started: float = 0.0
        ) -> Reply:
            return Reply(
                id=req_id,
                node=node,
                probe=probe,
                status=status,
                message=message,
                result=result,
                started=started or received,
                finished=time.time(),
                agent_version=__version__,
            )

        try:
            raw = codec.decode(data)
            if isinstance(raw, dict) and raw.get("v", PROTOCOL_VERSION) not in PROTOCOL_VERSIONS:
                # Before the shape is checked: a request of another version may well have another shape.
                req_id = raw.get("id") if isinstance(raw.get("id"), str) else ""
                return answer(Status.INVALID, unspoken_version(raw["v"]), req_id[:64])
            req = Request.model_validate(raw)
        except (codec.DecodeError, ValidationError) as exc:
            detail = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            log.warning("malformed request on probe %s: %s", probe, detail)
            return answer(Status.INVALID, f"malformed request: {detail}")
        audit.update(sender=req.sender, args=req.args, claimed_kid=req.kid)
        if req.probe != probe:
            return answer(Status.INVALID, f"request names probe {req.probe!r} on the subject of {probe!r}", req.id)
        if self.verifier is not None:
            try:
                audit["kid"] = self.verifier.check(req, subject or "", received).kid
            except ProbeError as exc:  # RequestRefused (`invalid`) or Busy (`aborted`)
                if isinstance(exc, RequestRefused):
                    log.warning(
                        "refused request id=%s probe=%s from %s: %s",
                        json.dumps(req.id),
                        probe,
                        json.dumps(req.sender),
                        exc.reason,
                    )
                refused = settle(exc)
                return answer(refused.status, refused.message, req.id)
        if req.deadline < received:
            log.info(
                "request id=%s probe=%s dropped: %.1f s past its deadline",
                json.dumps(req.id),
                probe,
                received - req.deadline,
            )
            return None
        spec = registry().get(probe)
        if spec is None:
            return answer(Status.UNKNOWN_PROBE, f"this agent ({__version__}) has no probe {probe!r}", req.id)
        try:
            params = spec.params.model_validate(req.args)
        except ValidationError as exc:
            return answer(Status.INVALID, f"bad args: {describe_validation_error(exc)}", req.id)
        if spec.mutating and not self.config.policy.allow_mutating:
            return answer(Status.ABORTED, "refused: mutating probes are off in this agent's policy", req.id)

        # The probe's own longest deadline bounds a request that asks for more (a far-future deadline).
        deadline = min(req.deadline, received + spec.max_timeout_s)
        outcome, started = await self.execute(probe, params, deadline - REPLY_MARGIN_S, req.id)
        return answer(outcome.status, outcome.message, req.id, outcome.result, started or 0.0)

    async def execute(self, probe: str, params: Any, deadline: float, run_id: str = "") -> tuple[Settled, float | None]:
        """Run validated params under the probe's concurrency slots and a deadline: (how it ended, started).

        Requests and the scheduler (steth/agent/scheduler.py) both run probes through here.
        """
        started = None
        try:
            refusal = self.policy.check(params, registry()[probe])
            if refusal:
                raise NotAllowed(f"refused by policy: {refusal}")
            if registry()[probe].inline:  # never waits: no slot, no timer
                started = time.time()
                return settle(await load(probe)(params, self._context(deadline, run_id)), probe), started
            slots = self._slots.get(probe)
            if slots is None:
                slots = self._slots[probe] = asyncio.Semaphore(self.config.concurrency_for(probe))
            if slots.locked() and self._waiting[probe] >= self.config.max_waiting:
                raise Busy(f"busy: {self._waiting[probe]} {probe} requests already wait for a slot (max_waiting)")
            budget = deadline - time.time()
            try:
                async with asyncio.timeout(max(0.0, budget)):
                    self._waiting[probe] += 1
                    try:
                        await slots.acquire()
                    finally:
                        self._waiting[probe] -= 1
                    try:
                        started = time.time()
                        outcome = await load(probe)(params, self._context(deadline, run_id))
                    finally:
                        slots.release()
            except TimeoutError:
                if started is None:
                    raise Busy(f"busy: no free {probe} slot before the deadline") from None
                raise DeadlineReached(f"did not finish within the deadline ({budget:.1f} s)") from None
            return settle(outcome, probe), started
        except Exception as exc:
            return settle(exc, probe), started

    def _context(self, deadline: float, run_id: str) -> ProbeContext:
        return ProbeContext(
            node=self.config.node,
            roles=self.config.roles,
            version=__version__,
            data_plane=self.info.data_plane,
            allow_mutating=self.config.policy.allow_mutating,
            deadline=deadline,
            extra={"jobs": self.jobs, "request_id": run_id, "policy": self.policy, "ovn": self.config.ovn},
        )
