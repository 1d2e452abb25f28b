"""The part6kv tests' set-up: with ``--lincheck-histories=DIR``, each
test's harnesses leave their histories in DIR (see
``tools.lincheck.pytest_plugin``); the seed of the randomized tests
(test_linearizability.py, test_snapshots.py)."""

from __future__ import annotations

import os
import random

import pytest

from part6kv.harness import Harness
from tools.lincheck.pytest_plugin import HistorySaver


@pytest.fixture(autouse=True)
def save_histories(lincheck_histories: HistorySaver) -> None:
    """Save the history of every Harness the test builds, when asked to."""
    lincheck_histories.watch(Harness)


@pytest.fixture
def seed() -> int:
    """The seed of the test's random decisions: RAFT_SEED, or a fresh one."""
    value = os.environ.get("RAFT_SEED")
    seed = int(value) if value else random.randrange(1 << 32)
    print(f"RAFT_SEED={seed}")
    return seed
