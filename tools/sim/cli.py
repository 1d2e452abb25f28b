"""``python -m tools.sim``: replay a test exactly, or sweep it over seeds.

    python -m tools.sim run TEST_ID --seed S [--log FILE]
    python -m tools.sim sweep TEST_ID --seeds N [--jobs J]

Exit status: 0 when every run passed, 1 when one failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from .pytest_plugin import SEED_ENV, SEED_LIMIT
from .replay import BadTestIdError, Outcome, run_test, sweep

BAD_INPUT = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with bad input told in one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"{self.prog}: {message} (--help tells more)\n")


def seed(text: str) -> int:
    """An argparse type: a seed."""
    if not text.isdigit() or int(text) >= SEED_LIMIT:
        raise argparse.ArgumentTypeError(
            f"a seed is a whole number below {SEED_LIMIT}, not {text!r}"
        )
    return int(text)


def positive(text: str) -> int:
    """An argparse type: a count of at least one."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"want a whole number from 1, not {text!r}")
    return int(text)


def build_arg_parser() -> ArgumentParser:
    """The command line."""
    parser = ArgumentParser(
        prog="python -m tools.sim",
        description=(
            "Run a test of the Raft stages (tests/part1 ... tests/part3, "
            "tests/part6) on tools.sim's deterministic scheduler: the same "
            "seed gives the same run, log line for log line."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="replay one test with a seed",
        description=(
            "Replay one test with a seed (its RAFT_SIM_SEED); show its "
            "failure, if it fails. Exit 0 if it passes, 1 if it fails."
        ),
    )
    run.add_argument("test_id", metavar="TEST_ID", help="a pytest id: FILE::NAME")
    run.add_argument("--seed", type=seed, required=True, metavar="S")
    run.add_argument(
        "--log", type=Path, metavar="FILE", help="write the run's log there"
    )
    sweeping = commands.add_parser(
        "sweep",
        help="run one test with seeds 1 to N",
        description=(
            "Run one test with the seeds 1 to N and list those that fail, "
            "each with the command that replays it. Exit 1 if any failed."
        ),
    )
    sweeping.add_argument("test_id", metavar="TEST_ID", help="a pytest id")
    sweeping.add_argument("--seeds", type=positive, required=True, metavar="N")
    sweeping.add_argument(
        "--jobs",
        type=positive,
        default=os.cpu_count() or 1,
        metavar="J",
        help="how many runs at a time (default: one per CPU)",
    )
    return parser


def replay_command(test_id: str, seed: int) -> str:
    """The command that replays a run."""
    return f"python -m tools.sim run {shlex.quote(test_id)} --seed {seed}"


def describe(outcome: Outcome) -> str:
    """One line on a run."""
    seconds = (
        f"{outcome.virtual_seconds:.2f} s of virtual time in "
        f"{outcome.wall_seconds:.2f} s"
    )
    head = f"{outcome.test_id} with {SEED_ENV}={outcome.seed}"
    if outcome.status != "failed":
        return f"{head}: {outcome.status} ({seconds})"
    return (
        f"{head}: failed after log line {outcome.failed_after} ({seconds})\n"
        f"  {outcome.failed_at}\n  {outcome.failure}"
    )


def run(test_id: str, seed: int, log: Path | None) -> int:
    """``run``: replay, report, save the log."""
    if log is not None and not log.parent.is_dir():
        raise BadTestIdError(f"--log {log}: no directory {log.parent}")
    outcome = run_test(test_id, seed)
    if log is not None:
        log.write_text("".join(line + "\n" for line in outcome.log))
    if outcome.status == "failed":
        print(outcome.report, end="\n\n")
    print(describe(outcome))
    if log is not None:
        print(f"log: {log} ({len(outcome.log)} lines)")
    return 1 if outcome.status == "failed" else 0


def sweep_seeds(test_id: str, seeds: int, jobs: int) -> int:
    """``sweep``: run, show progress, list the failures."""
    console = Console(stderr=True)
    failed: list[Outcome] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("seeds", total=seeds, failed=0)

        def advance(outcome: Outcome) -> None:
            if outcome.status == "failed":
                failed.append(outcome)
            progress.update(task, advance=1, failed=len(failed))

        sweep(test_id, range(1, seeds + 1), min(jobs, seeds), advance)
    if not failed:
        print(f"{test_id}: all {seeds} seeds passed")
        return 0
    print(f"{test_id}: {len(failed)} of {seeds} seeds failed")
    for outcome in sorted(failed, key=lambda outcome: outcome.seed):
        print(f"  seed {outcome.seed}: {outcome.failure}")
        print(f"    (after log line {outcome.failed_after}: {outcome.failed_at})")
        print(f"    {replay_command(test_id, outcome.seed)}")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_arg_parser().parse_args(argv)
    try:
        if args.command == "run":
            return run(args.test_id, args.seed, args.log)
        return sweep_seeds(args.test_id, args.seeds, args.jobs)
    except BadTestIdError as error:
        print(f"python -m tools.sim: {error}", file=sys.stderr)
        return BAD_INPUT
