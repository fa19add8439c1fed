"""Resource bounds on the agent's request path (issue 12): hostile shapes answered `invalid` before any
validation, absurd times refused, a bounded queue of waiting requests per probe. Through the real
AgentRuntime._dispatch / execute, no NATS needed."""

from __future__ import annotations

import asyncio
import time

import msgpack
import pytest

from steth import codec
from steth.agent.config import AgentConfig
from steth.agent.runtime import AgentRuntime
from steth.schemas.envelope import Status
from steth.schemas.probes import registry


@pytest.fixture
def runtime():
    return AgentRuntime(AgentConfig(node="bd", roles=["compute"], max_waiting=2), gather_interfaces=False)


def dispatch(rt: AgentRuntime, probe: str, request: dict):
    payload = msgpack.packb(request, use_bin_type=True)
    return asyncio.run(rt._dispatch(probe, payload, time.time(), f"steth.v1.req.all.{probe}", {}))


def request(**args) -> dict:
    return {"v": 1, "id": "b1", "probe": "hello", "args": args, "deadline": time.time() + 5}


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_deep_nesting_is_invalid_not_a_crash(runtime):
    reply = dispatch(runtime, "hello", request(x=nested(1000)))
    assert reply.status == Status.INVALID and f"nested deeper than {codec.MAX_DEPTH} levels" in reply.message


def test_many_keys_are_refused_before_validation(runtime):
    """140,000 keys in 0.9 MB held the event loop for 0.87 s in pydantic; now the count is checked first."""
    many = {f"{i:x}": 0 for i in range(140_000)}
    started = time.perf_counter()
    reply = dispatch(runtime, "hello", request(**many))
    took = time.perf_counter() - started
    assert reply.status == Status.INVALID and f"more than {codec.MAX_VALUES} values" in reply.message
    print(f"\n140,000 keys refused in {took * 1000:.0f} ms (decode + shape check)")


def test_the_largest_legitimate_request_fits_the_bounds():
    """vlan-check at its own limits (512 VLANs, 256 nodes) stays inside the shape bounds."""
    args = {"interface": "eth1", "vlans": list(range(1, 513)), "token": "ab12", "nodes": [f"n{i}" for i in range(256)]}
    codec.check_shape({"v": 1, "args": args})
    registry()["vlan-check"].params.model_validate(args)


@pytest.mark.parametrize("deadline", [1e306, float("inf"), -1.0, 1e11])
def test_absurd_deadlines_are_invalid(runtime, deadline):
    reply = dispatch(runtime, "hello", {**request(), "deadline": deadline})
    assert reply.status == Status.INVALID and "deadline" in reply.message


def test_waiting_requests_are_bounded_per_probe(runtime):
    """With every slot taken and max_waiting requests queued, the next answers busy at once."""
    spec = registry()["tcp-check"]
    params = spec.params(targets=["192.0.2.1:9"], connect_timeout_s=1.0)  # TEST-NET: never answers

    async def go():
        runtime._slots["tcp-check"] = slots = asyncio.Semaphore(1)
        await slots.acquire()  # the one slot is busy
        deadline = time.time() + 2
        waiting = [asyncio.create_task(runtime.execute("tcp-check", params, deadline)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert runtime._waiting["tcp-check"] == 2
        started = time.perf_counter()
        (settled, _), took = await runtime.execute("tcp-check", params, deadline), time.perf_counter() - started
        slots.release()
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        return settled, took

    settled, took = asyncio.run(go())
    assert settled.status == Status.ABORTED and "already wait for a slot (max_waiting)" in settled.message
    assert took < 0.1  # refused at once, not after waiting
    assert runtime._waiting["tcp-check"] == 0
