"""The wire codec: msgpack maps only, and the NATS payload limit enforced on both sides."""

from __future__ import annotations

import msgpack
import pytest

from steth import codec
from steth.schemas.envelope import Reply, Request, Status


def test_request_roundtrip_keeps_every_field():
    req = Request(probe="ping", args={"targets": ["10.0.0.1", "::1"], "count": 3, "interval_s": 0.2}, deadline=1e9)
    back = Request.model_validate(codec.decode(codec.encode(req.model_dump(mode="json"))))
    assert back == req


def test_reply_roundtrip_keeps_status_result_and_binary():
    reply = Reply(
        id="abc",
        node="compute-1",
        probe="ping",
        status=Status.FAILED,
        message="loss 30%",
        result={"targets": [{"target": "10.0.0.1", "loss": 0.3, "rtt_avg_ms": None}], "raw": b"\x00\xff"},
        started=1.5,
        finished=2.25,
    )
    back = Reply.model_validate(codec.decode(codec.encode(reply.model_dump(mode="python"))))
    assert back.status is Status.FAILED
    assert back.result["raw"] == b"\x00\xff"  # use_bin_type: bytes stay bytes, not str
    assert back.result["targets"][0]["rtt_avg_ms"] is None
    assert back.duration_s == pytest.approx(0.75)


def test_encode_refuses_payload_over_the_limit_with_a_clear_error():
    big = {"blob": b"x" * 2000}
    assert len(codec.encode(big, limit=4096)) < 4096
    with pytest.raises(codec.PayloadTooLarge) as exc:
        codec.encode(big, limit=1000)
    message = str(exc.value)
    assert "exceeds the NATS limit of 1000 bytes" in message and "chunked" in message
    assert "\n" not in message


def test_default_limit_is_nats_default_max_payload():
    assert codec.NATS_DEFAULT_MAX_PAYLOAD == 1024 * 1024
    with pytest.raises(codec.PayloadTooLarge):
        codec.encode({"blob": b"x" * codec.NATS_DEFAULT_MAX_PAYLOAD})


def test_decode_refuses_payload_over_the_limit_before_parsing():
    data = codec.encode({"blob": b"x" * 5000})
    with pytest.raises(codec.DecodeError, match="exceeds 1000 bytes"):
        codec.decode(data, limit=1000)


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", "not msgpack"),
        (b"\xc1", "not msgpack"),  # 0xc1 is never used in msgpack
        (b"GET / HTTP/1.1\r\n\r\n", "not msgpack"),  # trailing bytes after the first object
        (b"\x85\x01", "not msgpack"),  # a map announcing 5 pairs, truncated
        (msgpack.packb([1, 2, 3]), "expected a map, got list"),
        (msgpack.packb("hello"), "expected a map, got str"),
        (msgpack.packb(42), "expected a map, got int"),
        (msgpack.packb(None), "expected a map, got NoneType"),
        (msgpack.packb({1: "int key"}), "not msgpack"),  # strict_map_key: only str/bytes keys
    ],
)
def test_decode_refuses_garbage_and_non_maps(data, expected):
    with pytest.raises(codec.DecodeError, match=expected):
        codec.decode(data)


def test_decode_errors_are_value_errors_one_line():
    with pytest.raises(ValueError) as exc:
        codec.decode(b"\xc1\xc1\xc1")
    assert "\n" not in str(exc.value)
