"""Fixtures of the visualizer's tests: real logs, made by running part1's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.raft_testlog_viz.parse import RunLog, parse_log

ROOT = Path(__file__).resolve().parents[2]

REAL_TESTS = ["test_election_basic", "test_election_leader_disconnect"]
"""The part1 tests whose live log the visualizer's tests read: short, and
between them they elect, disconnect a leader and elect again."""


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pytest *args`` in the repository, as a reader would."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def real_log() -> str:
    """The live log (``-o log_cli=true``) of two real part1 tests."""
    ids = [f"tests/part1/test_raft.py::{name}" for name in REAL_TESTS]
    result = run_pytest(*ids, "-o", "log_cli=true")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def real_run(real_log: str) -> RunLog:
    """``real_log`` parsed."""
    return parse_log(real_log.splitlines())
