"""link-add-vlan: create a steth-marked 802.1Q subinterface PARENT.VLAN with an address, and bring it up.

Mutating, like link-setup: refused unless the policy allows it, marked, removed at ttl_s or by teardown. A
kernel without 802.1Q (no 8021q module) answers `aborted` with that reason.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from steth.schemas.probe import ProbeSpec
from steth.schemas.probes.link_setup import LINK_COLUMNS, Cidr, LinkResult
from steth.schemas.types import InterfaceName, Params, VlanId


class LinkAddVlanParams(Params):
    parent: InterfaceName = Field(description="the existing interface that carries the VLAN")
    vlan_id: VlanId = Field(description="802.1Q VLAN id")
    name: InterfaceName | None = Field(None, description="the subinterface's name (default: PARENT.VLAN)")
    cidr: Cidr | None = Field(None, description="address to add, ADDRESS/PREFIX")
    mtu: int | None = Field(None, ge=68, le=65535, description="MTU of the subinterface")
    ttl_s: float = Field(3600.0, ge=1.0, le=86400.0, description="remove the subinterface after this many seconds")

    @model_validator(mode="after")
    def _name(self) -> LinkAddVlanParams:
        if self.name is None:
            name = f"{self.parent}.{self.vlan_id}"
            if len(name) > 15:
                raise ValueError(f"{name!r} is longer than 15 characters: give --name")
            self.name = name
        return self


SPEC = ProbeSpec(
    name="link-add-vlan",
    summary="Create a steth-marked 802.1Q subinterface with an address, up, for ttl_s (aborted without 802.1Q).",
    params=LinkAddVlanParams,
    result=LinkResult,
    max_timeout_s=30,
    mutating=True,
    rows_key="links",
    columns=LINK_COLUMNS,
    tools=("ip (iproute2)",),
)
