"""``pytest --raft-viz``: one command from a test run to its pages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.tools.conftest import run_python

PLUGIN = "tools.raft_testlog_viz.pytest_plugin"

TESTS = """
import logging

import pytest

log = logging.getLogger("raft")


def test_pass():
    '''A leader is <em>elected</em>.

    In one term.'''
    log.debug("[0] becomes Candidate (currentTerm=1)")
    log.debug("[TEST] <script>window.pwned = 1</script>")
    log.debug("[0] becomes Leader; term=1")


def test_fail():
    log.debug("[1] becomes Candidate (currentTerm=2)\\n[1] second line")
    logging.getLogger("elsewhere").debug("not a Raft line")
    assert False, "no leader"


def test_quiet():
    pass


def test_skip():
    pytest.skip("not today")
"""


@pytest.fixture
def only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytest runs load no installed plugin but ours: they need none,
    and re-importing them (pytester restores ``sys.modules``) costs seconds."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def test_one_command_on_a_real_test(tmp_path: Path) -> None:
    # The README's command, with the bare flag: pages go to <temp>/raftviz.
    result = run_python(
        "-m",
        "pytest",
        "tests/part1",
        "-k",
        "test_election_basic",
        "--raft-viz",
        env={"TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outdir = (tmp_path / "raftviz").resolve()
    page = outdir / "test_election_basic.html"
    lines = result.stdout.splitlines()
    section = lines.index(next(line for line in lines if " raft-viz " in line))
    assert lines[section + 1 : section + 3] == [
        f"PASS {page.as_uri()}",
        f"index: {(outdir / 'index.html').as_uri()}",
    ]
    html = page.read_text(encoding="utf-8")
    assert "<title>part1 · test_election_basic — PASS</title>" in html
    assert "becomes Leader; term=" in html
    assert "<th>0<th>1<th>2</table>" in html


@pytest.mark.usefixtures("only_this_plugin")
def test_statuses_escaping_and_a_test_without_raft_lines(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_raft_like=TESTS)
    outdir = tmp_path / "pages"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # No log_level in this run's configuration: the plugin must still get
    # the DEBUG records.
    result = pytester.runpytest("-p", PLUGIN, f"--raft-viz={outdir}")
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    urls = {
        name: (outdir / f"{name}.html").resolve().as_uri()
        for name in ("test_pass", "test_fail", "test_quiet", "test_skip")
    }
    result.stdout.fnmatch_lines(
        [
            "*= raft-viz =*",
            f"PASS {urls['test_pass']}",
            f"FAIL {urls['test_fail']}",
            f"PASS {urls['test_quiet']}",
            f"SKIP {urls['test_skip']}",
            f"index: {(outdir / 'index.html').resolve().as_uri()}",
        ]
    )
    passed = (outdir / "test_pass.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in passed
    # The frames bring each test's id and docstring, and why one failed.
    assert (
        "<p class=doc>A leader is &lt;em&gt;elected&lt;/em&gt;.\n\nIn one term.</p>"
        in passed
    )
    assert "<th>0</table>" in passed
    assert passed.count("<tr class=") == 3
    failed = (outdir / "test_fail.html").read_text(encoding="utf-8")
    assert "<title>test_fail — FAIL</title>" in failed
    assert "<pre>AssertionError: no leader\nassert False</pre>" in failed
    assert "becomes Candidate (currentTerm=2)" in failed
    # A message's second line is not a line of its own, nor malformed.
    assert failed.count("<tr class=") == 1
    assert "second line" not in failed
    assert "malformed" not in failed
    assert "not a Raft line" not in failed
    quiet = (outdir / "test_quiet.html").read_text(encoding="utf-8")
    assert "This test logged no Raft lines." in quiet
    index = (outdir / "index.html").read_text(encoding="utf-8")
    assert index.count("<tr><td>") == 4
    # The session left logging as it found it.
    assert root.handlers == handlers
    assert root.level == level


LATE = """
import logging

log = logging.getLogger("raft")


def test_first():
    log.debug("[0] becomes Leader; term=1")


def test_next():
    log.debug("[1] becomes Follower; term=1")
"""

LATE_CONFTEST = """
import logging


def pytest_collection_modifyitems(items):
    # Before any test's frame, as a test module that runs a cluster while
    # pytest collects it (to count a scenario's cases, say) would.
    logging.getLogger("raft").debug("[0] becomes Leader; term=1")


def pytest_runtest_logfinish(nodeid):
    # After the test's frame closed, as a server's thread that finishes
    # its work late would.
    if nodeid.endswith("test_first"):
        logging.getLogger("raft").debug(
            "[0] rpc 0.1 reply from 1: AppendEntriesReply(term=1)"
        )
"""


@pytest.mark.usefixtures("only_this_plugin")
def test_lines_logged_after_their_test_ended_are_no_failure(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_late=LATE)
    pytester.makeconftest(LATE_CONFTEST)
    outdir = tmp_path / "pages"
    result = pytester.runpytest("-p", PLUGIN, f"--raft-viz={outdir}")
    result.assert_outcomes(passed=2)
    # The section ends with the index: nothing hints at a failure.
    output = result.stdout.str().splitlines()
    index = next(n for n, line in enumerate(output) if line.startswith("index: "))
    assert "passed" in output[index + 1]
    page = (outdir / "test_first.html").read_text(encoding="utf-8")
    assert "1 line was logged after the test ended" in page
    assert "[0] rpc 0.1 reply from 1: AppendEntriesReply(term=1)</code>" in page
    assert "AppendEntriesReply" not in page.split("<details>")[0]
    assert "after the test ended" not in (outdir / "test_next.html").read_text()


@pytest.mark.usefixtures("only_this_plugin")
def test_without_the_flag_nothing_is_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_raft_like=TESTS)
    result = pytester.runpytest("-p", PLUGIN)
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    assert "raft-viz" not in result.stdout.str()


@pytest.mark.usefixtures("only_this_plugin")
def test_a_test_path_taken_as_dir_is_refused(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("suite").joinpath("test_x.py").write_text("def test_x(): pass\n")
    result = pytester.runpytest("-p", PLUGIN, "--raft-viz", "suite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--raft-viz took 'suite' as its DIR, but that is a test path*"]
    )
    # A folder that holds no tests is fine as DIR, written apart or not.
    result = pytester.runpytest("-p", PLUGIN, "--raft-viz", "out", "suite")
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "out" / "test_x.html").exists()
