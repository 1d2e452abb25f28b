"""``python -m tools.bench``: measure a part, print the table, write JSON."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .cluster import LOG_FORMAT, StalledError, raft_logging
from .compaction import BASELINE, COMPACTION_PHASES
from .kv import KV_BASELINE, KV_COMPACTION_PHASES, KV_PHASES, RAFT_STAGES
from .measure import QUICK, RAFT_PHASES, Bench, Measurement, Phase, Settings

PARTS: dict[str, dict[str, Phase]] = {
    "part2": RAFT_PHASES,
    "part3": RAFT_PHASES,
    "part4kv": KV_PHASES,
    "part5kv": KV_PHASES,
    "part6": COMPACTION_PHASES,
    "part6kv": KV_COMPACTION_PHASES,
}
"""The phases each part is measured in, in order: all the benchmark knows of
a part (part1 only elects: it has none)."""

LOGGERS: dict[str, tuple[str, ...]] = {
    "part4kv": ("part4kv", RAFT_STAGES["part4kv"]),
    "part5kv": ("part5kv", RAFT_STAGES["part5kv"]),
    "part6": ("part6", BASELINE),
    "part6kv": ("part6kv", RAFT_STAGES["part6kv"], KV_BASELINE, BASELINE),
}
"""The loggers of each part that logs through more than its own: a
key/value stage logs through the Raft stage it runs on, too, part6 is
measured beside part3, and part6kv beside part5kv (on part3)."""

ENV_KNOBS = ("RAFT_UNRELIABLE_RPC", "RAFT_FORCE_MORE_REELECTION")
"""Environment variables that change how the parts behave."""

Results = dict[tuple[str, str], list[Measurement]]
"""Every run, by logging mode and phase."""


def at_least(minimum: int, kind: type[int] | type[float] = int) -> Any:
    """An argparse type: a number of ``kind`` no smaller than ``minimum``."""

    def parse(text: str) -> float:
        if (value := kind(text)) < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


SIZES = {
    "-n": ("throughput_ns", "N", at_least(1), "throughput command counts"),
    "--commands": ("latency_commands", "M", at_least(2), "latency commands"),
    "--trials": ("failover_trials", "K", at_least(2), "failover trials"),
    "--idle-seconds": ("idle_seconds", "S", at_least(1, float), "idle seconds"),
    "--clients": ("kv_clients", "C", at_least(1), "key/value client counts"),
    "--kv-seconds": ("kv_seconds", "S", at_least(1, float), "key/value run seconds"),
    "--snapshot-every": (
        "snapshot_every",
        "K",
        at_least(1),
        "part6: entries between snapshots",
    ),
    "--behind": ("behind", "B", at_least(1), "part6: entries a follower catches up"),
    "--max-raft-state": (
        "max_raft_state",
        "BYTES",
        at_least(0),
        "part6kv: bytes of Raft state before a snapshot",
    ),
}
"""The options that size a phase: the Settings field each sets, its
metavar, its type and what it is."""


def build_arg_parser() -> argparse.ArgumentParser:
    """The command line of the benchmark."""
    phases = list(dict.fromkeys(name for table in PARTS.values() for name in table))
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Benchmark a part of the Raft implementation on its simulated "
        "network: throughput, commit latency beside the network's floor, failover "
        "time and idle cost, with Raft logging off and on; for part6, beside part3, "
        "and how long a snapshot holds the lock and a follower takes to catch "
        "up; for part6kv, beside part5kv. The table goes to "
        "standard output, progress to standard error. Exit status 1 if a run "
        "STALLED or a cluster left threads running. See docs/benchmarks.md.",
    )
    add = parser.add_argument
    add("--part", choices=list(PARTS), default="part3", help="default: %(default)s")
    add(
        "--quick",
        action="store_true",
        help="the reduced set (see below): about 10 s a mode",
    )
    add(
        "--logging",
        choices=["off", "on", "both"],
        default="both",
        help="Raft logging off, on (every DEBUG record formatted and written to "
        f"{os.devnull}), or both (default)",
    )
    add(
        "--only",
        action="append",
        choices=phases,
        metavar="PHASE",
        help=f"measure only PHASE (repeatable): {', '.join(phases)}",
    )
    add(
        "--repeat",
        type=at_least(1),
        default=1,
        metavar="R",
        help="run every measurement R times; show the medians and every run",
    )
    for option, (name, metavar, kind, what) in SIZES.items():
        full, quick = (getattr(s, name) for s in (Settings(), QUICK))
        add(
            option,
            dest=name,
            type=kind,
            metavar=metavar,
            nargs="+" if option in ("-n", "--clients") else None,
            help=f"{what} (default {full}; --quick {quick})",
        )
    add("--json", type=Path, metavar="FILE", help="also write the whole run to FILE")
    return parser


def settings_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> Settings:
    """The full or the quick set, with the options given on top."""
    phases = PARTS[args.part]
    if unknown := set(args.only or ()) - set(phases):
        parser.error(f"{args.part} has no phase {', '.join(sorted(unknown))}")
    given = {name: getattr(args, name) for name, *_ in SIZES.values()}
    for name in ("throughput_ns", "kv_clients"):
        if given[name]:
            given[name] = tuple(sorted(set(given[name])))
    return dataclasses.replace(
        QUICK if args.quick else Settings(),
        part=args.part,
        logging=("off", "on") if args.logging == "both" else (args.logging,),
        only=tuple(p for p in phases if p in (args.only or phases)),
        repeat=args.repeat,
        **{name: value for name, value in given.items() if value is not None},
    )


def run(bench: Bench, settings: Settings) -> Results:
    """Every measurement of the run. A StalledError out of a phase (a
    failover or idle cluster without a leader) ends that run as STALLED."""
    results: Results = {}
    for mode in settings.logging:
        loggers = LOGGERS.get(settings.part, (settings.part,))
        with raft_logging(loggers, enabled=mode == "on"):
            for name in settings.only:
                for i in range(1, settings.repeat + 1):
                    bench.prefix = f"{settings.part} logging {mode}"
                    if settings.repeat > 1:
                        bench.prefix += f" run {i}/{settings.repeat}"
                    bench.prefix += ": "
                    m = Measurement()
                    try:
                        PARTS[settings.part][name](bench, m)
                    except StalledError as stall:
                        m.fail("STALLED", str(stall))
                    results.setdefault((mode, name), []).append(m)
    return results


def build_rows(results: Results) -> list[dict[str, Any]]:
    """A row per figure: the median over the runs that gave it, and the
    status of the first run that did not. What went wrong in a phase's runs
    is told once, on its first row."""
    rows = []
    for (mode, phase), runs in results.items():
        problems = [note for m in runs for note in m.notes]
        for label in dict.fromkeys(label for m in runs for label in m.units):
            values = [m.values[label] for m in runs if label in m.values]
            failed = [m.status for m in runs if label not in m.values]
            rows.append(
                {
                    "logging": mode,
                    "phase": phase,
                    "figure": label,
                    "unit": next(m.units[label] for m in runs if label in m.units),
                    "status": failed[0] if failed else "ok",
                    "value": statistics.median(values) if values else None,
                    "runs": values,
                    "notes": problems,
                }
            )
            problems = []
    return rows


def number(value: float) -> str:
    """``value`` to three significant digits (all of its integer part)."""
    exponent = math.floor(math.log10(abs(value))) if value else 0
    return f"{value:,.{max(0, 2 - exponent)}f}"


def sizes(settings: Settings) -> str:
    """What the run's clusters and phases were, for the table's caption."""
    if PARTS[settings.part] in (KV_PHASES, KV_COMPACTION_PHASES):
        clients = ", ".join(map(str, settings.kv_clients))
        compaction = ""
        if PARTS[settings.part] is KV_COMPACTION_PHASES:
            compaction = (
                f" Each service snapshots past {settings.max_raft_state:,} bytes "
                f"of Raft state; {KV_BASELINE} measured beside them."
            )
        return (
            f"Clusters of 3 services over HTTP; latency: one client, "
            f"{settings.latency_commands} puts then as many gets; throughput: "
            f"{clients} clients, {settings.kv_seconds:g} s each.{compaction}"
        )
    if PARTS[settings.part] is COMPACTION_PHASES:
        return (
            f"Clusters of 3 servers, each snapshotted every "
            f"{settings.snapshot_every:,} entries; {BASELINE} measured beside "
            f"them; latency: {settings.latency_commands} commands one at a time; "
            f"catch-up: a follower {settings.behind:,} entries behind."
        )
    return (
        f"Clusters of 3 servers (idle: 5); latency: {settings.latency_commands} "
        f"commands one at a time; failover: {settings.failover_trials} trials."
    )


def render_table(settings: Settings, rows: list[dict[str, Any]]) -> Table:
    """The rich table of a run: a section per logging mode."""
    repeat = settings.repeat
    table = Table(
        title=f"Raft benchmark: {settings.part}, "
        f"{'quick' if settings.quick else 'full'} set, "
        f"{f'median of {repeat} runs' if repeat > 1 else 'one run'}",
        caption=f"Log off: the part's loggers at WARNING. On: every DEBUG record "
        f"formatted ('{LOG_FORMAT}') and written to {os.devnull}. {sizes(settings)}",
    )
    for column in ["Log", "Figure", "Value", *["Runs"] * (repeat > 1), "Notes"]:
        table.add_column(column, justify="right" if column == "Value" else "left")
    for i, row in enumerate(rows):
        if i and row["logging"] != rows[i - 1]["logging"]:
            table.add_section()
        value = row["status"]
        if row["value"] is not None and value == "ok":
            value = f"{number(row['value'])} {row['unit']}"
        runs = [", ".join(map(number, row["runs"]))] * (repeat > 1)
        table.add_row(
            row["logging"], row["figure"], value, *runs, "; ".join(row["notes"])
        )
    return table


def cpu_model() -> str:
    """The processor's model name, from /proc/cpuinfo where there is one."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor()


