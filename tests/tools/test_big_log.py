"""A log the size of a whole run renders correctly.

Part3's full suite logs some 200,000 lines. This test builds a log of that
size from a real part1 log (each of 29 tests repeats a real test's lines,
shifted in time) and checks the pages the command writes. How *fast* it
renders is measured by the visualizer's benchmark, not here: ``python -m
tools.raft_testlog_viz --bench LOG`` (docs/visualizer.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.tools.conftest import run_python
from tools.raft_testlog_viz.parse import RunLog, parse_log

TESTS = 29
LINES = 200_000
MESSAGE_ID = re.compile(r"\Arpc (\d+)\.(\d+) ")


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
            # Each repetition's messages get ids of their own.
            def renumber(m: re.Match[str], r: int = r) -> str:
                return f"rpc {m[1]}.{int(m[2]) + r * 1_000_000} "

            for e in test.entries:
                source = "TEST" if e.server is None else e.server
                moment = clock(start + r * span + e.seconds - first)
                message = MESSAGE_ID.sub(renumber, e.message)
                out.append(f"{moment} [{source}] {message}")
        start += repeats * span + 1
        out.append(f"--- PASS: {test.name}_{k} ({repeats * span:.2f}s)")
    return "\n".join(out) + "\n"


def test_a_whole_run_renders(real_run: RunLog, tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text(big_log(real_run), encoding="utf-8")
    run = parse_log(log.read_text(encoding="utf-8").splitlines())
    assert sum(len(test.entries) for test in run.tests) > LINES
    with log.open() as stdin:
        result = run_python(
            "-m", "tools.raft_testlog_viz", "--outdir", str(tmp_path), stdin=stdin
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "PASS"
    pages = {p.stem: p for p in tmp_path.glob("test_*.html")}
    assert sorted(pages) == sorted(test.name for test in run.tests)
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert index.count("<tr><td>") == TESTS
    for test in run.tests:
        html = pages[test.name].read_text(encoding="utf-8")
        assert html.count("<tr class") == len(test.entries), test.name
        found = re.search(r"<script type=application/json id=data>(.*?)</script>", html)
        assert found is not None
        data = json.loads(found[1])
        assert len(data["rows"]["ms"]) == len(test.entries)
        sends = sum(" send to " in e.message for e in test.entries)
        assert len(data["msgs"]) == sends > 0
