"""The RPC handlers of part 6, called directly on a dormant CM.

A dormant CM (``ready`` never set, ``server=None``) runs no timer and sends
nothing, so each test sets up a state, delivers one RPC (or one call of
``snapshot``) and looks at the reply and at what changed. Part 3's tests
come first; those of log compaction follow, from "Snapshots" on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from part6.raft import (
    AppendEntriesArgs,
    AppendEntriesReply,
    CMState,
    CommitEntry,
    ConsensusModule,
    InstallSnapshotArgs,
    InstallSnapshotReply,
    LogEntry,
    RequestVoteArgs,
    SnapshotEntry,
)
from part6.storage import MapStorage

A1, B1, C1 = LogEntry("a", 1), LogEntry("b", 1), LogEntry("c", 1)
X2, Y2 = LogEntry("x", 2), LogEntry("y", 2)


@pytest.fixture
def commit_chan() -> queue.Queue[CommitEntry | SnapshotEntry]:
    return queue.Queue()


@pytest.fixture
def storage() -> MapStorage:
    return MapStorage()


@pytest.fixture
def cm(
    commit_chan: queue.Queue[CommitEntry | SnapshotEntry], storage: MapStorage
) -> Iterator[ConsensusModule]:
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), commit_chan)
    yield cm
    cm.stop()


def given(cm: ConsensusModule, term: int, log: list[LogEntry]) -> None:
    with cm.mu:
        cm.current_term = term
        cm.log = list(log)


def ae(
    term: int,
    prev_log_index: int,
    prev_log_term: int,
    entries: list[LogEntry],
    leader_commit: int = -1,
) -> AppendEntriesArgs:
    return AppendEntriesArgs(
        term=term,
        leader_id=1,
        prev_log_index=prev_log_index,
        prev_log_term=prev_log_term,
        entries=entries,
        leader_commit=leader_commit,
    )


def test_append_entries_from_stale_term_is_rejected(cm: ConsensusModule) -> None:
    given(cm, 3, [A1])
    reply = cm.append_entries(ae(2, 0, 1, [X2]))
    assert (reply.term, reply.success) == (3, False)
    assert cm.log == [A1]
    assert cm.current_term == 3


def test_append_entries_with_mismatching_previous_entry_fails(
    cm: ConsensusModule,
) -> None:
    given(cm, 2, [A1, B1])
    # Our entry at index 1 has term 1, not 2.
    assert not cm.append_entries(ae(2, 1, 2, [Y2])).success
    # We have no entry at index 4 at all.
    assert not cm.append_entries(ae(2, 4, 2, [Y2])).success
    assert cm.log == [A1, B1]


def test_append_entries_replaces_only_the_conflicting_suffix(
    cm: ConsensusModule,
) -> None:
    given(cm, 1, [A1, B1, C1])
    reply = cm.append_entries(ae(2, 0, 1, [B1, X2]))
    assert reply.success
    # b matches and stays; c conflicts with x: it and all after it go.
    assert cm.log == [A1, B1, X2]
    assert cm.current_term == 2


def test_delayed_shorter_append_entries_keeps_matching_entries(
    cm: ConsensusModule,
) -> None:
    given(cm, 2, [A1, X2, Y2])
    reply = cm.append_entries(ae(2, 0, 1, [X2]))
    assert reply.success
    assert cm.log == [A1, X2, Y2]


def test_commit_index_stops_at_last_new_entry(
    cm: ConsensusModule, commit_chan: queue.Queue[CommitEntry | SnapshotEntry]
) -> None:
    # Our log goes beyond the entries this request proves we share with the
    # leader: a leader_commit of 5 may only commit up to index 1.
    given(cm, 1, [A1, B1, C1])
    assert cm.append_entries(ae(1, 0, 1, [B1], leader_commit=5)).success
    assert cm.commit_index == 1
    assert commit_chan.get(timeout=1) == CommitEntry("a", 0, 1)
    assert commit_chan.get(timeout=1) == CommitEntry("b", 1, 1)
    # A later request that proves index 2 matches commits it too.
    assert cm.append_entries(ae(1, 1, 1, [C1], leader_commit=5)).success
    assert cm.commit_index == 2
    assert commit_chan.get(timeout=1) == CommitEntry("c", 2, 1)


def test_commit_index_never_moves_back(cm: ConsensusModule) -> None:
    given(cm, 1, [A1, B1, C1])
    assert cm.append_entries(ae(1, 2, 1, [], leader_commit=2)).success
    # An older leader_commit, then a delayed request that proves less.
    assert cm.append_entries(ae(1, 2, 1, [], leader_commit=0)).success
    assert cm.append_entries(ae(1, 0, 1, [], leader_commit=3)).success
    assert cm.commit_index == 2


def test_nothing_is_delivered_once_stop_returns(
    cm: ConsensusModule, commit_chan: queue.Queue[CommitEntry | SnapshotEntry]
) -> None:
    # Hold the commit sender between taking its entries (under mu) and
    # putting them on the channel, and stop the CM right then. Whichever of
    # the two gets on first once we let go, stop() must not return with an
    # entry still to come: a successor may be using the channel.
    given(cm, 1, [A1])
    with cm.commit_chan_mu:
        assert cm.append_entries(ae(1, 0, 1, [], leader_commit=0)).success
        wait_for(lambda: cm.last_applied == 0, "the sender took the entry")
        stopping = threading.Thread(target=cm.stop)
        stopping.start()
        wait_for(lambda: cm.state == CMState.DEAD, "stop() began")
    stopping.join()
    for thread in threading.enumerate():
        if thread.name == "cm0-commit-chan-sender":
            thread.join()
    assert commit_chan.empty()


def test_candidate_steps_down_on_append_entries_of_its_term(
    cm: ConsensusModule,
) -> None:
    with cm.mu:
        cm.current_term, cm.state, cm.voted_for = 2, CMState.CANDIDATE, 0
    assert cm.append_entries(ae(2, -1, -1, [])).success
    assert cm.state == CMState.FOLLOWER
    # It voted for itself in term 2, and still has: no second vote.
    assert cm.voted_for == 0


@pytest.mark.parametrize(
    ("last_log_index", "last_log_term", "granted"),
    [
        (5, 1, False),  # longer, but its last term is older
        (0, 2, False),  # same last term, but shorter
        (1, 2, True),  # same last term, same length
        (0, 3, True),  # later last term, even if shorter
    ],
)
def test_request_vote_needs_an_up_to_date_log(
    cm: ConsensusModule, last_log_index: int, last_log_term: int, granted: bool
) -> None:
    given(cm, 2, [A1, X2])
    args = RequestVoteArgs(
        term=3,
        candidate_id=2,
        last_log_index=last_log_index,
        last_log_term=last_log_term,
    )
    reply = cm.request_vote(args)
    assert (reply.term, reply.vote_granted) == (3, granted)
    assert cm.voted_for == (2 if granted else -1)


def test_request_vote_grants_one_vote_per_term(cm: ConsensusModule) -> None:
    def ask(candidate_id: int) -> bool:
        args = RequestVoteArgs(
            term=1, candidate_id=candidate_id, last_log_index=-1, last_log_term=-1
        )
        return cm.request_vote(args).vote_granted

    assert ask(1)
    assert not ask(2)
    assert ask(1)  # the same candidate may ask again (its reply may be lost)


def test_submit_on_a_follower_or_a_stopped_cm_fails(cm: ConsensusModule) -> None:
    assert cm.submit("x") == -1
    cm.stop()
    assert cm.submit("x") == -1
    assert cm.log == []


# --- Persistence: written before the reply ----------------------------------


def restored(storage: MapStorage) -> ConsensusModule:
    """A new incarnation of the CM, built on the same storage."""
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), queue.Queue())
    cm.stop()
    return cm


def test_granted_vote_is_stored_before_the_reply(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    args = RequestVoteArgs(term=4, candidate_id=2, last_log_index=-1, last_log_term=-1)
    assert cm.request_vote(args).vote_granted
    again = restored(storage)
    assert (again.current_term, again.voted_for) == (4, 2)


def test_appended_entries_are_stored_before_the_reply(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    given(cm, 1, [A1, B1, C1])
    with cm.mu:
        cm.persist_to_storage(log_changed_from=0)
    # Replace the suffix [b, c] by [x]: the stored log must be [a, x], not
    # [a, x, c] (the truncation must be stored too).
    assert cm.append_entries(ae(2, 0, 1, [X2])).success
    again = restored(storage)
    assert again.log == [A1, X2]
    assert again.current_term == 2


def test_submitted_command_is_stored(cm: ConsensusModule, storage: MapStorage) -> None:
    with cm.mu:
        cm.current_term = 3
        cm.state = CMState.LEADER
    assert cm.submit("z") == 0
    assert restored(storage).log == [LogEntry("z", 3)]


# --- Conflict hints (fast log backtracking) ---------------------------------


def test_conflict_hint_when_follower_log_is_too_short(cm: ConsensusModule) -> None:
    given(cm, 2, [A1, B1])
    reply = cm.append_entries(ae(2, 4, 2, [Y2]))
    assert not reply.success
    assert (reply.conflict_index, reply.conflict_term) == (2, -1)


def test_conflict_hint_names_the_conflicting_term_and_its_start(
    cm: ConsensusModule,
) -> None:
    given(cm, 3, [A1, X2, Y2, LogEntry("z", 2)])
    # The leader expects term 3 at index 3; we hold term 2, from index 1 on.
    reply = cm.append_entries(ae(3, 3, 3, []))
    assert not reply.success
    assert (reply.conflict_index, reply.conflict_term) == (1, 2)


@pytest.mark.parametrize(
    ("conflict_index", "conflict_term", "next_index"),
    [
        (2, -1, 2),  # the follower's log ends at 2: resume there
        (3, 3, 3),  # we hold no entry of term 3: skip the follower's run
        (1, 2, 4),  # we hold term 2 up to index 3: resume after it
    ],
)
def test_leader_uses_conflict_hints(
    storage: MapStorage, conflict_index: int, conflict_term: int, next_index: int
) -> None:
    def answer(peer_id: int, service_method: str, args: Any) -> Any:
        return AppendEntriesReply(
            term=5,
            success=False,
            conflict_index=conflict_index,
            conflict_term=conflict_term,
        )

    class Server:
        call = staticmethod(answer)

    cm = ConsensusModule(0, [1, 2], Server(), storage, threading.Event(), queue.Queue())
    try:
        leader_log = [A1, B1, X2, Y2, LogEntry("p", 4), LogEntry("q", 4)]
        given(cm, 5, leader_log)
        with cm.mu:
            cm.state = CMState.LEADER
            cm.next_index[1] = 6
            cm.match_index[1] = -1
        cm.send_append_entries(1, ae(5, 5, 4, []))
        assert cm.next_index[1] == next_index
    finally:
        cm.stop()


def test_logged_append_entries_shows_only_the_ends_of_a_long_list() -> None:
    entries = [LogEntry(i, 1) for i in range(10)]
    short = ae(2, -1, -1, entries[:7])
    assert str(short) == repr(short)
    long = ae(2, -1, -1, entries)
    middle = ", ".join(repr(entry) for entry in entries[3:7])
    assert str(long) == repr(long).replace(middle, "... 4 more ...")


class HungPeer:
    """A server whose calls to peer 1 hang until ``release`` is set, while
    calls to any other peer fail at once; it counts the calls per peer."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.mu = threading.Lock()
        self.calls: dict[int, int] = {}

    def call(self, peer_id: int, service_method: str, args: object) -> object:
        with self.mu:
            self.calls[peer_id] = self.calls.get(peer_id, 0) + 1
        if peer_id == 1:
            self.release.wait()
        raise ConnectionError("no reply")

    def calls_to(self, peer_id: int) -> int:
        with self.mu:
            return self.calls.get(peer_id, 0)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait up to 5 s for ``condition``."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def lead(cm: ConsensusModule) -> None:
    with cm.mu:
        cm.state = CMState.LEADER
        cm.next_index = dict.fromkeys(cm.peer_ids, 0)
        cm.match_index = dict.fromkeys(cm.peer_ids, -1)


