"""The lines that frame each test's log, for live logs and ``--raft-viz``."""

from __future__ import annotations

import pytest


class TestFrames:
    """Builds the lines that frame each test's log: ``=== RUN name`` before
    it, ``--- PASS: name (Ns)`` (or FAIL, SKIP) after its teardown."""

    __test__ = False  # a helper, not a test class for pytest to collect

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}

    def start(self, nodeid: str) -> str:
        """The line that opens a test's frame."""
        return f"=== RUN {frame_name(nodeid)}"

    def end(self, report: pytest.TestReport) -> str | None:
        """Note a phase's report; after teardown, the line that closes the
        frame, with the status of all phases and their total duration."""
        name = frame_name(report.nodeid)
        self.durations[name] = self.durations.get(name, 0.0) + report.duration
        if report.failed:
            self.outcomes[name] = "FAIL"
        elif report.skipped:
            self.outcomes.setdefault(name, "SKIP")
        if report.when != "teardown":
            return None
        status = self.outcomes.pop(name, "PASS")
        return f"--- {status}: {name} ({self.durations.pop(name):.2f}s)"


def frame_name(nodeid: str) -> str:
    """The test's name as the log frames show it: the last part of its id."""
    return nodeid.split("::")[-1]
