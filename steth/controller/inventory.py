"""What OpenStack says about the deployment: hosts, Neutron agents, ports, networks, servers.

openstacksdk is imported here only, and only when a command asks OpenStack something (it costs about 0.3 s).
Every answer is cached for the invocation; every API failure becomes one line (exit 4): a missing admin
role is named as such, an unknown port or server is a usage error (exit 2).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from steth.controller.errors import EXIT_UNAVAILABLE, StethError, UsageError
from steth.controller.neutron_wiring import Segment, is_router_interface
from steth.controller.os_options import DEFAULT_API_TIMEOUT_S, debug_requested, openstack_settings, os_options
from steth.controller.secgroups import PortFilter, SecurityGroup

__all__ = ["DEFAULT_API_TIMEOUT_S", "Inventory", "os_options"]
LAB_CLOUD = "steth-lab"
# Neutron agent types and the steth role of the host that runs them.
NETWORK_AGENT_TYPES = ("DHCP agent", "L3 agent", "Metadata agent")
OVS_AGENT_TYPE = "Open vSwitch agent"


class InventoryError(StethError):
    def __init__(self, message: str, exit_code: int = EXIT_UNAVAILABLE):
        super().__init__(message, exit_code)


class NotFound(UsageError):
    """The operator named a port, server or network OpenStack does not know: exit 2."""


# --- what the commands get (plain data, no SDK objects) --------------------------------------------


@dataclass
class Hypervisor:
    name: str  # hypervisor_hostname
    host: str  # the Nova service host: what binding:host_id and steth node names use
    state: str  # up | down
    status: str  # enabled | disabled
    host_ip: str = ""


@dataclass
class NeutronAgent:
    id: str
    agent_type: str
    host: str
    alive: bool
    admin_state_up: bool = True
    binary: str = ""
    configurations: dict[str, Any] = field(default_factory=dict)


@dataclass
class Port:
    id: str
    mac: str
    network_id: str
    fixed_ips: list[tuple[str, str]]  # (subnet id, address)
    host: str | None  # binding:host_id; None when the credentials cannot see it
    vif_type: str | None = None
    vif_details: dict[str, Any] = field(default_factory=dict)
    vnic_type: str | None = None
    device_owner: str = ""
    device_id: str = ""
    status: str = ""
    admin_state_up: bool = True
    name: str = ""
    security_group_ids: list[str] = field(default_factory=list)
    # None: the API did not say (no port-security extension); Neutron's default is True (its network's value)
    port_security_enabled: bool | None = None
    allowed_address_pairs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [ip for _, ip in self.fixed_ips]

    @property
    def hybrid_expected(self) -> bool | None:
        """What Neutron told Nova: ovs_hybrid_plug in binding:vif_details (None: not said)."""
        value = self.vif_details.get("ovs_hybrid_plug")
        return None if value is None else bool(value)


@dataclass
class Network:
    id: str
    name: str
    network_type: str | None  # vlan, vxlan, gre, flat, geneve; None without admin
    physical_network: str | None
    segmentation_id: int | None
    mtu: int | None
    subnet_ids: list[str] = field(default_factory=list)
    # a multi-segment network's `segments` (no provider:* attributes then; api-ref network-multi-show-response)
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Subnet:
    id: str
    cidr: str
    gateway_ip: str | None
    enable_dhcp: bool
    ip_version: int


@dataclass
class Server:
    id: str
    name: str
    host: str | None  # OS-EXT-SRV-ATTR:host; None without admin
    status: str


@dataclass
class Router:
    id: str
    name: str
    l3_hosts: list[tuple[str, bool]]  # (host, alive)
    interface_ips: dict[str, str]  # subnet id -> the router's address on it
    ha: bool = False  # the router's `ha` attribute (admin only)
    distributed: bool = False  # `distributed` (DVR; admin only)
    ha_states: dict[str, str | None] = field(default_factory=dict)  # host -> ha_state of its L3 agent
    l3_modes: dict[str, str] = field(default_factory=dict)  # host -> its L3 agent's agent_mode (legacy, dvr, dvr_snat)
    external_network_id: str | None = None  # external_gateway_info.network_id: the router has a gateway


# --- click options shared by the OpenStack-aware commands --------------------------------------------


# --- the inventory ----------------------------------------------------------------------------------


def _lab_clouds_yaml() -> str | None:
    from steth.lab.state import load_state

    state = load_state()
    path = (state or {}).get("openstack", {}).get("clouds_yaml")
    return path if state and state.get("up") and path and os.path.exists(path) else None


class Inventory:
    """One invocation's view of OpenStack; connects on first use, caches every answer."""

    def __init__(
        self,
        cloud: str | None = None,
        api_timeout_s: float | None = None,
        region_name: str | None = None,
        cacert: str | None = None,
        insecure: bool | None = None,
    ):
        self.cloud_name = cloud
        self.api_timeout_s = api_timeout_s or DEFAULT_API_TIMEOUT_S
        self.region_name = region_name
        self.cacert = cacert
        self.insecure = bool(insecure)
        self._conn: Any = None
        self._cache: dict[tuple, Any] = {}
        self.where = cloud or "the OS_* variables"

    @classmethod
    def from_options(cls) -> Inventory:
        """The OpenStack options given before or after the command (steth.controller.os_options)."""
        return cls(**openstack_settings())

    def connect_kwargs(self) -> dict[str, Any]:
        """What openstacksdk's get_one() gets on top of clouds.yaml / OS_*: only what was given."""
        kw: dict[str, Any] = {"api_timeout": self.api_timeout_s}
        if self.region_name:
            kw["region_name"] = self.region_name
        if self.cacert:
            kw["cacert"] = os.path.expanduser(self.cacert)
        if self.insecure:
            kw["verify"] = False
        return kw

    # connection ---------------------------------------------------------------------------------

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> Any:
        import openstack
        from openstack import exceptions as sdk_exc
        from openstack.config import loader

        if debug_requested():  # --debug: every API request and response on stderr, as `openstack --debug`
            openstack.enable_logging(debug=True, http_debug=True)
        else:  # their warnings would break the one-line errors
            for name in ("keystoneauth", "openstack", "stevedore"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        config_files = None
        cloud = self.cloud_name
        if not cloud and not os.environ.get("OS_AUTH_URL"):
            lab = _lab_clouds_yaml()
            if lab is None:
                raise InventoryError(
                    "no OpenStack cloud selected: use --os-cloud NAME (or OS_CLOUD) with clouds.yaml, "
                    "or set OS_AUTH_URL and the other OS_* variables"
                )
            config_files, cloud = [lab], LAB_CLOUD
            self.where = f"{LAB_CLOUD} (the lab's {lab})"
        elif (
            cloud and cloud.startswith(LAB_CLOUD) and not os.environ.get("OS_CLIENT_CONFIG_FILE") and _lab_clouds_yaml()
        ):
            config_files = [_lab_clouds_yaml()]  # --os-cloud steth-lab-demo works while a lab is up, like NATS does
        try:
            config = loader.OpenStackConfig(config_files=config_files, app_name="steth")
            region = config.get_one(cloud=cloud, **self.connect_kwargs())
            self.auth_url = (region.config.get("auth") or {}).get("auth_url", "")
            return openstack.connection.Connection(config=region)
        except sdk_exc.ConfigException as exc:
            raise InventoryError(f"OpenStack configuration: {exc}") from None
        except Exception as exc:  # keystoneauth option errors and the like
            raise InventoryError(f"OpenStack configuration ({self.where}): {exc.__class__.__name__}: {exc}") from None

    def _call(self, what: str, fn: Callable[[], Any], *, admin_for: str = "") -> Any:
        """Run one SDK call; every failure becomes one clear line."""
        from keystoneauth1 import exceptions as ks_exc
        from openstack import exceptions as sdk_exc

        try:
            return fn()
        except sdk_exc.ForbiddenException:
            need = f" ({admin_for} needs the admin role)" if admin_for else ""
            raise InventoryError(
                f"OpenStack refused to show {what}: the credentials of {self.where} lack the admin "
                f"role{need}; use an admin cloud (--os-cloud)"
            ) from None
        except sdk_exc.NotFoundException:
            raise NotFound(f"OpenStack knows no {what}") from None
        except (ks_exc.Unauthorized, sdk_exc.HttpException) as exc:
            status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
            if status == 401 or isinstance(exc, ks_exc.Unauthorized):
                raise InventoryError(f"OpenStack rejected the credentials of {self.where} (401 Unauthorized)") from None
            detail = getattr(exc, "details", None) or str(exc).splitlines()[0]
            raise InventoryError(
                f"OpenStack API error reading {what}: {status or ''} {detail}".replace("  ", " ")
            ) from None
        except (
            ks_exc.ConnectFailure,
            ks_exc.ConnectTimeout,
            ks_exc.DiscoveryFailure,
            ks_exc.RetriableConnectionFailure,
        ) as exc:
            where = getattr(self, "auth_url", "") or self.where
            raise InventoryError(f"OpenStack API at {where} is not answering ({_reason(exc)})") from None
        except ks_exc.ClientException as exc:
            raise InventoryError(
                f"OpenStack ({self.where}): {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
            ) from None
        except sdk_exc.SDKException as exc:
            raise InventoryError(f"OpenStack ({self.where}): {str(exc).splitlines()[0][:200]}") from None

    def _cached(self, key: tuple, what: str, fn: Callable[[], Any], **kw: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = self._call(what, fn, **kw)
        return self._cache[key]

    def is_admin(self) -> bool:
        def roles() -> list[str]:
            return list(self.conn.session.auth.get_access(self.conn.session).role_names or [])

        return "admin" in self._cached(("roles",), "the token's roles", roles)

    def require_admin(self, why: str) -> None:
        if not self.is_admin():
            raise InventoryError(
                f"{why} needs admin credentials, and {self.where} has no admin role: use an admin cloud "
                f"(--os-cloud or OS_CLOUD)"
            )

    # hosts and agents --------------------------------------------------------------------------

    def hypervisors(self) -> list[Hypervisor]:
        def fetch() -> list[Hypervisor]:
            out = []
            for h in self.conn.compute.hypervisors(details=True):
                service = h.service_details or {}
                out.append(
                    Hypervisor(
                        name=h.name,
                        host=service.get("host") or h.name,
                        state=h.state or "",
                        status=h.status or "",
                        host_ip=h.host_ip or "",
                    )
                )
            return sorted(out, key=lambda h: h.host)

        return self._cached(("hypervisors",), "the hypervisors", fetch, admin_for="listing hypervisors")

    def neutron_agents(self) -> list[NeutronAgent]:
        def fetch() -> list[NeutronAgent]:
            return sorted((self._agent(a) for a in self.conn.network.agents()), key=lambda a: (a.host, a.agent_type))

        return self._cached(("agents",), "the Neutron agents", fetch, admin_for="listing Neutron agents")

    @staticmethod
    def _agent(a: Any) -> NeutronAgent:
        return NeutronAgent(
            id=a.id,
            agent_type=a.agent_type or "",
            host=a.host or "",
            alive=bool(a.is_alive),
            admin_state_up=a.is_admin_state_up is not False,
            binary=a.binary or "",
            configurations=dict(a.configuration or {}),
        )

    def hosts_for_role(self, role: str) -> set[str]:
        """The expected set for --role compute (hypervisors) and --role network (DHCP, L3, metadata agents)."""
        if role == "compute":
            return {h.host for h in self.hypervisors()}
        if role == "network":
            return {a.host for a in self.neutron_agents() if a.agent_type in NETWORK_AGENT_TYPES}
        raise UsageError(f"OpenStack knows the roles compute and network, not {role!r}")

    # resources ---------------------------------------------------------------------------------

    def port(self, port_id: str) -> Port:
        def fetch() -> Port:
            p = self.conn.network.get_port(port_id)
            return self._port(p)

        return self._cached(("port", port_id), f"port {port_id}", fetch)

    def ports(self, **filters: str) -> list[Port]:
        key = ("ports", tuple(sorted(filters.items())))
        return self._cached(key, "ports", lambda: [self._port(p) for p in self.conn.network.ports(**filters)])

    @staticmethod
    def _port(p: Any) -> Port:
        return Port(
            id=p.id,
            mac=(p.mac_address or "").lower(),
            network_id=p.network_id,
            fixed_ips=[(f.get("subnet_id", ""), f.get("ip_address", "")) for f in (p.fixed_ips or [])],
            host=p.binding_host_id or None,
            vif_type=p.binding_vif_type,
            vif_details=dict(p.binding_vif_details or {}),
            vnic_type=p.binding_vnic_type,
            device_owner=p.device_owner or "",
            device_id=p.device_id or "",
            status=p.status or "",
            admin_state_up=p.is_admin_state_up is not False,
            name=p.name or "",
            security_group_ids=list(p.security_group_ids or []),
            # the SDK reads an absent port_security_enabled as False: ask the body itself
            port_security_enabled=_raw(p, "port_security_enabled"),
            allowed_address_pairs=list(p.allowed_address_pairs or []),
        )

    def network(self, name_or_id: str) -> Network:
        def fetch() -> Network:
            n = self.conn.network.find_network(name_or_id, ignore_missing=False)
            return Network(
                id=n.id,
                name=n.name or "",
                network_type=n.provider_network_type,
                physical_network=n.provider_physical_network,
                segmentation_id=n.provider_segmentation_id,
                mtu=n.mtu,
                subnet_ids=list(n.subnet_ids or []),
                segments=[Segment.from_api(s) for s in n.segments or []],
            )

        return self._cached(("network", name_or_id), f"network {name_or_id}", fetch)

    def networks_facts(self) -> list[Any]:
        """Every network's MTU and segments (steth.controller.validate_openstack.NetworkFacts)."""
        from steth.controller.validate_openstack import network_facts

        return self._cached(
            ("networks",),
            "the networks",
            lambda: [network_facts(n) for n in self.conn.network.networks()],
            admin_for="reading provider attributes",
        )

    def subnets(self, network_id: str) -> list[Subnet]:
        def fetch() -> list[Subnet]:
            return [
                Subnet(
                    id=s.id,
                    cidr=s.cidr,
                    gateway_ip=s.gateway_ip,
                    enable_dhcp=bool(s.is_dhcp_enabled),
                    ip_version=s.ip_version or 4,
                )
                for s in self.conn.network.subnets(network_id=network_id)
            ]

        return self._cached(("subnets", network_id), f"the subnets of network {network_id}", fetch)

    def dhcp_agents(self, network_id: str) -> list[NeutronAgent]:
        def fetch() -> list[NeutronAgent]:
            return [self._agent(a) for a in self.conn.network.network_hosting_dhcp_agents(network_id)]

        return self._cached(
            ("dhcp", network_id), f"the DHCP agents of network {network_id}", fetch, admin_for="listing DHCP agents"
        )

    def routers(self, network_id: str) -> list[Router]:
        """Routers with an interface on the network, and the L3 agents hosting them."""

        def fetch() -> list[Router]:
            out = []
            # legacy, HA and DVR interfaces alike (neutron_lib/constants.py ROUTER_INTERFACE_OWNERS)
            interfaces = [p for p in self.ports(network_id=network_id) if is_router_interface(p.device_owner)]
            for router_id in sorted({p.device_id for p in interfaces}):
                r = self.conn.network.get_router(router_id)
                hosting = list(self.conn.network.routers_hosting_l3_agents(router_id))
                agents = [self._agent(a) for a in hosting]
                ips = {s: ip for p in interfaces if p.device_id == router_id for s, ip in p.fixed_ips}
                out.append(
                    Router(
                        id=r.id,
                        name=r.name or "",
                        l3_hosts=[(a.host, a.alive) for a in agents],
                        interface_ips=ips,
                        ha=bool(r.is_ha),
                        distributed=bool(r.is_distributed),
                        # ha_state per agent: only in the l3-agents listing (api-ref router-l3-agent-list-response)
                        ha_states={a.host: getattr(h, "ha_state", None) for a, h in zip(agents, hosting)},
                        l3_modes={a.host: str(a.configurations.get("agent_mode") or "legacy") for a in agents},
                        external_network_id=(r.external_gateway_info or {}).get("network_id"),
                    )
                )
            return out

        return self._cached(
            ("routers", network_id), f"the routers of network {network_id}", fetch, admin_for="listing L3 agents"
        )

    def server(self, name_or_id: str) -> Server:
        def fetch() -> Server:
            # all_projects: an admin's lookup by name must see every project's servers, as `openstack server
            # list --all-projects` does (Nova lists the token's project only without all_tenants)
            s = self.conn.compute.find_server(name_or_id, ignore_missing=False, all_projects=True)
            if s.compute_host is None:  # find_server may return a summary without the extended attributes
                s = self.conn.compute.get_server(s.id)
            return Server(id=s.id, name=s.name or "", host=s.compute_host or None, status=s.status or "")

        return self._cached(("server", name_or_id), f"server {name_or_id}", fetch)

    def security_group(self, group_id: str) -> SecurityGroup:
        """One security group with its rules (api-ref: security-groups/security-group-show-response.json)."""

        def fetch() -> SecurityGroup:
            return SecurityGroup.from_api(self.conn.network.get_security_group(group_id).to_dict(computed=False))

        return self._cached(("security-group", group_id), f"security group {group_id}", fetch)

    def address_group(self, group_id: str) -> list[str]:
        """An address group's CIDRs (api-ref: address-groups/address-group-show-response.json)."""

        def fetch() -> list[str]:
            return list(self.conn.network.get_address_group(group_id).addresses or [])

        return self._cached(("address-group", group_id), f"address group {group_id}", fetch)

    def port_filter(self, port: Port) -> PortFilter:
        """The port's security groups with their rules, and the address groups those rules name."""
        groups = [self.security_group(g) for g in port.security_group_ids]
        named = sorted({r.remote_address_group_id for g in groups for r in g.rules if r.remote_address_group_id})
        return PortFilter(port.port_security_enabled is not False, groups, {a: self.address_group(a) for a in named})


def _raw(resource: Any, key: str) -> Any:
    """An attribute as the API sent it (None when absent), not as the SDK defaults it."""
    body = getattr(resource, "_body", None)
    attributes = getattr(body, "attributes", None) or {}
    return attributes.get(key)


def _reason(exc: Exception) -> str:
    """The useful end of a keystoneauth connection error: 'connection refused', 'timed out', ..."""
    text = " ".join(str(e) for e in (exc, exc.__context__) if e is not None)
    if "timed out" in text or "Timeout" in exc.__class__.__name__:
        return "no answer within the API timeout"
    errno = re.findall(r"\[Errno -?\d+\] ([^\"')]+)", text)
    if errno:
        return errno[-1].strip().lower()
    return text.splitlines()[0][:160] if text else exc.__class__.__name__


# --- steth agents --inventory: the two views side by side -----------------------------------------


def compare(present: dict[str, Any], hypervisors: list[Hypervisor], agents: list[NeutronAgent]) -> list[dict[str, Any]]:
    """One row per host known to either side.

    `present` maps steth node names to objects with `.alive` (steth.presence.Present). Findings: a host
    with Neutron agents or a hypervisor but no steth agent; a steth agent OpenStack does not know; a Neutron
    agent that is down; a hypervisor that is down.
    """
    hosts: dict[str, dict[str, Any]] = {}

    def row(host: str) -> dict[str, Any]:
        return hosts.setdefault(
            host, {"host": host, "hypervisor": None, "neutron_agents": [], "steth": "missing", "findings": []}
        )

    for h in hypervisors:
        row(h.host)["hypervisor"] = h.state
    for a in agents:
        row(a.host)["neutron_agents"].append(
            {"type": a.agent_type, "alive": a.alive, "admin_state_up": a.admin_state_up}
        )
    known = set(hosts)
    for node, p in present.items():
        row(node)["steth"] = "alive" if getattr(p, "alive", True) else "stale"
    for host, r in sorted(hosts.items()):
        down = [a["type"] for a in r["neutron_agents"] if not a["alive"]]
        if host not in known:
            r["findings"].append("steth agent unknown to OpenStack (no hypervisor, no Neutron agent)")
        elif r["steth"] == "missing":
            r["findings"].append("runs OpenStack services but no steth agent")
        elif r["steth"] == "stale":
            r["findings"].append("steth agent's heartbeat is stale")
        if down:
            r["findings"].append("Neutron agent down: " + ", ".join(down))
        if r["hypervisor"] == "down":
            r["findings"].append("hypervisor down")
    return [hosts[h] for h in sorted(hosts)]


def inventory_report(present: dict[str, Any]) -> int:
    """`steth agents --inventory`: print the comparison; exit 1 when there is a finding."""
    from steth.controller.output import View, current_format, emit

    inv = Inventory.from_options()
    rows = compare(present, inv.hypervisors(), inv.neutron_agents())
    findings = sum(len(r["findings"]) for r in rows)
    lines = []
    for r in rows:
        agents = ",".join(f"{_short(a['type'])}{'' if a['alive'] else '(DOWN)'}" for a in r["neutron_agents"]) or "-"
        lines.append([r["host"], r["hypervisor"] or "-", agents, r["steth"], "; ".join(r["findings"]) or "ok"])
    emit(
        View(
            ["HOST", "HYPERVISOR", "NEUTRON AGENTS", "STETH", "FINDING"],
            lines,
            doc={"cloud": inv.where, "summary": {"hosts": len(rows), "findings": findings}, "hosts": rows},
            after=[f"{len(rows)} hosts, {findings} finding(s) (OpenStack: {inv.where})"]
            if current_format().is_table
            else [],
        )
    )
    return 1 if findings else 0


def _short(agent_type: str) -> str:
    return {"Open vSwitch agent": "ovs", "DHCP agent": "dhcp", "L3 agent": "l3", "Metadata agent": "metadata"}.get(
        agent_type, agent_type.lower().replace(" agent", "").replace(" ", "-")
    )
