"""link-teardown: remove steth-marked links, by name or all of them; anything unmarked is refused."""

from __future__ import annotations

from steth.agent.errors import CleanupFailed, NotAllowed
from steth.agent.jobs import jobs_of
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.probes.linkutil import all_links, ip, parse_mark, row_of, show
from steth.schemas.envelope import Status
from steth.schemas.probes.link_setup import LinkResult, LinkRow
from steth.schemas.probes.link_teardown import LinkTeardownParams


async def remove_one(ctx: ProbeContext, name: str) -> list[LinkRow]:
    link = await show(ctx, name)
    if link is None:
        return [LinkRow(name=name, action="absent")]
    if parse_mark(link.get("ifalias")) is None:
        row = row_of(link, "refused")
        row.error = "not created by steth (no steth: alias): left untouched"
        return [row]
    table = jobs_of(ctx)
    owner = next((j for j in table.of_kind("link") if name in j.info.get("names", [])), None)
    if owner is not None:  # the job removes everything its request made (both ends of a veth)
        rows = [row_of(link, "removed") for n in owner.info["names"] if (link := await show(ctx, n))]
        await table.end(owner.id)
        return rows
    done = await ip(ctx, "link", "del", "dev", name)  # marked by an earlier run of the agent
    row = row_of(link, "removed" if done.returncode == 0 else "failed")
    row.error = "" if done.returncode == 0 else done.stderr.strip()
    return [row]


async def run(params: LinkTeardownParams, ctx: ProbeContext) -> Outcome:
    if params.all_marked:
        names = [link["ifname"] for link in await all_links(ctx) if parse_mark(link.get("ifalias"))]
    else:
        names = list(dict.fromkeys(params.names))
    result = LinkResult()
    done: set[str] = set()
    for name in names:
        if name in done:
            continue  # the other end of a veth already removed
        rows = await remove_one(ctx, name)
        done.update(r.name for r in rows if r.action == "removed")
        result.links.extend(rows)
    refused = [r.name for r in result.links if r.action == "refused"]
    failed = [r for r in result.links if r.action == "failed"]
    if refused:
        raise NotAllowed(f"refused: {', '.join(refused)} not created by steth", result)
    if failed:
        raise CleanupFailed(f"could not remove {failed[0].name}: {failed[0].error}", result)
    return Outcome(Status.OK, "" if result.links else "no steth-marked links here", result)
