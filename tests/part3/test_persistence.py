"""Persistence survives a crash at any instant.

A server can die between any two ``Storage.set`` calls. These tests crash a
CM's storage after its k-th write, for every k through a scenario, and check
that what a new incarnation restores from what is left is a state Raft
allows: the state before the write that was cut short, the state after it,
or, while a conflicting suffix is being replaced, the log cut back to the
entries that stay. Never a new term with the vote of an old one, and never a
new entry followed by the stale ones it replaced.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import NamedTuple

import pytest

from part3.raft import AppendEntriesArgs, ConsensusModule, LogEntry, RequestVoteArgs
from part3.storage import MapStorage


class CrashError(Exception):
    """The storage's server died in the middle of a write."""


class CrashingStorage(MapStorage):
    """A MapStorage that crashes at its ``crash_at``-th write (counting from
    0): that write raises CrashError, and nothing changes the storage after it."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.writes = 0

    def set(self, key: str, value: bytes) -> None:
        if self.crash_at is not None and self.writes >= self.crash_at:
            raise CrashError(f"crashed at write {self.crash_at}")
        self.writes += 1
        super().set(key, value)


class State(NamedTuple):
    """What persistence is about: term, vote and log."""

    term: int
    voted_for: int
    log: tuple[LogEntry, ...]


def state_of(cm: ConsensusModule) -> State:
    return State(cm.current_term, cm.voted_for, tuple(cm.log))


A1, B1, C1, D1 = (LogEntry(c, 1) for c in "abcd")
X3, Y3 = LogEntry("x", 3), LogEntry("y", 3)


Step = Callable[[ConsensusModule], object]
"""One step of a scenario: an RPC delivered to the CM."""


def append(term: int, prev: int, prev_term: int, entries: list[LogEntry]) -> Step:
    args = AppendEntriesArgs(term, 1, prev, prev_term, entries, -1)
    return lambda cm: cm.append_entries(args)


def vote(term: int, candidate: int, last_index: int, last_term: int) -> Step:
    args = RequestVoteArgs(term, candidate, last_index, last_term)
    return lambda cm: cm.request_vote(args)


SCENARIO = [
    # Term 1: leader 1 sends four entries.
    append(1, -1, -1, [A1, B1, C1, D1]),
    # Term 2: we vote for candidate 2, whose log is as long as ours.
    vote(2, 2, 3, 1),
    # Term 3: a new leader's entry x replaces our b, c and d ...
    append(3, 0, 1, [X3]),
    # ... and y is appended after it.
    append(3, 1, 3, [Y3]),
]


def run(storage: CrashingStorage) -> tuple[list[State], list[int]]:
    """Play SCENARIO on a dormant CM until its storage crashes. Return the
    state after each persist_to_storage call (the first: before any), and
    the number of storage writes done by the end of each call."""
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    states = [state_of(cm)]
    writes = [0]
    persist = cm.persist_to_storage

    def persist_and_record(log_changed_from: int | None = None) -> None:
        persist(log_changed_from)
        states.append(state_of(cm))
        writes.append(storage.writes)

    cm.persist_to_storage = persist_and_record  # type: ignore[method-assign]
    try:
        for step in SCENARIO:
            step(cm)
    except CrashError:
        pass
    finally:
        cm.stop()
    return states, writes


def restore(storage: MapStorage) -> State:
    """The state a new incarnation of the CM starts from."""
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    cm.stop()
    return state_of(cm)


def common_prefix(a: tuple[LogEntry, ...], b: tuple[LogEntry, ...]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def allowed(before: State, after: State) -> set[State]:
    """The states a crash in the middle of going from ``before`` to
    ``after`` may leave: either one, or (when the log changes) ``after``'s
    term and vote with the log cut back to what both logs share."""
    cut = after.log[: common_prefix(before.log, after.log)]
    return {before, after, after._replace(log=cut)}


REFERENCE = CrashingStorage()
STATES, WRITES = run(REFERENCE)


def test_the_scenario_overwrites_votes_and_changes_terms() -> None:
    # What the crash test below relies on: the scenario really does all of it.
    assert STATES[-1] == State(3, -1, (A1, X3, Y3))
    assert State(2, 2, (A1, B1, C1, D1)) in STATES


@pytest.mark.parametrize("crash_at", range(REFERENCE.writes + 1))
def test_a_crash_at_any_write_restores_a_state_raft_allows(crash_at: int) -> None:
    storage = CrashingStorage(crash_at)
    run(storage)
    restored = restore(storage)
    if crash_at == REFERENCE.writes:  # no crash: everything was written
        assert restored == STATES[-1]
        return
    # The persist_to_storage call that did write number crash_at:
    call = next(j for j, done in enumerate(WRITES) if done > crash_at)
    assert restored in allowed(STATES[call - 1], STATES[call]), (
        f"crash at write {crash_at}, in the persist that went from "
        f"{STATES[call - 1]} to {STATES[call]}: restored {restored}"
    )
    terms = [entry.term for entry in restored.log]
    assert terms == sorted(terms), f"a log's terms never go down: {restored.log}"
