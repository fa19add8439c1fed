"""A loopback OpenStack API stand-in: the Keystone v3, Neutron and Nova calls openstacksdk makes.

No usable OpenStack emulator exists on PyPI, and the diagnosis commands must be tested against the real SDK.
This answers them from a "cloud description" (a dict, or a JSON file re-read when it changes) so a lab can
describe itself exactly: its hosts, agents, networks, ports with MACs and addresses, servers.

Policy as in a default deployment: agents and hypervisors are admin-only (403), and for non-admin tokens the
binding:*, provider:* and OS-EXT-SRV-ATTR:* attributes are left out. Tokens are checked on every call.

    python -m steth.lab.openstack_api --cloud cloud.json --port-file api.port   (used by `steth lab up --openstack`)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

NOVA_MAX_MICROVERSION = "2.96"
ADMIN_ONLY_PREFIXES = ("binding:", "provider:", "OS-EXT-SRV-ATTR:")
# a router's `ha` and `distributed` are admin-only (neutron/conf/policies/router.py: get_router:ha, :distributed)
ADMIN_ONLY_KEYS = {"routers": ("ha", "distributed")}
# Neutron's collections under /network/v2.0 and the key of one item (api-ref: neutron-lib api-ref/source/v2).
NEUTRON = {
    "ports": "port",
    "networks": "network",
    "subnets": "subnet",
    "agents": "agent",
    "routers": "router",
    "security-groups": "security_group",
    "security-group-rules": "security_group_rule",
    "address-groups": "address_group",
    "segments": "segment",
}


def _now(offset_s: float = 0.0) -> str:
    t = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def empty_cloud() -> dict[str, Any]:
    """The shape of a cloud description (every key optional)."""
    return {
        "region": "RegionOne",
        "projects": [{"id": "p-admin", "name": "admin"}],
        "users": [{"name": "admin", "password": "secret", "project": "admin", "roles": ["admin", "member"]}],
        "hypervisors": [],  # {"hypervisor_hostname", "state": up|down, "status", "host_ip", ...}
        "agents": [],  # Neutron agents: {"id", "agent_type", "binary", "host", "alive", "configurations", ...}
        "networks": [],
        "subnets": [],
        "ports": [],
        "routers": [],
        "security_groups": [],  # each with its security_group_rules, as GET /v2.0/security-groups/{id} shows it
        "address_groups": [],
        "segments": [],
        "servers": [],
        "network_dhcp_agents": {},  # network id -> [agent id]
        "router_l3_agents": {},  # router id -> [agent id]
        "router_ha_states": {},  # router id -> {agent id: active|standby|unknown} (HA routers)
    }


class CloudSource:
    """The description, from a dict or from a JSON file that is re-read when it changes (tests edit it)."""

    def __init__(self, cloud: dict[str, Any] | str | Path):
        self._lock = threading.Lock()
        self._path = None if isinstance(cloud, dict) else Path(cloud)
        self._cloud = cloud if isinstance(cloud, dict) else {}
        self._mtime = -1.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._path is not None:
                mtime = self._path.stat().st_mtime
                if mtime != self._mtime:
                    self._cloud, self._mtime = json.loads(self._path.read_text()), mtime
            return {**empty_cloud(), **self._cloud}


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(status)
        self.status, self.body = status, body


def neutron_error(status: int, kind: str, message: str) -> ApiError:
    return ApiError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


def nova_error(status: int, message: str) -> ApiError:
    key = {404: "itemNotFound", 403: "forbidden", 400: "badRequest"}.get(status, "computeFault")
    return ApiError(status, {key: {"code": status, "message": message}})


def _visible(item: dict[str, Any], admin: bool, kind: str = "") -> dict[str, Any]:
    out = {k: v for k, v in item.items() if not k.startswith("_")}
    if not admin:
        hidden = ADMIN_ONLY_KEYS.get(kind, ())
        out = {k: v for k, v in out.items() if not k.startswith(ADMIN_ONLY_PREFIXES) and k not in hidden}
    return out


def _collection(cloud: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The items of a collection; security group rules are those of the groups (one source of truth)."""
    if kind == "security-group-rules":
        return [r for g in cloud["security_groups"] for r in g.get("security_group_rules", [])]
    return cloud[kind.replace("-", "_")]


