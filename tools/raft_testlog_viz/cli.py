"""``python -m tools.raft_testlog_viz``: a test run's log in, timelines out.

Reads the log from standard input (or a file) and either writes one HTML
page per test plus ``index.html`` and prints a summary table, or, with
``--terminal``, draws the timelines in the terminal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.style import Style
from rich.table import Table
from rich.text import Text

from .bench import bench
from .pages import DEFAULT_OUTDIR, Site, format_duration, write_site
from .parse import UNFRAMED, RunLog, UnreadableLogError, read_log, skipped_report
from .terminal import render_timeline
from .timeline import build_timeline

NO_TEST_HINT = (
    "no Raft log lines in the input: give it the live log of a test run "
    "(python -m pytest ... -s -o log_cli=true) or the log of a cluster run "
    "by hand (python -m part4kv -v)"
)

STATUS_STYLE = {"PASS": "bold green", "SKIP": "yellow", UNFRAMED: "bold"}
"""How a status is shown; any other (FAIL, UNFINISHED) is bold red."""


def build_arg_parser() -> argparse.ArgumentParser:
    """The command line of the visualizer."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.raft_testlog_viz",
        description=(
            "Turn a Raft test run's log into HTML timelines (one page per "
            "test, plus index.html) or show them in the terminal. Produce the "
            "log with: python -m pytest tests/part1 -s -o log_cli=true 2>&1 | "
            "tee /tmp/raftlog"
        ),
    )
    parser.add_argument(
        "logfile",
        nargs="?",
        type=Path,
        help="the log to read (default: standard input)",
    )
    parser.add_argument(
        "--outdir",
        type=Path,
        default=DEFAULT_OUTDIR,
        help=f"where to write the pages (default: {DEFAULT_OUTDIR})",
    )
    parser.add_argument(
        "--terminal",
        action="store_true",
        help="draw the timelines in the terminal instead of writing pages",
    )
    parser.add_argument(
        "--test", metavar="NAME", help="only this test (its exact name)"
    )
    parser.add_argument(
        "--hide-heartbeats",
        action="store_true",
        help="terminal view: leave out empty AppendEntries and their replies",
    )
    bench = parser.add_argument_group("benchmark")
    bench.add_argument(
        "--bench",
        action="store_true",
        help="time the rendering of LOGFILE, stage by stage, instead of "
        "summarizing it (the pages still go to --outdir)",
    )
    bench.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="R",
        help="--bench: render R times and show the median (default 3)",
    )
    bench.add_argument(
        "--browser",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="N",
        help="--bench: also time the N largest pages in headless Chromium "
        "(default 2): load, slider moves, hovers",
    )
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the visualizer; return the exit status.

    0: pages written and every test passed (or was skipped), or the
    terminal view drawn, or the benchmark run; 1: a test failed or the input
    held no test; 2: bad usage or input (a log file that cannot be read,
    ``--test`` naming a test the log does not hold, ``--bench --browser``
    without a browser).
    """
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    console = console or Console()
    if args.bench:
        if args.logfile is None or args.repeat < 1:
            parser.error("--bench needs a LOGFILE, and --repeat at least 1")
        try:
            return bench(args.logfile, args.outdir, args.repeat, args.browser, console)
        except UnreadableLogError as error:
            parser.exit(2, f"{parser.prog}: {error}\n")
    if args.logfile is None and sys.stdin.isatty():
        parser.error("give the log on standard input (< FILE) or as LOGFILE")
    try:
        run = read_log(args.logfile)
    except UnreadableLogError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    if args.test is not None:
        selected = [t for t in run.tests if t.name == args.test]
        if not selected:
            names = ", ".join(t.name for t in run.tests) or "none"
            parser.exit(2, f"no test named {args.test!r} in the log; tests: {names}\n")
        run.tests = selected
    if args.terminal:
        return show_in_terminal(run, console, hide_heartbeats=args.hide_heartbeats)
    return write_and_summarize(run, args.outdir, console)


def show_in_terminal(run: RunLog, console: Console, *, hide_heartbeats: bool) -> int:
    """Draw every test of ``run``; 1 if there was none, else 0."""
    if not run.tests:
        console.print(NO_TEST_HINT, style="red")
        return 1
    for test in run.tests:
        render_timeline(console, build_timeline(test), hide_heartbeats=hide_heartbeats)
    _print_skipped(run, console)
    return 0


def write_and_summarize(run: RunLog, outdir: Path, console: Console) -> int:
    """Write the pages and print the summary; 1 if the run failed, else 0.

    The last line printed is the run's overall status: PASS or FAIL, or LOG
    for a log without frames (no test, so no verdict).
    """
    if run.tests:
        site = write_site(run, outdir)
        table = summary_table(site)
        # In a terminal the table fits the window; into a pipe or a file it
        # keeps its natural width, so that every URL stays on one line.
        if not console.is_terminal:
            natural = Measurement.get(
                console, console.options.update_width(10_000), table
            )
            console.width = max(console.width, natural.maximum)
        console.print(table)
        index_url = site.index.as_uri()
        console.print(
            Text("index: ").append(index_url, style=Style(link=index_url)),
            soft_wrap=True,
        )
    else:
        console.print(NO_TEST_HINT, style="red")
    _print_skipped(run, console)
    overall = run.status
    console.print(Text(overall, style=STATUS_STYLE.get(overall, "bold red")))
    return 1 if run.failed else 0


def summary_table(site: Site) -> Table:
    """One row per test: status, duration, servers, entries and page URL."""
    table = Table()
    table.add_column("test", overflow="fold")
    table.add_column("status")
    table.add_column("duration", justify="right")
    table.add_column("servers", justify="right")
    table.add_column("entries", justify="right")
    table.add_column("page", overflow="fold")
    for page in site.pages:
        test = page.test
        table.add_row(
            Text(test.title),
            Text(test.status, style=STATUS_STYLE.get(test.status, "bold red")),
            format_duration(test),
            str(len(test.servers)),
            str(len(test.entries)),
            Text(page.url, style=Style(link=page.url)),
        )
    return table


def _print_skipped(run: RunLog, console: Console) -> None:
    for line in skipped_report(run):
        console.print(Text(line, style="yellow"), soft_wrap=True)
