"""From measurements to figures: medians, the targets of issue 7, the rich
table and the JSON document."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from .cluster import LOG_FORMAT
from .measure import Measurement, Status
from .settings import CLUSTER_SIZE, IDLE_CLUSTER_SIZE, Settings, Step

Results = dict[tuple[str, Step], list[Measurement]]
"""Every run of every step, by logging mode and step."""

ENV_KNOBS = ("RAFT_UNRELIABLE_RPC", "RAFT_FORCE_MORE_REELECTION")
"""Environment variables that change how the parts behave."""


@dataclass(frozen=True)
class Target:
    """A bound a figure must meet: at most, or at least, ``limit``."""

    limit: float
    at_most: bool

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        return value <= self.limit if self.at_most else value >= self.limit

    def text(self, digits: int, unit: str) -> str:
        """The target as the table shows it, e.g. ``≤ 3 ms``."""
        sign = "≤" if self.at_most else "≥"
        return f"{sign} {format_number(self.limit, digits)} {unit}"


@dataclass(frozen=True)
class FigureSpec:
    """How to show one value of a phase's measurements."""

    key: str
    """The key in ``Measurement.values``."""
    label: str
    unit: str
    digits: int
    """Decimals shown."""
    target: Target | None = None
    """The target of issue 7, applied to runs with Raft logging off."""


THROUGHPUT_TARGET_N = 20_000
"""The N the throughput target is about."""

GROWTH_NS = (1_000, 20_000)
"""The smallest and largest N the growth target compares."""

THROUGHPUT = FigureSpec(
    "commands_per_s", "throughput", "cmd/s", 0, Target(60_000, at_most=False)
)
GROWTH = FigureSpec("us_per_command", "growth", "x", 2, Target(2.0, at_most=True))

PHASE_FIGURES: dict[str, list[FigureSpec]] = {
    "latency": [
        FigureSpec("p50_ms", "latency p50", "ms", 2, Target(3, at_most=True)),
        FigureSpec("p99_ms", "latency p99", "ms", 2, Target(8, at_most=True)),
        FigureSpec("max_ms", "latency max", "ms", 2),
    ],
    "failover": [
        FigureSpec("p50_ms", "failover p50", "ms", 0, Target(350, at_most=True)),
        FigureSpec("p99_ms", "failover p99", "ms", 0, Target(700, at_most=True)),
        FigureSpec("max_ms", "failover max", "ms", 0),
    ],
    "idle": [
        FigureSpec(
            "cpu_per_wall",
            "idle CPU",
            "CPU-s/s",
            3,
            Target(0.03, at_most=True),
        ),
        FigureSpec("rpcs_per_s", "idle RPCs", "RPC/s", 0),
    ],
}
"""The rows of the phases other than throughput, whose rows depend on N."""


def format_number(value: float, digits: int) -> str:
    """``value`` with thousands separators and ``digits`` decimals."""
    return f"{value:,.{digits}f}"


@dataclass
class Figure:
    """One row of the table: the median of a figure over the runs."""

    logging: str
    phase: str
    name: str
    unit: str
    digits: int
    status: Status
    value: float | None
    runs: list[float]
    target: Target | None
    note: str

    @property
    def verdict(self) -> str:
        """PASS or MISS against the target; empty without one."""
        if self.target is None:
            return ""
        if self.status != "ok" or self.value is None:
            return "MISS"
        return "PASS" if self.target.met(self.value) else "MISS"

    def value_text(self) -> str:
        """The value and its unit, or the status of a failed run."""
        if self.status != "ok" or self.value is None:
            return self.status
        return f"{format_number(self.value, self.digits)} {self.unit}"

    def runs_text(self) -> str:
        """The value of every run that went through."""
        return ", ".join(format_number(run, self.digits) for run in self.runs)

    def to_json(self) -> dict[str, Any]:
        """The row as plain JSON data."""
        return {
            "logging": self.logging,
            "phase": self.phase,
            "figure": self.name,
            "unit": self.unit,
            "status": self.status,
            "value": self.value,
            "runs": self.runs,
            "target": None if self.target is None else dataclasses.asdict(self.target),
            "verdict": self.verdict,
            "note": self.note,
        }


