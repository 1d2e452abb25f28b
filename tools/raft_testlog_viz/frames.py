"""The lines that frame each test's log, for live logs and ``--raft-viz``.

A frame opens with ``=== RUN name`` and closes with ``--- PASS: name (Ns)``
(or FAIL, SKIP). Indented lines describe it: after the opening line, the
test's id and its docstring; after a closing FAIL or SKIP, why::

    === RUN test_election_basic
        tests/part1/test_raft.py::test_election_basic
        Three servers elect one leader, and keep it while nothing fails.
    ...
    --- FAIL: test_election_basic (5.12s)
        AssertionError: no single leader (with term >= 0) after 5.0s; ...
"""

from __future__ import annotations

import inspect

import pytest

from .parse import FRAME_INDENT

MAX_REASON_LINES = 30
"""How many lines of a failure's message a closing frame repeats."""


class TestFrames:
    """Builds the lines that frame each test's log: ``=== RUN name`` before
    it, ``--- PASS: name (Ns)`` (or FAIL, SKIP) after its teardown."""

    __test__ = False  # a helper, not a test class for pytest to collect

    def __init__(self) -> None:
        self.docs: dict[str, str] = {}
        self.durations: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.reasons: dict[str, str] = {}

    def collected(self, item: pytest.Item) -> None:
        """Note a collected test's docstring, for its opening frame."""
        doc = inspect.getdoc(getattr(item, "obj", None))
        if doc:
            self.docs[item.nodeid] = doc

    def start(self, nodeid: str) -> list[str]:
        """The lines that open a test's frame: its name, id and docstring."""
        doc = self.docs.pop(nodeid, "")
        return [f"=== RUN {frame_name(nodeid)}", *_indented(nodeid), *_indented(doc)]

    def end(self, report: pytest.TestReport) -> list[str]:
        """Note a phase's report; after teardown, the lines that close the
        frame, with the status of all phases, their total duration and why
        the test failed or was skipped (none before teardown)."""
        name = frame_name(report.nodeid)
        self.durations[name] = self.durations.get(name, 0.0) + report.duration
        if report.failed and self.outcomes.get(name) != "FAIL":
            self.outcomes[name] = "FAIL"
            self.reasons[name] = _reason(report)
        elif report.skipped and name not in self.outcomes:
            self.outcomes[name] = "SKIP"
            self.reasons[name] = _reason(report)
        if report.when != "teardown":
            return []
        status = self.outcomes.pop(name, "PASS")
        reason = self.reasons.pop(name, "")
        return [
            f"--- {status}: {name} ({self.durations.pop(name):.2f}s)",
            *_indented(reason),
        ]


def frame_name(nodeid: str) -> str:
    """The test's name as the log frames show it: the last part of its id."""
    return nodeid.split("::")[-1]


def _indented(text: str) -> list[str]:
    """The lines of ``text``, indented (a blank one too: it must not end
    the frame's description)."""
    if not text:
        return []
    return [FRAME_INDENT + line.rstrip() for line in text.split("\n")]


def _reason(report: pytest.TestReport) -> str:
    """What a failed or skipped phase's report says of why, in short."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        text = str(crash.message)
    elif isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        text = str(longrepr[2])
    else:
        text = str(longrepr or "").strip().rsplit("\n", 1)[-1]
    if report.when != "call":
        text = f"in {report.when}: {text}"
    lines = text.splitlines()
    if len(lines) > MAX_REASON_LINES:
        more = len(lines) - MAX_REASON_LINES
        lines = [*lines[:MAX_REASON_LINES], f"... ({more} more lines)"]
    return "\n".join(lines)
