"""msgpack on the wire, with the NATS payload limit enforced before anything is sent."""

from __future__ import annotations

from typing import Any

import msgpack

NATS_DEFAULT_MAX_PAYLOAD = 1024 * 1024


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
    return obj
