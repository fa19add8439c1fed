"""steth capture: tcpdump on every selected node at once; with -w, each node's pcap comes back in chunks.

A kept pcap is read with `capture-fetch` (one chunk per request, base64, under the NATS payload limit) and
released with the last chunk; the assembled file is checked against the agent's sha256.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import click

from steth.controller.errors import StethError, UsageError
from steth.controller.options import Invocation, gathering_command, run_async
from steth.controller.output import emit, fmt, gathered_view, safe_lines, table
from steth.controller.params import collect, params_options, wire_args
from steth.schemas.envelope import Status
from steth.schemas.probes.capture import SPEC as CAPTURE
from steth.schemas.probes.capture import CaptureParams
from steth.schemas.probes.capture_fetch import MAX_CHUNK_BYTES
from steth.schemas.probes.capture_fetch import SPEC as CAPTURE_FETCH

FETCH_TIMEOUT_S = 10.0
ENVELOPE_ROOM = 16 * 1024  # the reply's envelope and result fields around the base64 chunk


def chunk_size(max_payload: int, wanted: int | None = None) -> int:
    """The largest chunk whose base64 reply fits the server's payload limit (and the probe's bound)."""
    fits = (max_payload - ENVELOPE_ROOM) * 3 // 4
    return max(1024, min(wanted or MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, fits))


def pcap_path(template: str, node: str) -> Path:
    """`cap.pcap` -> `cap.NODE.pcap`; `{node}` in the name is replaced instead."""
    if "{node}" in template:
        return Path(template.replace("{node}", node))
    path = Path(template)
    suffix = path.suffix or ".pcap"
    return path.with_name(f"{path.stem if path.suffix else path.name}.{node}{suffix}")


async def fetch(s, node: str, capture_id: str, size: int, sha256: str, chunk: int, dest: Path) -> dict:
    """Move one kept pcap in chunks into dest; release it on the node with the last read."""
    digest = hashlib.sha256()
    offset, chunks = 0, 0
    tmp = dest.with_name(dest.name + ".part")
    try:
        with open(tmp, "wb") as out:
            while True:
                last = offset + chunk >= size
                args = {"capture_id": capture_id, "offset_bytes": offset, "length_bytes": chunk, "release": last}
                got = await s.run("capture-fetch", None, FETCH_TIMEOUT_S, per_node_args={node: args})
                reply = got.nodes[0]
                piece = reply.parsed(CAPTURE_FETCH)
                if reply.status is not Status.OK or piece is None:
                    raise StethError(
                        f"{node}: fetching capture {capture_id} at {offset}: {reply.status.value}: {reply.message}"
                    )
                data = base64.b64decode(piece.data_b64)
                out.write(data)
                digest.update(data)
                offset, chunks = offset + len(data), chunks + 1
                if last or piece.eof or not data:
                    break
        if offset != size or digest.hexdigest() != sha256:
            raise StethError(f"{node}: pcap {capture_id} arrived damaged ({offset} of {size} bytes, sha256 mismatch)")
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if offset + chunk < size:  # not released by a last read: release it now (best effort)
            try:
                await s.run(
                    "capture-fetch",
                    None,
                    FETCH_TIMEOUT_S,
                    per_node_args={node: {"capture_id": capture_id, "length_bytes": 0, "release": True}},
                )
            except Exception:
                pass
        raise
    return {"node": node, "path": str(dest), "bytes": size, "chunks": chunks, "sha256": sha256}


def clock(epoch: float) -> str:
    """Local time of day with microseconds, as tcpdump prints it."""
    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}"


def render(gathered) -> str:
    lines = []
    for node in gathered.nodes:
        r = node.parsed(CAPTURE)
        if node.status is not Status.OK or r is None:
            lines.append(f"{node.node}: {node.status.value}: {node.message}")
            continue
        dropped = r.dropped_by_kernel
        head = (
            f"{node.node}: {r.packets} packets on {r.interface} in {fmt(r.duration_s, 's')}"
            f" (stopped by {r.stopped_by}; pcap {fmt(r.pcap_bytes, 'bytes')}"
            + (f"; {dropped} dropped by kernel" if dropped else "")
            + ")"
        )
        lines.append(head)
        rows = [[clock(p.time), p.summary] for p in r.lines]
        if rows:
            lines.append(table(["  TIME", "PACKET"], [["  " + a, b] for a, b in rows]))
        if r.lines_truncated:
            lines.append(f"  ... {r.packets - len(rows)} more in the pcap (--lines, -w)")
    return "\n".join(lines)


@click.command("capture")
@click.option(
    "-w",
    "--write-to",
    "write_to",
    metavar="FILE",
    help="Write each node's pcap on this machine: FILE.NODE.pcap (or {node} in FILE).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1024, MAX_CHUNK_BYTES),
    default=None,
    metavar="BYTES",
    help="Bytes per fetch request (default: the most the NATS payload limit allows).",
)
@params_options(CaptureParams, exclude=("write",))
@gathering_command
def command(inv: Invocation, write_to: str | None, chunk_size: int | None, **options) -> None:
    """Capture packets with tcpdump on the selected nodes, all started at once.

    Each capture stops at --count packets, after --duration seconds, or when the pcap reaches --max-pcap bytes,
    whichever comes first. Nodes report the packet count and a one-line summary per packet; with -w, every
    node's pcap is brought back in chunks (each under the NATS payload limit) and written here, then removed
    from the node. The filter is a BPF expression; shell metacharacters are refused.

    \b
    Examples:
      steth capture --interface data0 --filter icmp --count 20 --role compute
      steth capture --interface data0 --filter 'udp port 67 or udp port 68' --duration 30 -w dhcp.pcap
      steth capture --interface any --count 5 --node network-1 -o json
    """
    from steth.schemas.probes import get

    spec = get("capture")
    params = collect(CaptureParams, options, write=bool(write_to))
    if write_to:
        parent = Path(write_to.replace("{node}", "x")).parent
        if not parent.is_dir():
            raise UsageError(f"-w {write_to}: folder {parent} does not exist")

    async def go():
        async with inv.session() as s:
            gathered = await s.run(
                "capture", inv.selection, inv.timeout_or(spec.timeout_for(params)), wire_args(params)
            )
            written, problems = [], []
            if write_to:
                chunk = chunk_size_for(s, chunk_size)
                for node in gathered.nodes:
                    r = node.parsed(CAPTURE)
                    if node.status is Status.OK and r is not None and r.capture_id:
                        try:
                            written.append(
                                await fetch(
                                    s,
                                    node.node,
                                    r.capture_id,
                                    r.pcap_bytes,
                                    r.sha256,
                                    chunk,
                                    pcap_path(write_to, node.node),
                                )
                            )
                        except StethError as exc:
                            problems.append(str(exc))
            return gathered, written, problems

    gathered, written, problems = run_async(go())
    wrote = [
        f"wrote {w['path']}: {fmt(w['bytes'], 'bytes')} in {w['chunks']} chunk(s), sha256 {w['sha256'][:16]}"
        for w in written
    ]
    view = gathered_view(gathered, spec, text=render(gathered), written=written, fetch_errors=problems)
    view.after[:0] = wrote if inv.fmt.is_table else []
    emit(view)
    for problem in problems:
        click.echo(safe_lines(f"steth: error: {problem}"), err=True)
    code = gathered.exit_code()
    click.get_current_context().exit(code if code or not problems else 3)


def chunk_size_for(session, wanted: int | None) -> int:
    return chunk_size(getattr(session.nc, "max_payload", 1024 * 1024) or 1024 * 1024, wanted)
