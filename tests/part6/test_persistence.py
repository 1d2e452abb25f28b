"""Persistence survives a crash at any instant, and a failed write.

A server can die between any two writes (``Storage.set`` or ``delete``).
These tests crash a CM's storage at its k-th write, for every k through a
scenario of appends, votes, snapshots and installed snapshots, and check
that what a new incarnation restores from what is left is a state Raft
allows: the state before the write that was cut short, the state after it,
or, while a conflicting suffix is being replaced, the log cut back to the
entries that stay. Never a new term with the vote of an old one, never a
new entry followed by the stale ones it replaced, never a snapshot with
another snapshot's base, and never a base whose following entries are gone.

A write can also fail while the server lives on (a full disk). Then the CM
must stop as if it had crashed: the same tests make the k-th write fail
once, with later writes working again, and check that the CM answers and
writes nothing more, so that what it left is again a state Raft allows.
"""

from __future__ import annotations

import errno
import queue
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import pytest

from part6.harness import Harness
from part6.raft import (
    AppendEntriesArgs,
    CMState,
    ConsensusModule,
    InstallSnapshotArgs,
    LogEntry,
    RequestVoteArgs,
    StorageFailedError,
)
from part6.storage import MapStorage


class CrashError(Exception):
    """The storage's server died in the middle of a write."""


