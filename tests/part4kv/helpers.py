"""Helpers of the part4kv tests: threads whose failures fail the test, and
waiting for a condition with a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from part4kv.harness import CHECK_DEADLINE, POLL_INTERVAL


class Background:
    """Runs ``target`` on a thread; ``join()`` waits for it and raises what
    it raised, so that a failed check on the thread fails the test."""

    def __init__(self, target: Callable[[], object]) -> None:
        self.target = target
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, name="test-background")
        self.thread.start()

    def run(self) -> None:
        try:
            self.target()
        except BaseException as error:
            self.error = error

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def run_concurrently(targets: list[Callable[[], object]]) -> None:
    """Run every target on a thread of its own, wait for all of them, and
    raise the first failure."""
    running = [Background(target) for target in targets]
    for background in running:
        background.thread.join()
    for background in running:
        background.join()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds; fail after CHECK_DEADLINE seconds."""
    deadline = time.monotonic() + CHECK_DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {CHECK_DEADLINE}s: {what}")
        time.sleep(POLL_INTERVAL)