def test_a_bounded_commit_channel_is_refused() -> None:
    # The CM never waits for room on its channel: a bounded one could fill
    # up and hold back deliveries, and stop() with them.
    with pytest.raises(ValueError, match="unbounded"):
        ConsensusModule(
            0, [1, 2], None, MapStorage(), threading.Event(), queue.Queue(maxsize=1)
        )


def test_a_hung_peer_does_not_delay_the_others(
    commit_chan: queue.Queue[CommitEntry | SnapshotEntry], storage: MapStorage
) -> None:
    # Every round sends to peers 1 and 2. Calls to peer 1 never return, yet
    # each round's request to peer 2 must still go out: no thread that peer
    # 2's messages need may be held up by peer 1.
    rounds = 40
    server = HungPeer()
    cm = ConsensusModule(0, [1, 2], server, storage, threading.Event(), commit_chan)
    try:
        lead(cm)
        for _ in range(rounds):
            cm.leader_send_aes()
        wait_for(lambda: server.calls_to(2) == rounds, "every round reached peer 2")
        # Each round started a call to peer 1 too (they hang); the last ones
        # may still be on their way to it.
        wait_for(lambda: server.calls_to(1) == rounds, "every round called peer 1")
    finally:
        cm.stop()
        server.release.set()


def test_a_stopped_cm_does_not_answer(cm: ConsensusModule) -> None:
    # A dead server's reply must not reach a leader: the call fails as if
    # the message were lost.
    cm.stop()
    with pytest.raises(ConnectionError):
        cm.append_entries(ae(1, -1, -1, [A1]))
    with pytest.raises(ConnectionError):
        cm.request_vote(RequestVoteArgs(1, 2, -1, -1))
    assert cm.log == []


