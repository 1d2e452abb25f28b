"""Fixtures of the tools' tests: real logs, made by running part1's and
part3's tests, and a headless browser."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from part4kv.kvclient import KVClient
from tools.raft_testlog_viz import browser as viz_browser
from tools.raft_testlog_viz.parse import RunLog, parse_log

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parents[2]

REAL_TESTS = ["test_election_basic", "test_election_leader_disconnect"]
"""The part1 tests whose live log the visualizer's tests read: short, and
between them they elect, disconnect a leader and elect again."""


def run_python(
    *args: str,
    stdin: IO[Any] | None = None,
    input_text: str | None = None,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` in the repository, as a reader would, and
    capture its output. The environment is this one without
    PYTEST_ADDOPTS, changed by ``env`` (a None value removes a variable)."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environ,
        stdin=stdin,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


LIVE_LOG = ("-s", "-o", "log_cli=true")
"""pytest's options for a live log with every line. Without ``-s``, pytest
captures output between its writes of the live log, and a line a server's
thread logs just as a test phase ends can go to that capture and be lost."""

PLAIN_RUN = {"RAFT_UNRELIABLE_RPC": None, "RAFT_FORCE_MORE_REELECTION": None}
"""The environment of the real runs whose logs these tests read: a reliable
network and no forced elections, whatever the soak around them sets. The
tests check what such runs show (a heartbeat is an AppendEntries, the first
leader wins in term 1), and some of the runs need one to be sure to commit."""


@pytest.fixture(scope="session")
def real_log() -> str:
    """The live log of two real part1 tests."""
    ids = [f"tests/part1/test_raft.py::{name}" for name in REAL_TESTS]
    result = run_python("-m", "pytest", *ids, *LIVE_LOG, env=PLAIN_RUN)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def real_run(real_log: str) -> RunLog:
    """``real_log`` parsed."""
    return parse_log(real_log.splitlines())


PART3_TESTS = [
    "test_commit_after_call_drops",
    "test_crash_after_submit",
    "test_replace_multiple_log_entries",
    "test_commit_multiple_commands",
    "test_commits_with_leader_disconnects",
]
"""The part3 tests whose live log the visualizer's tests read: between them
they drop calls and replies on purpose, cut links, crash and restart
servers, and replace a follower's divergent entries."""


@pytest.fixture(scope="session")
def part3_log() -> str:
    """The live log of the PART3_TESTS."""
    ids = [f"tests/part3/test_raft.py::{name}" for name in PART3_TESTS]
    result = run_python(
        "-m",
        "pytest",
        *ids,
        *LIVE_LOG,
        env=PLAIN_RUN,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def part3_run(part3_log: str) -> RunLog:
    """``part3_log`` parsed."""
    return parse_log(part3_log.splitlines())


@pytest.fixture(scope="session")
def failing_log() -> str:
    """The live log of a test that fails with safety violations (the
    paper's Figure 8, on a consensus module that breaks the commit rule)."""
    result = run_python(
        "-m", "pytest", "tests/tools/failing_run.py", *LIVE_LOG, env=PLAIN_RUN
    )
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout


SERVING = re.compile(r"\[kv \d+\] serving HTTP on (127\.0\.0\.1:\d+)$", re.MULTILINE)


@pytest.fixture(scope="session")
def hand_run_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log of a part4kv cluster run by hand (``python -m part4kv -v``,
    which logs on standard error): it elects a leader, takes a put, and is
    stopped with Ctrl-C. A log without test frames."""
    log = tmp_path_factory.mktemp("hand") / "kv.log"
    environ = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    for key in PLAIN_RUN:
        environ.pop(key, None)
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "part4kv", "-v"],
            cwd=ROOT,
            env=environ,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            text = log.read_text()
            addrs = SERVING.findall(text)
            if len(addrs) == 3 and "becomes Leader" in text:
                break
            assert process.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        # A long attempt timeout: the put is sent again only to another
        # service, after a NotLeader.
        KVClient(addrs, attempt_timeout=5).put("greeting", "hello", timeout=10)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdin is not None
        process.stdin.close()
    return log


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """A headless Chromium (``tools.raft_testlog_viz.browser``); the test is
    skipped, saying why, where selenium or Chromium is missing."""
    problem = viz_browser.missing()
    if problem is not None:
        pytest.skip(problem)
    with viz_browser.chromium() as driver:
        yield driver
