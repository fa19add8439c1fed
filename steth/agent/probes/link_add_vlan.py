"""link-add-vlan: a steth-marked 802.1Q subinterface; `aborted` on a kernel without 802.1Q."""

from __future__ import annotations

from steth.agent.errors import NoSuchDevice
from steth.agent.probes import Outcome, ProbeContext
from steth.agent.probes.linkutil import build, show
from steth.schemas.probes.link_add_vlan import LinkAddVlanParams

NO_8021Q = (
    "Unknown device type",
    "this kernel has no 802.1Q support (no 8021q module): VLAN subinterfaces cannot be made",
)


async def run(params: LinkAddVlanParams, ctx: ProbeContext) -> Outcome:
    if await show(ctx, params.parent) is None:
        raise NoSuchDevice(f"no interface {params.parent} here to carry VLAN {params.vlan_id}")
    add_args = [params.name, "link", params.parent, "type", "vlan", "id", str(params.vlan_id)]
    return await build(
        ctx,
        [params.name],
        add_args,
        kind="vlan",
        cidr=params.cidr,
        mtu=params.mtu,
        ttl_s=params.ttl_s,
        unsupported=NO_8021Q,
    )
