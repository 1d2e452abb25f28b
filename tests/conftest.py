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


def _record_with_raft_time(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Give every log record a ``raft_time`` field: ``HH:MM:SS.ffffff``.

    logging's own ``asctime`` keeps only milliseconds; an election plays out
    in a few of them, so the log format uses this field instead.
    """
    record = _make_record(*args, **kwargs)
    moment = datetime.datetime.fromtimestamp(record.created)
    record.raft_time = moment.strftime("%H:%M:%S.%f")
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


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test if a thread it started is still alive shortly after it."""
    before = set(threading.enumerate())
    yield
    leaked = leaked_threads(before)
    if leaked:
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"threads leaked by the test: {names}", pytrace=False)