def git_revision() -> str | None:
    """The commit of the code, ``+dirty`` if tracked files have changes;
    None outside a git work tree."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=True)
        return done.stdout.decode().strip()

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def environment() -> dict[str, Any]:
    """Where and when the run happened, and on which code."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "env": {knob: os.environ.get(knob) for knob in ENV_KNOBS},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    settings = settings_from_args(parser, args)
    env = environment()
    err = Console(stderr=True)
    for knob, value in env["env"].items():
        if value:
            err.print(f"[bold yellow]warning:[/] {knob} is set: figures not comparable")
    columns = TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()
    progress = Progress(*columns, TimeElapsedColumn(), console=err, auto_refresh=False)
    bench = Bench(settings, progress)
    with progress:
        results = run(bench, settings)
    rows = build_rows(results)
    # Not a terminal and no COLUMNS: rich's 80 columns would fold the notes.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    out = Console(width=160 if wide else None)
    out.print(render_table(settings, rows))
    if bench.leaked:
        out.print(f"[bold red]threads left running:[/] {', '.join(bench.leaked)}")
    if args.json is not None:
        measurements = [
            {"logging": mode, "phase": phase, "run": i, **dataclasses.asdict(m)}
            for (mode, phase), runs in results.items()
            for i, m in enumerate(runs, start=1)
        ]
        document = {
            "settings": dataclasses.asdict(settings),
            "environment": env,
            "rows": rows,
            "measurements": measurements,
            "leaked_threads": bench.leaked,
        }
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    stalled = any(m.status == "STALLED" for runs in results.values() for m in runs)
    return 1 if stalled or bench.leaked else 0
