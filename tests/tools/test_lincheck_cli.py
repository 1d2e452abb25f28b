"""``python -m tools.lincheck``: verdicts as exit statuses, the HTML view,
bad input without a traceback, the timeout, and the benchmark."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.tools.conftest import ROOT, run_python
from tests.tools.lincheck_histories import (
    failing_generated_history,
    op,
    stale_read_history,
)
from tools.lincheck.cli import (
    BAD_INPUT,
    BROKEN_PIPE,
    DEFAULT_TIMEOUT,
    EXIT,
    INTERNAL_ERROR,
    main,
)
from tools.lincheck.generate import generate


def write(tmp_path: Path, data: Any, name: str = "history.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def run(*args: str) -> tuple[int, str]:
    """Run the command line in this process; its status and output."""
    out = io.StringIO()
    status = main(list(args), Console(file=out, width=200))
    return status, out.getvalue()


def test_a_linearizable_history_exits_0(tmp_path: Path) -> None:
    status, out = run(str(write(tmp_path, generate(5, 200, 3, seed=1))))
    assert status == 0
    assert out.startswith("ok: 200 operations on 3 keys")


def test_a_history_that_is_not_exits_1_and_says_why(tmp_path: Path) -> None:
    status, out = run(str(write(tmp_path, stale_read_history())))
    assert status == 1
    assert out.startswith("not linearizable: 3 operations on 1 key")
    assert "key 'x' (3 operations): not linearizable" in out
    assert "the longest linearizable prefix found has 2 operations" in out
    assert "#2 client 2 get('x') -> '1' (found): there it would answer '2'" in out


def test_html_writes_the_view(tmp_path: Path) -> None:
    page = tmp_path / "out" / "view.html"
    history = write(tmp_path, failing_generated_history())
    status, out = run(str(history), "--html", str(page))
    assert status == 1
    assert f"HTML view: {page}" in out
    text = page.read_text()
    assert text.startswith("<!doctype html>")
    assert "not linearizable" in text


def test_the_timeout_gives_unknown_and_exit_3(tmp_path: Path) -> None:
    # One key, many unanswered writes: thousands of search steps, far more
    # than a nanosecond allows.
    history = write(tmp_path, generate(10, 500, 1, unknown=0.1, seed=3))
    assert run(str(history))[0] == 0
    status, out = run(str(history), "--timeout", "1e-9")
    assert status == 3
    assert out.startswith("unknown: 500 operations on 1 key")
    assert "the timeout ran out" in out


def unanswered_appends_and_an_impossible_read(n: int) -> list[dict[str, Any]]:
    """``n`` appends whose answers never came, of ``n`` different letters,
    and a get, concurrent with them all, that read what no order of them
    makes. The search would try each of the n! orders of each subset."""
    history = [op(i, "append", 0, None, value=chr(97 + i)) for i in range(n)]
    return [*history, op(n, "get", 0, 1, "nope")]


def test_without_timeout_a_pathological_history_ends_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 26 operations and no --timeout: the default timeout (made short here)
    # ends the search, instead of running on for ever.
    monkeypatch.setattr("tools.lincheck.cli.DEFAULT_TIMEOUT", 0.5, raising=False)
    history = write(tmp_path, unanswered_appends_and_an_impossible_read(25))
    status, out = run(str(history))
    assert status == 3
    assert out.startswith("unknown: 26 operations on 1 key")


def test_help_states_the_default_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {DEFAULT_TIMEOUT:g};" in text
    assert DEFAULT_TIMEOUT == 60


def test_timeout_inf_waits_as_long_as_it_takes(tmp_path: Path) -> None:
    status, out = run(str(write(tmp_path, stale_read_history())), "--timeout", "inf")
    assert status == 1
    assert out.startswith("not linearizable")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"client": 0, "op": "get",', "is not valid JSON"),
        (
            [{"client": 1, "op": "get", "key": "k", "return": 2, "output": None}],
            "operation #0 (client 1, get 'k'): missing field 'call'",
        ),
        (
            [op(0, "get", 0, 1, None), op(4, "incr", 0, 1, None, key="n")],
            "operation #1 (client 4, incr 'n'): unknown op 'incr'",
        ),
        (
            [op(0, "get", 0, 1, None), op(2, "put", 5, 4, None, value="v")],
            "operation #1 (client 2, put 'x'): return 4 is before its call 5",
        ),
        (
            [dict(op(0, "get", 0, 1, None), call="0")],
            "operation #0 (client 0, get 'x'): 'call' must be a number",
        ),
        ({"ops": []}, "a history is a JSON list of operations"),
    ],
    ids=["bad-json", "missing-field", "unknown-op", "return<call", "type", "shape"],
)
def test_bad_input_exits_2_naming_the_operation_without_a_traceback(
    tmp_path: Path, content: Any, message: str
) -> None:
    history = write(tmp_path, content)
    result = run_python("-m", "tools.lincheck", str(history), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert message in " ".join(output.split()), output
    assert "Traceback" not in output


def one_get(call: str, ret: str) -> str:
    """A history of one get, as JSON text with the times written as given."""
    return (
        f'[{{"client": 0, "op": "get", "key": "x", "call": {call}, '
        f'"return": {ret}, "output": {{"found": false, "value": ""}}}}]'
    )


@pytest.mark.parametrize(
    ("content", "html", "message"),
    [
        ("[" * 100_000, False, "is not a history: its JSON is nested too deeply"),
        (one_get("1" * 5000, "null"), False, "a number with more than 4300 digits"),
        (
            one_get("1" + "0" * 400, "null"),
            False,
            "operation #0 (client 0, get 'x'): 'call' is out of range",
        ),
        (
            one_get("-1.7e308", "1.7e308"),
            True,
            "operation #0 (client 0, get 'x'): 'call' is out of range",
        ),
    ],
    ids=["deep", "5000-digits", "huge-int", "huge-span-html"],
)
def test_input_that_used_to_crash_exits_2_with_one_line(
    tmp_path: Path, content: str, html: bool, message: str
) -> None:
    history = write(tmp_path, content)
    args = ["--html", str(tmp_path / "view.html")] if html else []
    result = run_python("-m", "tools.lincheck", str(history), *args, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    [line] = output.splitlines()
    assert line.startswith("bad input: ")
    assert message in line
    assert not (tmp_path / "view.html").exists()


def test_an_unexpected_error_is_no_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug in the checker must not pass for a verdict: no verdict printed,
    # and a status that is none of a verdict's.
    def broken(*args: Any) -> Path:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr("tools.lincheck.cli.write_page", broken)
    history = write(tmp_path, generate(3, 30, 1, seed=1))
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    status, out = run(str(history), "--html", str(tmp_path / "view.html"))
    assert status == INTERNAL_ERROR
    assert status not in EXIT.values()
    assert status != BAD_INPUT
    assert out == ""
    assert "ZeroDivisionError: float division by zero" in err.getvalue()
    assert "a bug in lincheck" in err.getvalue()


def test_a_reader_that_goes_away_is_no_verdict(tmp_path: Path) -> None:
    # "python -m tools.lincheck h.json | head -1": the explanation of 3,000
    # undecided keys fills the pipe, and head goes away after one line.
    # rich's console would exit with 1, "not linearizable".
    history = [op(0, "get", k, k + 1, None, key=f"k{k}") for k in range(3000)]
    path = write(tmp_path, history)
    command = [sys.executable, "-m", "tools.lincheck", str(path), "--timeout", "1e-9"]
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline().startswith("unknown: 3000 operations")
        process.stdout.close()
        errors = process.stderr.read()
        assert process.wait(timeout=60) == BROKEN_PIPE
    assert errors == ""


def test_ctrl_c_exits_130_without_a_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("tools.lincheck.cli.check_operations", interrupted)
    status, out = run(str(write(tmp_path, generate(3, 30, 1, seed=1))))
    assert status == 130
    assert out == "interrupted\n"


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    status, out = run(str(tmp_path / "nowhere.json"))
    assert status == 2
    assert "cannot read" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for args in ([], ["a.json", "b.json"], ["a.json", "--timeout", "0"]):
        with pytest.raises(SystemExit) as caught:
            main(args)
        assert caught.value.code == 2
    assert "give one history file" in capsys.readouterr().err


def test_bench_times_history_files(tmp_path: Path) -> None:
    good = write(tmp_path, generate(3, 100, 2, seed=1), "good.json")
    bad = write(tmp_path, stale_read_history(), "bad.json")
    status, out = run("--bench", "--repeat", "1", str(good), str(bad))
    assert status == 0
    assert f"{good}: ok" in out
    assert f"{bad}: not linearizable" in out
    assert "µs/op" in out


def test_bench_refuses_a_malformed_file(tmp_path: Path) -> None:
    status, out = run("--bench", str(write(tmp_path, "[1")))
    assert status == 2
    assert "not valid JSON" in out