def _matches(item: dict[str, Any], query: dict[str, list[str]]) -> bool:
    """Neutron-style equality filters; several values of one key mean any of them."""
    for key, wanted in query.items():
        if key in ("fields", "limit", "marker", "sort_key", "sort_dir", "all_tenants", "all_projects"):
            continue
        if key not in item:
            return False
        value = item[key]
        if isinstance(value, bool):
            value = str(value).lower()
            wanted = [w.lower() for w in wanted]
        if str(value) not in wanted:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    server_version = "steth-openstack-standin/1"
    protocol_version = "HTTP/1.1"

    # --- plumbing ------------------------------------------------------------------------------

    @property
    def api(self) -> ApiServer:
        return self.server.api  # type: ignore[attr-defined]

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.api.log is not None:
            self.api.log.write(f"{self.address_string()} {fmt % args}\n")
            self.api.log.flush()

    def _base(self) -> str:
        return f"http://{self.headers.get('Host') or self.api.netloc}"

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise ApiError(400, {"error": {"code": 400, "message": "malformed JSON body"}}) from None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self.api.calls.append((method, self.path))
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        cloud = self.api.source.get()
        try:
            if path.startswith("/identity"):
                status, body, headers = self._identity(method, path[len("/identity") :] or "/", cloud)
                return self._send(status, body, headers)
            if path.startswith("/network"):
                return self._send(200, self._neutron(path[len("/network") :] or "/", query, cloud))
            if path.startswith("/compute"):
                return self._send(
                    200,
                    self._nova(path[len("/compute") :] or "/", query, cloud),
                    {
                        "OpenStack-API-Version": f"compute {NOVA_MAX_MICROVERSION}",
                        "X-OpenStack-Nova-API-Version": NOVA_MAX_MICROVERSION,
                    },
                )
            raise ApiError(404, {"error": {"code": 404, "message": f"no such service: {path}"}})
        except ApiError as exc:
            self._send(exc.status, exc.body)
        except Exception as exc:  # a bug here must show as a 500, not a dropped connection
            self._send(500, {"error": {"code": 500, "message": f"{exc.__class__.__name__}: {exc}"}})

    # --- Keystone ------------------------------------------------------------------------------

    def _identity_version(self) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self._base()}/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    def _identity(self, method: str, path: str, cloud: dict) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and path == "/":
            return 300, {"versions": {"values": [self._identity_version()]}}, {}
        if method == "GET" and path == "/v3":
            return 200, {"version": self._identity_version()}, {}
        if method == "POST" and path == "/v3/auth/tokens":
            return self._issue_token(self._body(), cloud)
        if method == "GET" and path == "/v3/auth/tokens":
            token = self.api.tokens.get(self.headers.get("X-Subject-Token", ""))
            if not token:
                raise ApiError(404, {"error": {"code": 404, "message": "token not found"}})
            return 200, {"token": token["body"]}, {"X-Subject-Token": self.headers["X-Subject-Token"]}
        raise ApiError(404, {"error": {"code": 404, "message": f"not found: {path}"}})

    def _issue_token(self, body: dict, cloud: dict) -> tuple[int, Any, dict[str, str]]:
        unauthorized = ApiError(
            401,
            {
                "error": {
                    "code": 401,
                    "title": "Unauthorized",
                    "message": "The request you have made requires authentication.",
                }
            },
        )
        try:
            pw_user = body["auth"]["identity"]["password"]["user"]
            name, password = pw_user.get("name") or pw_user.get("id"), pw_user["password"]
        except (KeyError, TypeError):
            raise unauthorized from None
        user = next((u for u in cloud["users"] if u["name"] == name and u["password"] == password), None)
        if user is None:
            raise unauthorized
        scope = (body["auth"].get("scope") or {}).get("project") or {}
        wanted = scope.get("name") or scope.get("id") or user["project"]
        project = next((p for p in cloud["projects"] if wanted in (p["name"], p["id"])), None)
        if project is None or project["name"] != user["project"]:
            raise unauthorized
        base = self._base()
        service = lambda kind, name, url: {  # noqa: E731
            "type": kind,
            "name": name,
            "id": uuid.uuid5(uuid.NAMESPACE_URL, url).hex,
            "endpoints": [
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, url + i).hex,
                    "interface": i,
                    "region": cloud["region"],
                    "region_id": cloud["region"],
                    "url": url,
                }
                for i in ("public", "internal", "admin")
            ],
        }
        domain = {"id": "default", "name": "Default"}
        token = {
            "methods": ["password"],
            "expires_at": _now(3600),
            "issued_at": _now(),
            "audit_ids": [secrets.token_hex(8)],
            "user": {
                "id": uuid.uuid5(uuid.NAMESPACE_DNS, user["name"]).hex,
                "name": user["name"],
                "domain": domain,
                "password_expires_at": None,
            },
            "project": {"id": project["id"], "name": project["name"], "domain": domain},
            "roles": [{"id": uuid.uuid5(uuid.NAMESPACE_DNS, r).hex, "name": r} for r in user["roles"]],
            "catalog": [
                service("identity", "keystone", f"{base}/identity"),
                service("network", "neutron", f"{base}/network"),
                service("compute", "nova", f"{base}/compute/v2.1"),
            ],
        }
        token_id = "gAAAA" + secrets.token_urlsafe(32)
        self.api.tokens[token_id] = {"body": token, "admin": "admin" in user["roles"], "project": project["id"]}
        return 201, {"token": token}, {"X-Subject-Token": token_id}

    def _auth(self) -> dict[str, Any]:
        token = self.api.tokens.get(self.headers.get("X-Auth-Token", ""))
        if token is None:
            raise ApiError(
                401, {"error": {"code": 401, "message": "The request you have made requires authentication."}}
            )
        return token

    # --- Neutron -------------------------------------------------------------------------------

    def _neutron(self, path: str, query: dict[str, list[str]], cloud: dict) -> Any:
        if path == "/":
            return {
                "versions": [
                    {
                        "id": "v2.0",
                        "status": "CURRENT",
                        "links": [{"rel": "self", "href": f"{self._base()}/network/v2.0/"}],
                    }
                ]
            }
        token = self._auth()
        admin = token["admin"]
        parts = path.strip("/").split("/")
        if parts[0] != "v2.0":
            raise neutron_error(404, "HTTPNotFound", f"no such API version: {parts[0]}")
        parts = parts[1:]
        if parts == ["extensions"] or not parts:
            return {"extensions": []} if parts else {"resources": []}
        kind = parts[0]
        if kind not in NEUTRON:
            raise neutron_error(404, "HTTPNotFound", f"The resource could not be found: {kind}")
        if kind == "agents" and not admin:
            raise neutron_error(403, "PolicyNotAuthorized", "(rule:get_agent) is disallowed by policy")
        items = [
            i for i in _collection(cloud, kind) if admin or i.get("project_id", token["project"]) == token["project"]
        ]
        key = kind.replace("-", "_")
        if len(parts) == 1:
            return {key: [_visible(i, admin, kind) for i in items if _matches(i, query)], f"{key}_links": []}
        found = next((i for i in items if i["id"] == parts[1]), None)
        if found is None:
            what = "".join(w.capitalize() for w in NEUTRON[kind].split("_"))
            raise neutron_error(404, f"{what}NotFound", f"{what} {parts[1]} could not be found.")
        if len(parts) == 2:
            return {NEUTRON[kind]: _visible(found, admin, kind)}
        sub = "/".join(parts[2:])
        hosting = {("networks", "dhcp-agents"): "network_dhcp_agents", ("routers", "l3-agents"): "router_l3_agents"}
        if (kind, sub) in hosting:
            if not admin:
                raise neutron_error(403, "PolicyNotAuthorized", "(rule:get_agent) is disallowed by policy")
            ids = cloud[hosting[(kind, sub)]].get(found["id"], [])
            agents = [_visible(a, admin) for a in cloud["agents"] if a["id"] in ids]
            if kind == "routers":  # each L3 agent with the router's ha_state there (null unless HA; api-ref
                # agents/router-l3-agent-list-response.json)
                states = cloud["router_ha_states"].get(found["id"], {})
                agents = [{**a, "ha_state": states.get(a["id"]) if found.get("ha") else None} for a in agents]
            return {"agents": agents}
        raise neutron_error(404, "HTTPNotFound", f"The resource could not be found: {path}")

    # --- Nova ----------------------------------------------------------------------------------

    def _nova_version(self) -> dict[str, Any]:
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": NOVA_MAX_MICROVERSION,
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self._base()}/compute/v2.1/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }

    def _nova(self, path: str, query: dict[str, list[str]], cloud: dict) -> Any:
        if path == "/":
            return {"versions": [self._nova_version()]}
        if path == "/v2.1":
            return {"version": self._nova_version()}
        token = self._auth()
        admin = token["admin"]
        parts = path.strip("/").split("/")[1:]
        if parts[:1] == ["os-hypervisors"]:
            if not admin:
                raise nova_error(403, "Policy doesn't allow os_compute_api:os-hypervisors:list-detail to be performed.")
            hypervisors = [
                h for h in cloud["hypervisors"] if _matches(h, {k: v for k, v in query.items() if k != "with_servers"})
            ]
            if parts[1:] in ([], ["detail"]):
                return {"hypervisors": [_visible(h, admin) for h in hypervisors], "hypervisors_links": []}
            found = next((h for h in hypervisors if str(h["id"]) == parts[1]), None)
            if found is None:
                raise nova_error(404, f"Hypervisor with ID {parts[1]} could not be found.")
            return {"hypervisor": _visible(found, admin)}
        if parts[:1] == ["servers"]:
            # Nova lists the token's project only, unless an admin asks for all_tenants; an admin may GET any
            # server by id (nova/api/openstack/compute/servers.py _get_servers: all_tenants, policy)
            every = admin and query.get("all_tenants", ["0"])[0].lower() not in ("0", "false", "")
            listed = [s for s in cloud["servers"] if every or s.get("tenant_id") == token["project"]]
            servers = [s for s in cloud["servers"] if admin or s.get("tenant_id") == token["project"]]
            if parts[1:] in ([], ["detail"]):
                servers = listed
                filters = {k: v for k, v in query.items() if k not in ("name",)}
                picked = [s for s in servers if _matches(s, filters)]
                if "name" in query:  # Nova filters names by regular expression
                    pattern = re.compile(query["name"][0])
                    picked = [s for s in picked if pattern.search(s.get("name", ""))]
                return {"servers": [_visible(s, admin) for s in picked], "servers_links": []}
            found = next((s for s in servers if s["id"] == parts[1]), None)
            if found is None:
                raise nova_error(404, f"Instance {parts[1]} could not be found.")
            if len(parts) == 2:
                return {"server": _visible(found, admin)}
            if parts[2] == "os-interface":
                ports = [p for p in cloud["ports"] if p.get("device_id") == found["id"]]
                return {
                    "interfaceAttachments": [
                        {
                            "port_id": p["id"],
                            "net_id": p["network_id"],
                            "mac_addr": p["mac_address"],
                            "port_state": p.get("status"),
                            "fixed_ips": p.get("fixed_ips", []),
                        }
                        for p in ports
                    ]
                }
        raise nova_error(404, f"The resource could not be found: {path}")


