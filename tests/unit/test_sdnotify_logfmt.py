"""systemd integration without systemd: watchdog interval, journal detection, priority-prefixed log lines."""

from __future__ import annotations

import logging
import os

from steth.agent import logfmt, sdnotify


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sdnotify.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 15.0


def test_under_journal_compares_device_and_inode(monkeypatch, tmp_path):
    with open(tmp_path / "stream", "w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert sdnotify.under_journal(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not sdnotify.under_journal(f.fileno())
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not sdnotify.under_journal(2)


def test_journal_lines_carry_a_priority_and_no_timestamp():
    fmt = logfmt.JournalFormatter()

    def line(level: int, msg: str) -> str:
        return fmt.format(logging.LogRecord("steth.agent", level, __file__, 1, msg, None, None))

    assert line(logging.ERROR, "cannot serve metrics") == "<3>ERROR cannot serve metrics"
    assert line(logging.WARNING, "w") == "<4>WARNING w" and line(logging.INFO, "i") == "<6>INFO i"
    assert line(logging.DEBUG, "d") == "<7>DEBUG d" and line(logging.CRITICAL, "c") == "<2>CRITICAL c"
    assert line(logging.ERROR, "two\nlines") == "<3>ERROR two\n<3>lines"  # each journal line keeps its priority
