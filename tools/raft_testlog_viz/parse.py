"""Reading a test run's log: tests, their frames and their Raft log entries.

The log is what ``pytest -o log_cli=true`` prints (the format is described
in ``docs/log-format.md``). These lines matter:

* ``=== RUN <name>`` opens a test's frame; the indented lines right after it
  give the test's id (``tests/part1/test_raft.py::test_election_basic``)
  and then its docstring;
* ``--- PASS: <name> (<seconds>s)`` (or ``FAIL``, ``SKIP``) closes it; the
  indented lines right after a ``FAIL`` or ``SKIP`` say why;
* ``HH:MM:SS.ffffff [ID] message`` inside a frame is an entry: ``ID`` is a
  server id (its consensus module), ``TEST`` (the harness), ``kv N`` (the
  key/value service of server N) or ``client N`` (a key/value client).

Inside a frame, a line that starts like a log line (a clock time) but whose
time, or ``[ID]`` after it, does not parse is *malformed*: it is skipped,
counted and reported. (A valid time followed by no ``[`` at all is a record
of some other logger: ignored.) Log lines outside the frames are sorted by
what they are: a line between a test's end and the next test's start was
logged *late*, by a thread of that test's servers finishing its work; lines
in pytest's "Captured log" sections repeat lines of the frames; the lines
before the first frame are ignored. A log with no frame at all (the log of
a cluster run by hand, ``python -m part4kv -v``) is read as one run. All
other lines (pytest's own output, tracebacks) are ignored.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

UNFINISHED = "UNFINISHED"
"""Status of a test whose frame was never closed (the log was cut off)."""

UNFRAMED = "LOG"
"""Status of a log without frames, read as one run: a log, not a test, so
it has no verdict."""

NOT_FAILED = frozenset({"PASS", "SKIP", UNFRAMED})
"""The statuses that do not make a run fail."""

FRAME_INDENT = "    "
"""How the lines that describe a frame (a test's id and docstring, why it
failed) are indented under its ``=== RUN`` or ``--- FAIL`` line."""

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
# pytest's sections that repeat a failed test's output: after such a line,
# log lines are copies of lines the frames already hold.
_CAPTURED = re.compile(r"-+ Captured (?:log|stdout|stderr) \w+ -+\Z")
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
    node_id: str = ""
    """The test's pytest id, ``tests/part1/test_raft.py::test_election_basic``
    ("" if the frame does not give it)."""
    doc: str = ""
    """The test's docstring, as its frame gives it."""
    reason: str = ""
    """Why it failed (or was skipped), as its closing frame gives it."""
    late: list[Entry] = field(default_factory=list)
    """Lines logged after the test's frame closed, before the next test's
    opened: a thread of its servers finishing its work. Not entries of the
    test: its verdict was given without them."""

    @property
    def stage(self) -> str:
        """The folder of the test's file: ``part1`` for a test of
        ``tests/part1``; "" if unknown."""
        path = self.node_id.partition("::")[0]
        return PurePosixPath(path).parent.name if path else ""

    @property
    def title(self) -> str:
        """The stage and the name: ``part1 · test_election_basic``."""
        return f"{self.stage} · {self.name}" if self.stage else self.name

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
    """Log lines outside every test's frame that are neither late lines of
    a test nor in pytest's "Captured log" sections (which repeat lines of
    the frames): lines logged before the first frame, while pytest
    collected the tests, and late lines that do not parse. Ignored."""

    @property
    def late_lines(self) -> int:
        """How many lines the tests' threads logged after their test ended."""
        return sum(len(t.late) for t in self.tests)

    @property
    def malformed(self) -> list[tuple[TestLog, MalformedLine]]:
        """Every malformed line of the run, with its test."""
        return [(t, m) for t in self.tests for m in t.malformed]

    @property
    def failed(self) -> bool:
        """Whether the run failed: a test failed, or there was no test."""
        return not self.tests or any(t.failed for t in self.tests)

    @property
    def status(self) -> str:
        """The run's status: FAIL, PASS, or UNFRAMED for a log without
        frames (read as one run, with no verdict)."""
        if self.failed:
            return "FAIL"
        return UNFRAMED if self.tests[0].status == UNFRAMED else "PASS"


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

    def __init__(self, unframed_name: str) -> None:
        self.run = RunLog()
        self.current: TestLog | None = None
        # The last test whose frame closed: late lines are its.
        self.ended: TestLog | None = None
        # What is read while no frame has been seen: the run, if none is.
        self.unframed = TestLog(name=unframed_name, status=UNFRAMED)
        self.in_captured = False
        # The test whose frame line came last, and what its indented lines
        # tell: "id" (then "doc") after a start, "reason" after an end.
        self.described: TestLog | None = None
        self.telling = ""
        self.day_offset = 0.0
        self.last_seconds: float | None = None

    def feed(self, lineno: int, raw: str) -> None:
        line = raw.rstrip("\r\n")
        if "\x1b" in line:
            line = _ANSI.sub("", line)
        if self.described is not None:
            if line.startswith(FRAME_INDENT):
                self.describe(self.described, line.removeprefix(FRAME_INDENT))
                return
            self.described = None
        if _CLOCK_LIKE.match(line):
            self.log_line(lineno, line)
        elif glued := _GLUED.search(line):
            self.log_line(lineno, line[glued.end() :])
        elif line.startswith("=== RUN"):
            self.start(line)
        elif line.startswith("--- "):
            self.end(line)
        elif line.startswith("-") and _CAPTURED.match(line):
            self.in_captured = True

    def describe(self, test: TestLog, text: str) -> None:
        if self.telling == "id":
            test.node_id = text.strip()
            self.telling = "doc"
        elif self.telling == "doc":
            test.doc = f"{test.doc}\n{text}" if test.doc else text
        else:
            test.reason = f"{test.reason}\n{text}" if test.reason else text

    def start(self, line: str) -> None:
        match = _RUN.match(line)
        if match is None:
            return
        # A test still open here never logged its end: it stays UNFINISHED.
        self.current = TestLog(name=match["name"])
        self.run.tests.append(self.current)
        self.described, self.telling = self.current, "id"
        self.in_captured = False

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
        self.ended = test
        self.described, self.telling = test, "reason"

    def log_line(self, lineno: int, line: str) -> None:
        if self.current is not None:
            self.read_into(self.current, lineno, line)
        elif self.in_captured:
            pass  # a copy of a line of a frame
        elif self.ended is not None:
            late = self.entry(lineno, line)
            if late is None:
                self.run.outside_lines += 1
            else:
                self.ended.late.append(late)
        elif self.run.tests:
            self.run.outside_lines += 1
        else:
            self.read_into(self.unframed, lineno, line)

    def read_into(self, test: TestLog, lineno: int, line: str) -> None:
        entry = self.entry(lineno, line)
        if entry is not None:
            test.entries.append(entry)
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

    def entry(self, lineno: int, line: str) -> Entry | None:
        match = _ENTRY.match(line)
        if match is None:
            return None
        server, source = match["id"], ""
        if match["origin"] == "kv":
            server, source = match["number"], "kv"
        elif match["origin"] == "client":
            source = f"client {match['number']}"
        return Entry(
            lineno=lineno,
            seconds=self.unwrap(_seconds(match)),
            wall=match["wall"],
            server=None if server is None else int(server),
            message=match["message"] or "",
            source=source,
        )

    def finish(self) -> RunLog:
        unframed = self.unframed
        if self.run.tests:
            # Lines before the first frame: the run's set-up, not a test.
            self.run.outside_lines += len(unframed.entries) + len(unframed.malformed)
        elif unframed.entries:
            self.run.tests.append(unframed)
        return self.run

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


