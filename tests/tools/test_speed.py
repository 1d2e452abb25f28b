"""A whole run's log renders in under 5 seconds.

Part3's full suite (29 tests, chaos tests among them) logs some 200,000
lines. Until part3 exists this test builds a log of that size from a real
part1 log: each of 29 tests repeats a real test's lines, shifted in time.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.tools.conftest import run_python
from tools.raft_testlog_viz.parse import RunLog

TESTS = 29
LINES = 200_000
BUDGET = 5.0
"""Seconds the issue allows for rendering the whole run."""


def clock(seconds: float) -> str:
    """``seconds`` since midnight as ``HH:MM:SS.ffffff``."""
    whole = int(seconds)
    micros = round((seconds - whole) * 1e6)
    return (
        f"{whole // 3600 % 24:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{micros:06d}"
    )


def big_log(run: RunLog) -> str:
    """A log of TESTS tests and about LINES Raft lines, from ``run``'s tests."""
    out: list[str] = []
    start = 8 * 3600.0
    for k in range(TESTS):
        test = run.tests[k % len(run.tests)]
        first = test.entries[0].seconds
        span = test.entries[-1].seconds - first + 0.001
        out += [f"=== RUN {test.name}_{k}", "PASSED    [ 50%]"]
        repeats = LINES // TESTS // len(test.entries) + 1
        for r in range(repeats):
            for e in test.entries:
                source = "TEST" if e.server is None else e.server
                moment = clock(start + r * span + e.seconds - first)
                out.append(f"{moment} [{source}] {e.message}")
        start += repeats * span + 1
        out.append(f"--- PASS: {test.name}_{k} ({repeats * span:.2f}s)")
    return "\n".join(out) + "\n"


def test_a_whole_run_renders_in_under_five_seconds(
    real_run: RunLog, tmp_path: Path
) -> None:
    log = tmp_path / "big.log"
    log.write_text(big_log(real_run), encoding="utf-8")
    lines = log.read_text(encoding="utf-8").count("\n")
    assert lines > LINES
    began = time.perf_counter()
    with log.open() as stdin:
        result = run_python(
            "-m", "tools.raft_testlog_viz", "--outdir", str(tmp_path), stdin=stdin
        )
    elapsed = time.perf_counter() - began
    assert result.returncode == 0, result.stderr
    pages = sorted(tmp_path.glob("test_*.html"))
    assert len(pages) == TESTS
    largest = max(pages, key=lambda p: p.stat().st_size)
    rows = largest.read_text(encoding="utf-8").count("<tr class")
    print(
        f"{lines} lines, {TESTS} tests rendered in {elapsed:.2f}s; largest "
        f"page {largest.name}: {rows} rows, {largest.stat().st_size} bytes"
    )
    assert elapsed < BUDGET
