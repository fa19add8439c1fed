"""Where an agent's CPU goes per `hello` request: the real runtime's request path, piece by piece.

No NATS: one AgentRuntime with a stand-in connection whose publish() only keeps the bytes, so the
numbers are the agent's own work (fanout.py measures it with the network and nats-py around it).
Each line is the best of 15 means over many calls in one process, warm caches: a lower bound next to fanout.py's
per-reply CPU, where thousands of agents share a process and two cores.

    python benchmarks/agent_path.py                  # writes results/agent_path.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result  # noqa: E402

REPEATS = 15
WHOLE = "agent: runtime._handle, one whole request (awaited inline)"
HANDOFF = "  extra: hand-off to a task per request (as _on_request does)"
AUDIT = "  extra: the audit log line at log_level=info (to /dev/null)"


class _Conn:
    max_payload = 1024 * 1024

    async def publish(self, subject: str, data: bytes, reply: str = "", headers=None) -> None:
        self.last = data


class _Msg:
    subject = "steth.v1.req.all.hello"
    reply = "_INBOX.bench"

    def __init__(self, data: bytes):
        self.data = data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000, help="calls per repeat (best of 15 repeats)")
    ap.add_argument("--output", default="agent_path", help="results/<name>.json ('-' for none)")
    args = ap.parse_args()

    import msgpack

    from steth import codec
    from steth.agent.config import AgentConfig
    from steth.agent.runtime import AgentRuntime
    from steth.controller.gather import _classify
    from steth.schemas.envelope import Reply, Request, Status
    from steth.schemas.probes import registry
    from steth.schemas.probes.hello import HelloResult

    n = args.calls
    request = Request(probe="hello", deadline=time.time() + 3600, sender="bench@localhost")
    wire = codec.encode(request.model_dump(mode="json"))
    rows: dict[str, float] = {}

    async def agent_side() -> None:
        conn = _Conn()
        rt = AgentRuntime(AgentConfig(node="bench-1", roles=["compute"]), nc=conn, gather_interfaces=False)
        msg = _Msg(wire)

        async def timed(label: str, step) -> None:
            for _ in range(200):
                await step()
            best = float("inf")
            for _ in range(REPEATS):  # the best of a few: other work on the machine only ever adds time
                t0 = time.perf_counter()
                for _ in range(n):
                    await step()
                best = min(best, (time.perf_counter() - t0) / n)
            rows[label] = best * 1e6

        await timed(WHOLE, lambda: rt._handle(msg))
        await timed(HANDOFF, lambda: asyncio.create_task(rt._handle(msg)))
        rows[HANDOFF] -= rows[WHOLE]

        async def empty() -> None:
            async with asyncio.timeout(10):
                pass

        await timed("asyncio.timeout() enter+exit (one per request)", empty)

        async def bare() -> None:
            await conn.publish(msg.reply, msgpack.packb({"node": "bench-1", "status": "ok"}))

        await timed("bare responder callback (fanout.py baseline)", bare)

        # A deployed agent logs one audit line per request at log_level=info (fanout.py's workers do not).
        import logging
        import os

        sink = open(os.devnull, "w")
        handler = logging.StreamHandler(sink)
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        try:
            await timed(AUDIT, lambda: rt._handle(msg))
            rows[AUDIT] -= rows[WHOLE]
        finally:
            logging.getLogger().removeHandler(handler)
            logging.getLogger().setLevel(logging.WARNING)
            sink.close()

    asyncio.run(agent_side())

    spec = registry()["hello"]
    decoded = codec.decode(wire)
    result = HelloResult(node="bench-1", version="0", roles=["compute"], data_plane="").model_dump()
    reply = Reply(
        id=request.id, node="bench-1", probe="hello", status=Status.OK, result=result, started=1.0, finished=2.0
    )
    reply_wire = codec.encode(reply.model_dump(mode="json"))
    parts = {
        "codec.decode(request)": lambda: codec.decode(wire),
        "Request.model_validate": lambda: Request.model_validate(decoded),
        "params model_validate ({})": lambda: spec.params.model_validate({}),
        "hello probe result (HelloResult + model_dump)": lambda: HelloResult(
            node="bench-1", version="0", roles=["compute"], data_plane=""
        ).model_dump(),
        "Reply(...) construct": lambda: Reply(
            id=request.id, node="bench-1", probe="hello", status=Status.OK, result=result, started=1.0, finished=2.0
        ),
        "reply model_dump(mode=json) + codec.encode": lambda: codec.encode(reply.model_dump(mode="json")),
        "controller: codec.decode(reply)": lambda: codec.decode(reply_wire),
    }
    for label, fn in parts.items():
        rows[label] = min(timeit.repeat(fn, number=n, repeat=REPEATS)) / n * 1e6
    agent_parts = [k for k in parts if not k.startswith("controller")] + [
        "asyncio.timeout() enter+exit (one per request)"
    ]
    rows["runtime glue: the rest of _handle (slots, context, policy, frames)"] = rows[WHOLE] - sum(
        rows[k] for k in agent_parts
    )
    raw = {f"node-{i}": dict(codec.decode(reply_wire), node=f"node-{i}") for i in range(1000)}
    rounds = max(1, n // 1000)
    rows["controller: _classify per reply (validate, sort)"] = (
        min(timeit.repeat(lambda: _classify(raw, set(raw), {}, request.id), number=rounds, repeat=REPEATS))
        / rounds
        / 1000
        * 1e6
    )

    order = [
        WHOLE,
        *agent_parts,
        "runtime glue: the rest of _handle (slots, context, policy, frames)",
        HANDOFF,
        AUDIT,
        "bare responder callback (fanout.py baseline)",
        *[k for k in rows if k.startswith("controller")],
    ]
    rows = {k: rows[k] for k in order}
    doc = {
        "benchmark": "agent_path",
        "machine": machine(),
        "calls": n,
        "repeats_best_of": REPEATS,
        "us_per_call": {k: round(v, 2) for k, v in rows.items()},
    }
    for label, us in rows.items():
        indent = "    " if label in agent_parts or label.startswith("runtime glue") else ""
        print(f"{us:7.2f} us  {indent}{label}")
    if args.output != "-":
        print(f"wrote {write_result(args.output, doc)}", file=sys.stderr)


if __name__ == "__main__":
    main()
