"""Log lines for a terminal (timestamp, node, level) or for journald (a <priority> prefix on each line, no
timestamp of our own: the journal stamps every line, and `journalctl -p err` filters on the prefix)."""

from __future__ import annotations

import logging
import sys

from steth.agent.sdnotify import under_journal

# syslog priorities (sd-daemon(3) prefixes)
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def priority(levelno: int) -> int:
    return next((p for level, p in sorted(PRIORITY.items(), reverse=True) if levelno >= level), 7)


class JournalFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def setup(level: str, node: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if under_journal(sys.stderr.fileno()):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {node} %(levelname)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