class Answering:
    """A server whose every call gets ``reply``."""

    def __init__(self, reply: object) -> None:
        self.reply = reply

    def call(self, peer_id: int, service_method: str, args: object) -> object:
        return self.reply


def test_leader_ignores_a_reply_of_an_earlier_term(
    commit_chan: queue.Queue[CommitEntry | SnapshotEntry], storage: MapStorage
) -> None:
    # A failure of an old term, with no conflict hint (as a server that
    # stopped might answer). Acted upon, it would set next_index to -1, and
    # the next request's prev_log_index of -2 would "match" the follower's
    # second-to-last entry (Python's negative indexing).
    server = Answering(AppendEntriesReply(term=1, success=False))
    cm = ConsensusModule(0, [1, 2], server, storage, threading.Event(), commit_chan)
    try:
        given(cm, 2, [A1, X2])
        lead(cm)
        with cm.mu:
            cm.next_index[1] = 2
        cm.send_append_entries(1, ae(2, 1, 2, []))
        assert (cm.state, cm.next_index[1]) == (CMState.LEADER, 2)
    finally:
        cm.stop()


def test_a_refused_vote_keeps_the_election_deadline(cm: ConsensusModule) -> None:
    # A candidate of a later term whose log is behind ours makes us adopt its
    # term, but gets no vote; only a granted vote (or a leader's
    # AppendEntries) may put off our own election.
    given(cm, 2, [A1, X2])
    with cm.mu:
        cm.election_reset_event -= 1.0
        before = cm.election_reset_event
    reply = cm.request_vote(RequestVoteArgs(3, 2, 0, 1))
    assert (reply.term, reply.vote_granted) == (3, False)
    assert cm.election_reset_event == before


