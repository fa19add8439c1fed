"""The OpenStack API stand-in serving one cloud description, selected through clouds.yaml (cloud `steth-lab`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from steth.lab.openstack_api import ApiServer, clouds_yaml


@contextlib.contextmanager
def serving(cloud: dict, tmp_path, monkeypatch) -> Iterator[ApiServer]:
    server = ApiServer(cloud).start()
    path = tmp_path / "clouds.yaml"
    path.write_text(clouds_yaml(server.auth_url, cloud))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    for var in ("OS_CLOUD", "OS_AUTH_URL"):
        monkeypatch.delenv(var, raising=False)
    try:
        yield server
    finally:
        server.stop()
