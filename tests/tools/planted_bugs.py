"""Classic Raft bugs, planted in consensus modules, for tools.sim to find.

Each test runs a scenario with the correct ConsensusModule (``[correct]``)
or with one that has a classic bug (``[planted]``), and checks a property
the bug breaks. The bug shows only in some interleavings, so a planted
run fails with some seeds and passes with others. A sweep finds the
failing seeds, and ``run`` replays any of them exactly::

    python -m tools.sim sweep TEST_ID --seeds 200
    python -m tools.sim run TEST_ID --seed S

with TEST_ID ``'tests/tools/planted_bugs.py::test_one_vote_per_term[planted]'``
for instance; tests/tools/test_sim.py does that for every bug. This file
is not named ``test_*.py``, so a plain ``pytest`` does not collect it: a
planted run is meant to fail."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

import part1.harness
import part1.raft
import part1.server
import part3.harness
import part3.raft
import part3.server
from part1.raft import AppendEntriesArgs
from tests.part3 import test_chaos
from tests.part3.test_invariants import EarlierTermCommitCM


def plant(monkeypatch: pytest.MonkeyPatch, server: Any, cm: type[Any]) -> None:
    """Have the servers of ``server``'s stage build ``cm``; keep the
    network reliable, so that a bug, not a lost message, decides."""
    monkeypatch.setattr(server, "ConsensusModule", cm)
    monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)


def variants(planted: type[Any], correct: type[Any]) -> pytest.MarkDecorator:
    """Parametrize a test with the correct CM and the planted one."""
    return pytest.mark.parametrize("cm", [correct, planted], ids=["correct", "planted"])


class Watch:
    """Records broken properties as the threads of a cluster run, and
    fails the test with the first one."""

    def __init__(self, tlog: Callable[[str], None]) -> None:
        self.mu = threading.Lock()
        self.tlog = tlog
        self.found: list[str] = []

    def violation(self, message: str) -> None:
        """Record a broken property (``mu`` held)."""
        self.tlog(f"VIOLATION {message}")
        self.found.append(message)

    def check(self) -> None:
        """Fail if a property was broken."""
        with self.mu:
            assert not self.found, self.found[0]


# --- A vote granted twice in one term -------------------------------------------


class DoubleVoteCM(part1.raft.ConsensusModule):
    """BUG: become_follower forgets the vote also when the term stays the
    same (as the Go original's becomeFollower does). A candidate that hears
    from its term's leader has voted for itself in that term, and may now
    vote for another candidate of it."""

    def become_follower(self, term: int) -> None:
        super().become_follower(term)
        self.voted_for = -1


class VoteWatch(Watch):
    """Checks that each server votes for at most one candidate per term,
    itself included."""

    def __init__(self, h: part1.harness.Harness) -> None:
        super().__init__(h.tlog)
        self.votes: dict[tuple[int, int], int] = {}
        for server in h.cluster:
            self.watch(server.cm)

    def vote(self, voter: int, term: int, candidate: int) -> None:
        with self.mu:
            first = self.votes.setdefault((voter, term), candidate)
            if first != candidate:
                self.violation(
                    f"server {voter} voted for {first} and for {candidate} "
                    f"in term {term}"
                )

    def watch(self, cm: part1.raft.ConsensusModule) -> None:
        """Wrap the CM's methods that vote: its own election, and its
        answer to a candidate."""
        start_election = cm.start_election
        request_vote = cm.request_vote

        def start_election_watched() -> None:
            start_election()
            self.vote(cm.id, cm.current_term, cm.id)

        def request_vote_watched(
            args: part1.raft.RequestVoteArgs,
        ) -> part1.raft.RequestVoteReply:
            reply = request_vote(args)
            if reply.vote_granted:
                self.vote(cm.id, reply.term, args.candidate_id)
            return reply

        cm.start_election = start_election_watched  # type: ignore[method-assign]
        cm.request_vote = request_vote_watched  # type: ignore[method-assign]


@pytest.mark.stage("part1")
@variants(DoubleVoteCM, part1.raft.ConsensusModule)
def test_one_vote_per_term(
    cm: type[part1.raft.ConsensusModule], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five servers whose election timeouts often collide: a term often has
    # several candidates, and a candidate that loses hears from the winner.
    plant(monkeypatch, part1.server, cm)
    monkeypatch.setenv("RAFT_FORCE_MORE_REELECTION", "1")
    with part1.harness.Harness(5) as h:
        watch = VoteWatch(h)
        for _ in range(6):
            leader, _ = h.check_single_leader()
            watch.check()
            h.disconnect_peer(leader)
            h.check_single_leader()
            h.reconnect_peer(leader)
        watch.check()


# --- A term that moves backwards --------------------------------------------------


class StaleTermCM(part1.raft.ConsensusModule):
    """BUG: checks an AppendEntries reply's term against the term the
    request was sent in, a saved value, instead of the current term, and
    takes it as its own. A reply that was on its way while the server moved
    on to a later term moves its term back."""

    def send_append_entries(self, peer_id: int, args: AppendEntriesArgs) -> None:
        assert self.server is not None
        try:
            reply = self.server.call(peer_id, "ConsensusModule.AppendEntries", args)
        except ConnectionError:
            return
        with self.mu:
            if reply.term > args.term:
                self.dlog("term out of date in AppendEntries reply")
                self.current_term = reply.term
                self.voted_for = -1
                self.become_follower(reply.term)


class TermWatch(Watch):
    """Checks that no server's term ever goes down."""

    def __init__(self, h: part1.harness.Harness) -> None:
        super().__init__(h.tlog)
        for server in h.cluster:
            self.watch(server.cm)

    def watch(self, cm: part1.raft.ConsensusModule) -> None:
        """Wrap the CM's dlog, which it calls at every step, to see its term
        at every step."""
        dlog = cm.dlog
        highest = [cm.current_term]

        def dlog_watched(message: str, *args: object) -> None:
            dlog(message, *args)
            with self.mu:
                if cm.current_term < highest[0]:
                    self.violation(
                        f"server {cm.id}'s term went back from {highest[0]} "
                        f"to {cm.current_term}"
                    )
                highest[0] = max(highest[0], cm.current_term)

        cm.dlog = dlog_watched  # type: ignore[method-assign]


@pytest.mark.stage("part1")
@variants(StaleTermCM, part1.raft.ConsensusModule)
def test_terms_never_go_back(
    cm: type[part1.raft.ConsensusModule], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two followers cut off for different times come back together, each
    # with a term its failed elections raised: the leader hears of both.
    plant(monkeypatch, part1.server, cm)
    with part1.harness.Harness(5) as h:
        watch = TermWatch(h)
        for _ in range(4):
            leader, _ = h.check_single_leader()
            a, b = random.sample([i for i in range(5) if i != leader], 2)
            h.disconnect_peer(a)
            part1.harness.sleep_ms(random.randrange(300, 600))
            h.disconnect_peer(b)
            part1.harness.sleep_ms(random.randrange(300, 600))
            h.reconnect_peer(a)
            h.reconnect_peer(b)
            watch.check()
        h.check_single_leader()
        watch.check()


# --- Term and vote not persisted ----------------------------------------------------


class UnsavedTermCM(part3.raft.ConsensusModule):
    """BUG: saves its log, but never its term and vote. After a restart of
    every server, all start again from term 0."""

    def persist_to_storage(self, log_changed_from: int | None = None) -> None:
        if log_changed_from is not None:
            super().persist_to_storage(log_changed_from)


@pytest.mark.stage("part3")
@variants(UnsavedTermCM, part3.raft.ConsensusModule)
def test_one_leader_per_term_across_restarts(
    cm: type[part3.raft.ConsensusModule], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole cluster crashes and restarts, again and again. The
    # harness remembers every leader of every term, across restarts.
    plant(monkeypatch, part3.server, cm)
    with part3.harness.Harness(3) as h:
        for n in range(3):
            leader, _ = h.check_single_leader()
            h.submit_to_server(leader, n)
            h.check_committed_n(n, 3)
            for i in random.sample(range(3), 3):
                h.crash_peer(i)
            for i in random.sample(range(3), 3):
                h.restart_peer(i)
        h.check_single_leader()


# --- Figure 8: an entry of an earlier term committed by counting ----------------------

FIGURE8_LEADERS = 40


@pytest.mark.stage("part3")
@variants(EarlierTermCommitCM, part3.raft.ConsensusModule)
def test_figure8(
    cm: type[part3.raft.ConsensusModule], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Figure 8 of the paper, at random, on three servers: a leader takes a
    # command and crashes at once, half of the time before any of its
    # messages go out (they are dropped); the server crashed longest ago
    # restarts to keep two up. Entries of earlier terms then wait on some
    # servers, while others hold entries of later terms at the same index.
    plant(monkeypatch, part3.server, cm)
    with part3.harness.Harness(3) as h:
        crashed: list[int] = []
        for iteration in range(FIGURE8_LEADERS):
            leader, _ = h.check_single_leader()
            part3.harness.sleep_ms(random.randrange(100))
            if random.random() < 0.5:
                h.peer_drop_calls_after_n(leader, 0)
            h.submit_to_server(leader, iteration)
            part3.harness.sleep_ms(random.randrange(4))
            h.crash_peer(leader)
            crashed.append(leader)
            if len(crashed) > 1:
                h.restart_peer(crashed.pop(0))
        for i in range(3):
            if not h.alive[i]:
                h.restart_peer(i)
        test_chaos.one(h, "last", 3)
