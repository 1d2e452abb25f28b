"""The thread-leak check must catch a leaked thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tools.threadcheck import leaked_threads

ROOT = Path(__file__).resolve().parent.parent


def test_leaked_threads_reports_a_thread_that_does_not_end() -> None:
    before = set(threading.enumerate())
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="stuck")
    thread.start()
    try:
        assert leaked_threads(before, grace=0.05) == [thread]
    finally:
        release.set()
        thread.join()
    assert leaked_threads(before, grace=0.05) == []


def test_leaked_threads_waits_for_threads_that_are_ending() -> None:
    before = set(threading.enumerate())
    thread = threading.Thread(target=threading.Event().wait, args=(0.1,))
    thread.start()
    assert leaked_threads(before, grace=2.0) == []


def test_leaked_threads_waits_for_threads_started_while_it_waits() -> None:
    # A server's loop may start a sender just before it ends, after the
    # check began: the sender gets the same grace.
    def start_a_sender_and_end() -> None:
        threading.Event().wait(0.05)
        threading.Thread(target=threading.Event().wait, args=(0.2,)).start()

    before = set(threading.enumerate())
    threading.Thread(target=start_a_sender_and_end).start()
    assert leaked_threads(before, grace=2.0) == []


def test_leak_check_fails_a_test_that_leaks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest("from tests.conftest import no_leaked_threads")
    pytester.makepyfile(
        """
        import threading

        release = threading.Event()

        def test_leaks():
            threading.Thread(target=release.wait, args=(3,), name="leaky").start()

        def test_clean():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*threads leaked by the test: leaky*"])
