"""The part6kv tests' set-up: with ``--lincheck-histories=DIR``, each
test's harnesses leave their histories in DIR (see
``tools.lincheck.pytest_plugin``)."""

from __future__ import annotations

import pytest

from part6kv.harness import Harness
from tools.lincheck.pytest_plugin import HistorySaver


@pytest.fixture(autouse=True)
def save_histories(lincheck_histories: HistorySaver) -> None:
    """Save the history of every Harness the test builds, when asked to."""
    lincheck_histories.watch(Harness)
