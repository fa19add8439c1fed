"""What the link probes share: reading links with `ip -j`, the steth mark, creating and removing safely.

The mark is the interface alias `steth:<request-id>:<expires-epoch>`. Only links carrying it are ever
changed or removed; existing interfaces are read, never modified (a macvlan or VLAN only names its parent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from steth.agent import procs
from steth.agent.errors import CouldNotRun, DeadlineReached, IpError, NotAllowed, Unsupported
from steth.agent.jobs import Job, JobTable, jobs_of
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.probes.ping import parse_ping
from steth.schemas.envelope import Status
from steth.schemas.probes.link_setup import ALIAS_PREFIX, LinkResult, LinkRow

IP_TIMEOUT_S = 5.0
log = logging.getLogger("steth.agent")


def mark_for(request_id: str, expires: float) -> str:
    return f"{ALIAS_PREFIX}{request_id}:{int(expires)}"


def parse_mark(alias: str | None) -> tuple[str, float] | None:
    """(request id, expiry) of a steth mark; None for any other alias."""
    if not alias or not alias.startswith(ALIAS_PREFIX):
        return None
    request_id, _, expires = alias[len(ALIAS_PREFIX) :].rpartition(":")
    try:
        return request_id, float(expires)
    except ValueError:
        return request_id or alias, float("inf")  # marked by hand or an older format: never expires by itself


async def ip(ctx: ProbeContext, *args: str) -> procs.Completed:
    # Cleanup must run even past the request's deadline: give `ip` a floor of a second.
    return await procs.run(["ip", *args], timeout=max(1.0, min(IP_TIMEOUT_S, ctx.remaining(0.05))))


def parse_links(text: str) -> list[dict[str, Any]]:
    return json.loads(text or "[]")


async def show(ctx: ProbeContext, name: str) -> dict[str, Any] | None:
    done = await ip(ctx, "-d", "-j", "addr", "show", "dev", name)
    if done.returncode != 0:
        if "does not exist" in done.stderr:
            return None
        raise IpError(f"ip addr show {name}: {done.stderr.strip() or done.returncode}")
    links = parse_links(done.stdout)
    return links[0] if links else None


async def all_links(ctx: ProbeContext) -> list[dict[str, Any]]:
    done = await ip(ctx, "-d", "-j", "addr", "show")
    if done.returncode != 0:
        raise IpError(f"ip addr show: {done.stderr.strip() or done.returncode}")
    return parse_links(done.stdout)


def row_of(link: dict[str, Any], action: str, kind: str = "") -> LinkRow:
    addrs = [
        f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if "local" in a and a.get("scope") != "link"
    ]
    flags = link.get("flags", [])
    return LinkRow(
        name=link.get("ifname", "?"),
        kind=kind or (link.get("linkinfo") or {}).get("info_kind", ""),
        action=action,
        alias=link.get("ifalias", ""),
        addresses=addrs,
        up="UP" in flags and "LOWER_UP" in flags,
    )


@dataclass
class Plumbing:
    """One request's creations: names it asked the kernel to create, removed again unless it succeeds.

    A name is not an identity: once a link is gone, anyone may create another with the same name. So the
    kernel's index of each link is recorded right after `ip link add`, and removal deletes a name only while
    it still has that index (and this request's mark, or no alias yet)."""

    ctx: ProbeContext
    mark: str
    kind: str = ""
    issued: list[str] = field(default_factory=list)  # `ip link add` was sent for these names
    indexes: dict[str, int] = field(default_factory=dict)  # name -> ifindex of the link this request made

    async def record(self, names: list[str]) -> None:
        for name in names:
            link = await show(self.ctx, name)
            if link is not None and isinstance(link.get("ifindex"), int):
                self.indexes[name] = link["ifindex"]

    async def remove(self, at_expiry: bool = False) -> list[LinkRow]:
        """Remove what this request created: the links it recorded (same index), or, while it is still
        being set up, unmarked ones it issued (a setup cut off before it could record them). At expiry
        (`at_expiry`) a name without a recorded index goes only if it carries this request's mark."""
        rows = []
        for name in reversed(self.issued):
            link = await show(self.ctx, name)
            if link is None:
                continue  # already gone (the other end of a veth goes with the first)
            alias = link.get("ifalias", "")
            if alias and alias != self.mark:
                rows.append(LinkRow(name=name, action="refused", alias=alias, error="not this request's mark"))
                continue
            recorded = self.indexes.get(name)
            if recorded is not None and link.get("ifindex") != recorded:
                why = f"not the link this request created (index {link.get('ifindex')}, not {recorded})"
                rows.append(LinkRow(name=name, action="refused", alias=alias, error=why))
                continue
            if recorded is None and at_expiry and alias != self.mark:
                rows.append(LinkRow(name=name, action="refused", alias=alias, error="no steth mark: left untouched"))
                continue
            done = await ip(self.ctx, "link", "del", "dev", name)
            rows.append(
                LinkRow(
                    name=name,
                    kind=self.kind,
                    action="removed" if done.returncode == 0 else "failed",
                    alias=alias,
                    error="" if done.returncode == 0 else done.stderr.strip(),
                )
            )
        return rows


async def refuse_existing(ctx: ProbeContext, names: list[str]) -> None:
    """An interface that exists already is never touched: the request is refused (NotAllowed)."""
    for name in names:
        link = await show(ctx, name)
        if link is not None:
            marked = parse_mark(link.get("ifalias"))
            why = f"made by steth request {marked[0]}; tear it down first" if marked else "not created by steth"
            result = LinkResult(links=[row_of(link, "refused")])
            result.links[0].error = f"exists ({why})"
            raise NotAllowed(f"refused: {name} exists ({why})", result)


async def sweep_expired(ctx: ProbeContext) -> None:
    """Marked links past their expiry that no job of this agent owns (an agent that crashed): remove them."""
    table = jobs_of(ctx)
    owned = {n for job in table.of_kind("link") for n in job.info.get("names", [])}
    now = time.time()
    for link in await all_links(ctx):
        mark = parse_mark(link.get("ifalias"))
        if mark and mark[1] < now and link.get("ifname") not in owned:
            await ip(ctx, "link", "del", "dev", link["ifname"])


def link_job(ctx: ProbeContext, plumbing: Plumbing, ttl_s: float, names: list[str]) -> Job:
    """The job that removes the links at their ttl or when the agent stops."""
    table: JobTable = jobs_of(ctx)

    async def cleanup() -> None:
        for row in await plumbing.remove(at_expiry=True):
            if row.action == "refused":
                log.warning("link %s left in place at expiry: %s", row.name, row.error)

    return table.add("link", ttl_s, cleanup=cleanup, info={"names": names, "mark": plumbing.mark})


async def create(ctx: ProbeContext, plumbing: Plumbing, names: list[str], add_args: list[str]) -> procs.Completed:
    """`ip link add ...`, then the mark on every new name (the kernel ignores an alias given to `add`)."""
    plumbing.issued.extend(names)
    done = await ip(ctx, "link", "add", *add_args)
    if done.returncode != 0:
        del plumbing.issued[-len(names) :]  # nothing was made: never remove a name someone else holds
        return done
    await plumbing.record(names)  # the kernel's index: what cleanup matches, not only the name
    for name in names:
        marked = await ip(ctx, "link", "set", "dev", name, "alias", plumbing.mark)
        if marked.returncode != 0:
            return marked
    return done


async def configure(ctx: ProbeContext, names: list[str], cidr: str | None, mtu: int | None) -> str:
    """MTU on every new link, the address on the first, then all of them up; an error message or ''."""
    steps: list[list[str]] = []
    if mtu is not None:
        steps += [["link", "set", "dev", n, "mtu", str(mtu)] for n in names]
    if cidr:
        steps.append(["addr", "add", cidr, "dev", names[0]])
    steps += [["link", "set", "dev", n, "up"] for n in names]
    for step in steps:
        done = await ip(ctx, *step)
        if done.returncode != 0:
            return f"ip {' '.join(step)}: {done.stderr.strip() or done.returncode}"
    return ""


async def ping_check(ctx: ProbeContext, name: str, target: str, count: int, result: LinkResult) -> str:
    """Ping through the new link; '' when a reply came back, else why not."""
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", "-I", name, target]
    done = await procs.run(argv, timeout=ctx.remaining(0.3))
    row = parse_ping(target, done.stdout, done.stderr, done.returncode)
    result.check_target, result.check_sent, result.check_received = target, row.sent, row.received
    result.check_loss = row.loss if row.sent else None
    if done.timed_out:
        return "timeout"
    if row.received == 0:
        return f"no reply from {target} through {name}" + (f" ({row.error})" if row.error else "")
    return ""


async def build(
    ctx: ProbeContext,
    names: list[str],
    add_args: list[str],
    *,
    kind: str,
    cidr: str | None,
    mtu: int | None,
    ttl_s: float,
    check: str | None = None,
    check_count: int = 3,
    unsupported: tuple[str, str] | None = None,
) -> Outcome:
    """The whole setup: refuse existing names, create, mark, configure, check; undo all of it on any failure."""
    if not ctx.allow_mutating:  # the runtime refuses first; this holds even if a caller forgets
        raise NotAllowed("refused: mutating probes are off in this agent's policy")
    await sweep_expired(ctx)
    await refuse_existing(ctx, names)
    request_id = str(ctx.extra.get("request_id") or "local")
    expires = time.time() + ttl_s
    plumbing = Plumbing(ctx, mark_for(request_id, expires), kind)
    job = link_job(ctx, plumbing, ttl_s, names)
    table = jobs_of(ctx)
    result = LinkResult(expires_at=round(expires, 3))
    keep = False
    try:
        done = await create(ctx, plumbing, names, add_args)
        if done.returncode != 0:
            err = done.stderr.strip() or f"ip exited {done.returncode}"
            if unsupported and unsupported[0] in err:
                raise Unsupported(f"{unsupported[1]} (ip link: {err})")
            raise CouldNotRun(f"cannot create {names[0]}: {err}")
        problem = await configure(ctx, names, cidr, mtu)
        if problem:
            raise CouldNotRun(f"{problem}; removed what this request created", await _rows(result, plumbing))
        if check:
            problem = await ping_check(ctx, names[0], check, check_count, result)
            if problem == "timeout":
                raise DeadlineReached(
                    "the check did not finish before the deadline; removed what this request created",
                    await _rows(result, plumbing),
                )
            if problem:
                return Outcome(
                    Status.FAILED, f"{problem}; removed what this request created", await _rows(result, plumbing)
                )
        for name in names:
            link = await show(ctx, name)
            if link is not None:
                result.links.append(row_of(link, "created", kind))
        keep = True
        return Outcome(Status.OK, "", result)
    finally:
        if not keep:
            await table.end(job.id)  # shielded: runs to the end even when the deadline cancelled us


async def _rows(result: LinkResult, plumbing: Plumbing) -> LinkResult:
    """The result after undoing: what was removed (the job's cleanup then finds nothing left)."""
    removed = await asyncio.shield(plumbing.remove())
    result.links = [LinkRow(name=r.name, kind=r.kind, action=r.action, alias=r.alias, error=r.error) for r in removed]
    return result
