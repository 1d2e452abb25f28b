"""Shared test set-up: log framing for live logs and the thread-leak check.

Logging itself is configured in pyproject.toml (``log_format`` and friends):
every record is captured at DEBUG level as ``HH:MM:SS.ffffff [ID] message``
(the format of docs/log-format.md), and a failing test's report shows it
under "Captured log". With ``-o log_cli=true`` the log streams to the terminal,
and this file frames each test's lines with ``=== RUN name`` and
``--- PASS: name (Ns)`` (or FAIL/SKIP), so one file can hold many tests.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tools.raft_testlog_viz.frames import TestFrames
from tools.threadcheck import leaked_threads

pytest_plugins = [
    "pytester",
    "tools.raft_testlog_viz.pytest_plugin",
    "tools.lincheck.pytest_plugin",
    "tools.sim.pytest_plugin",
]

_make_record = logging.getLogRecordFactory()

# Every record is kept, at DEBUG level, and a busy test makes a hundred
# thousand: skip what the log format never shows (the caller's file and
# line, the thread and the process), which logging otherwise looks up for
# each record.
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False


_last_second = (-1, "")
"""The last whole second a record was made in, and its ``HH:MM:SS``."""


def _record_with_raft_time(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Give every log record a ``raft_time`` field: ``HH:MM:SS.ffffff``.

    logging's own ``asctime`` keeps only milliseconds; an election plays out
    in a few of them, so the log format uses this field instead. Records
    come by the thousand each second, so the ``HH:MM:SS`` of a second is
    worked out once.
    """
    global _last_second
    record = _make_record(*args, **kwargs)
    second, micros = divmod(round(record.created * 1_000_000), 1_000_000)
    last_second, hms = _last_second  # one read: other threads log too
    if second != last_second:
        hms = datetime.datetime.fromtimestamp(second).strftime("%H:%M:%S")
        _last_second = (second, hms)
    record.raft_time = f"{hms}.{micros:06d}"
    return record


logging.setLogRecordFactory(_record_with_raft_time)


class LogFramer:
    """Writes the ``=== RUN`` / ``--- PASS`` frame around each test."""

    def __init__(self, reporter: pytest.TerminalReporter) -> None:
        self.reporter = reporter
        self.frames = TestFrames()

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        self.frames.collected(item)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.write(self.frames.start(nodeid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.write(self.frames.end(report))

    def write(self, lines: list[str]) -> None:
        # In one write: a line that a server's thread logs meanwhile comes
        # before or after the frame's lines, not in between.
        if lines:
            self.reporter.ensure_newline()
            self.reporter.write("\n".join(lines) + "\n", flush=True)


@pytest.hookimpl(trylast=True)  # after the terminal reporter is set up
def pytest_configure(config: pytest.Config) -> None:
    live_log = config.getini("log_cli") or config.getoption("log_cli_level")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if live_log and reporter is not None:
        config.pluginmanager.register(LogFramer(reporter), "raft-log-framer")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Without ``--log-file``, pytest still formats every record, at DEBUG
    level, for a file handler on os.devnull; a test logs up to a hundred
    thousand lines, so turn that handler off (``--log-file`` turns it on)."""
    config = session.config
    logging_plugin = config.pluginmanager.get_plugin("logging-plugin")
    if logging_plugin is not None and not (
        config.getoption("log_file") or config.getini("log_file")
    ):
        logging_plugin.log_file_level = logging.CRITICAL + 1


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test if a thread it started is still alive shortly after it."""
    before = set(threading.enumerate())
    yield
    leaked = leaked_threads(before)
    if leaked:
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"threads leaked by the test: {names}", pytrace=False)
