"""Tests of part 6: those of part 3, on a cluster that never snapshots (the
scenarios with snapshots are in test_snapshots.py and test_chaos.py).

Positive checks (a leader exists) wait for the condition with a deadline;
negative checks (no leader) keep a fixed wait, since nothing can prove a
negative sooner. Fixed sleeps that remain are part of a scenario: they give
a partitioned server time to run elections, or a healed cluster the chance to
misbehave.
"""

from __future__ import annotations

import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from part6.harness import Harness, sleep_ms
from part6.raft import (
    CMState,
    CommitEntry,
    ConsensusModule,
    RequestVoteArgs,
    RequestVoteReply,
    SnapshotEntry,
)
from part6.storage import MapStorage

ROOT = Path(__file__).resolve().parents[2]


def test_election_basic() -> None:
    with Harness(3) as h:
        h.check_single_leader()


def test_election_leader_disconnect() -> None:
    with Harness(3) as h:
        orig_leader_id, orig_term = h.check_single_leader()

        h.disconnect_peer(orig_leader_id)
        new_leader_id, new_term = h.check_single_leader()
        assert new_leader_id != orig_leader_id
        assert new_term > orig_term


def test_election_leader_and_another_disconnect() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()

        h.disconnect_peer(orig_leader_id)
        other_id = (orig_leader_id + 1) % 3
        h.disconnect_peer(other_id)

        # No quorum: the one connected server cannot win an election.
        sleep_ms(450)
        h.check_no_leader()

        # Reconnect one other server; now there is a quorum.
        h.reconnect_peer(other_id)
        h.check_single_leader()


def test_disconnect_all_then_restore() -> None:
    with Harness(3) as h:
        # Disconnect every server before any election timeout can fire.
        for i in range(3):
            h.disconnect_peer(i)
        sleep_ms(450)
        # Nobody is connected, so check every server, not just connected ones:
        # none may have become leader without votes.
        for server in h.cluster:
            _, term, is_leader = server.cm.report()
            assert not is_leader, f"server {server.server_id} leads term {term}"

        # Reconnect all servers. A leader will be found.
        for i in range(3):
            h.reconnect_peer(i)
        h.check_single_leader()


def leader_disconnect_then_reconnect(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # That the new leader keeps its place is the point here, and a lossy
    # network can take it away on its own: a follower that misses two
    # heartbeats in a row starts an election. So the network is reliable.
    monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)
    with Harness(n) as h:
        orig_leader_id, _ = h.check_single_leader()

        h.disconnect_peer(orig_leader_id)
        new_leader_id, new_term = h.check_single_leader()

        # The old leader comes back: it must learn the new term and follow,
        # not disrupt the new leader.
        h.reconnect_peer(orig_leader_id)
        sleep_ms(150)
        again_leader_id, again_term = h.check_single_leader()
        assert again_leader_id == new_leader_id
        assert again_term == new_term


def test_election_leader_disconnect_then_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leader_disconnect_then_reconnect(3, monkeypatch)