class ApiServer:
    """The stand-in on 127.0.0.1 (a random port by default), serving from a thread."""

    def __init__(self, cloud: dict[str, Any] | str | Path, host: str = "127.0.0.1", port: int = 0, log=None):
        self.source = CloudSource(cloud)
        self.tokens: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.log = log
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.api = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def netloc(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def start(self) -> ApiServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="openstack-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def clouds_yaml(auth_url: str, cloud: dict[str, Any], prefix: str = "steth-lab") -> str:
    """clouds.yaml with one entry per user of the description: `<prefix>` for admin, `<prefix>-<user>` for others."""
    import yaml

    clouds = {}
    for user in cloud.get("users", []):
        name = prefix if user["name"] == "admin" else f"{prefix}-{user['name']}"
        clouds[name] = {
            "auth": {
                "auth_url": auth_url,
                "username": user["name"],
                "password": user["password"],
                "project_name": user["project"],
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": cloud.get("region", "RegionOne"),
            "identity_api_version": 3,
            "interface": "public",
        }
    return yaml.safe_dump({"clouds": clouds}, sort_keys=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloud", required=True, help="cloud description (JSON), re-read when it changes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--log", help="append one line per request to this file")
    args = parser.parse_args()
    log = open(args.log, "a") if args.log else None
    api = ApiServer(args.cloud, args.host, args.port, log=log)
    if args.port_file:
        tmp = Path(args.port_file + ".tmp")
        tmp.write_text(str(api.httpd.server_address[1]))
        os.replace(tmp, args.port_file)
    try:
        api.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
