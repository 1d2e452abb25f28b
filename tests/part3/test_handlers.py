"""The RPC handlers of part 3, called directly on a dormant CM.

A dormant CM (``ready`` never set, ``server=None``) runs no timer and sends
nothing, so each test sets up a state, delivers one RPC and looks at the
reply and at what changed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from part3.raft import (
    AppendEntriesArgs,
    AppendEntriesReply,
    CMState,
    CommitEntry,
    ConsensusModule,
    LogEntry,
    RequestVoteArgs,
)
from part3.storage import MapStorage

A1, B1, C1 = LogEntry("a", 1), LogEntry("b", 1), LogEntry("c", 1)
X2, Y2 = LogEntry("x", 2), LogEntry("y", 2)


@pytest.fixture
def commit_chan() -> queue.Queue[CommitEntry]:
    return queue.Queue()


@pytest.fixture
def storage() -> MapStorage:
    return MapStorage()


@pytest.fixture
def cm(
    commit_chan: queue.Queue[CommitEntry], storage: MapStorage
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
    cm: ConsensusModule, commit_chan: queue.Queue[CommitEntry]
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
    cm: ConsensusModule, commit_chan: queue.Queue[CommitEntry]
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
    commit_chan: queue.Queue[CommitEntry], storage: MapStorage
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
    commit_chan: queue.Queue[CommitEntry], storage: MapStorage
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
