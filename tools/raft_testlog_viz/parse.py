"""Reading a test run's log: tests, their frames and their Raft log entries.

The log is what ``pytest -o log_cli=true`` prints (the format is described
in ``docs/log-format.md``). Three kinds of lines matter:

* ``=== RUN <name>`` opens a test's frame;
* ``--- PASS: <name> (<seconds>s)`` (or ``FAIL``, ``SKIP``) closes it;
* ``HH:MM:SS.ffffff [ID] message`` inside a frame is an entry: ``ID`` is a
  server id (its consensus module), ``TEST`` (the harness), ``kv N`` (the
  key/value service of server N) or ``client N`` (a key/value client).

Everything else (pytest's own output, tracebacks, records of other loggers,
lines outside any frame such as a failure's "Captured log" section) is
ignored. Inside a frame, a line that starts like a log line (a clock time)
but whose time, or ``[ID]`` after it, does not parse is *malformed*: it is
skipped, counted and reported. (A valid time followed by no ``[`` at all is
a record of some other logger: ignored.)
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TextIO

UNFINISHED = "UNFINISHED"
"""Status of a test whose frame was never closed (the log was cut off)."""

NOT_FAILED = frozenset({"PASS", "SKIP"})
"""The statuses that do not make a run fail."""

_RUN = re.compile(r"=== RUN\s+(?P<name>\S.*?)\s*\Z")
_END = re.compile(
    r"--- (?P<status>PASS|FAIL|SKIP): (?P<name>\S.*?)"
    r"(?: \((?P<seconds>\d+(?:\.\d*)?)s\))?\s*\Z"
)
# A line that starts like this is meant to be a log line.
_CLOCK_LIKE = re.compile(r"\d{1,2}:\d\d")
# pytest writes a test's PASSED, then its progress, "[ 50%]", and only then
# a line break: a thread that logs in between has its line glued to one.
_GLUED = re.compile(r"(?:\[\s*\d+%\]|PASSED|FAILED|SKIPPED|ERROR)(?=\d{1,2}:\d\d)")
_TIME_PATTERN = (
    r"(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d):(?P<s>[0-5]\d)(?:\.(?P<f>\d{1,6}))?"
)
_TIME = re.compile(_TIME_PATTERN + r"\Z")
# A whole well-formed entry line, in one match: the common case is fast.
_ENTRY = re.compile(
    rf"(?P<wall>{_TIME_PATTERN}) "
    r"\[(?:(?P<id>\d+)|TEST|(?P<origin>kv|client) (?P<number>\d+))\]"
    r"(?: (?P<message>.*))?\Z"
)
# Colour codes, in case pytest ran with --color=yes.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_FRACTION_SCALE = [10.0**digits for digits in range(7)]
_DAY = 24 * 60 * 60
_HALF_DAY = _DAY / 2


class Entry(NamedTuple):
    """One Raft log line of a test (a named tuple: there are many)."""

    lineno: int
    """1-based line number in the input."""
    seconds: float
    """Wall-clock time in seconds since the midnight before the run started
    (it keeps growing past midnight, so it never goes back)."""
    wall: str
    """The time as the log printed it."""
    server: int | None
    """The server whose column shows the line: the one whose consensus module
    (or key/value service) logged it; None for the TEST column."""
    message: str
    source: str = ""
    """Who logged the line if not a consensus module or the TEST harness:
    ``"kv"`` (the key/value service of ``server``) or ``"client N"`` (a
    key/value client, shown in the TEST column)."""


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """A line inside a test's frame that looked like a log line but wasn't."""

    lineno: int
    text: str
    reason: str


@dataclass(slots=True)
class TestLog:
    """One test of the run: its frame, its entries and what was skipped."""

    __test__ = False  # not a test class, whatever its name tells pytest

    name: str
    status: str = UNFINISHED
    duration: float | None = None
    """Seconds, as the closing frame reports them (None if it doesn't)."""
    entries: list[Entry] = field(default_factory=list)
    malformed: list[MalformedLine] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether the test failed or never finished."""
        return self.status not in NOT_FAILED

    @property
    def servers(self) -> list[int]:
        """The ids of the servers that logged in this test, in numeric order."""
        return sorted({e.server for e in self.entries if e.server is not None})


@dataclass(slots=True)
class RunLog:
    """Everything the visualizer took from one log."""

    tests: list[TestLog] = field(default_factory=list)
    outside_lines: int = 0
    """Log lines outside every test's frame, ignored (for instance the
    "Captured log" section pytest prints for a failed test)."""

    @property
    def malformed(self) -> list[tuple[TestLog, MalformedLine]]:
        """Every malformed line of the run, with its test."""
        return [(t, m) for t in self.tests for m in t.malformed]

    @property
    def failed(self) -> bool:
        """Whether the run failed: a test failed, or there was no test."""
        return not self.tests or any(t.failed for t in self.tests)


def _seconds(match: re.Match[str]) -> float:
    """The time of a ``_TIME_PATTERN`` match, in seconds since midnight."""
    fraction = match["f"] or ""
    return (
        int(match["h"]) * 3600
        + int(match["m"]) * 60
        + int(match["s"])
        + (int(fraction) / _FRACTION_SCALE[len(fraction)] if fraction else 0.0)
    )


class _Parser:
    """The state of one pass over a log; see ``parse_log``."""

    def __init__(self) -> None:
        self.run = RunLog()
        self.current: TestLog | None = None
        self.day_offset = 0.0
        self.last_seconds: float | None = None

    def feed(self, lineno: int, raw: str) -> None:
        line = raw.rstrip("\r\n")
        if "\x1b" in line:
            line = _ANSI.sub("", line)
        if _CLOCK_LIKE.match(line):
            self.log_line(lineno, line)
        elif glued := _GLUED.search(line):
            self.log_line(lineno, line[glued.end() :])
        elif line.startswith("=== RUN"):
            self.start(line)
        elif line.startswith("--- "):
            self.end(line)

    def start(self, line: str) -> None:
        match = _RUN.match(line)
        if match is None:
            return
        # A test still open here never logged its end: it stays UNFINISHED.
        self.current = TestLog(name=match["name"])
        self.run.tests.append(self.current)

    def end(self, line: str) -> None:
        match = _END.match(line)
        if match is None:
            return
        name = match["name"]
        test = self.current
        if test is None or test.name != name:
            # A frame closes a test we never saw open: still a test of the run.
            test = TestLog(name=name)
            self.run.tests.append(test)
        test.status = match["status"]
        if match["seconds"] is not None:
            test.duration = float(match["seconds"])
        self.current = None

    def log_line(self, lineno: int, line: str) -> None:
        test = self.current
        if test is None:
            self.run.outside_lines += 1
            return
        match = _ENTRY.match(line)
        if match is not None:
            server, source = match["id"], ""
            if match["origin"] == "kv":
                server, source = match["number"], "kv"
            elif match["origin"] == "client":
                source = f"client {match['number']}"
            test.entries.append(
                Entry(
                    lineno=lineno,
                    seconds=self.unwrap(_seconds(match)),
                    wall=match["wall"],
                    server=None if server is None else int(server),
                    message=match["message"] or "",
                    source=source,
                )
            )
            return
        # Not an entry: say why, unless it is a record of some other logger
        # (a valid time followed by something other than "[").
        token, _, rest = line.partition(" ")
        if _TIME.match(token) is None:
            test.malformed.append(MalformedLine(lineno, line, "bad timestamp"))
        elif rest.startswith("["):
            test.malformed.append(
                MalformedLine(lineno, line, "source is none of N, TEST, kv N, client N")
            )

    def unwrap(self, seconds: float) -> float:
        """Keep time growing when the run goes past midnight.

        Threads may log a few microseconds out of order, so only a jump back
        of more than half a day counts as a new day.
        """
        last = self.last_seconds
        if last is not None and seconds + self.day_offset < last - _HALF_DAY:
            self.day_offset += _DAY
        self.last_seconds = seconds + self.day_offset
        return self.last_seconds


def parse_log(lines: Iterable[str]) -> RunLog:
    """Read a whole log (an iterable of lines, e.g. an open file)."""
    parser = _Parser()
    for lineno, line in enumerate(lines, start=1):
        parser.feed(lineno, line)
    return parser.run


MAX_REPORTED = 10
"""How many malformed lines ``skipped_report`` quotes; the rest are counted."""


def skipped_report(run: RunLog) -> list[str]:
    """Lines telling what the parser skipped or ignored, for the reader."""
    report: list[str] = []
    malformed = run.malformed
    if malformed:
        plural = "s" if len(malformed) > 1 else ""
        report.append(f"skipped {len(malformed)} malformed line{plural}:")
        for test, line in malformed[:MAX_REPORTED]:
            report.append(
                f"  line {line.lineno} in {test.name} ({line.reason}): {line.text}"
            )
        if len(malformed) > MAX_REPORTED:
            report.append(f"  ... and {len(malformed) - MAX_REPORTED} more")
    if run.outside_lines:
        report.append(
            f"ignored {run.outside_lines} log lines outside any test's frame "
            '(such as pytest\'s "Captured log" of a failed test)'
        )
    return report


@contextlib.contextmanager
def open_log(path: Path | None) -> Iterator[TextIO]:
    """The log at ``path``, or standard input if None, as text.

    A log may hold bytes that are not UTF-8 (a test printing binary data):
    they must not stop the tools, so they are replaced. Standard input is
    left open.
    """
    if path is not None:
        with path.open(encoding="utf-8", errors="replace") as log:
            yield log
        return
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    try:
        yield stdin
    finally:
        stdin.detach()
