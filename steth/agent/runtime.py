"""The agent runtime: subscriptions, presence, dispatch of requests to probes, replies.

Several runtimes can share one NATS connection (benchmarks run thousands in a few processes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import ValidationError

from steth import __version__, codec
from steth.agent import netinfo
from steth.agent.config import AgentConfig
from steth.agent.probes import Outcome, ProbeAborted, ProbeContext, load
from steth.schemas import subjects
from steth.schemas.agent_info import AgentInfo
from steth.schemas.envelope import Reply, Request, Status
from steth.schemas.probes import registry
from steth.schemas.types import describe_validation_error

log = logging.getLogger("steth.agent")

# The reply must reach the controller before its deadline: probes stop this much earlier.
REPLY_MARGIN_S = 0.15


class AgentRuntime:
    def __init__(self, config: AgentConfig, nc: Any = None, *, gather_interfaces: bool = True):
        self.config = config
        self.nc = nc
        self._own_connection = nc is None
        self._gather_interfaces = gather_interfaces
        self._subs: list[Any] = []
        self._inflight: set[asyncio.Task] = set()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._kv: Any = None
        self._heartbeat_task: asyncio.Task | None = None
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

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        import os

        from steth.natsconn import connect

        self.info.pid = os.getpid()
        if self.nc is None:
            self.nc = await connect(self._nats_options(), persistent=True, **self._callbacks())
        await self._refresh_info()
        node = subjects.token(self.config.node)
        patterns = [f"{subjects.PREFIX}.req.all.*", f"{subjects.PREFIX}.req.node.{node}.*"]
        patterns += [f"{subjects.PREFIX}.req.role.{role}.*" for role in self.config.roles]
        for pattern in patterns:  # no queue group: every matching agent answers
            self._subs.append(await self.nc.subscribe(pattern, cb=self._on_request))
        await self._open_presence()
        await self._heartbeat()
        await self._announce("up")
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())
        log.info("agent %s up: roles=%s data_plane=%s", self.config.node, self.config.roles, self.info.data_plane)

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Stop taking requests, let in-flight ones finish (bounded), leave presence, close."""
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        self._subs.clear()
        if self._inflight:
            log.info("draining %d in-flight request(s)", len(self._inflight))
            await asyncio.wait(self._inflight, timeout=drain_timeout)
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
        log.info("agent %s stopped after %d request(s)", self.config.node, self.requests_handled)

    def _nats_options(self):
        from steth.natsconn import NatsOptions

        n = self.config.nats
        return NatsOptions(
            servers=n.servers, user=n.user, password=n.password, token=n.token, creds=n.creds,
            nkey_seed=n.nkey_seed, tls_ca=n.tls_ca, tls_cert=n.tls_cert, tls_key=n.tls_key,
            name=f"steth-agent {self.config.node}", connect_timeout_s=n.connect_timeout_s,
        )  # fmt: skip

    def _callbacks(self) -> dict[str, Any]:
        async def disconnected() -> None:
            log.warning("disconnected from NATS; reconnecting")

        async def reconnected() -> None:
            log.info("reconnected to NATS at %s", self.nc.connected_url.netloc if self.nc else "?")

        return {"disconnected_cb": disconnected, "reconnected_cb": reconnected}

    # --- presence --------------------------------------------------------------------------

    async def _open_presence(self) -> None:
        from nats.js.api import KeyValueConfig
        from nats.js.errors import BucketNotFoundError

        js = self.nc.jetstream(timeout=5)
        try:
            self._kv = await js.key_value(subjects.PRESENCE_BUCKET)
        except BucketNotFoundError:
            cfg = KeyValueConfig(
                bucket=subjects.PRESENCE_BUCKET, history=1, ttl=self.config.presence_ttl_s,
                description="steth agents: one entry per node, rewritten every heartbeat",
            )  # fmt: skip
            try:
                self._kv = await js.create_key_value(cfg)
            except Exception:  # another agent created it first
                self._kv = await js.key_value(subjects.PRESENCE_BUCKET)

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

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            try:
                await self._refresh_info()
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down: keep trying, the reconnect logic does the rest
                log.warning("heartbeat failed: %s", exc.__class__.__name__)

    async def _announce(self, kind: str) -> None:
        await self.nc.publish(
            subjects.presence_event(kind, self.config.node), codec.encode(self.info.model_dump(mode="json"))
        )

    # --- requests --------------------------------------------------------------------------

    async def _on_request(self, msg: Any) -> None:
        """nats-py calls this in order per subscription: hand off at once, never block."""
        task = asyncio.create_task(self._handle(msg))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _handle(self, msg: Any) -> None:
        probe = msg.subject.rsplit(".", 1)[-1]
        received = time.time()
        try:
            reply = await self._dispatch(probe, msg.data, received)
        except Exception as exc:  # nothing a request carries may crash the agent
            log.exception("request on %s failed unexpectedly", msg.subject)
            reply = Reply(node=self.config.node, probe=probe, status=Status.ERROR, message=f"agent error: {exc}")
        if reply is None:
            return
        self.requests_handled += 1
        reply.agent_version = __version__
        reply.started = reply.started or received
        reply.finished = reply.finished or time.time()
        log.info(
            "request id=%s probe=%s status=%s duration=%.3fs%s",
            reply.id or "-", probe, reply.status.value, reply.duration_s,
            f" message={reply.message!r}" if reply.message else "",
        )  # fmt: skip
        if not msg.reply:
            return
        try:
            data = codec.encode(reply.model_dump(mode="json"), limit=self.nc.max_payload)
        except codec.PayloadTooLarge as exc:
            reply = Reply(id=reply.id, node=self.config.node, probe=probe, status=Status.ERROR, message=str(exc))
            data = codec.encode(reply.model_dump(mode="json"))
        try:
            await self.nc.publish(msg.reply, data)
        except Exception as exc:
            log.warning("could not send reply %s: %s", reply.id, exc)

    async def _dispatch(self, probe: str, data: bytes, received: float) -> Reply | None:
        node = self.config.node

        def answer(status: Status, message: str, req_id: str = "", result: dict | None = None) -> Reply:
            return Reply(id=req_id, node=node, probe=probe, status=status, message=message, result=result)

        try:
            req = Request.model_validate(codec.decode(data))
        except (codec.DecodeError, ValidationError) as exc:
            detail = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            log.warning("malformed request on probe %s: %s", probe, detail)
            return answer(Status.INVALID, f"malformed request: {detail}")
        if req.probe != probe:
            return answer(Status.INVALID, f"request names probe {req.probe!r} on the subject of {probe!r}", req.id)
        if req.deadline < received:
            log.info("request id=%s probe=%s dropped: %.1f s past its deadline", req.id, probe, received - req.deadline)
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

        slots = self._slots.setdefault(probe, asyncio.Semaphore(self.config.concurrency_for(probe)))
        budget = req.deadline - time.time() - REPLY_MARGIN_S
        started = None
        try:
            async with asyncio.timeout(max(0.0, budget)):
                async with slots:
                    started = time.time()
                    ctx = ProbeContext(
                        node=node, roles=self.config.roles, version=__version__, data_plane=self.info.data_plane,
                        allow_mutating=self.config.policy.allow_mutating, deadline=req.deadline - REPLY_MARGIN_S,
                    )  # fmt: skip
                    outcome = await self._run_probe(probe, params, ctx)
        except TimeoutError:
            if started is None:
                return answer(Status.ABORTED, f"busy: no free {probe} slot before the deadline", req.id)
            return answer(Status.TIMEOUT, f"did not finish within the deadline ({budget:.1f} s)", req.id)
        reply = answer(outcome.status, outcome.message, req.id, outcome.result)
        reply.started, reply.finished = started, time.time()
        return reply

    async def _run_probe(self, probe: str, params: Any, ctx: ProbeContext) -> Outcome:
        try:
            return await load(probe)(params, ctx)
        except ProbeAborted as exc:
            return Outcome(Status.ABORTED, str(exc))