# --- Snapshots ----------------------------------------------------------------

D1, E1 = LogEntry("d", 1), LogEntry("e", 1)


def based(cm: ConsensusModule, index: int, term: int, data: bytes = b"") -> None:
    """Give ``cm`` a snapshot up to ``index`` (of ``term``), as if its
    service had applied it: its log must then hold only later entries."""
    with cm.mu:
        cm.last_included_index, cm.last_included_term = index, term
        cm.snapshot_data = data
        cm.commit_index = cm.last_applied = index


def install(
    term: int, index: int, index_term: int, data: bytes = b"snap"
) -> InstallSnapshotArgs:
    return InstallSnapshotArgs(
        term=term,
        leader_id=1,
        last_included_index=index,
        last_included_term=index_term,
        data=data,
    )


def base_of(cm: ConsensusModule) -> tuple[int, int, bytes]:
    return cm.last_included_index, cm.last_included_term, cm.snapshot_data


def deliveries(
    commit_chan: queue.Queue[CommitEntry | SnapshotEntry], n: int
) -> list[CommitEntry | SnapshotEntry]:
    """The next ``n`` things the CM delivers."""
    return [commit_chan.get(timeout=1) for _ in range(n)]


def test_install_snapshot_keeps_the_log_after_its_last_entry(
    cm: ConsensusModule, commit_chan: queue.Queue[CommitEntry | SnapshotEntry]
) -> None:
    # Our log holds the snapshot's last entry (b, term 1 at index 1): the
    # entries after it are the leader's too, and stay.
    given(cm, 1, [A1, B1, C1, D1])
    reply = cm.install_snapshot(install(1, 1, 1, b"ab"))
    assert reply == InstallSnapshotReply(term=1)
    assert cm.log == [C1, D1]
    assert base_of(cm) == (1, 1, b"ab")
    assert (cm.commit_index, cm.last_applied) == (1, 1)
    assert deliveries(commit_chan, 1) == [SnapshotEntry(b"ab", 1, 1)]


