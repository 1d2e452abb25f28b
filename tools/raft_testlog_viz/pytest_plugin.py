"""``pytest --raft-viz[=DIR]``: run tests and get their timelines in one go.

The plugin collects every log record of each test, as the lines that
``-o log_cli=true`` would print (``HH:MM:SS.ffffff [ID] message`` framed by
``=== RUN`` / ``--- PASS: name (Ns)``), and at the end of the session feeds
them to the same parser and page writer as ``python -m
tools.raft_testlog_viz``: one HTML page per test and an ``index.html`` in
DIR, whose ``file://`` URLs it prints.

Enable it with ``pytest_plugins`` in a conftest.py, or ``-p
tools.raft_testlog_viz.pytest_plugin``.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest

from .frames import TestFrames
from .pages import DEFAULT_OUTDIR, Site, write_site
from .parse import RunLog, parse_log, skipped_report


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--raft-viz[=DIR]``."""
    parser.getgroup("raft-viz").addoption(
        "--raft-viz",
        nargs="?",
        const=str(DEFAULT_OUTDIR),
        default=None,
        metavar="DIR",
        help=(
            "write an HTML timeline of each test's Raft log, plus index.html, "
            f"into DIR (default: {DEFAULT_OUTDIR}) and print their URLs. "
            "Put it after the test paths, or write --raft-viz=DIR: a bare "
            "word after it is taken as DIR."
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Start recording when ``--raft-viz`` was given."""
    outdir = config.getoption("raft_viz")
    if outdir is None:
        return
    args = list(config.invocation_params.args)
    if "--raft-viz" in args:
        # "pytest --raft-viz tests/part1" takes tests/part1 as DIR: refuse
        # rather than run every test and write pages among the tests.
        value_apart = args[args.index("--raft-viz") + 1 :][:1] == [outdir]
        if value_apart and looks_like_tests(Path(outdir.split("::")[0])):
            raise pytest.UsageError(
                f"--raft-viz took {outdir!r} as its DIR, but that is a test "
                "path: write --raft-viz=DIR, or put --raft-viz after the tests"
            )
    config.pluginmanager.register(RaftViz(Path(outdir)), "raft-viz")


def looks_like_tests(path: Path) -> bool:
    """Whether ``path`` is a test file, or a folder of tests or conftest."""
    if path.suffix == ".py":
        return True
    return path.is_dir() and (
        (path / "conftest.py").exists() or any(path.glob("test_*.py"))
    )


class LineHandler(logging.Handler):
    """Keeps every record as a log line: ``HH:MM:SS.ffffff message``."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        """Append the record's line (logging calls it under the handler lock).

        A message of several lines becomes several lines, as in a live log:
        only the first one has the time.
        """
        moment = datetime.datetime.fromtimestamp(record.created)
        self.lines += f"{moment:%H:%M:%S.%f} {record.getMessage()}".splitlines()


class RaftViz:
    """The plugin's work for one session: record, frame, write, report."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.lines: list[str] = []
        self.handler = LineHandler(self.lines)
        self.frames = TestFrames()
        self.saved_level = logging.NOTSET
        self.run: RunLog | None = None
        self.site: Site | None = None

    def pytest_sessionstart(self) -> None:
        """Listen to the root logger, at DEBUG: the CMs log at that level."""
        root = logging.getLogger()
        self.saved_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self.handler)

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        """Note the test's docstring."""
        self.frames.collected(item)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """Open the test's frame."""
        self.append(self.frames.start(nodeid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Close the frame after teardown, with the status of all phases."""
        self.append(self.frames.end(report))

    def append(self, lines: list[str]) -> None:
        # Under the handler's lock: a record that a server's thread logs
        # meanwhile comes before or after the frame's lines, not in between.
        self.handler.acquire()
        try:
            self.lines += lines
        finally:
            self.handler.release()

    def pytest_sessionfinish(self) -> None:
        """Stop listening and write the pages."""
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.saved_level)
        self.run = parse_log(self.lines)
        if self.run.tests:
            self.site = write_site(self.run, self.outdir)

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter
    ) -> None:
        """Print the URL of each page, then of the index."""
        if self.run is None:
            return
        terminalreporter.write_sep("=", "raft-viz")
        if self.site is None:
            terminalreporter.write_line("no test ran: no pages written")
            return
        for page in self.site.pages:
            terminalreporter.write_line(f"{page.test.status:4} {page.url}")
        terminalreporter.write_line(f"index: {self.site.index.as_uri()}")
        for line in skipped_report(self.run):
            terminalreporter.write_line(line, yellow=True)
