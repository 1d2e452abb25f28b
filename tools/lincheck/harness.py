"""For test harnesses: check a recorded history, and on failure say where
its picture is.

A test that recorded what its clients saw (the kv harnesses'
``h.history()``) ends with::

    assert_linearizable(h.history(), tmp_path / "history.html")

which returns quietly when the history is linearizable, and otherwise
writes the HTML view and the history itself (``history.json`` beside it,
to check again with ``python -m tools.lincheck``) and raises
AssertionError with the explanation and both paths.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .check import Result, check
from .history import to_record
from .model import KV_MODEL, Model
from .view import write_page

DEFAULT_TIMEOUT = 30.0
"""Seconds a test's check may take; the histories of tests take far less."""


def assert_linearizable(
    history: Any,
    html_path: Path | None = None,
    *,
    model: Model[Any] = KV_MODEL,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Result:
    """Check ``history`` (see ``tools.lincheck.check``) and return the
    result if it is linearizable.

    Otherwise write the HTML view to ``html_path`` (by default a new file in
    the temporary directory) and the history as JSON beside it, and raise
    AssertionError saying why, and where both are. A check that runs out of
    ``timeout`` fails too: it proved nothing.
    """
    result = check(history, model, timeout)
    if result.ok:
        return result
    if html_path is None:
        html_path = Path(tempfile.mkdtemp(prefix="lincheck-")) / "history.html"
    write_report(result, html_path)
    raise AssertionError(
        f"history {result.verdict}\n{result.explain()}\n"
        f"HTML view of the history: {html_path}\n"
        f"the history: {html_path.with_suffix('.json')} (check it again with: "
        f"python -m tools.lincheck {html_path.with_suffix('.json')})"
    )


def write_report(result: Result, html_path: Path) -> None:
    """Write the HTML view of ``result`` and, beside it with the suffix
    ``.json``, its history."""
    write_page(result, html_path)
    records = [to_record(op) for op in result.history]
    html_path.with_suffix(".json").write_text(json.dumps(records), encoding="utf-8")