def test_election_leader_disconnect_then_reconnect5(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leader_disconnect_then_reconnect(5, monkeypatch)


def test_election_follower_comes_back() -> None:
    with Harness(3) as h:
        orig_leader_id, orig_term = h.check_single_leader()

        # A partitioned follower keeps timing out and raising its term.
        other_id = (orig_leader_id + 1) % 3
        h.disconnect_peer(other_id)
        sleep_ms(650)
        h.reconnect_peer(other_id)

        # Its higher term makes the leader step down, so a new election must
        # happen. Which server wins depends on the timeouts; the term tells:
        # the check fails if no leader of a later term shows up.
        h.check_single_leader(min_term=orig_term + 1)


def test_election_disconnect_loop() -> None:
    with Harness(3) as h:
        for _ in range(5):
            leader_id, _ = h.check_single_leader()

            h.disconnect_peer(leader_id)
            other_id = (leader_id + 1) % 3
            h.disconnect_peer(other_id)
            sleep_ms(310)
            h.check_no_leader()

            # Reconnect both, and give the cluster time to settle.
            h.reconnect_peer(other_id)
            h.reconnect_peer(leader_id)
            sleep_ms(150)


# --- Commands and log replication ------------------------------------------


def test_commit_one_command() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()

        assert h.submit_to_server(orig_leader_id, 42) != -1
        h.check_committed_n(42, 3)


def test_submit_non_leader_fails() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()

        sid = (orig_leader_id + 1) % 3
        assert h.submit_to_server(sid, 42) == -1
        sleep_ms(10)


def test_commit_multiple_commands() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()

        for value in (42, 55, 81):
            assert h.submit_to_server(orig_leader_id, value) != -1
            sleep_ms(100)

        nc, i1 = h.check_committed(42)
        _, i2 = h.check_committed(55)
        assert nc == 3
        assert i1 < i2
        _, i3 = h.check_committed(81)
        assert i2 < i3


def test_commit_with_disconnection_and_recover() -> None:
    with Harness(3) as h:
        # Submit a couple of values to a fully connected cluster.
        orig_leader_id, _ = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5) != -1
        assert h.submit_to_server(orig_leader_id, 6) != -1
        h.check_committed_n(6, 3)

        d_peer_id = (orig_leader_id + 1) % 3
        h.disconnect_peer(d_peer_id)
        sleep_ms(250)

        # Submit a new command; it is committed, but only by two servers.
        assert h.submit_to_server(orig_leader_id, 7) != -1
        h.check_committed_n(7, 2)

        # Reconnect the follower: it catches up and delivers 7 too.
        h.reconnect_peer(d_peer_id)
        h.check_single_leader()
        h.check_committed_n(7, 3)


def test_no_commit_with_no_quorum() -> None:
    with Harness(3) as h:
        # Submit a couple of values to a fully connected cluster.
        orig_leader_id, orig_term = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5) != -1
        assert h.submit_to_server(orig_leader_id, 6) != -1
        h.check_committed_n(6, 3)

        # Disconnect both followers: the leader alone is no majority.
        d_peer1 = (orig_leader_id + 1) % 3
        d_peer2 = (orig_leader_id + 2) % 3
        h.disconnect_peer(d_peer1)
        h.disconnect_peer(d_peer2)
        sleep_ms(250)

        assert h.submit_to_server(orig_leader_id, 8) != -1
        sleep_ms(250)
        h.check_not_committed(8)

        # Reconnect both followers: there is a quorum again.
        h.reconnect_peer(d_peer1)
        h.reconnect_peer(d_peer2)
        sleep_ms(600)

        # 8 is still not committed: whoever leads now is in a later term, and
        # a leader commits an entry of an earlier term only together with
        # one of its own.
        h.check_not_committed(8)

        # A new leader is elected. It may not be the original one, even
        # though its log is longer: the two reconnected servers can elect
        # each other.
        _, again_term = h.check_single_leader()
        assert again_term != orig_term

        # But new values are committed for sure. Over a lossy network the
        # leadership can move again meanwhile, to a server that has not
        # heard that they are committed: submit them as a client would.
        for value in (9, 10, 11):
            submit_and_check_committed(h, value, 3)


def submit_and_check_committed(h: Harness, command: Any, n: int) -> None:
    """Submit ``command`` to the leader and check that ``n`` servers deliver it.

    Over a lossy network the leadership may move on before every server has
    delivered the command: before the leader stored it on a majority (it may
    be lost), or just after (it is committed, but a new leader learns that
    an entry of an earlier term is committed only by committing one of its
    own term, paper 5.4.2, so the others do not deliver it yet). Either way,
    as a client would, submit it again to each new leader until it is
    delivered everywhere (perhaps twice).
    """
    leader_id, term = h.check_single_leader()
    assert h.submit_to_server(leader_id, command) != -1

    def delivered_everywhere() -> bool:
        nonlocal term
        connected = [i for i in range(h.n) if h.connected[i]]
        if all(command in [e.command for e in h.delivered(i)] for i in connected):
            return True
        for i in connected:
            _, leader_term, is_leader = h.cluster[i].cm.report()
            if is_leader and leader_term > term:
                term = leader_term
                h.submit_to_server(i, command)
        return False

    h.wait_until(delivered_everywhere, f"{command!r} is delivered everywhere")
    h.check_committed_n(command, n)


