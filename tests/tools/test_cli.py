"""``python -m tools.raft_testlog_viz``: the summary, exit status, terminal view."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from tests.tools.conftest import REAL_TESTS, run_python
from tools.raft_testlog_viz.assets import STATE_COLOURS
from tools.raft_testlog_viz.cli import main

FAILING_LOG = """\
=== RUN test_ok
12:00:00.000000 [0] becomes Candidate (currentTerm=1)
12:00:00.001000 [0] becomes Leader; term=1
--- PASS: test_ok (0.10s)
=== RUN test_broken
12:00:01.000000 [1] becomes Candidate (currentTerm=2)
12:00:01.100000 [x] a malformed line
E   AssertionError: no leader
--- FAIL: test_broken (0.50s)
"""


def run_cli(*args: str, width: int = 300) -> tuple[int, str]:
    """Run the visualizer in-process; return its exit status and output."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    return main(list(args), console), out.getvalue()


def write(tmp_path: Path, text: str) -> Path:
    """Write ``text`` to a log file and return its path."""
    path = tmp_path / "log.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_two_step_workflow_on_a_real_log(real_log: str, tmp_path: Path) -> None:
    # Exactly as the README says: the log on standard input.
    log = write(tmp_path, real_log)
    outdir = tmp_path / "pages"
    with log.open() as stdin:
        result = run_python(
            "-m", "tools.raft_testlog_viz", "--outdir", str(outdir), stdin=stdin
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "PASS"
    for name in REAL_TESTS:
        url = (outdir / f"{name}.html").resolve().as_uri()
        row = next(line for line in lines if f" {name} " in line)
        # test, status, duration, servers, entries, page URL
        assert re.search(
            rf"│ part1 · {name} +│ PASS +│ +\d+\.\d\ds │ +3 │ +\d+ │ {url} ", row
        )
    index = (outdir / "index.html").resolve()
    assert f"index: {index.as_uri()}" in lines
    assert index.exists()


def test_a_failed_test_fails_the_run(tmp_path: Path) -> None:
    status, out = run_cli(str(write(tmp_path, FAILING_LOG)), "--outdir", str(tmp_path))
    assert status == 1
    lines = out.strip().splitlines()
    assert lines[-1] == "FAIL"
    assert re.search(r"test_broken +│ FAIL +│ +0\.50s │ +1 │ +1 │", out)
    assert re.search(r"test_ok +│ PASS +│ +0\.10s │ +1 │ +2 │", out)
    # The malformed line is reported, before the overall status.
    assert lines[-3:-1] == [
        "skipped 1 malformed line:",
        "  line 7 in test_broken (source is none of N, TEST, kv N, client N): "
        "12:00:01.100000 [x] a malformed line",
    ]
    assert (tmp_path / "test_broken.html").exists()


def test_no_test_in_the_input_fails_and_writes_nothing(tmp_path: Path) -> None:
    # pytest's output without a live log: only a failure's "Captured log",
    # which repeats lines of a test with no frame to hold them.
    log = write(
        tmp_path,
        "pytest printed this\n"
        "------------------------------ Captured log call -------------------\n"
        "12:00:00.000000 [0] becomes Leader; term=1, log=[]\n",
    )
    status, out = run_cli(str(log), "--outdir", str(tmp_path / "pages"))
    assert status == 1
    assert "no Raft log lines in the input" in out
    assert out.strip().splitlines()[-1] == "FAIL"
    assert not (tmp_path / "pages").exists()


def test_the_log_of_a_cluster_run_by_hand_is_one_run(
    hand_run_log: Path, tmp_path: Path
) -> None:
    # As the README says: python -m part4kv -v 2> kv.log, then this.
    result = run_python(
        "-m", "tools.raft_testlog_viz", "--outdir", str(tmp_path), str(hand_run_log)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    page = (tmp_path / "kv.log.html").resolve()
    row = rf"kv\.log +│ LOG +│ +- │ +3 │ +\d+ │ {page.as_uri()} "
    assert re.search(row, result.stdout)
    assert lines[-1] == "LOG"
    html = page.read_text(encoding="utf-8")
    assert "becomes Leader; term=" in html
    assert "<em>kv</em> serving HTTP on 127.0.0.1:" in html
    # raft_check reads the same file as one run too.
    checked = run_python("-m", "tools.raft_check", str(hand_run_log))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout == (
        "checked 1 test(s): 0 not ok; 0 of 0 planted bug(s) caught\n"
    )


def test_a_file_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, path, why in (
        ([], tmp_path / "nosuchfile", "No such file or directory"),
        (["--terminal"], tmp_path, "Is a directory"),
        (["--bench"], tmp_path / "nosuchfile", "No such file or directory"),
    ):
        result = run_python("-m", "tools.raft_testlog_viz", *args, str(path))
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr == (
            f"python -m tools.raft_testlog_viz: cannot read {path}: {why}\n"
        )


def test_only_the_named_test(tmp_path: Path) -> None:
    status, out = run_cli(
        str(write(tmp_path, FAILING_LOG)),
        "--outdir",
        str(tmp_path),
        "--test",
        "test_ok",
    )
    assert status == 0
    assert out.strip().splitlines()[-1] == "PASS"
    assert sorted(p.name for p in tmp_path.glob("*.html")) == [
        "index.html",
        "test_ok.html",
    ]


def test_an_unknown_test_name_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        run_cli(str(write(tmp_path, FAILING_LOG)), "--test", "test_nope")
    assert exit.value.code == 2
    assert "no test named 'test_nope' in the log; tests: test_ok, test_broken" in (
        capsys.readouterr().err
    )


def test_terminal_view_of_a_real_test(real_log: str, tmp_path: Path) -> None:
    name = REAL_TESTS[1]
    status, out = run_cli("--terminal", "--test", name, str(write(tmp_path, real_log)))
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("─")
    assert f" part1 · {name} — PASS " in lines[0]
    assert re.match(r"ms +│TEST +│0 +│1 +│2 +│$", lines[2])
    assert any("│Disconnect " in line for line in lines)
    assert any("becomes Leader; term=" in line for line in lines)
    assert any("AppendEntries" in line for line in lines)
    # Every line keeps the columns: 5 of them, each closed by a separator.
    assert all(line.count("│") == 5 for line in lines[2:])

    _, quiet = run_cli(
        "--terminal",
        "--hide-heartbeats",
        "--test",
        name,
        str(write(tmp_path, real_log)),
    )
    assert "AppendEntries" not in quiet
    assert "becomes Leader; term=" in quiet


def test_terminal_cells_are_coloured_by_state(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(
        file=out, width=120, force_terminal=True, color_system="truecolor"
    )
    status = main([str(write(tmp_path, FAILING_LOG)), "--terminal"], console)
    assert status == 0  # the terminal view shows; it does not judge
    leader = tuple(int(STATE_COLOURS["L"][i : i + 2], 16) for i in (1, 3, 5))
    candidate = tuple(int(STATE_COLOURS["C"][i : i + 2], 16) for i in (1, 3, 5))
    lines = out.getvalue().splitlines()
    leader_line = next(line for line in lines if "becomes Leader" in line)
    assert "48;2;{};{};{}m".format(*leader) in leader_line
    candidate_line = next(line for line in lines if "becomes Candidate" in line)
    assert "48;2;{};{};{}m".format(*candidate) in candidate_line


def test_terminal_with_sixteen_colours_keeps_states_apart(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system="standard")
    main([str(write(tmp_path, FAILING_LOG)), "--terminal"], console)
    lines = out.getvalue().splitlines()
    # Black on yellow for a candidate, black on green for a leader.
    assert "30;43m" in next(line for line in lines if "becomes Candidate" in line)
    assert "30;42m" in next(line for line in lines if "becomes Leader" in line)


def test_terminal_view_of_seven_servers_in_a_narrow_window(tmp_path: Path) -> None:
    lines = [
        f"12:00:00.{i:06d} [{i}] becomes Candidate (currentTerm={i})" for i in range(7)
    ]
    log = write(tmp_path, "\n".join(["=== RUN t", *lines, "--- PASS: t (0.1s)"]))
    status, out = run_cli("--terminal", str(log), width=80)
    assert status == 0
    lines = out.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("ms ")) :]
    assert all(len(line) <= 80 for line in table)
    # Nothing was cut off: every column is there, the last one too.
    assert all(line.count("│") == 9 for line in table)
    assert re.match(r"ms +│TEST +│0 +│1 +│2 +│3 +│4 +│5 +│6 +│$", table[0])
    assert "t0→6" in out


def test_terminal_view_of_a_test_with_no_raft_lines(tmp_path: Path) -> None:
    log = write(tmp_path, "=== RUN t\n--- PASS: t (0.1s)\n")
    status, out = run_cli("--terminal", str(log))
    assert status == 0
    assert "This test logged no Raft lines." in out


def test_the_benchmark_times_each_stage(real_log: str, tmp_path: Path) -> None:
    log = write(tmp_path, real_log)
    status, out = run_cli(
        "--bench", str(log), "--repeat", "1", "--outdir", str(tmp_path)
    )
    assert status == 0
    for stage in (
        "whole command (new process)",
        "parse",
        "timelines",
        "histories",
        "pages (HTML, in memory)",
    ):
        assert re.search(rf"│ {re.escape(stage)} +│ +\d+\.\d\d │ +\d+\.\d\d │", out)
    assert re.search(rf"largest page ({'|'.join(REAL_TESTS)})\.html: \d+ rows", out)
    assert (tmp_path / f"{REAL_TESTS[0]}.html").exists()


def test_the_benchmark_needs_a_log_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit:
        run_cli("--bench")
    assert exit.value.code == 2
    assert "--bench needs a LOGFILE" in capsys.readouterr().err


def test_terminal_view_of_key_value_lines(tmp_path: Path) -> None:
    log = write(
        tmp_path,
        "=== RUN t\n"
        "12:00:00.000000 [kv 0] applied put x=1\n"
        "12:00:00.000100 [client 3] ok\n"
        "--- PASS: t (0.1s)\n",
    )
    status, out = run_cli("--terminal", str(log))
    assert status == 0
    assert re.search(r"│client 3 ok +│ +│$", out, re.MULTILINE)
    assert re.search(r"│ +│t0 kv applied put x=1 +│$", out, re.MULTILINE)
