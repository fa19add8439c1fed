"""capture-fetch: one chunk of a pcap kept by `capture --write`, base64 in the reply (under the NATS limit).

The controller reads a kept pcap chunk by chunk and releases it with the last one; a pcap nobody fetches is
removed when its keep time ends, or when the agent stops.
"""

from __future__ import annotations

from pydantic import Field

from steth.schemas.probe import CAPTURE, Column, ProbeSpec
from steth.schemas.types import Params, Result

# Base64 grows a chunk by 4/3: 576 KiB of pcap is 768 KiB on the wire, under the 1 MiB NATS default.
MAX_CHUNK_BYTES = 576 * 1024
DEFAULT_CHUNK_BYTES = 384 * 1024


class CaptureFetchParams(Params):
    capture_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="the capture_id a kept capture returned")
    offset_bytes: int = Field(0, ge=0, le=64 * 1024 * 1024, description="where the chunk starts")
    length_bytes: int = Field(DEFAULT_CHUNK_BYTES, ge=0, le=MAX_CHUNK_BYTES, description="chunk size")
    release: bool = Field(False, description="remove the pcap from the node after this read")


class CaptureFetchResult(Result):
    capture_id: str
    offset_bytes: int
    length_bytes: int  # bytes in this chunk
    size_bytes: int  # the whole pcap
    sha256: str  # of the whole pcap
    eof: bool
    released: bool = False
    data_b64: str = ""


SPEC = ProbeSpec(
    name="capture-fetch",
    effects=(CAPTURE,),
    summary="Read one chunk of a pcap kept by capture (base64); release removes it from the node.",
    params=CaptureFetchParams,
    result=CaptureFetchResult,
    max_timeout_s=30,
    columns=(
        Column("CAPTURE", "capture_id"),
        Column("OFFSET", "offset_bytes"),
        Column("LENGTH", "length_bytes"),
        Column("SIZE", "size_bytes", "bytes"),
        Column("EOF", "eof"),
    ),
    tools=(),
)
