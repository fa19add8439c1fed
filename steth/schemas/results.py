"""What an agent publishes on `steth.v1.results.<node>.<probe>` after each scheduled run."""

from __future__ import annotations

from pydantic import Field

from steth.schemas.envelope import Reply

# The JetStream stream that keeps scheduled results (bounded by age, count and bytes).
RESULTS_STREAM = "STETH_RESULTS"


class ScheduledResult(Reply):
    """A reply to nobody: the same fields as a request's reply, plus which schedule ran it."""

    schedule: str = ""  # the [[schedule]] name, or "mesh"
    roles: list[str] = Field(default_factory=list)  # the node's roles, so `steth watch --role` can filter
    # Address -> node name for targets that came from node:NAME (or from the mesh): tables show names.
    peers: dict[str, str] = Field(default_factory=dict)
    plane: str = ""  # the plane node:NAME targets resolved on ("" = each peer's data plane)
