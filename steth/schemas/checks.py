"""One row of a diagnosis probe's verdict: what was checked, on what, whether it held, and why."""

from __future__ import annotations

from steth.schemas.probe import Column
from steth.schemas.types import Result


class CheckRow(Result):
    check: str  # what kind of check: vif "ovs-port", "tag", "device", ...; neutron-ns "netns", "address", ...
    target: str = ""  # what it was checked on: a port, a device, an address, a file
    ok: bool = True
    detail: str = ""


# The table of a probe whose rows are CheckRows (rows_key="checks").
CHECK_COLUMNS = (Column("CHECK", "check"), Column("TARGET", "target"), Column("OK", "ok"), Column("DETAIL", "detail"))