def worst_status(measurements: list[Measurement]) -> Status:
    """ok if every run went through, else the status of the first that did not."""
    return next((m.status for m in measurements if m.status != "ok"), "ok")


def problems(measurements: list[Measurement]) -> list[str]:
    """What went wrong in these runs: stalls and leader changes."""
    found = []
    for m in measurements:
        if m.status == "STALLED":
            stall = f"stalled: {m.details['stalled']}"
            if m.details["delivered"]:
                delivered = "/".join(str(d) for d in m.details["delivered"])
                stall += f", delivered {delivered}"
            found.append(stall)
        changes = m.details.get("leader_changes", 0)
        if changes:
            found.append(f"{changes} leader change(s), retried on a fresh cluster")
        if m.details.get("leader_kept") is False:
            found.append("leadership changed while idle")
    return found


def phase_note(phase: str, measurements: list[Measurement]) -> str:
    """What a phase's first row explains about its runs."""
    ok = [m for m in measurements if m.status == "ok"]
    if not ok:
        return ""
    if phase == "throughput":
        seconds = statistics.median(m.values["seconds"] for m in ok)
        per_command = statistics.median(m.values["us_per_command"] for m in ok)
        return f"{seconds:.3f} s, {per_command:.1f} µs/cmd"
    if phase == "latency":
        return f"{len(ok[0].samples)} commands, one at a time"
    if phase == "failover":
        return f"{len(ok[0].samples)} trials, leader {ok[0].details['leader']}"
    own = statistics.median(
        m.details["bench_thread_cpu_seconds"] / m.details["wall_seconds"] for m in ok
    )
    return (
        f"{IDLE_CLUSTER_SIZE} servers, {ok[0].details['wall_seconds']:.1f} s; "
        f"bench's own thread {own:.4f} CPU-s/s"
    )


def summarize(
    logging_mode: str,
    phase: str,
    spec: FigureSpec,
    measurements: list[Measurement],
    note: str,
    target: Target | None,
) -> Figure:
    """The row of ``spec``: the median over the runs that went through."""
    runs = [m.values[spec.key] for m in measurements if m.status == "ok"]
    status = worst_status(measurements)
    notes = [note, *problems(measurements)]
    return Figure(
        logging=logging_mode,
        phase=phase,
        name=spec.label,
        unit=spec.unit,
        digits=spec.digits,
        status=status,
        value=statistics.median(runs) if runs else None,
        runs=runs,
        target=target,
        note="; ".join(n for n in notes if n),
    )


def growth(
    logging_mode: str,
    ns: tuple[int, int],
    small: list[Measurement],
    large: list[Measurement],
) -> Figure:
    """How the cost per command grows from the smallest N to the largest
    (``ns``): the median over the runs of large-N cost / small-N cost."""
    pairs = zip(small, large, strict=True)
    runs = [
        b.values[GROWTH.key] / a.values[GROWTH.key]
        for a, b in pairs
        if a.status == "ok" and b.status == "ok"
    ]
    status = worst_status(small + large)
    applies = logging_mode == "off" and ns == GROWTH_NS
    return Figure(
        logging=logging_mode,
        phase="throughput",
        name=f"{GROWTH.label} N={ns[0]:,}→{ns[1]:,}",
        unit=GROWTH.unit,
        digits=GROWTH.digits,
        status=status,
        value=statistics.median(runs) if runs else None,
        runs=runs,
        target=GROWTH.target if applies else None,
        note="µs/cmd ratio, largest N to smallest",
    )


