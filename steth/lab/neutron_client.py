"""Plain HTTP to the lab's Neutron API (noauth: no token; the body names the project as an admin's would)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from steth.lab.shell import LabError


class NeutronClient:
    def __init__(self, url: str, timeout: float = 60):
        self.url, self.timeout = url.rstrip("/"), timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail)["NeutronError"]["message"]
            except (ValueError, KeyError, TypeError):
                pass
            raise LabError(f"Neutron {method} {path}: {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LabError(f"Neutron {method} {path}: {exc}") from None
        return json.loads(raw) if raw else {}

    def get(self, path: str) -> dict[str, Any]:
        return self.call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, body)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("PUT", path, body)
