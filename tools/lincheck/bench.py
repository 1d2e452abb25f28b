"""``python -m tools.lincheck --bench``: how fast the checker is.

On made-up histories (``tools.lincheck.generate``; the time to make them is
not counted) or on history files, it times ``check`` (parsing included) a
few times and reports the best run: the verdict, milliseconds, microseconds
per operation, and the search's steps (operations tried). The best of a
few runs is the figure least disturbed by whatever else the machine does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .check import Result, check
from .generate import generate
from .history import read_json


@dataclass(frozen=True)
class Case:
    """A history to time: its name, and how to get it."""

    name: str
    make: Callable[[], Any]


def standard_cases() -> list[Case]:
    """The histories the benchmark times by default: 10 clients, as in the
    figures of docs/lincheck.md."""
    cases = [
        Case("10,000 ops, 10 keys", lambda: generate(10, 10_000, 10, seed=2)),
        Case(
            "2,000 ops, 10 keys, 10% no answer",
            lambda: generate(10, 2_000, 10, unknown=0.1, seed=3),
        ),
        Case(
            "2,000 ops, 1 key, 10% no answer",
            lambda: generate(10, 2_000, 1, unknown=0.1, seed=3),
        ),
        Case(
            "10,000 ops, 10 keys, a stale read",
            lambda: generate(10, 10_000, 10, stale_read=True, seed=2),
        ),
    ]
    for keys in (10, 1):
        for ops in (1_000, 10_000, 50_000):
            name = f"{ops:,} ops, {keys} key{'s' if keys > 1 else ''}"
            cases.append(Case(name, _generator(ops, keys)))
    return cases


def _generator(ops: int, keys: int) -> Callable[[], Any]:
    return lambda: generate(10, ops, keys, seed=5)


def file_case(path: Path) -> Case:
    """A history file to time (read once, before the timing)."""
    return Case(str(path), lambda: read_json(path))


def time_check(
    history: Any, repeat: int, timeout: float | None
) -> tuple[Result, float]:
    """The result of checking ``history``, and the best time of ``repeat``
    checks (seconds)."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = check(history, timeout=timeout)
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best


def run_bench(
    cases: Sequence[Case], repeat: int, timeout: float | None, console: Console
) -> None:
    """Time each case and print the figures (HistoryError on a malformed
    history file)."""
    table = Table(title=f"lincheck, best of {repeat}")
    for column in ("history", "verdict", "ms", "µs/op", "steps"):
        table.add_column(column, justify="left" if column == "history" else "right")
    for case in cases:
        history = case.make()
        result, seconds = time_check(history, repeat, timeout)
        count = max(len(result.history), 1)
        table.add_row(
            case.name,
            result.verdict,
            f"{seconds * 1000:.1f}",
            f"{seconds * 1e6 / count:.1f}",
            f"{result.steps:,}",
        )
        console.print(
            f"{case.name}: {result.verdict}, {seconds * 1000:.1f} ms", highlight=False
        )
    console.print(table)
