"""msgpack on the wire, with the NATS payload limit enforced before anything is sent."""

from __future__ import annotations

from typing import Any

import msgpack

NATS_DEFAULT_MAX_PAYLOAD = 1024 * 1024
# Shape bounds checked right after unpacking, before any validation: a 1 MB map of 140,000 keys held an
# agent's event loop for 0.87 s in pydantic (mostly building errors), and args nested 1,000 deep broke the
# JSON audit line. No request steth sends comes near either (vlan-check's 4,094 VLANs are one list).
MAX_VALUES = 20_000
MAX_DEPTH = 24


class PayloadTooLarge(ValueError):
    pass


class DecodeError(ValueError):
    pass


def encode(obj: Any, limit: int = NATS_DEFAULT_MAX_PAYLOAD) -> bytes:
    data = msgpack.packb(obj, use_bin_type=True)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"payload of {len(data)} bytes exceeds the NATS limit of {limit} bytes; large results must be chunked"
        )
    return data


def decode(data: bytes, limit: int = NATS_DEFAULT_MAX_PAYLOAD) -> dict[str, Any]:
    """Decode one envelope; anything but a msgpack map is refused."""
    if len(data) > limit:
        raise DecodeError(f"payload of {len(data)} bytes exceeds {limit} bytes")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise DecodeError(f"not msgpack: {exc.__class__.__name__}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"expected a map, got {type(obj).__name__}")
    check_shape(obj)
    return obj


def check_shape(obj: Any, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a value nested deeper than max_depth or holding more than max_values values (iteratively:
    the check itself must not recurse on hostile input)."""
    count, stack = 0, [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise DecodeError(f"nested deeper than {max_depth} levels")
        if isinstance(value, (dict, list, tuple)):
            count += len(value)
            if count > max_values:  # before looking inside: a huge map is refused at once
                raise DecodeError(f"more than {max_values} values")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
