"""``python -m tools.lincheck --bench``: how fast the checker is.

On made-up histories (``tools.lincheck.generate``; the time to make them is
not counted) or on history files (read before the timing), it checks each a
few times and reports the best run: the verdict, the time to turn the JSON
records into operations, the time to check them, the total per operation,
and the search's steps (operations tried). The best of a
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

from .check import Result, check_operations
from .generate import generate
from .history import parse_history, read_json
from .model import KV_MODEL


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


@dataclass(frozen=True)
class Timing:
    """The best of a few checks of one history (seconds)."""

    result: Result
    parse: float
    search: float

    @property
    def total(self) -> float:
        """Parsing and checking together."""
        return self.parse + self.search


def time_check(history: Any, repeat: int, timeout: float | None) -> Timing:
    """Check ``history`` ``repeat`` times; the fastest run, with the time
    spent reading the JSON records and the time spent searching."""
    best: Timing | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        ops = parse_history(history, KV_MODEL.ops)
        parsed = time.perf_counter()
        result = check_operations(ops, KV_MODEL, timeout)
        done = time.perf_counter()
        timing = Timing(result, parsed - start, done - parsed)
        if best is None or timing.total < best.total:
            best = timing
    assert best is not None
    return best


def run_bench(
    cases: Sequence[Case], repeat: int, timeout: float | None, console: Console
) -> None:
    """Time each case and print the figures (HistoryError on a malformed
    history file)."""
    table = Table(title=f"lincheck, best of {repeat}")
    columns = ("history", "verdict", "parse ms", "check ms", "total ms", "µs/op")
    for column in (*columns, "steps"):
        table.add_column(column, justify="left" if column == "history" else "right")
    for case in cases:
        timing = time_check(case.make(), repeat, timeout)
        result = timing.result
        count = max(len(result.history), 1)
        table.add_row(
            case.name,
            result.verdict,
            f"{timing.parse * 1000:.1f}",
            f"{timing.search * 1000:.1f}",
            f"{timing.total * 1000:.1f}",
            f"{timing.total * 1e6 / count:.1f}",
            f"{result.steps:,}",
        )
        console.print(
            f"{case.name}: {result.verdict}, {timing.total * 1000:.1f} ms",
            highlight=False,
        )
    console.print(table)