class CrashingStorage(MapStorage):
    """A MapStorage that crashes at its ``crash_at``-th write or delete
    (counting from 0): that write raises CrashError, and nothing changes the
    storage after it."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.writes = 0

    def set(self, key: str, value: bytes) -> None:
        self.count_write()
        super().set(key, value)

    def delete(self, key: str) -> None:
        self.count_write()
        super().delete(key)

    def count_write(self) -> None:
        if self.crash_at is not None and self.writes >= self.crash_at:
            raise CrashError(f"crashed at write {self.crash_at}")
        self.writes += 1


class State(NamedTuple):
    """What persistence is about: term, vote, the snapshot and its base
    (index and term), and the log after the base."""

    term: int
    voted_for: int
    base: int
    base_term: int
    snapshot: bytes
    log: tuple[LogEntry, ...]

    def entry(self, index: int) -> LogEntry | None:
        """The entry at ``index`` if the log holds it."""
        position = index - self.base - 1
        return self.log[position] if 0 <= position < len(self.log) else None


def state_of(cm: ConsensusModule) -> State:
    base = (cm.last_included_index, cm.last_included_term, cm.snapshot_data)
    return State(cm.current_term, cm.voted_for, *base, tuple(cm.log))


A1, B1, C1, D1 = (LogEntry(c, 1) for c in "abcd")
X3, Y3 = LogEntry("x", 3), LogEntry("y", 3)
P4, Q4 = LogEntry("p", 4), LogEntry("q", 4)
R5 = LogEntry("r", 5)


Step = Callable[[ConsensusModule], object]
"""One step of a scenario: an RPC delivered to the CM, or a snapshot its
service takes."""


def append(
    term: int, prev: int, prev_term: int, entries: list[LogEntry], commit: int = -1
) -> Step:
    args = AppendEntriesArgs(term, 1, prev, prev_term, entries, commit)
    return lambda cm: cm.append_entries(args)


def vote(term: int, candidate: int, last_index: int, last_term: int) -> Step:
    args = RequestVoteArgs(term, candidate, last_index, last_term)
    return lambda cm: cm.request_vote(args)


def install(term: int, index: int, index_term: int, data: bytes) -> Step:
    args = InstallSnapshotArgs(term, 1, index, index_term, data)
    return lambda cm: cm.install_snapshot(args)


def snapshot(index: int, data: bytes) -> Step:
    """The service snapshots at ``index``, once the CM delivered it (a
    stopped CM delivers nothing, and ignores the call)."""

    def step(cm: ConsensusModule) -> None:
        deadline = time.monotonic() + 5
        while cm.last_applied < index and cm.state != CMState.DEAD:
            assert time.monotonic() < deadline, f"index {index} never delivered"
            time.sleep(0.001)
        cm.snapshot(index, data)

    return step


SCENARIO = [
    # Term 1: leader 1 sends four entries, and a and b are committed.
    append(1, -1, -1, [A1, B1, C1, D1], commit=1),
    # Our service snapshots a and b.
    snapshot(1, b"ab"),
    # Term 2: we vote for candidate 2, whose log is as long as ours.
    vote(2, 2, 3, 1),
    # Term 3: the new leader's snapshot up to c: our log holds c, so d stays.
    install(3, 2, 1, b"abc"),
    # Its entry x, after d ...
    append(3, 3, 1, [X3]),
    # ... and its snapshot up to index 5, which our log lacks: it goes.
    install(3, 5, 3, b"abcdxy"),
    # Term 4: a leader's p and q, at 6 and 7 ...
    append(4, 5, 3, [P4, Q4]),
    # ... but term 5's snapshot has r at 6: p conflicts, and the log goes.
    install(5, 6, 5, b"abcdxyr"),
    # A new entry at 7 takes the place of the stale q.
    append(5, 6, 5, [LogEntry("s", 5)]),
    # A delayed snapshot, older than what we know is committed: no change.
    install(5, 2, 1, b"abc"),
]

SNAPSHOT_STEPS = {1}
"""The steps that are no RPC: a stopped CM ignores them instead of failing."""


def run(
    storage: CrashingStorage, cm_class: type[ConsensusModule] = ConsensusModule
) -> tuple[list[State], list[int]]:
    """Play SCENARIO on a dormant CM until its storage crashes. Return the
    state after each persist_to_storage or persist_snapshot call (the
    first: before any), and the number of storage writes done by the end of
    each call."""
    cm = cm_class(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    states = [state_of(cm)]
    writes = [0]
    persist, persist_snapshot = cm.persist_to_storage, cm.persist_snapshot

    def record() -> None:
        states.append(state_of(cm))
        writes.append(storage.writes)

    def persist_and_record(log_changed_from: int | None = None) -> None:
        persist(log_changed_from)
        record()

    def persist_snapshot_and_record(discarded_log: bool = False) -> None:
        persist_snapshot(discarded_log)
        record()

    cm.persist_to_storage = persist_and_record  # type: ignore[method-assign]
    cm.persist_snapshot = persist_snapshot_and_record  # type: ignore[method-assign]
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
    ``after`` may leave: either one; when the log changes and the base does
    not, ``after``'s term and vote with the log cut back to what both logs
    share; when a new base drops a log with another entry at its index,
    ``before`` with its log cut back to the entries before that index."""
    states = {before, after}
    if before.base == after.base:
        cut = after.log[: common_prefix(before.log, after.log)]
        states.add(after._replace(log=cut))
    elif (stale := before.entry(after.base)) and stale.term != after.base_term:
        states.add(before._replace(log=before.log[: after.base - before.base - 1]))
    return states


REFERENCE = CrashingStorage()
STATES, WRITES = run(REFERENCE)


def test_the_scenario_snapshots_installs_and_changes_terms() -> None:
    # What the crash test below relies on: the scenario really does all of
    # it, and ends with the stale q and the ignored snapshot behind it.
    assert STATES[-1] == State(5, -1, 6, 5, b"abcdxyr", (LogEntry("s", 5),))
    assert State(2, 2, 1, 1, b"ab", (C1, D1)) in STATES
    assert State(3, -1, 2, 1, b"abc", (D1,)) in STATES
    assert State(3, -1, 5, 3, b"abcdxy", ()) in STATES
    assert State(4, -1, 5, 3, b"abcdxy", (P4, Q4)) in STATES
    # Every entry at or below the base is gone from storage.
    stored = {key for key in REFERENCE.m if key.startswith("log/")}
    assert stored == {"log/7"}


