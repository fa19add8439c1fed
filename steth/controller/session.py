"""What every command shares: the NATS connection, presence, selectors, and running a probe."""

from __future__ import annotations

import asyncio
import getpass
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from steth.controller.errors import StethError, UsageError
from steth.controller.gather import Gathered, gather
from steth.presence import Present, read_presence
from steth.schemas import subjects
from steth.schemas.envelope import Request


@dataclass
class Selection:
    nodes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    all: bool = False

    @property
    def empty(self) -> bool:
        return not (self.nodes or self.roles or self.all)

    def validate(self) -> None:
        for node in self.nodes:
            if not subjects.NODE_NAME_RE.match(node):
                raise UsageError(f"invalid node name {node!r}")
        for role in self.roles:
            if not subjects.ROLE_RE.match(role):
                raise UsageError(f"invalid role {role!r}")

    def subjects_for(self, probe: str) -> list[str]:
        if self.all or self.empty:
            return [subjects.req_all(probe)]
        return [subjects.req_role(r, probe) for r in self.roles] + [subjects.req_node(n, probe) for n in self.nodes]

    def matches(self, info) -> bool:
        if self.all or self.empty:
            return True
        return info.node in self.nodes or bool(set(self.roles) & set(info.roles))

    def expected(self, present: dict[str, Present] | None) -> tuple[set[str] | None, dict[str, str]]:
        """Nodes that should answer, and why a silent one was expected when it is not in presence."""
        reasons = {
            n: "not in presence (no heartbeat) and no reply" for n in self.nodes if not present or n not in present
        }
        if not present:  # no bucket, or an empty read (a cluster electing the bucket's leader): stall window
            return (set(self.nodes) or None), reasons
        names = {n for n, p in present.items() if self.matches(p.info)} | set(self.nodes)
        for name in names:
            if name in present and not present[name].alive:
                reasons[name] = f"stale heartbeat ({present[name].age_s:.0f} s old) and no reply"
        return names, reasons


@dataclass
class Session:
    """One invocation's view of the fleet: a NATS connection and the presence entries (read once)."""

    nats_options: Any
    nc: Any = None
    signer: Any = None  # steth.controller.signing.Signer: every request is signed when set
    verifier: Any = None  # steth.controller.replysig.ReplyVerifier: replies' signatures checked when set
    # Hosts that must answer a broadcast although presence may not list them (--expect-from openstack),
    # with the reason shown when they stay silent.
    also_expected: dict[str, str] = field(default_factory=dict)
    _present: dict[str, Present] | None = field(default=None, init=False)
    _present_read: bool = field(default=False, init=False)

    async def __aenter__(self) -> Session:
        from steth.natsconn import connect

        self.nc = await connect(self.nats_options)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.close(), timeout=2)
            except Exception:
                pass

    async def presence(self) -> dict[str, Present] | None:
        if not self._present_read:
            try:
                self._present = await read_presence(self.nc)
            except Exception as exc:
                raise StethError(f"cannot read presence from NATS JetStream: {exc}") from exc
            self._present_read = True
        return self._present

    async def node_address(self, node: str, plane: str | None) -> str:
        present = await self.presence() or {}
        if node not in present:
            raise UsageError(f"node:{node}: no such agent in presence (`steth agents` lists them)")
        address = present[node].info.address_on(plane)
        if not address:
            where = f"on plane {plane}" if plane else "as its data plane"
            raise UsageError(f"node:{node} reports no address {where}")
        return address

    async def run(
        self,
        probe: str,
        selection: Selection,
        timeout: float,
        args: dict[str, Any] | None = None,
        per_node_args: dict[str, dict[str, Any]] | None = None,
    ) -> Gathered:
        """Send a probe to the selection (same args), or to named nodes with their own args; gather."""
        present = None
        if per_node_args is None:
            try:
                present = await self.presence()
            except StethError as exc:
                # JetStream briefly unavailable (a cluster electing a new leader): requests still reach every
                # agent over core NATS, so gather until replies stop rather than fail (docs/reliability.md).
                print(f"steth: warning: {exc}; gathering without the expected set", file=sys.stderr)
                self._present_read = True
        deadline = time.time() + timeout  # after reading presence: the whole timeout is the probe's
        sender = f"{getpass.getuser()}@{socket.gethostname()}"
        request_id = Request(probe=probe, deadline=deadline).id
        make = lambda a: Request(id=request_id, probe=probe, args=a, deadline=deadline, sender=sender)  # noqa: E731
        if per_node_args is not None:
            messages = [(subjects.req_node(n, probe), make(a)) for n, a in sorted(per_node_args.items())]
            expected, reasons = set(per_node_args), {}
        else:
            messages = [(s, make(args or {})) for s in selection.subjects_for(probe)]
            expected, reasons = selection.expected(present)
            if self.also_expected:
                expected = (expected or set()) | set(self.also_expected)
                for host, why in self.also_expected.items():
                    if host not in (present or {}):
                        reasons[host] = why
        if self.signer is not None:
            for subject, request in messages:  # the signature covers the subject: see docs/security.md
                self.signer.sign(request, subject)
        return await gather(self.nc, messages, deadline, expected, expected_reasons=reasons, verifier=self.verifier)