def test_commits_with_leader_disconnects() -> None:
    with Harness(5) as h:
        # Submit a couple of values to a fully connected cluster.
        orig_leader_id, orig_term = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5) != -1
        assert h.submit_to_server(orig_leader_id, 6) != -1
        h.check_committed_n(6, 5)

        # Disconnect the leader, then submit 7 to it: it still believes it
        # leads, but it cannot reach a majority.
        h.disconnect_peer(orig_leader_id)
        sleep_ms(10)
        assert h.submit_to_server(orig_leader_id, 7) != -1
        sleep_ms(250)
        h.check_not_committed(7)

        # Submit 8 to the new leader; it is committed by the four connected
        # servers.
        submit_and_check_committed(h, 8, 4)

        # Reconnect the old leader and let it settle. It cannot win while
        # its log ends with 7, an entry of an older term than the others'
        # (the election restriction). Once the new leader has replaced 7
        # with 8 it may: over a lossy network, a few lost heartbeats are
        # enough to make it run.
        h.reconnect_peer(orig_leader_id)
        sleep_ms(600)

        h.check_single_leader()
        stale_wins = [
            won
            for won in h.leaderships()
            if won.server == orig_leader_id
            and won.term > orig_term
            and 7 in [entry.command for entry in won.log]
        ]
        assert stale_wins == []

        # Submit 9 and check it is fully committed.
        submit_and_check_committed(h, 9, 5)
        h.check_committed_n(8, 5)

        # But 7 never is: the new leader's entries replaced it.
        h.check_not_committed(7)


# --- A cluster of one server ------------------------------------------------


def test_single_server_elects_itself_and_commits_alone() -> None:
    # Its own vote is a majority of one, and so is its own copy of an entry.
    with Harness(1) as h:
        assert h.check_single_leader() == (0, 1)
        assert h.submit_to_server(0, 42) == 0
        h.check_committed_n(42, 1)


# --- Persistence, crashes and faults -----------------------------------------


def has_command(h: Harness, server_id: int, command: Any) -> bool:
    """True if the server's log holds ``command`` (committed or not)."""
    cm = h.cluster[server_id].cm
    with cm.mu:
        return any(entry.command == command for entry in cm.log)


def test_commit_after_call_drops() -> None:
    with Harness(3) as h:
        lid, _ = h.check_single_leader()

        # The leader's outgoing calls fail for a while, starting now: the
        # entry for 99 is lost on its way, and must be sent again later.
        # (The Go original lets two more calls through first; when those
        # are the entry's, nothing of interest is dropped.)
        h.peer_drop_calls_after_n(lid, 0)
        assert h.submit_to_server(lid, 99) != -1
        sleep_ms(30)
        h.peer_dont_drop_calls(lid)

        h.check_committed_n(99, 3)


def test_disconnect_leader_briefly() -> None:
    with Harness(3) as h:
        # Submit a couple of values to a fully connected cluster.
        orig_leader_id, _ = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5) != -1
        assert h.submit_to_server(orig_leader_id, 6) != -1
        h.check_committed_n(6, 3)

        # Disconnect the leader for about an election timeout. The followers
        # may or may not elect a new leader meanwhile (that depends on when
        # the last heartbeat landed): either way nothing is lost, and after
        # things settle the cluster commits new commands everywhere.
        h.disconnect_peer(orig_leader_id)
        sleep_ms(90)
        h.reconnect_peer(orig_leader_id)
        sleep_ms(200)

        leader_id, _ = h.check_single_leader()
        assert h.submit_to_server(leader_id, 7) != -1
        for value in (5, 6, 7):
            h.check_committed_n(value, 3)


VALUES = (5, 6, 7)


def submit_all(h: Harness, leader_id: int, values: tuple[int, ...]) -> None:
    """Submit ``values`` to the leader, which must accept each."""
    for value in values:
        assert h.submit_to_server(leader_id, value) != -1


def check_committed_n_all(h: Harness, values: tuple[int, ...], n: int) -> None:
    """Check that ``n`` servers committed each of ``values``."""
    for value in values:
        h.check_committed_n(value, n)


