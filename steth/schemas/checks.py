"""One row of a diagnosis probe's verdict: what was checked, on what, whether it held, and why."""

from __future__ import annotations

from steth.schemas.types import Result


class CheckRow(Result):
    check: str  # what kind of check: vif "ovs-port", "tag", "device", ...; neutron-ns "netns", "address", ...
    target: str = ""  # what it was checked on: a port, a device, an address, a file
    ok: bool = True
    detail: str = ""
