"""Headless chromium for the tests that render the HTML report (Debian's chromium; scripts/setup-browser.sh)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NO_CHROMIUM = "chromium is not installed: run scripts/setup-browser.sh (as root) to render the report"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(page: Path, home: Path, screenshot: Path | None = None) -> tuple[str, subprocess.CompletedProcess | None]:
    """The DOM chromium built from the page and, with `screenshot`, chromium's run that wrote a 1280x1600 PNG."""
    env = {**os.environ, "HOME": str(home)}  # chromium writes its crash and cache folders under HOME
    with tempfile.TemporaryDirectory(prefix="steth-chromium-") as profile:
        flags = [*BROWSER_FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run(
            [chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, env=env
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        shot = None
        if screenshot is not None:
            shot = subprocess.run(
                [chromium(), *flags, "--window-size=1280,1600", f"--screenshot={screenshot}", page.as_uri()],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )
    return dom.stdout, shot


def png_stats(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct pixel rows) of a PNG, with the standard library only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, depth, color = 8, b"", 0, 0, 8, 2
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color] * depth // 8
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    rows = {raw[i * stride + 1 : (i + 1) * stride] for i in range(height)}  # filtered rows: a fair proxy
    return width, height, len(rows)