def test_crash_follower() -> None:
    # Crashing a follower doesn't stop the others.
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5) != -1
        h.check_committed_n(5, 3)

        h.crash_peer((orig_leader_id + 1) % 3)
        h.check_committed_n(5, 2)


def test_crash_then_restart_follower() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()
        submit_all(h, orig_leader_id, VALUES)
        check_committed_n_all(h, VALUES, 3)

        h.crash_peer((orig_leader_id + 1) % 3)
        check_committed_n_all(h, VALUES, 2)

        # The restarted follower delivers the committed log again, once it
        # learns the commit index from the leader.
        h.restart_peer((orig_leader_id + 1) % 3)
        check_committed_n_all(h, VALUES, 3)


def test_crash_then_restart_leader() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()
        submit_all(h, orig_leader_id, VALUES)
        check_committed_n_all(h, VALUES, 3)

        # Let the others elect a leader, which knows what is committed;
        # the restarted server learns it from there.
        h.crash_peer(orig_leader_id)
        h.check_single_leader()
        check_committed_n_all(h, VALUES, 2)

        h.restart_peer(orig_leader_id)
        check_committed_n_all(h, VALUES, 3)


def test_crash_then_restart_all() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()
        submit_all(h, orig_leader_id, VALUES)
        check_committed_n_all(h, VALUES, 3)

        for i in range(3):
            h.crash_peer((orig_leader_id + i) % 3)
        sleep_ms(350)
        for i in range(3):
            h.restart_peer((orig_leader_id + i) % 3)

        # Nobody remembers the commit index (it is volatile); the new leader
        # learns it by committing an entry of its own term.
        new_leader_id, _ = h.check_single_leader()
        assert h.submit_to_server(new_leader_id, 8) != -1
        check_committed_n_all(h, (*VALUES, 8), 3)


def test_replace_multiple_log_entries() -> None:
    with Harness(3) as h:
        # Submit a couple of values to a fully connected cluster.
        orig_leader_id, _ = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5) != -1
        assert h.submit_to_server(orig_leader_id, 6) != -1
        h.check_committed_n(6, 3)

        # Disconnect the leader, and submit a few entries to it: they won't
        # be replicated.
        h.disconnect_peer(orig_leader_id)
        sleep_ms(10)
        for value in (21, 22, 23, 24):
            assert h.submit_to_server(orig_leader_id, value) != -1
            sleep_ms(5)

        # Submit entries to the new leader: these are replicated.
        new_leader_id, _ = h.check_single_leader()
        for value in (8, 9, 10):
            assert h.submit_to_server(new_leader_id, value) != -1
            sleep_ms(5)
        h.check_committed_n(10, 2)
        h.check_not_committed(21)

        # Crash and restart the new leader to reset its next_index, so that
        # whoever leads next must replace the original leader's unreplicated
        # entries starting from its log's very end.
        h.crash_peer(new_leader_id)
        sleep_ms(60)
        h.restart_peer(new_leader_id)
        sleep_ms(100)
        final_leader_id, _ = h.check_single_leader()
        h.reconnect_peer(orig_leader_id)
        sleep_ms(400)

        # Leaders commit entries of earlier terms only along with one of
        # their own (paper 5.4.2): submit one.
        final_leader_id, _ = h.check_single_leader()
        assert h.submit_to_server(final_leader_id, 11) != -1

        # 11 and 10 end up everywhere; 21 nowhere.
        h.check_committed_n(11, 3)
        h.check_committed_n(10, 3)
        h.check_not_committed(21)


def test_crash_after_submit() -> None:
    with Harness(3) as h:
        # The followers store 5, but the leader never hears back, so it
        # cannot commit 5 nor tell anyone it did; then it crashes.
        orig_leader_id, _ = h.check_single_leader()
        h.peer_drop_replies(orig_leader_id)
        assert h.submit_to_server(orig_leader_id, 5) != -1
        followers = [i for i in range(3) if i != orig_leader_id]
        h.wait_until(
            lambda: all(has_command(h, i, 5) for i in followers),
            "both followers store 5",
        )
        h.crash_peer(orig_leader_id)

        # A new leader won't commit 5 by itself: it is of an earlier term.
        h.check_single_leader()
        sleep_ms(300)
        h.check_not_committed(5)

        # The old leader restarts. After a while, 5 is still not committed.
        h.restart_peer(orig_leader_id)
        sleep_ms(150)
        new_leader_id, _ = h.check_single_leader()
        h.check_not_committed(5)

        # A new command is committed, and 5 with it: it is in every log.
        assert h.submit_to_server(new_leader_id, 6) != -1
        h.check_committed_n(5, 3)
        h.check_committed_n(6, 3)


