"""``python -m tools.raft_testlog_viz --bench LOG``: how fast a log renders.

It renders the log ``--repeat`` times and shows the median and the fastest
of each stage: the whole command as a reader runs it (a fresh Python process
that reads the log and writes every page), then, in this process, parsing,
replaying the tests (timelines), rebuilding the cluster histories and
rendering the pages. With ``--browser`` it also opens the largest pages in
headless Chromium and times them there (see ``browser.time_page``).

Speed targets are checked here, by a reader who runs the benchmark, and not
in the test suite: a loaded machine must not fail a test.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import browser
from .cluster import build_history
from .pages import render_page, write_site
from .parse import UnreadableLogError, parse_log
from .timeline import build_timeline

ROOT = Path(__file__).resolve().parents[2]


def bench(
    log: Path, outdir: Path, repeat: int, browser_pages: int, console: Console
) -> int:
    """Time the rendering of ``log`` (pages into ``outdir``); 0, or 2 if the
    browser was asked for and is missing. Raises UnreadableLogError if the
    log cannot be read."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise UnreadableLogError(log, error) from error
    stages: dict[str, list[float]] = {}

    @contextmanager
    def timed(stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        stages.setdefault(stage, []).append(time.perf_counter() - start)

    command = [sys.executable, "-m", "tools.raft_testlog_viz", str(log.resolve())]
    for _ in range(repeat):
        with (
            tempfile.TemporaryDirectory() as scratch,
            timed("whole command (new process)"),
        ):
            subprocess.run(
                [*command, "--outdir", scratch],
                cwd=ROOT,
                capture_output=True,
                check=False,
            )
        with timed("parse"):
            run = parse_log(lines)
        with timed("timelines"):
            timelines = [build_timeline(test) for test in run.tests]
        with timed("histories"):
            histories = [build_history(timeline) for timeline in timelines]
        with timed("pages (HTML, in memory)"):
            for timeline, history in zip(timelines, histories, strict=True):
                render_page(timeline, history)
    site = write_site(run, outdir)
    table = Table(title=f"rendering {log} ({repeat} runs)")
    table.add_column("stage")
    table.add_column("median s", justify="right")
    table.add_column("fastest s", justify="right")
    for stage, seconds in stages.items():
        table.add_row(stage, f"{statistics.median(seconds):.2f}", f"{min(seconds):.2f}")
    console.print(table)
    entries = sum(len(test.entries) for test in run.tests)
    largest = sorted(site.pages, key=lambda p: p.path.stat().st_size, reverse=True)
    console.print(
        f"{len(lines)} lines, {len(run.tests)} tests, {entries} Raft lines; "
        f"largest page {largest[0].path.name}: {len(largest[0].test.entries)} rows, "
        f"{largest[0].path.stat().st_size / 1e6:.1f} MB"
        if largest
        else f"{len(lines)} lines, no test",
        markup=False,
    )
    if not browser_pages:
        return 0
    problem = browser.missing()
    if problem is not None:
        console.print(f"--browser: {problem}", style="red")
        return 2
    with browser.chromium() as driver:
        for page in largest[:browser_pages]:
            timings = browser.time_page(driver, page.url)
            size = page.path.stat().st_size / 1e6
            console.print(
                f"{page.path.name} ({size:.1f} MB): {timings.summary()}", markup=False
            )
    return 0
