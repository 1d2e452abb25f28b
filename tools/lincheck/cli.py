"""``python -m tools.lincheck``: check a history file, draw it, or time the
checker.

Exit status: 0 linearizable, 1 not linearizable, 3 undecided when the
timeout ran out, 2 bad input (the message names the operation at fault).
Anything else is no verdict: 4 when lincheck itself failed (a bug: the
traceback follows), 130 when interrupted, 141 when the output's reader went
away.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .bench import file_case, run_bench, standard_cases
from .check import Result, check_operations
from .history import HistoryError, load_history
from .model import KV_MODEL
from .view import write_page

EXIT = {"ok": 0, "not linearizable": 1, "unknown": 3}
"""The exit status of each verdict."""
BAD_INPUT = 2
INTERNAL_ERROR = 4
"""The exit status when lincheck itself fails: not a verdict, not bad input."""
INTERRUPTED = 130
"""The exit status after Ctrl-C."""
BROKEN_PIPE = 141
"""The exit status when the output's reader went away (``| head``), as a
shell reports for a process that SIGPIPE ended."""

DEFAULT_TIMEOUT = 60.0
"""Seconds a check may take unless told otherwise. The histories of the kv
tests take milliseconds; some histories would take longer than anyone waits
(deciding linearizability is NP-complete), and get the verdict 'unknown'."""

STYLE = {"ok": "bold green", "not linearizable": "bold red", "unknown": "bold yellow"}


def build_arg_parser() -> argparse.ArgumentParser:
    """The command line of the checker."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.lincheck",
        description=(
            "Check that a key/value history (a JSON list of operations) is "
            "linearizable. Exit status: 0 ok, 1 not linearizable, 3 unknown "
            "(the timeout ran out), 2 bad input, 4 lincheck failed (a bug)."
        ),
    )
    parser.add_argument(
        "history",
        nargs="*",
        type=Path,
        help="the history file (with --bench: files to time instead of the "
        "standard made-up histories)",
    )
    parser.add_argument(
        "--html", metavar="OUT.html", type=Path, help="also draw the history there"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up with the verdict 'unknown' once the run has taken this "
        f"long, reading the file included (default: {DEFAULT_TIMEOUT:g}; "
        "'inf' waits as long as it takes); with --bench, for each check",
    )
    parser.add_argument("--bench", action="store_true", help="time the checker instead")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="with --bench: time each history N times, keep the best (default 3)",
    )
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the command line; return the exit status.

    No verdict is printed unless everything asked for was done: an error
    while drawing the page is no verdict either.
    """
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    # Piped output is not cut at 80 columns: explanations and tables are
    # easier to read unwrapped.
    console = console or _Console(width=None if sys.stdout.isatty() else 120)
    try:
        return _run(parser, args, console)
    except KeyboardInterrupt:
        console.print("interrupted", highlight=False)
        return INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(
            "lincheck failed: this is a bug in lincheck, not a verdict on the "
            "history (the traceback is above)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


def _run(
    parser: argparse.ArgumentParser, args: argparse.Namespace, console: Console
) -> int:
    if not args.timeout > 0:
        parser.error("--timeout must be a positive number of seconds")
    if args.bench:
        if args.repeat < 1:
            parser.error("--repeat must be at least 1")
        cases = [file_case(path) for path in args.history] or standard_cases()
        try:
            run_bench(cases, args.repeat, args.timeout, console)
        except HistoryError as error:
            return _bad_input(console, str(error))
        return 0
    if len(args.history) != 1:
        parser.error("give one history file (or --bench)")
    deadline = time.monotonic() + args.timeout  # reading the file counts too
    try:
        ops = load_history(args.history[0], KV_MODEL.ops)
    except HistoryError as error:
        return _bad_input(console, str(error))
    result = check_operations(ops, KV_MODEL, deadline - time.monotonic())
    page = None
    if args.html is not None:
        try:
            page = write_page(result, args.html)
        except OSError as error:
            return _bad_input(console, f"cannot write {args.html}: {error}")
    report(result, console)
    if page is not None:
        console.print(f"HTML view: {escape(str(page.resolve()))}", highlight=False)
    return EXIT[result.verdict]


def report(result: Result, console: Console) -> None:
    """Print the verdict, and why when it is not ok."""
    head, *lines = result.explain().splitlines()
    verdict, _, rest = head.partition(":")
    console.print(
        f"[{STYLE[result.verdict]}]{escape(verdict)}[/]:{escape(rest)}",
        highlight=False,
    )
    for line in lines:
        style = "bold" if not line.startswith(" ") else ""
        text = escape(line)
        console.print(f"[{style}]{text}[/]" if style else text, highlight=False)


class _Console(Console):
    """rich's console, but a reader that goes away is no verdict: rich
    would exit with status 1, "not linearizable"."""

    def on_broken_pipe(self) -> None:
        """Write nothing more (Python flushes stdout at exit: to /dev/null
        now) and exit with BROKEN_PIPE."""
        self.quiet = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(BROKEN_PIPE)


def _bad_input(console: Console, message: str) -> int:
    # One line, however long: a message cut in two is harder to grep.
    console.print(
        f"[bold red]bad input:[/] {escape(message)}", highlight=False, soft_wrap=True
    )
    return BAD_INPUT
