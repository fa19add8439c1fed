"""OpenStack options as python-openstackclient has them, honoured before or after the command.

`--os-cloud` (OS_CLOUD), `--os-region-name` (OS_REGION_NAME), `--os-cacert` (OS_CACERT), `--insecure`
(OS_INSECURE), `--os-api-timeout`. The group and every OpenStack-aware command take them; their callbacks keep
the values on the root context, where steth.controller.inventory.Inventory reads them. A flag given on the
command line wins over a variable; of two flags, the one after the command wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

DEFAULT_API_TIMEOUT_S = 10.0
_META = "steth.openstack"
_SOURCE = "steth.openstack.from_flag"


def _store(key: str) -> Callable:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value is False:
            return value
        meta = ctx.find_root().meta
        settings, from_flag = meta.setdefault(_META, {}), meta.setdefault(_SOURCE, set())
        flag = ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE
        if flag or key not in from_flag:
            settings[key] = value
            if flag:
                from_flag.add(key)
        return value

    return callback


def os_options(f: Callable) -> Callable:
    opts = [
        click.option(
            "--os-cloud",
            "_os_cloud",
            envvar="OS_CLOUD",
            metavar="NAME",
            expose_value=False,
            callback=_store("cloud"),
            help="Cloud in clouds.yaml [env: OS_CLOUD; else the OS_* variables, else a running lab's].",
        ),
        click.option(
            "--os-region-name",
            "_os_region_name",
            envvar="OS_REGION_NAME",
            metavar="REGION",
            expose_value=False,
            callback=_store("region_name"),
            help="OpenStack region [env: OS_REGION_NAME].",
        ),
        click.option(
            "--os-cacert",
            "_os_cacert",
            envvar="OS_CACERT",
            metavar="FILE",
            expose_value=False,
            callback=_store("cacert"),
            help="CA bundle to verify the OpenStack API's TLS certificates [env: OS_CACERT].",
        ),
        click.option(
            "--insecure",
            "_os_insecure",
            is_flag=True,
            default=None,
            envvar="OS_INSECURE",
            expose_value=False,
            callback=_store("insecure"),
            help="Do not verify the OpenStack API's TLS certificates (not for production).",
        ),
        click.option(
            "--os-api-timeout",
            "_os_api_timeout",
            type=click.FloatRange(0.5, 300),
            default=None,
            metavar="S",
            expose_value=False,
            callback=_store("api_timeout_s"),
            help=f"Seconds to wait for each OpenStack API call [default: {DEFAULT_API_TIMEOUT_S:g}].",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def openstack_settings() -> dict[str, Any]:
    """cloud, region_name, cacert, insecure, api_timeout_s as given (before or after the command)."""
    ctx = click.get_current_context(silent=True)
    return dict(ctx.find_root().meta.get(_META, {})) if ctx is not None else {}


def debug_requested() -> bool:
    """--debug anywhere on the command line, or STETH_DEBUG=1."""
    import os
    import sys

    return "--debug" in sys.argv or os.environ.get("STETH_DEBUG", "") not in ("", "0")
