"""``pytest --lincheck-histories=DIR``: every kv test leaves its history,
to check with ``python -m tools.lincheck``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tools.conftest import run_python
from tools.lincheck import check, load_history
from tools.lincheck.model import KV_MODEL
from tools.lincheck.pytest_plugin import file_stem

PLUGIN = "tools.lincheck.pytest_plugin"

CONFTEST = """
import pytest


class Harness:
    '''Records what its clients did, as the kv harnesses do.'''

    def __init__(self, ops):
        self.ops = ops

    def history(self):
        return [
            {"client": 0, "op": "put", "key": "k", "value": v,
             "call": 2 * n, "return": 2 * n + 1,
             "output": {"found": n > 0, "value": self.ops[n - 1] if n else ""}}
            for n, v in enumerate(self.ops)
        ]


@pytest.fixture(autouse=True)
def save_histories(lincheck_histories):
    lincheck_histories.watch(Harness)
"""

TESTS = """
import pytest

from conftest import Harness


def test_one():
    Harness(["a", "b"])


def test_two_harnesses_and_an_idle_one():
    Harness(["a"])
    Harness([])
    Harness(["b", "c", "d"])


def test_fails():
    Harness(["x"])
    assert False, "a failure keeps its history too"


@pytest.mark.parametrize("kind", ["not leader", "ok"])
def test_param(kind):
    Harness([kind])


def test_no_harness():
    pass
"""


@pytest.fixture
def only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytest runs load no installed plugin but ours."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.mark.usefixtures("only_this_plugin")
def test_each_harness_history_is_saved_under_its_tests_name(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_kv=TESTS)
    result = pytester.runpytest("-p", PLUGIN, "--lincheck-histories=out")
    result.assert_outcomes(passed=5, failed=1)
    outdir = pytester.path / "out"
    assert sorted(p.name for p in outdir.iterdir()) == [
        "test_kv.test_fails.json",
        "test_kv.test_one.json",
        "test_kv.test_param-not_leader.json",
        "test_kv.test_param-ok.json",
        "test_kv.test_two_harnesses_and_an_idle_one.2.json",
        "test_kv.test_two_harnesses_and_an_idle_one.json",
    ]
    saved = json.loads((outdir / "test_kv.test_one.json").read_text())
    assert saved["test"] == "test_kv.py::test_one"
    assert [r["value"] for r in saved["history"]] == ["a", "b"]
    second = outdir / "test_kv.test_two_harnesses_and_an_idle_one.2.json"
    ops = load_history(second, KV_MODEL.ops)
    assert [o.value for o in ops] == ["b", "c", "d"]
    assert check(json.loads(second.read_text())).ok
    result.stdout.fnmatch_lines(
        [f"lincheck: 6 histories written to {outdir}; check one with: *"]
    )


@pytest.mark.usefixtures("only_this_plugin")
def test_without_the_option_nothing_is_written_or_changed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_kv="""
from conftest import Harness


def test_untouched():
    assert "__init__" in Harness.__dict__
    assert Harness.__init__.__qualname__ == "Harness.__init__"
    Harness(["a"])
"""
    )
    result = pytester.runpytest("-p", PLUGIN)
    result.assert_outcomes(passed=1)
    assert "lincheck" not in result.stdout.str()
    assert not list(pytester.path.glob("**/*.json"))


@pytest.mark.usefixtures("only_this_plugin")
def test_a_test_path_taken_as_dir_is_refused(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("suite").joinpath("test_x.py").write_text("def test_x(): pass\n")
    result = pytester.runpytest("-p", PLUGIN, "--lincheck-histories", "suite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--lincheck-histories took 'suite' as its DIR, but it holds Python files*"]
    )


@pytest.mark.parametrize(
    ("nodeid", "stem"),
    [
        (
            "tests/part4kv/test_system.py::test_crash_leader",
            "part4kv.test_system.test_crash_leader",
        ),
        (
            "tests/part4kv/test_kvclient.py::test_timeout[not leader]",
            "part4kv.test_kvclient.test_timeout-not_leader",
        ),
        (
            "tests/part5kv/test_x.py::TestA::test_b[a/b]",
            "part5kv.test_x.TestA.test_b-a_b",
        ),
        ("test_kv.py::test_one", "test_kv.test_one"),
    ],
)
def test_file_names(nodeid: str, stem: str) -> None:
    assert file_stem(nodeid) == stem


@pytest.mark.parametrize(
    ("stage", "test"),
    [
        ("part4kv", "test_system.py::test_append_applied_twice_after_delay"),
        ("part5kv", "test_system.py::test_put_prev_value"),
        ("part6kv", "test_snapshots.py::test_snapshot_rpc"),
    ],
)
def test_a_kv_test_leaves_a_history_that_lincheck_reads(
    tmp_path: Path, stage: str, test: str
) -> None:
    # The README's commands, on one real test of each kv stage.
    outdir = tmp_path / "histories"
    result = run_python(
        "-m", "pytest", f"tests/{stage}/{test}", f"--lincheck-histories={outdir}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [saved] = outdir.iterdir()
    assert saved.name == file_stem(f"tests/{stage}/{test}") + ".json"
    page = tmp_path / "view.html"
    checked = run_python("-m", "tools.lincheck", str(saved), "--html", str(page))
    # part4kv's test shows a retried append applied twice: not linearizable.
    assert checked.returncode == (1 if stage == "part4kv" else 0), checked.stdout
    assert page.exists()
