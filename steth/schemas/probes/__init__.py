"""The probe registry: every module in this package declares one `SPEC`."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from steth.schemas.probe import ProbeSpec


@cache
def registry() -> dict[str, ProbeSpec]:
    specs: dict[str, ProbeSpec] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, ProbeSpec):
            if spec.name in specs:
                raise RuntimeError(f"probe {spec.name!r} declared twice")
            specs[spec.name] = spec
    return dict(sorted(specs.items()))


def get(name: str) -> ProbeSpec | None:
    return registry().get(name)
