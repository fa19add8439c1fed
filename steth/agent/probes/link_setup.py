"""link-setup: a steth-marked veth pair, macvlan or bridge with an address, up, for ttl_s."""

from __future__ import annotations

from steth.agent.errors import NoSuchDevice
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.probes.linkutil import build, show
from steth.schemas.probes.link_setup import LinkSetupParams


async def run(params: LinkSetupParams, ctx: ProbeContext) -> Outcome:
    names = [params.name]
    if params.kind == "veth":
        names.append(params.peer)
        add_args = [params.name, "type", "veth", "peer", "name", params.peer]
    elif params.kind == "macvlan":
        if await show(ctx, params.parent) is None:
            raise NoSuchDevice(f"no interface {params.parent} here to put a macvlan on")
        add_args = [params.name, "link", params.parent, "type", "macvlan", "mode", "bridge"]
    else:
        add_args = [params.name, "type", "bridge"]
    return await build(
        ctx,
        names,
        add_args,
        kind=params.kind,
        cidr=params.cidr,
        mtu=params.mtu,
        ttl_s=params.ttl_s,
        check=params.check,
        check_count=params.check_count,
    )