def test_install_snapshot_discards_a_log_that_conflicts_with_it(
    cm: ConsensusModule, commit_chan: queue.Queue[CommitEntry | SnapshotEntry]
) -> None:
    # Our entry at index 1 is of term 1, the snapshot's of term 2: ours and
    # everything after it were never committed. The whole log goes.
    given(cm, 2, [A1, B1, C1])
    assert cm.install_snapshot(install(2, 1, 2, b"ax")).term == 2
    assert cm.log == []
    assert base_of(cm) == (1, 2, b"ax")
    assert deliveries(commit_chan, 1) == [SnapshotEntry(b"ax", 1, 2)]


def test_install_snapshot_discards_a_log_that_ends_before_it(
    cm: ConsensusModule,
) -> None:
    given(cm, 1, [A1])
    cm.install_snapshot(install(1, 3, 1, b"abcd"))
    assert cm.log == []
    assert base_of(cm) == (3, 1, b"abcd")
    assert cm.last_log_index_and_term() == (3, 1)


def test_stale_install_snapshot_changes_nothing(
    cm: ConsensusModule, commit_chan: queue.Queue[CommitEntry | SnapshotEntry]
) -> None:
    # We know index 2 is committed: a snapshot up to 1 (a delayed message)
    # brings nothing new, and must not cut our log or rewind our service.
    given(cm, 1, [A1, B1, C1])
    assert cm.append_entries(ae(1, 2, 1, [], leader_commit=2)).success
    assert [e.index for e in deliveries(commit_chan, 3)] == [0, 1, 2]
    assert cm.install_snapshot(install(1, 1, 1)).term == 1
    assert cm.log == [A1, B1, C1]
    assert base_of(cm) == (-1, -1, b"")
    assert (cm.commit_index, cm.last_applied) == (2, 2)
    time.sleep(0.05)
    assert commit_chan.empty()


def test_install_snapshot_of_an_older_term_is_refused(cm: ConsensusModule) -> None:
    given(cm, 3, [A1])
    assert cm.install_snapshot(install(2, 4, 2)).term == 3
    assert cm.log == [A1]
    assert base_of(cm) == (-1, -1, b"")


def test_install_snapshot_of_a_later_term_is_taken_by_a_candidate(
    cm: ConsensusModule,
) -> None:
    # Like an AppendEntries: it comes from the leader of a later term.
    with cm.mu:
        cm.current_term, cm.state, cm.voted_for = 2, CMState.CANDIDATE, 0
    assert cm.install_snapshot(install(3, 0, 3)).term == 3
    assert (cm.state, cm.current_term, cm.voted_for) == (CMState.FOLLOWER, 3, -1)
    assert base_of(cm) == (0, 3, b"snap")