def check_crash_at(
    crash_at: int, cm_class: type[ConsensusModule] = ConsensusModule
) -> None:
    """Crash SCENARIO at write ``crash_at`` of a ``cm_class``, and check
    what a new incarnation restores."""
    reference = CrashingStorage()
    states, writes = run(reference, cm_class)
    storage = CrashingStorage(crash_at)
    run(storage, cm_class)
    restored = restore(storage)
    if crash_at == reference.writes:  # no crash: everything was written
        assert restored == states[-1]
        return
    # The persist_to_storage or persist_snapshot call that did write number
    # crash_at:
    call = next(j for j, done in enumerate(writes) if done > crash_at)
    assert restored in allowed(states[call - 1], states[call]), (
        f"crash at write {crash_at}, in the persist that went from "
        f"{states[call - 1]} to {states[call]}: restored {restored}"
    )
    terms = [restored.base_term, *(entry.term for entry in restored.log)]
    assert terms == sorted(terms), f"a log's terms never go down: {restored}"


@pytest.mark.parametrize("crash_at", range(REFERENCE.writes + 1))
def test_a_crash_at_any_write_restores_a_state_raft_allows(crash_at: int) -> None:
    check_crash_at(crash_at)


class FailingStorage(MapStorage):
    """A MapStorage whose ``fail_at``-th write or delete (counting from 0)
    fails with "No space left on device"; the writes after it work again,
    as on a disk where space was freed meanwhile."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.writes = 0  # the writes done, and the one that failed

    def set(self, key: str, value: bytes) -> None:
        self.count_write()
        super().set(key, value)

    def delete(self, key: str) -> None:
        self.count_write()
        super().delete(key)

    def count_write(self) -> None:
        self.writes += 1
        if self.writes - 1 == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")


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
    # The step during which the write failed, and every RPC after it, got
    # no answer (a stopped CM ignores a snapshot); the writes stopped with
    # the failed one.
    failed_step = next(s for s, done in enumerate(STEP_WRITES) if done > fail_at)
    assert answered == [
        s < failed_step or (s > failed_step and s in SNAPSHOT_STEPS)
        for s in range(len(SCENARIO))
    ]
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


def test_entries_a_crash_leaves_below_the_base_go_with_the_next_snapshot() -> None:
    # The crash comes after the snapshot is written, while the entries it
    # covers are deleted: b stays behind. The next snapshot deletes it.
    storage = CrashingStorage()
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    append(1, -1, -1, [A1, B1, C1, D1], commit=1)(cm)
    storage.crash_at = storage.writes + 2  # the snapshot, log/0, then log/1
    with pytest.raises(StorageFailedError):
        snapshot(1, b"ab")(cm)
    cm.stop()
    assert storage.get("log/1") is not None
    assert restore(storage) == State(1, -1, 1, 1, b"ab", (C1, D1))

    storage.crash_at = None
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    try:
        append(1, 3, 1, [], commit=3)(cm)
        snapshot(3, b"abcd")(cm)
    finally:
        cm.stop()
    assert not [key for key in storage.m if key.startswith("log/")]


class CutFirstCM(ConsensusModule):
    """BUG: deletes the entries a snapshot covers before it saves the
    snapshot: the log cut is persisted before the snapshot."""

    def persist_snapshot(self, discarded_log: bool = False) -> None:
        base = self.last_included_index
        try:
            for i in range(self.saved_log_start, min(self.saved_log_length, base + 1)):
                self.storage.delete(f"log/{i}")
        except Exception as error:
            self.fail_stop(error)
        self.saved_log_start = base + 1
        super().persist_snapshot(discarded_log)


def test_a_log_cut_persisted_before_the_snapshot_is_caught() -> None:
    # The crash test must fail on the planted bug: a crash between the
    # deletes and the snapshot leaves the old base with an entry after it
    # gone, and the storage cannot be restored at all.
    failures: dict[int, str] = {}
    for crash_at in range(REFERENCE.writes):
        try:
            check_crash_at(crash_at, CutFirstCM)
        except (AssertionError, RuntimeError) as error:
            failures[crash_at] = str(error)
    assert failures, "no crash shows the planted bug"
    assert all("storage has no 'log/" in e for e in failures.values()), failures
