"""Run one test with one seed, in this process, and say what happened.

``run_test`` runs pytest on the test with ``--sim`` and ``RAFT_SIM_SEED``
set, exactly as ``RAFT_SIM_SEED=S python -m pytest TEST_ID --sim`` would,
and keeps the test's verdict, its log (framed as a live log is) and the
log line after which it failed. ``sweep`` does that for many seeds, on
several processes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools.raft_testlog_viz.pytest_plugin import RaftViz

from .pytest_plugin import SEED_ENV, stage_of


class BadTestIdError(Exception):
    """The test id names no test the simulator can run."""


@dataclass
class Outcome:
    """How a test ran with a seed."""

    test_id: str
    seed: int
    status: str
    """"passed", "failed" or "skipped"."""
    failure: str = ""
    """The first line of the failure, as pytest shows it."""
    report: str = ""
    """pytest's account of the failure: where, and the traceback."""
    log: list[str] = field(default_factory=list)
    """The test's log lines, framed by ``=== RUN`` and ``--- PASS: ...``."""
    failed_after: int | None = None
    """How many lines of ``log`` came before the failure was reported."""
    failed_at: str = ""
    """The last of those lines."""
    virtual_seconds: float = 0.0
    wall_seconds: float = 0.0


class Recorder(RaftViz):
    """Keeps the test's log lines as ``--raft-viz`` does (but writes no
    pages), and its collected items and reports."""

    def __init__(self) -> None:
        super().__init__(Path())
        self.items: list[pytest.Item] = []
        self.reports: list[pytest.TestReport] = []
        self.failed_after: int | None = None
        self.problem = ""

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Run nothing unless the id names one simulated test."""
        if len(items) > 1:
            self.problem = f"it selects {len(items)} tests: give one"
        elif items and stage_of(items[0]) is None:
            self.problem = "it is not a test of a stage that tools.sim runs"
        if self.problem:
            items[:] = []
        self.items = list(items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the report; note the log line the first failure came after."""
        self.reports.append(report)
        if report.failed and self.failed_after is None:
            self.failed_after = len(self.lines)
        super().pytest_runtest_logreport(report)

    def pytest_sessionfinish(self) -> None:
        """Stop recording."""
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.saved_level)


def run_test(test_id: str, seed: int) -> Outcome:
    """Run the test ``test_id`` simulated with ``seed``; raise
    BadTestIdError if it names no such test."""
    recorder = Recorder()
    output = io.StringIO()
    args = [test_id, "-q", "--tb=short", "-p", "no:cacheprovider", "--sim"]
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SEED_ENV, str(seed))
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            exit_code = pytest.main(args, [recorder])
    if exit_code == pytest.ExitCode.INTERNAL_ERROR:
        raise RuntimeError(f"pytest failed:\n{output.getvalue()}")
    if recorder.problem:
        raise BadTestIdError(f"{test_id}: {recorder.problem}")
    if not recorder.items:
        errors = [
            line.removeprefix("ERROR: ")
            for line in output.getvalue().splitlines()
            if line.startswith("ERROR")
        ]
        raise BadTestIdError(errors[0] if errors else f"no test {test_id}")
    return outcome_of(test_id, seed, recorder, time.perf_counter() - start)


def outcome_of(test_id: str, seed: int, recorder: Recorder, wall: float) -> Outcome:
    """What the reports and the log of a run tell."""
    outcome = Outcome(test_id, seed, "passed", log=recorder.lines, wall_seconds=wall)
    for report in recorder.reports:
        outcome.virtual_seconds += report.duration
        if report.skipped and outcome.status == "passed":
            outcome.status = "skipped"
        if report.failed and outcome.status != "failed":
            outcome.status = "failed"
            outcome.failure = first_line(report)
            outcome.report = report.longreprtext
    if recorder.failed_after is not None:
        outcome.failed_after = recorder.failed_after
        outcome.failed_at = recorder.lines[recorder.failed_after - 1]
    return outcome


def first_line(report: pytest.TestReport) -> str:
    """The first line of a failure: the exception and its message."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else report.longreprtext
    return next((line for line in text.splitlines() if line.strip()), "")


def quiet_run(test_id: str, seed: int) -> Outcome:
    """``run_test``, without the log: what a sweep sends back."""
    outcome = run_test(test_id, seed)
    outcome.log = []
    return outcome


def sweep(
    test_id: str,
    seeds: Iterable[int],
    jobs: int,
    progress: Callable[[Outcome], None],
) -> list[Outcome]:
    """Run the test with each seed, ``jobs`` at a time, each job in a
    process of its own; call ``progress`` as each run ends. Return the
    outcomes in seed order."""
    context = multiprocessing.get_context("spawn")
    outcomes: list[Outcome] = []
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        runs = [pool.submit(quiet_run, test_id, seed) for seed in seeds]
        try:
            for run in as_completed(runs):
                outcomes.append(run.result())
                progress(outcomes[-1])
        finally:
            for run in runs:
                run.cancel()
    return sorted(outcomes, key=lambda outcome: outcome.seed)
