"""Helpers of the part6kv tests: threads whose failures fail the test,
waiting for a condition with a deadline, and the ids of raw requests."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from part6kv.harness import CHECK_DEADLINE, POLL_INTERVAL
from part6kv.kvservice import KVService

raw_client_ids = itertools.count(1)
"""The client_ids of the requests tests send by hand."""


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


def new_ids() -> dict[str, int]:
    """The ids of the first request of a new client, for a request sent by
    hand: ``{"client_id": ..., "request_id": 1}``."""
    return {"client_id": next(raw_client_ids), "request_id": 1}


def committed_copies(
    service: KVService, client_id: int, request_id: int
) -> list[tuple[int, int]]:
    """The entries of ``service``'s committed log, after its snapshot, that
    hold request ``request_id`` of ``client_id``: ``(index, id of the
    service that submitted it)`` each."""
    cm = service.raft_server.cm
    with cm.mu:
        committed = cm.log[: cm.position(cm.commit_index) + 1]
        first = cm.last_included_index + 1
    return [
        (index, entry.command.service_id)
        for index, entry in enumerate(committed, start=first)
        if (entry.command.request.client_id, entry.command.request.request_id)
        == (client_id, request_id)
    ]
