"""What an agent says about itself in its presence entry."""

from __future__ import annotations

from pydantic import BaseModel, Field


class InterfaceAddresses(BaseModel):
    name: str
    addresses: list[str] = Field(default_factory=list)  # "10.0.0.5/24", "fe80::1/64"
    up: bool = True


class AgentInfo(BaseModel):
    node: str
    roles: list[str] = Field(default_factory=list)
    version: str = ""
    pid: int = 0
    interfaces: list[InterfaceAddresses] = Field(default_factory=list)
    data_plane: str = ""  # the address (no prefix length) the agent reports as its data plane
    probes: list[str] = Field(default_factory=list)
    started: float = 0.0
    heartbeat: float = 0.0  # when this entry was written, seconds since the epoch
    heartbeat_s: float = 5.0  # how often it is rewritten
    mutating_allowed: bool = False
    metrics_address: str = ""  # HOST:PORT of its Prometheus /metrics endpoint; "" when it has none

    def address_on(self, plane: str | None) -> str | None:
        """This agent's address on a plane: a CIDR, an interface name, or None for its data plane."""
        import ipaddress

        if not plane:
            return self.data_plane or None
        try:
            net = ipaddress.ip_network(plane, strict=False)
        except ValueError:
            net = None
        for iface in self.interfaces:
            for cidr in iface.addresses:
                addr = ipaddress.ip_interface(cidr).ip
                if net is not None and addr in net:
                    return str(addr)
                if net is None and iface.name == plane and addr.version == 4:
                    return str(addr)
        return None
