"""The safety checker: a test run's log against the properties of Raft.

``python -m tools.raft_check < LOG`` reports, per test, every violation of
Election Safety, State Machine Safety and Leader Completeness (the paper's
Figure 3) that the log shows; as a library, ``check_log`` (a framed log)
and ``check_lines`` (one test's lines) return them.

* ``check`` holds the checks;
* ``cli`` is ``python -m tools.raft_check``.
"""

from tools.raft_check.check import (
    PLANTED_BUG,
    Verdict,
    Violation,
    check_entries,
    check_lines,
    check_log,
    check_run,
)

__all__ = [
    "PLANTED_BUG",
    "Verdict",
    "Violation",
    "check_entries",
    "check_lines",
    "check_log",
    "check_run",
]
