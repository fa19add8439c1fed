"""address: does this node hold these IP addresses, and on which interface (the agent half of address-check)."""

from __future__ import annotations

from pydantic import Field, model_validator

from steth.schemas.probe import Column, ProbeSpec
from steth.schemas.types import IPAddress, NetnsName, Params, Result


class AddressParams(Params):
    addresses: list[IPAddress] = Field(min_length=1, max_length=64, description="addresses to look for")
    netns: NetnsName | None = Field(None, description="look inside this network namespace instead of the node's own")
    all_netns: bool = Field(False, description="also look inside every network namespace on the node")
    max_namespaces: int = Field(500, ge=1, le=5000, description="with --all-netns, search at most this many")

    @model_validator(mode="after")
    def _one_scope(self) -> AddressParams:
        if self.netns and self.all_netns:
            raise ValueError("give netns or all_netns, not both")
        return self

    def expected_duration_s(self) -> float:
        return 1.0 + (self.max_namespaces * 0.004 if self.all_netns else 0.0)


class Holding(Result):
    address: str
    interface: str
    prefixlen: int | None = None
    netns: str = ""  # "" is the node's own (root) namespace


class AddressResult(Result):
    holdings: list[Holding]
    searched_netns: int = 0  # namespaces searched besides the node's own


SPEC = ProbeSpec(
    name="address",
    summary="Which of the given addresses this node holds, on which interface (and namespace).",
    params=AddressParams,
    result=AddressResult,
    max_timeout_s=60,
    rows_key="holdings",
    columns=(
        Column("ADDRESS", "address"),
        Column("NETNS", "netns"),
        Column("INTERFACE", "interface"),
        Column("PREFIX", "prefixlen"),
    ),
    tools=("ip -j addr show (iproute2)",),
)