def parse_log(lines: Iterable[str], unframed_name: str = "unframed log") -> RunLog:
    """Read a whole log (an iterable of lines, e.g. an open file). A log
    with no frame at all is read as one run, named ``unframed_name``, of
    status UNFRAMED."""
    parser = _Parser(unframed_name)
    for lineno, line in enumerate(lines, start=1):
        parser.feed(lineno, line)
    return parser.finish()


MAX_REPORTED = 10
"""How many malformed lines ``skipped_report`` quotes; the rest are counted."""


def skipped_report(run: RunLog) -> list[str]:
    """Lines telling the reader which lines of a test's frame were skipped.

    Lines outside the frames are no fault of the log, and not in it: a
    test's late lines are listed on its page; lines logged while pytest
    collected the tests (before the first frame) belong to no test."""
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
    return report


class UnreadableLogError(Exception):
    """The log could not be read; the message says why, in one line."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"cannot read {path}: {error.strerror or error}")


def read_log(path: Path | None) -> RunLog:
    """Parse the log at ``path``, or on standard input if None.

    A log may hold bytes that are not UTF-8 (a test printing binary data):
    they must not stop the tools, so they are replaced. A file that cannot
    be read (missing, a folder, no permission) raises UnreadableLogError.
    """
    if path is None:
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        try:
            return parse_log(stdin, "standard input")
        finally:
            stdin.detach()  # standard input stays open
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            return parse_log(log, path.name)
    except OSError as error:
        raise UnreadableLogError(path, error) from error