def test_snapshot_drops_the_entries_it_covers(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    given(cm, 1, [A1, B1, C1, D1])
    assert cm.append_entries(ae(1, 3, 1, [], leader_commit=2)).success
    wait_for(lambda: cm.last_applied == 2, "a, b and c are delivered")
    cm.snapshot(1, b"ab")
    assert cm.log == [C1, D1]
    assert base_of(cm) == (1, 1, b"ab")
    assert cm.last_log_index_and_term() == (3, 1)
    # Indices stay absolute: c is still at index 2.
    assert cm.term_at(2) == 1
    assert cm.log[cm.position(2)] == C1


@pytest.mark.parametrize("index", [1, 0, -1], ids=["at", "below", "none"])
def test_snapshot_at_or_below_the_base_is_ignored(
    cm: ConsensusModule, index: int
) -> None:
    given(cm, 1, [C1, D1])
    based(cm, 1, 1, b"ab")
    cm.snapshot(index, b"older")
    assert cm.log == [C1, D1]
    assert base_of(cm) == (1, 1, b"ab")


def test_snapshot_past_the_delivered_index_is_refused(cm: ConsensusModule) -> None:
    # Index 1 is in the log but not committed, so never delivered: the
    # service cannot have applied it.
    given(cm, 1, [A1, B1])
    assert cm.append_entries(ae(1, 1, 1, [], leader_commit=0)).success
    wait_for(lambda: cm.last_applied == 0, "a is delivered")
    with pytest.raises(ValueError, match="only up to 0 was delivered"):
        cm.snapshot(1, b"ab")
    assert cm.log == [A1, B1]


def test_a_stopped_cm_ignores_snapshot_and_does_not_answer_install(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    given(cm, 1, [A1, B1])
    assert cm.append_entries(ae(1, 1, 1, [], leader_commit=1)).success
    wait_for(lambda: cm.last_applied == 1, "a and b are delivered")
    cm.stop()
    cm.snapshot(1, b"ab")
    with pytest.raises(ConnectionError):
        cm.install_snapshot(install(1, 3, 1))
    assert base_of(cm) == (-1, -1, b"")
    assert storage.get("snapshot") is None


def test_append_entries_at_the_base_matches_its_term(cm: ConsensusModule) -> None:
    # Our log is empty after a snapshot up to index 1 (term 1): the entry
    # before x is the base, and its term is the snapshot's.
    given(cm, 2, [])
    based(cm, 1, 1)
    assert cm.append_entries(ae(2, 1, 1, [X2])).success
    assert cm.log == [X2]
    assert cm.last_log_index_and_term() == (2, 2)
    # A wrong term at the base fails.
    assert not cm.append_entries(ae(2, 1, 2, [Y2])).success


def test_append_entries_skips_the_entries_the_snapshot_covers(
    cm: ConsensusModule,
) -> None:
    # A delayed request from index 0 on: a and b are in our snapshot, c is
    # in our log; only d is new.
    given(cm, 1, [C1])
    based(cm, 1, 1)
    assert cm.append_entries(ae(1, -1, -1, [A1, B1, C1, D1], leader_commit=3)).success
    assert cm.log == [C1, D1]
    assert cm.commit_index == 3


def test_append_entries_entirely_before_the_base_changes_nothing(
    cm: ConsensusModule,
) -> None:
    given(cm, 1, [C1])
    based(cm, 1, 1)
    assert cm.append_entries(ae(1, -1, -1, [A1])).success
    assert cm.log == [C1]
    assert cm.commit_index == 1


def test_conflict_hints_count_from_the_base(cm: ConsensusModule) -> None:
    # Entries 0-2 are in our snapshot; our log holds x and y (term 2) at 3
    # and 4.
    given(cm, 3, [X2, Y2])
    based(cm, 2, 1)
    too_short = cm.append_entries(ae(3, 6, 3, []))
    assert (too_short.conflict_index, too_short.conflict_term) == (5, -1)
    # Our run of term 2 starts right after the base, not at index 0.
    other_term = cm.append_entries(ae(3, 4, 3, []))
    assert (other_term.conflict_index, other_term.conflict_term) == (3, 2)


class Recording:
    """A server that records every call, and answers it with the reply
    ``replies`` has for its method."""

    def __init__(self, replies: dict[str, object]) -> None:
        self.replies = replies
        self.mu = threading.Lock()
        self.calls: list[tuple[int, str, Any]] = []

    def call(self, peer_id: int, service_method: str, args: Any) -> object:
        with self.mu:
            self.calls.append((peer_id, service_method, args))
        return self.replies[service_method]


def test_leader_sends_its_snapshot_to_a_follower_behind_its_base(
    commit_chan: queue.Queue[CommitEntry | SnapshotEntry], storage: MapStorage
) -> None:
    # Our log starts after index 3; follower 1 needs index 2 next, which
    # only our snapshot holds. Follower 2 needs index 4, which we have.
    server = Recording(
        {
            "ConsensusModule.InstallSnapshot": InstallSnapshotReply(term=5),
            "ConsensusModule.AppendEntries": AppendEntriesReply(term=5, success=True),
        }
    )
    cm = ConsensusModule(0, [1, 2], server, storage, threading.Event(), commit_chan)
    try:
        given(cm, 5, [E1])
        based(cm, 3, 1, b"abcd")
        lead(cm)
        with cm.mu:
            cm.next_index = {1: 2, 2: 4}
        cm.leader_send_aes()
        wait_for(lambda: cm.next_index[1] == 4, "follower 1's snapshot is installed")
        wait_for(lambda: len(server.calls) == 2, "follower 2 got its entries")
        with server.mu:
            sent = {peer: (method, args) for peer, method, args in server.calls}
        assert sent[1] == (
            "ConsensusModule.InstallSnapshot",
            InstallSnapshotArgs(5, 0, 3, 1, b"abcd"),
        )
        assert sent[2][0] == "ConsensusModule.AppendEntries"
        assert (sent[2][1].prev_log_index, sent[2][1].prev_log_term) == (3, 1)
        assert sent[2][1].entries == [E1]
        assert cm.match_index[1] == 3
    finally:
        cm.stop()


def test_leader_steps_down_on_an_install_snapshot_reply_of_a_later_term(
    commit_chan: queue.Queue[CommitEntry | SnapshotEntry], storage: MapStorage
) -> None:
    server = Answering(InstallSnapshotReply(term=7))
    cm = ConsensusModule(0, [1, 2], server, storage, threading.Event(), commit_chan)
    try:
        given(cm, 5, [])
        based(cm, 3, 1, b"abcd")
        lead(cm)
        cm.send_install_snapshot(1, InstallSnapshotArgs(5, 0, 3, 1, b"abcd"))
        assert (cm.state, cm.current_term) == (CMState.FOLLOWER, 7)
    finally:
        cm.stop()


def stored(cm: ConsensusModule) -> None:
    """Save what ``given`` set up, as the CM would have."""
    with cm.mu:
        cm.persist_to_storage()
        cm.persist_to_storage(log_changed_from=0)


def test_snapshot_and_its_base_are_stored(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    given(cm, 1, [A1, B1, C1])
    stored(cm)
    assert cm.append_entries(ae(1, 2, 1, [], leader_commit=1)).success
    wait_for(lambda: cm.last_applied == 1, "a and b are delivered")
    cm.snapshot(1, b"ab")
    again = restored(storage)
    assert base_of(again) == (1, 1, b"ab")
    assert again.log == [C1]
    # The entries the snapshot covers are deleted from storage.
    assert storage.get("log/0") is None
    assert storage.get("log/1") is None


def test_installed_snapshot_is_stored_before_the_reply(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    given(cm, 2, [A1, B1, C1])
    stored(cm)
    cm.install_snapshot(install(2, 1, 2, b"ax"))
    again = restored(storage)
    assert base_of(again) == (1, 2, b"ax")
    assert again.log == []  # the stale c is not read back after the base


def test_a_restarted_cm_delivers_its_snapshot_first(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    given(cm, 1, [A1, B1, C1])
    stored(cm)
    assert cm.append_entries(ae(1, 2, 1, [], leader_commit=1)).success
    wait_for(lambda: cm.last_applied == 1, "a and b are delivered")
    cm.snapshot(1, b"ab")
    cm.stop()

    commit_chan: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
    again = ConsensusModule(0, [1, 2], None, storage, threading.Event(), commit_chan)
    try:
        # The snapshot is committed: it comes first, then what a leader
        # says is committed after it.
        assert deliveries(commit_chan, 1) == [SnapshotEntry(b"ab", 1, 1)]
        assert (again.commit_index, again.last_applied) == (1, 1)
        assert again.append_entries(ae(1, 2, 1, [], leader_commit=2)).success
        assert deliveries(commit_chan, 1) == [CommitEntry("c", 2, 1)]
    finally:
        again.stop()


def test_logged_snapshots_show_the_length_of_their_data() -> None:
    args = InstallSnapshotArgs(2, 1, 9, 1, b"x" * 100)
    assert str(args) == (
        "InstallSnapshotArgs(term=2, leader_id=1, last_included_index=9, "
        "last_included_term=1, data=<100 bytes>)"
    )
    entry = SnapshotEntry(b"xyz", 9, 1)
    assert str(entry) == "SnapshotEntry(data=<3 bytes>, index=9, term=1)"
