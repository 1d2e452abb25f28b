"""Fixtures of the visualizer's tests: real logs, made by running part1's tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

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


@pytest.fixture(scope="session")
def real_log() -> str:
    """The live log (``-o log_cli=true``) of two real part1 tests."""
    ids = [f"tests/part1/test_raft.py::{name}" for name in REAL_TESTS]
    result = run_python("-m", "pytest", *ids, "-o", "log_cli=true")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def real_run(real_log: str) -> RunLog:
    """``real_log`` parsed."""
    return parse_log(real_log.splitlines())


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """A headless Chromium, with the flags it needs to run as root here;
    the test is skipped, saying why, where selenium or Chromium is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver",
        reason="selenium is not installed (pip install -e .[test])",
    )
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "needs Chromium and its driver: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(
            service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
            options=options,
        )
        try:
            yield driver
        finally:
            driver.quit()
