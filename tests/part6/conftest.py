"""Fixtures of part 6's randomized tests (test_chaos.py, test_snapshots.py)."""

from __future__ import annotations

import os
import random

import pytest


@pytest.fixture
def seed() -> int:
    """The seed of the test's random decisions: RAFT_SEED, or a fresh one."""
    value = os.environ.get("RAFT_SEED")
    seed = int(value) if value else random.randrange(1 << 32)
    print(f"RAFT_SEED={seed}")
    return seed
