"""link-teardown: remove links steth created (alias `steth:...`); any other interface is refused, untouched."""

from __future__ import annotations

from pydantic import Field, model_validator

from steth.schemas.probe import ProbeSpec
from steth.schemas.probes.link_setup import LINK_COLUMNS, LinkResult
from steth.schemas.types import InterfaceName, Params


class LinkTeardownParams(Params):
    names: list[InterfaceName] = Field(default_factory=list, max_length=64, description="links to remove")
    all_marked: bool = Field(False, description="remove every steth-marked link on the node")

    @model_validator(mode="after")
    def _one_way(self) -> LinkTeardownParams:
        if bool(self.names) == self.all_marked:
            raise ValueError("name the links to remove, or ask for all steth-marked links (not both)")
        return self


SPEC = ProbeSpec(
    name="link-teardown",
    summary="Remove links steth created (marked by their alias); refuses any interface it did not create.",
    params=LinkTeardownParams,
    result=LinkResult,
    max_timeout_s=30,
    mutating=True,
    rows_key="links",
    columns=LINK_COLUMNS,
    tools=("ip (iproute2)",),
)
