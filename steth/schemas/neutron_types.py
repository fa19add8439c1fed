"""Bounded value types for the Neutron-aware probes (vif, neutron-ns, dhcp-watch)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# A Neutron port id: a UUID as the API prints it (lower-case, with dashes).
PortId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


def _mac(value: str) -> str:
    text = value.strip().lower().replace("-", ":")
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise ValueError("a MAC address like fa:16:3e:12:34:56")
    return text


MacAddress = Annotated[str, AfterValidator(_mac)]