def test_disconnect_after_submit() -> None:
    with Harness(3) as h:
        # As test_crash_after_submit, but the leader is disconnected, not
        # crashed: it keeps its state, and still believes it leads.
        orig_leader_id, _ = h.check_single_leader()
        h.peer_drop_replies(orig_leader_id)
        assert h.submit_to_server(orig_leader_id, 5) != -1
        followers = [i for i in range(3) if i != orig_leader_id]
        h.wait_until(
            lambda: all(has_command(h, i, 5) for i in followers),
            "both followers store 5",
        )
        h.disconnect_peer(orig_leader_id)
        h.peer_dont_drop_replies(orig_leader_id)

        h.check_single_leader()
        sleep_ms(300)
        h.check_not_committed(5)

        # The old leader comes back. After a while, 5 is still not committed.
        h.reconnect_peer(orig_leader_id)
        sleep_ms(150)
        new_leader_id, _ = h.check_single_leader()
        h.check_not_committed(5)

        # A new command is committed, and 5 with it: it is in every log.
        assert h.submit_to_server(new_leader_id, 6) != -1
        h.check_committed_n(5, 3)
        h.check_committed_n(6, 3)


# --- Persistence of term and vote, on a single CM -----------------------------


class FakeServer:
    """Stands in for a Server: answers calls with ``answer``, or fails them."""

    def __init__(self, answer: Callable[[int, str, Any], Any] | None = None) -> None:
        self.answer = answer

    def call(self, peer_id: int, service_method: str, args: Any) -> Any:
        if self.answer is None:
            raise ConnectionError("not connected")
        return self.answer(peer_id, service_method, args)


def make_cm(storage: MapStorage, server: FakeServer | None = None) -> ConsensusModule:
    """A CM whose ``ready`` is never set: it runs no timer of its own."""
    commit_chan: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
    return ConsensusModule(
        0, [1, 2], server or FakeServer(), storage, threading.Event(), commit_chan
    )


@pytest.fixture
def storage() -> MapStorage:
    return MapStorage()


@pytest.fixture
def cm(storage: MapStorage) -> Iterator[ConsensusModule]:
    cm = make_cm(storage)
    yield cm
    cm.stop()


def restarted(storage: MapStorage) -> tuple[int, int]:
    """The (current_term, voted_for) a CM restarted on ``storage`` has."""
    cm = make_cm(storage)
    cm.stop()
    return cm.current_term, cm.voted_for


def test_start_election_persists_term(cm: ConsensusModule, storage: MapStorage) -> None:
    with cm.mu:
        cm.start_election()
    assert restarted(storage) == (1, 0)


