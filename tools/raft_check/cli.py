"""``python -m tools.raft_check``: check a test run's log for safety violations.

Reads the log from standard input (or a file), checks each test in it, and
prints the violations found. The exit status is 0 when every test is fine
(and every planted bug was caught), 1 otherwise, 2 when the file cannot be
read or holds no Raft log lines.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tools.raft_testlog_viz.parse import RunLog, UnreadableLogError, read_log

from .check import Verdict, check_run

MAX_SHOWN = 10
"""How many violations of one test are listed, unless --all is given."""


def build_arg_parser() -> argparse.ArgumentParser:
    """The command line of the checker."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.raft_check",
        description=(
            "Check a Raft test run's log against Election Safety, State "
            "Machine Safety and Leader Completeness. Produce the log with: "
            "python -m pytest tests/part3 -s -o log_cli=true > /tmp/raftlog"
        ),
    )
    parser.add_argument(
        "logfile",
        nargs="?",
        type=Path,
        help="the log to read (default: standard input)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"list every violation (default: the first {MAX_SHOWN} per test)",
    )
    return parser


def describe(verdict: Verdict, show_all: bool) -> list[str]:
    """The lines that report a test needing attention (none if it is fine
    and runs no planted bug)."""
    count = len(verdict.violations)
    if verdict.planted_bug is not None:
        outcome = f"caught: {count} violation(s)" if count else "MISSED: no violation"
        head = f"{verdict.name}: planted bug ({verdict.planted_bug}) {outcome}"
    elif count:
        head = f"{verdict.name}: {count} violation(s)"
    else:
        return []
    shown = verdict.violations if show_all else verdict.violations[:MAX_SHOWN]
    lines = [head, *(f"  {v}" for v in shown)]
    if len(shown) < count:
        lines.append(f"  ... and {count - len(shown)} more (--all lists them)")
    return lines


def run_checks(run: RunLog, show_all: bool, out: TextIO) -> int:
    """Check a parsed log, print the report on ``out``; return the exit
    status. (A log without frames was parsed as one run.)"""
    verdicts = check_run(run)
    if not verdicts:
        print("no Raft log lines in the input", file=out)
        return 2
    for verdict in verdicts:
        for line in describe(verdict, show_all):
            print(line, file=out)
    bad = [v for v in verdicts if not v.ok]
    planted = [v for v in verdicts if v.planted_bug is not None]
    print(
        f"checked {len(verdicts)} test(s): {len(bad)} not ok; "
        f"{sum(v.ok for v in planted)} of {len(planted)} planted bug(s) caught",
        file=out,
    )
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checker's command line; return the exit status."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if args.logfile is None and sys.stdin.isatty():
        parser.error("give the log on standard input (< FILE) or as LOGFILE")
    try:
        run = read_log(args.logfile)
    except UnreadableLogError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    return run_checks(run, args.all, sys.stdout)