def build_figures(settings: Settings, results: Results) -> list[Figure]:
    """Every row of the table, in the order of the run."""
    figures: list[Figure] = []
    ns = sorted(settings.throughput_ns)
    for mode in settings.logging_modes:
        off = mode == "off"
        for step in settings.steps():
            runs = results[mode, step]
            note = phase_note(step.phase, runs)
            if step.n is not None:
                spec = dataclasses.replace(THROUGHPUT, label=f"throughput N={step.n:,}")
                applies = off and step.n == THROUGHPUT_TARGET_N
                target = THROUGHPUT.target if applies else None
                figures.append(summarize(mode, step.phase, spec, runs, note, target))
                if step.n == settings.throughput_ns[-1] and len(ns) > 1:
                    small = results[mode, Step("throughput", ns[0])]
                    large = results[mode, Step("throughput", ns[-1])]
                    figures.append(growth(mode, (ns[0], ns[-1]), small, large))
                continue
            for i, spec in enumerate(PHASE_FIGURES[step.phase]):
                target = spec.target if off else None
                row_note = note if i == 0 else ""
                figures.append(
                    summarize(mode, step.phase, spec, runs, row_note, target)
                )
    return figures


def render_table(settings: Settings, figures: list[Figure]) -> Table:
    """The rich table of a run: one section per logging mode."""
    mode = "quick" if settings.quick else "full"
    how = f"median of {settings.repeat} runs" if settings.repeat > 1 else "one run"
    table = Table(
        title=f"Raft benchmark: {settings.part}, {mode} set, {how}",
        caption=(
            "Log (Raft logging) off: the part's loggers at WARNING. On: every DEBUG "
            f"record formatted ('{LOG_FORMAT}') and written to {os.devnull}. "
            f"Clusters of {CLUSTER_SIZE} servers (idle: {IDLE_CLUSTER_SIZE}). "
            "Targets (issue 7) apply with logging off."
        ),
    )
    table.add_column("Log")
    table.add_column("Figure", no_wrap=True)
    table.add_column("Value", justify="right", no_wrap=True)
    table.add_column("Target", justify="right", no_wrap=True)
    table.add_column("Verdict")
    if settings.repeat > 1:
        table.add_column("Runs", no_wrap=True)
    table.add_column("Notes", overflow="fold")
    previous = None
    for figure in figures:
        if previous is not None and figure.logging != previous:
            table.add_section()
        previous = figure.logging
        target = (
            ""
            if figure.target is None
            else figure.target.text(figure.digits, figure.unit)
        )
        style = {"PASS": "bold green", "MISS": "bold red"}.get(figure.verdict, "")
        verdict = f"[{style}]{figure.verdict}[/]" if style else ""
        runs = [figure.runs_text()] if settings.repeat > 1 else []
        table.add_row(
            figure.logging,
            figure.name,
            figure.value_text(),
            target,
            verdict,
            *runs,
            figure.note,
        )
    return table


def cpu_model() -> str:
    """The processor's model name, from /proc/cpuinfo where there is one."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    for line in lines:
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor()


def git_revision(part_name: str) -> str | None:
    """The commit the code is at, with ``+dirty`` if a module of the part
    the benchmark loaded has changes not committed; None outside a git work
    tree."""
    root = Path(__file__).resolve().parents[2]
    files = [
        module.__file__
        for name, module in sys.modules.items()
        if name.startswith(f"{part_name}.") and module.__file__ is not None
    ]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", *files)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment(part_name: str) -> dict[str, Any]:
    """Where and when the run happened, and on which code."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_revision": git_revision(part_name),
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "env": {knob: os.environ.get(knob) for knob in ENV_KNOBS},
    }


def to_json(
    settings: Settings,
    env: dict[str, Any],
    results: Results,
    figures: list[Figure],
    leaked_threads: list[str],
) -> dict[str, Any]:
    """The whole run as JSON data: settings, rows and every measurement."""
    measurements = [
        {"logging": mode, "run": run, **dataclasses.asdict(m)}
        for (mode, _), runs in results.items()
        for run, m in enumerate(runs, start=1)
    ]
    return {
        "settings": {**dataclasses.asdict(settings), **env},
        "figures": [figure.to_json() for figure in figures],
        "measurements": measurements,
        "leaked_threads": leaked_threads,
    }
