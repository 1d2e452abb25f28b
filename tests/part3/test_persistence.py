"""Persistence survives a crash at any instant, and a failed write.

A server can die between any two ``Storage.set`` calls. These tests crash a
CM's storage after its k-th write, for every k through a scenario, and check
that what a new incarnation restores from what is left is a state Raft
allows: the state before the write that was cut short, the state after it,
or, while a conflicting suffix is being replaced, the log cut back to the
entries that stay. Never a new term with the vote of an old one, and never a
new entry followed by the stale ones it replaced.

A write can also fail while the server lives on (a full disk). Then the CM
must stop as if it had crashed: the same tests make the k-th write fail
once, with later writes working again, and check that the CM answers and
writes nothing more, so that what it left is again a state Raft allows.
"""

from __future__ import annotations

import errno
import queue
import threading
from collections.abc import Callable
from typing import NamedTuple

import pytest

from part3.harness import Harness
from part3.raft import (
    AppendEntriesArgs,
    CMState,
    ConsensusModule,
    LogEntry,
    RequestVoteArgs,
    StorageFailedError,
)
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
    except StorageFailedError:  # the storage crashed: so did the CM
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


class FailingStorage(MapStorage):
    """A MapStorage whose ``fail_at``-th write (counting from 0) fails with
    "No space left on device"; the writes after it work again, as on a disk
    where space was freed meanwhile."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.writes = 0  # the writes done, and the one that failed

    def set(self, key: str, value: bytes) -> None:
        self.writes += 1
        if self.writes - 1 == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().set(key, value)


def writes_by_step() -> list[int]:
    """The number of storage writes done by the end of each SCENARIO step."""
    storage = CrashingStorage()
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    done: list[int] = []
    for step in SCENARIO:
        step(cm)
        done.append(storage.writes)
    cm.stop()
    return done


STEP_WRITES = writes_by_step()


@pytest.mark.parametrize("fail_at", range(REFERENCE.writes))
def test_a_failed_write_stops_the_cm_in_a_state_raft_allows(fail_at: int) -> None:
    storage = FailingStorage(fail_at)
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    answered: list[bool] = []
    try:
        for step in SCENARIO:
            try:
                step(cm)
                answered.append(True)
            except ConnectionError:
                answered.append(False)
    finally:
        cm.stop()
    # The step during which the write failed, and every step after it, got
    # no answer; the writes stopped with the failed one.
    failed_step = next(s for s, done in enumerate(STEP_WRITES) if done > fail_at)
    assert answered == [s < failed_step for s in range(len(SCENARIO))]
    assert storage.writes == fail_at + 1
    assert cm.state == CMState.DEAD
    assert isinstance(cm.storage_error, OSError)
    # A new incarnation restores a state Raft allows, as after a crash.
    restored = restore(storage)
    call = next(j for j, done in enumerate(WRITES) if done > fail_at)
    assert restored in allowed(STATES[call - 1], STATES[call])


def test_a_leader_whose_write_fails_accepts_no_more_commands() -> None:
    # The leader's second command fails to reach storage: it is refused,
    # and so is every later one, so that no command ever sits on disk after
    # a hole (a restart would find no entry at index 1).
    storage = FailingStorage(fail_at=2)  # log/0, logLength, then log/1
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    try:
        with cm.mu:
            cm.state = CMState.LEADER
        assert cm.submit("a") == 0
        assert cm.submit("b") == -1
        assert cm.submit("c") == -1
        assert cm.state == CMState.DEAD
    finally:
        cm.stop()
    assert storage.writes == 3
    assert restore(storage).log == (LogEntry("a", 0),)


def test_a_failed_write_is_reported_as_no_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = FailingStorage(fail_at=0)
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    try:
        with pytest.raises(StorageFailedError, match="No space left on device"):
            cm.request_vote(RequestVoteArgs(1, 1, -1, -1))
    finally:
        cm.stop()
    # The log says once that it died, and why; stop() found it dead already.
    deaths = [m for r in caplog.records if "becomes Dead" in (m := r.getMessage())]
    assert deaths == [
        "[0] becomes Dead: storage write failed: [Errno 28] No space left on device"
    ]


def test_a_leader_whose_write_fails_stops_and_a_restart_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Harness(3) as h:
        leader, _ = h.check_single_leader()
        assert h.submit_to_server(leader, 1) == 0
        h.check_committed_n(1, 3)

        # The leader's disk is full for one write: the next command's.
        storage = h.storage[leader]
        real_set = storage.set
        failed = False

        def set_or_fail(key: str, value: bytes) -> None:
            nonlocal failed
            if not failed:
                failed = True
                raise OSError(errno.ENOSPC, "No space left on device")
            real_set(key, value)

        monkeypatch.setattr(storage, "set", set_or_fail)
        assert h.submit_to_server(leader, 2) == -1
        # It stopped: the disk works again, but it takes no more commands.
        assert h.submit_to_server(leader, 3) == -1
        assert h.cluster[leader].cm.state == CMState.DEAD

        # The others elect a leader and go on; then the stopped server is
        # restarted on its storage, which holds a log without a hole.
        h.crash_peer(leader)
        new_leader, _ = h.check_single_leader()
        assert h.submit_to_server(new_leader, 4) == 1
        h.check_committed_n(4, 2)
        h.restart_peer(leader)
        h.check_committed_n(4, 3)
        assert [entry.command for entry in h.delivered(leader)] == [1, 4]