def test_become_follower_persists_term(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    with cm.mu:
        cm.become_follower(5)
    assert restarted(storage) == (5, -1)


def test_become_follower_same_term_preserves_voted_for(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    with cm.mu:
        cm.start_election()  # term 1, voted for itself
        cm.become_follower(1)  # this term's leader showed up
        assert (cm.current_term, cm.voted_for) == (1, 0)
    assert restarted(storage) == (1, 0)


def test_become_follower_higher_term_resets_voted_for(
    cm: ConsensusModule, storage: MapStorage
) -> None:
    with cm.mu:
        cm.start_election()
        cm.become_follower(2)
        assert (cm.current_term, cm.voted_for) == (2, -1)
    assert restarted(storage) == (2, -1)


def test_same_term_double_vote_prevented(storage: MapStorage) -> None:
    def vote(cm: ConsensusModule, candidate_id: int) -> bool:
        args = RequestVoteArgs(
            term=1, candidate_id=candidate_id, last_log_index=-1, last_log_term=-1
        )
        return cm.request_vote(args).vote_granted

    cm = make_cm(storage)
    assert vote(cm, 1)
    assert not vote(cm, 2)
    cm.stop()

    # After a crash, the vote of term 1 is still given.
    cm = make_cm(storage)
    assert not vote(cm, 2)
    assert vote(cm, 1)
    cm.stop()


def test_stale_vote_reply_ignored(storage: MapStorage) -> None:
    # Votes of term 1 are held back until the CM has moved on to term 2;
    # then they arrive, granted. They must not make it leader of term 2.
    release = threading.Event()

    def answer(peer_id: int, service_method: str, args: Any) -> Any:
        assert service_method == "ConsensusModule.RequestVote"
        if args.term != 1:
            raise ConnectionError("no votes in later terms")
        release.wait()
        return RequestVoteReply(term=1, vote_granted=True)

    cm = make_cm(storage, FakeServer(answer))
    try:
        with cm.mu:
            cm.start_election()  # term 1: asks peers 1 and 2
            cm.start_election()  # term 2, before any answer
        release.set()
        # Each reply is processed by the thread that asked for the vote.
        for thread in threading.enumerate():
            if thread.name.startswith("cm0-vote-"):
                thread.join()
        with cm.mu:
            assert cm.state == CMState.CANDIDATE
            assert cm.current_term >= 2
    finally:
        release.set()
        cm.stop()


# --- Election Safety under stress -------------------------------------------


def test_election_safety_stress(monkeypatch: pytest.MonkeyPatch) -> None:
    # Forced election collisions and random partitions of a 5-server
    # cluster; all along, at most one server may ever lead a given term.
    monkeypatch.setenv("RAFT_FORCE_MORE_REELECTION", "1")
    seed = random.randrange(1 << 32)
    print(f"election_safety_stress seed={seed}")
    rng = random.Random(seed)
    leaders: dict[int, int] = {}
    stop = threading.Event()

    def watch(h: Harness) -> None:
        while not stop.is_set():
            for server in h.cluster:
                id, term, is_leader = server.cm.report()
                if is_leader:
                    other = leaders.setdefault(term, id)
                    assert other == id, f"{other} and {id} both led term {term}"
            time.sleep(0.002)

    with Harness(5) as h:
        failures: list[BaseException] = []

        def watcher() -> None:
            try:
                watch(h)
            except AssertionError as e:
                failures.append(e)

        thread = threading.Thread(target=watcher, name="safety-watcher")
        thread.start()
        try:
            for _ in range(15):
                # Cut off the leader, if there is one, and maybe another.
                cut = {rng.randrange(5)} if rng.random() < 0.5 else set()
                cut |= {s.server_id for s in h.cluster if s.is_leader()}
                for i in cut:
                    h.disconnect_peer(i)
                sleep_ms(rng.randint(50, 300))
                for i in cut:
                    h.reconnect_peer(i)
            h.check_single_leader()
        finally:
            stop.set()
            thread.join()
        assert not failures, f"seed={seed}: {failures[0]}"
        assert len(leaders) >= 2, "the stress should cause several elections"


# --- A program that ends without shutting its servers down -------------------

EXIT_WITHOUT_SHUTDOWN = """
import queue, threading, time
from part6.server import Server
from part6.storage import MapStorage

def peers(i):
    return [p for p in range(3) if p != i]

ready = threading.Event()
servers = [Server(i, peers(i), MapStorage(), ready, queue.Queue()) for i in range(3)]
for server in servers:
    server.serve()
for i, server in enumerate(servers):
    for j in peers(i):
        server.connect_to_peer(j, servers[j].get_listen_addr())
ready.set()
deadline = time.monotonic() + 10
while not any(s.cm.report()[2] for s in servers):
    assert time.monotonic() < deadline, "no leader"
    time.sleep(0.01)
# A thread that outlives the main one keeps the leader's heartbeats going
# while the interpreter shuts down.
threading.Thread(target=time.sleep, args=(0.3,)).start()
"""


def test_exit_without_shutdown_is_quiet() -> None:
    # At exit, the interpreter shuts down every thread pool, the leader's
    # AppendEntries senders too, while its heartbeat loop still runs. The
    # program must still end cleanly, without a traceback.
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_SHUTDOWN],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
