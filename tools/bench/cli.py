"""``python -m tools.bench``: measure a part, print the table, write JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from .cluster import load_part, raft_logging
from .measure import Runner
from .progress import PhaseProgress
from .report import (
    ENV_KNOBS,
    Results,
    build_figures,
    environment,
    render_table,
    to_json,
)
from .settings import LOGGING_MODES, PHASES, QUICK, Settings, Step

PARTS = ("part2", "part3")
"""The parts that take commands (part1 only elects)."""

FILE_WIDTH = 160
"""Columns of the table when standard output is not a terminal and COLUMNS
is not set (rich would use 80, too narrow for the notes)."""


def positive_int(text: str) -> int:
    """argparse type: an integer above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above zero."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def build_arg_parser() -> argparse.ArgumentParser:
    """The command line of the benchmark."""
    full = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=(
            "Benchmark a part of the Raft implementation (issue 7): "
            "throughput, commit latency, failover time and idle cost, with "
            "Raft logging off and on. Prints a table with the targets; exits "
            "with status 1 if a run STALLED or a cluster leaked threads."
        ),
    )
    parser.add_argument(
        "--part",
        choices=PARTS,
        default=full.part,
        help=f"the part to measure (default {full.part})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"the reduced set: N={', '.join(map(str, QUICK.throughput_ns))}, "
            f"{QUICK.latency_commands} latency commands, "
            f"{QUICK.failover_trials} failover trials, "
            f"{QUICK.idle_seconds:g} s idle (under 60 s in all)"
        ),
    )
    parser.add_argument(
        "--logging",
        choices=[*LOGGING_MODES, "both"],
        default="both",
        help="Raft logging off, on (DEBUG, formatted), or both (default)",
    )
    parser.add_argument(
        "--only",
        choices=PHASES,
        action="append",
        metavar="PHASE",
        help=f"measure only this phase (repeatable; one of {', '.join(PHASES)})",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=full.repeat,
        metavar="R",
        help="run every measurement R times and show the medians (default 1)",
    )
    parser.add_argument(
        "-n",
        type=positive_int,
        nargs="+",
        metavar="N",
        help="throughput command counts (default: "
        f"{', '.join(map(str, full.throughput_ns))})",
    )
    parser.add_argument(
        "--commands",
        type=positive_int,
        metavar="M",
        help=f"commands of the latency phase (default {full.latency_commands})",
    )
    parser.add_argument(
        "--trials",
        type=positive_int,
        metavar="K",
        help=f"failover trials (default {full.failover_trials})",
    )
    parser.add_argument(
        "--idle-seconds",
        type=positive_float,
        metavar="S",
        help=f"length of the idle phase (default {full.idle_seconds:g})",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write every figure to FILE"
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The Settings the command line asks for: the full or the quick set,
    with the options given on top."""
    base = QUICK if args.quick else Settings()
    overrides = {
        "throughput_ns": None if args.n is None else tuple(dict.fromkeys(args.n)),
        "latency_commands": args.commands,
        "failover_trials": args.trials,
        "idle_seconds": args.idle_seconds,
        "phases": None
        if args.only is None
        else tuple(p for p in PHASES if p in args.only),
    }
    return dataclasses.replace(
        base,
        part=args.part,
        logging_modes=LOGGING_MODES if args.logging == "both" else (args.logging,),
        repeat=args.repeat,
        **{key: value for key, value in overrides.items() if value is not None},
    )


def label(settings: Settings, mode: str, step: Step, run: int) -> str:
    """The description of a phase's progress bar."""
    text = f"{settings.part} logging {mode}: {step.phase}"
    if step.n is not None:
        text += f" N={step.n:,}"
    if settings.repeat > 1:
        text += f" (run {run}/{settings.repeat})"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = build_arg_parser().parse_args(argv)
    settings = settings_from_args(args)
    part = load_part(settings.part)
    env = environment(part.name)
    out = Console()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(width=FILE_WIDTH)
    err = Console(stderr=True)
    for knob in ENV_KNOBS:
        if env["env"][knob]:
            err.print(f"[bold yellow]warning:[/] {knob} is set: figures not comparable")
    results: Results = {}
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        auto_refresh=False,
    )
    with progress:
        runner = Runner(part, settings, PhaseProgress(progress))
        for mode in settings.logging_modes:
            with raft_logging(part.name, enabled=mode == "on"):
                for step in settings.steps():
                    for run in range(1, settings.repeat + 1):
                        measurement = runner.measure(
                            step, label(settings, mode, step, run)
                        )
                        results.setdefault((mode, step), []).append(measurement)
    figures = build_figures(settings, results)
    out.print(render_table(settings, figures))
    if runner.leaked_threads:
        out.print(
            "[bold red]threads still alive after their cluster shut down:[/] "
            + ", ".join(runner.leaked_threads)
        )
    if args.json is not None:
        document = to_json(settings, env, results, figures, runner.leaked_threads)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    stalled = any(figure.status == "STALLED" for figure in figures)
    return 1 if stalled or runner.leaked_threads else 0
