"""``pytest --lincheck-histories=DIR``: keep the history of every kv test.

The harnesses of the kv stages record every call their clients make
(``h.history()``, in the history format). With this option, the history of
each harness a test built is written to DIR when the test ends, passed or
failed, in a file named after the test::

    DIR/part5kv.test_system.test_crash_leader.json

(a second harness of the same test gets ``.2.json``, and so on; a harness
that recorded nothing gets no file). Each file holds
``{"test": NODE ID, "history": [...]}``, which
``python -m tools.lincheck FILE [--html OUT.html]`` reads as it is.

Which class is a harness is up to each test folder: its conftest.py asks
the ``lincheck_histories`` fixture to ``watch`` it, for every test::

    @pytest.fixture(autouse=True)
    def save_histories(lincheck_histories: HistorySaver) -> None:
        lincheck_histories.watch(Harness)

Enable the plugin with ``pytest_plugins`` in a conftest.py, or ``-p
tools.lincheck.pytest_plugin``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

OPTION = "--lincheck-histories"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--lincheck-histories=DIR``."""
    parser.getgroup("lincheck").addoption(
        OPTION,
        metavar="DIR",
        type=Path,
        default=None,
        help=(
            "write the history of each kv test's harness to "
            "DIR/<test>.json when the test ends, to check with "
            "'python -m tools.lincheck DIR/<test>.json'"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a DIR that holds Python files: in ``pytest --lincheck-histories
    tests/part5kv`` the test path was taken as DIR, and every test would run
    and write its history among the tests."""
    outdir = _outdir(config)
    if outdir is not None and (outdir.suffix == ".py" or any(outdir.glob("*.py"))):
        raise pytest.UsageError(
            f"{OPTION} took {str(config.getoption('lincheck_histories'))!r} as "
            f"its DIR, but it holds Python files: write {OPTION}=DIR with a "
            "folder of its own"
        )


class Recorder(Protocol):
    """What the plugin needs of a harness: the calls its clients made."""

    def history(self) -> list[dict[str, Any]]:
        """The operations recorded, in the history format."""
        ...


class HistorySaver:
    """Saves the histories of the harnesses one test builds."""

    def __init__(
        self, outdir: Path | None, nodeid: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.outdir = outdir
        self.nodeid = nodeid
        self.monkeypatch = monkeypatch
        self.recorders: list[Recorder] = []

    def watch(self, harness_class: type[Recorder]) -> None:
        """Note each ``harness_class`` built from now to the test's end
        (only when the option is given; otherwise nothing changes)."""
        if self.outdir is None:
            return
        build: Callable[..., None] = harness_class.__init__
        recorders = self.recorders

        def init(harness: Recorder, *args: Any, **kwargs: Any) -> None:
            build(harness, *args, **kwargs)
            recorders.append(harness)

        self.monkeypatch.setattr(harness_class, "__init__", init)

    def save(self) -> list[Path]:
        """Write each noted harness's history, if it has one; the files."""
        if self.outdir is None:
            return []
        self.outdir.mkdir(parents=True, exist_ok=True)
        written = []
        histories = [h for h in (r.history() for r in self.recorders) if h]
        for n, history in enumerate(histories, start=1):
            suffix = ".json" if n == 1 else f".{n}.json"
            path = self.outdir / (file_stem(self.nodeid) + suffix)
            path.write_text(_as_json(self.nodeid, history), encoding="utf-8")
            written.append(path)
        return written


def file_stem(nodeid: str) -> str:
    """A file name for a test: ``tests/part4kv/test_kvclient.py::test_x[a b]``
    gives ``part4kv.test_kvclient.test_x-a_b``."""
    path, _, name = nodeid.partition("::")
    parts = Path(path).with_suffix("").parts
    if parts[:1] == ("tests",):
        parts = parts[1:]
    name = name.replace("::", ".").replace("[", "-").removesuffix("]")
    return re.sub(r"[^\w.-]", "_", ".".join([*parts, name]))


def _as_json(nodeid: str, history: list[dict[str, Any]]) -> str:
    # One operation a line: a reader can look through the file.
    lines = ",\n".join(f"  {json.dumps(record)}" for record in history)
    return f'{{"test": {json.dumps(nodeid)},\n "history": [\n{lines}\n]}}\n'


@pytest.fixture
def lincheck_histories(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HistorySaver]:
    """The test's HistorySaver: with ``--lincheck-histories=DIR``, the
    histories of the harnesses it was told to ``watch`` go to DIR when the
    test ends."""
    outdir = _outdir(request.config)
    saver = HistorySaver(outdir, request.node.nodeid, monkeypatch)
    yield saver
    written = len(saver.save())
    request.config.stash[_WRITTEN] = request.config.stash.get(_WRITTEN, 0) + written


_WRITTEN = pytest.StashKey[int]()
"""How many files the session wrote."""


def _outdir(config: pytest.Config) -> Path | None:
    # DIR as given, from where pytest was started (a test may change the
    # working directory).
    outdir: Path | None = config.getoption("lincheck_histories")
    return None if outdir is None else config.invocation_params.dir / outdir


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say where the histories went."""
    outdir = _outdir(config)
    if outdir is None:
        return
    count = config.stash.get(_WRITTEN, 0)
    terminalreporter.write_line(
        f"lincheck: {count} {'history' if count == 1 else 'histories'} "
        f"written to {outdir}; check one with: python -m tools.lincheck "
        f"{outdir}/<test>.json --html view.html"
    )
