"""Raft consensus module, part 1: leader election.

A cluster of servers elects one of them leader and keeps it in charge with
heartbeats. There is no log to replicate yet: this stage is only about the
states of Figure 2 of the Raft paper (Follower, Candidate, Leader) and the two
rules that keep an election safe:

* terms: every RPC carries the sender's term; whoever sees a higher term
  becomes a follower in it, and requests or replies from older terms are
  ignored;
* votes: a server grants at most one vote per term.

Each server runs on real threads (an election timer, a heartbeat loop and
one short-lived thread per outgoing RPC) and every field of the
ConsensusModule is guarded by its one lock, ``mu``.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVarTuple

log = logging.getLogger(__name__)

Ts = TypeVarTuple("Ts")

HEARTBEAT_INTERVAL = 0.050
"""Seconds between two rounds of heartbeats from a leader."""

LOGGED_ENTRIES = 3
"""A longer list of entries in a logged AppendEntries shows only this many
at each end."""


class CMState(enum.Enum):
    """The state of a consensus module (Figure 2), plus Dead after stop()."""

    FOLLOWER = "Follower"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    DEAD = "Dead"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LogEntry:
    """One entry of the Raft log: a client command and the term it came in."""

    command: Any
    term: int


@dataclass(frozen=True)
class RequestVoteArgs:
    """Arguments of the RequestVote RPC (Figure 2)."""

    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True)
class RequestVoteReply:
    """Reply of the RequestVote RPC."""

    term: int
    vote_granted: bool


@dataclass(frozen=True)
class AppendEntriesArgs:
    """Arguments of the AppendEntries RPC; in part 1 it is only a heartbeat."""

    term: int
    leader_id: int
    prev_log_index: int
    prev_log_term: int
    entries: list[LogEntry]
    leader_commit: int

    def __str__(self) -> str:
        """The dataclass repr, with only the ends of a long list of entries.

        From part 2 on, a leader resends every entry a follower lacks in each
        round, so a follower that is cut off for a while would otherwise fill
        the log with the same entries, over and over.
        """
        hidden = len(self.entries) - 2 * LOGGED_ENTRIES
        if hidden <= 1:
            shown = [repr(entry) for entry in self.entries]
        else:
            ends = self.entries[:LOGGED_ENTRIES] + self.entries[-LOGGED_ENTRIES:]
            shown = [repr(entry) for entry in ends]
            shown.insert(LOGGED_ENTRIES, f"... {hidden} more ...")
        return (
            f"AppendEntriesArgs(term={self.term}, leader_id={self.leader_id}, "
            f"prev_log_index={self.prev_log_index}, "
            f"prev_log_term={self.prev_log_term}, entries=[{', '.join(shown)}], "
            f"leader_commit={self.leader_commit})"
        )


@dataclass(frozen=True)
class AppendEntriesReply:
    """Reply of the AppendEntries RPC."""

    term: int
    success: bool


class PeerCaller(Protocol):
    """What a ConsensusModule needs from its server: a way to call a peer."""

    def call(self, peer_id: int, service_method: str, args: Any) -> Any:
        """Call ``service_method`` on peer ``peer_id``; raise ConnectionError
        when the call does not get through."""
        ...


class ConsensusModule:
    """A single Raft peer: the state machine of Figure 2, minus the log.

    The CM is dormant until ``ready`` is set: before that it never touches
    ``server``, so tests can build one with ``server=None`` and call its RPC
    handlers directly.
    """

    def __init__(
        self,
        id: int,
        peer_ids: list[int],
        server: PeerCaller | None,
        ready: threading.Event,
    ) -> None:
        # mu guards every field below. `wakeup` lets the threads that wait for
        # a deadline (election timer, heartbeat loop) be woken early when the
        # state changes, so they never need to poll.
        self.mu = threading.Lock()
        self.wakeup = threading.Condition(self.mu)

        self.id = id
        self.peer_ids = list(peer_ids)
        self.server = server
        self.ready = ready

        # Persistent state on all servers (Figure 2).
        self.current_term = 0
        self.voted_for = -1
        self.log: list[LogEntry] = []

        # Volatile state on all servers.
        self.state = CMState.FOLLOWER
        self.election_reset_event = time.monotonic()

        self.spawn("start", self.wait_until_ready)

    def wait_until_ready(self) -> None:
        """Stay dormant until ``ready`` is set, then start the election timer."""
        while not self.ready.wait(HEARTBEAT_INTERVAL):
            with self.mu:
                if self.state == CMState.DEAD:
                    return
        with self.mu:
            self.election_reset_event = time.monotonic()
        self.run_election_timer()

    def report(self) -> tuple[int, int, bool]:
        """Return ``(id, current_term, is_leader)``."""
        with self.mu:
            return self.id, self.current_term, self.state == CMState.LEADER

    def stop(self) -> None:
        """Stop this CM for good; its threads end soon after.

        Every thread checks the state under ``mu`` before acting, so once the
        state is Dead nothing else happens; the notify wakes waiting loops so
        they notice at once instead of at their next deadline.
        """
        with self.mu:
            self.state = CMState.DEAD
            self.dlog("becomes Dead")
            self.wakeup.notify_all()

    def dlog(self, message: str, *args: object) -> None:
        """Log a debug line as ``[id] message``.

        The log visualizer and raft_check read some of these lines back:
        docs/log-format.md lists the phrases they key on. ``message`` is
        %-formatted with ``args`` only if the line is logged: with logging
        off, a busy server pays next to nothing for its logs.
        """
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[%d] " + message, self.id, *args)

    def spawn(self, name: str, target: Callable[[*Ts], None], *args: *Ts) -> None:
        """Run ``target(*args)`` on a new thread (the ``go`` statement of the
        Go original). Its name starts with the CM's id, to find it in a dump."""
        thread = threading.Thread(target=target, args=args, name=f"cm{self.id}-{name}")
        thread.daemon = True
        thread.start()

    # --- RPC handlers ---------------------------------------------------

    def request_vote(self, args: RequestVoteArgs) -> RequestVoteReply:
        """Handle a RequestVote RPC: grant at most one vote per term.

        A stopped CM does not answer: the call fails with ConnectionError,
        as if the message had been lost.
        """
        with self.mu:
            if self.state == CMState.DEAD:
                raise ConnectionError(f"server {self.id} is dead: no answer")
            self.dlog(
                "RequestVote: %s [currentTerm=%s, votedFor=%s]",
                args,
                self.current_term,
                self.voted_for,
            )

            if args.term > self.current_term:
                self.dlog("... term out of date in RequestVote")
                self.become_follower(args.term)

            vote_granted = False
            if (
                self.current_term == args.term
                # At most one vote per term.
                and self.voted_for in (-1, args.candidate_id)
            ):
                vote_granted = True
                self.voted_for = args.candidate_id
                # Granting a vote counts as hearing from a live candidate:
                # don't start a competing election right away.
                self.election_reset_event = time.monotonic()
            reply = RequestVoteReply(term=self.current_term, vote_granted=vote_granted)
            self.dlog("... RequestVote reply: %s", reply)
            return reply

    def append_entries(self, args: AppendEntriesArgs) -> AppendEntriesReply:
        """Handle an AppendEntries RPC: here, a heartbeat from a leader.

        A stopped CM does not answer, as in ``request_vote``.
        """
        with self.mu:
            if self.state == CMState.DEAD:
                raise ConnectionError(f"server {self.id} is dead: no answer")
            self.dlog("AppendEntries: %s", args)

            if args.term > self.current_term:
                self.dlog("... term out of date in AppendEntries")
                self.become_follower(args.term)

            success = False
            if args.term == self.current_term:
                # There is exactly one leader per term, and it is the sender:
                # a candidate of this term lost the election.
                if self.state != CMState.FOLLOWER:
                    self.become_follower(args.term)
                self.election_reset_event = time.monotonic()
                success = True
            reply = AppendEntriesReply(term=self.current_term, success=success)
            self.dlog("AppendEntries reply: %s", reply)
            return reply

    # --- Elections ------------------------------------------------------

    def election_timeout(self) -> float:
        """Pick a random election timeout, in seconds.

        Randomness (150-300 ms) makes it unlikely that two followers time out
        together and split the vote. With RAFT_FORCE_MORE_REELECTION set, one
        time in three it is exactly 150 ms, to force such collisions.
        """
        if os.environ.get("RAFT_FORCE_MORE_REELECTION") and random.randrange(3) == 0:
            return 0.150
        return random.uniform(0.150, 0.300)

    def run_election_timer(self) -> None:
        """Start an election if no leader is heard from for a whole timeout.

        A timer ends when the CM becomes leader or its term changes; whoever
        changes the term starts the next one. A candidate that steps down in
        its own term starts a second timer while its first still runs: both
        count from the same election_reset_event, the first to time out
        starts an election, and the other then sees the new term and ends.
        """
        timeout = self.election_timeout()
        with self.mu:
            term_started = self.current_term
            self.dlog(
                "election timer started (%.0fms), term=%s", timeout * 1000, term_started
            )
            while True:
                if self.state not in (CMState.FOLLOWER, CMState.CANDIDATE):
                    self.dlog("in election timer state=%s, bailing out", self.state)
                    return
                if term_started != self.current_term:
                    self.dlog(
                        "in election timer term changed from %s to %s, bailing out",
                        term_started,
                        self.current_term,
                    )
                    return
                # A heartbeat or a granted vote moves election_reset_event
                # forward; then we simply sleep again until the new deadline.
                remaining = self.election_reset_event + timeout - time.monotonic()
                if remaining <= 0:
                    self.start_election()
                    return
                self.wakeup.wait(remaining)

    def start_election(self) -> None:
        """Become a candidate in a new term and ask every peer for its vote.

        Expects ``mu`` to be held.
        """
        self.state = CMState.CANDIDATE
        self.current_term += 1
        saved_current_term = self.current_term
        self.election_reset_event = time.monotonic()
        self.voted_for = self.id
        self.dlog("becomes Candidate (currentTerm=%s)", saved_current_term)

        votes_received = 0
        args = RequestVoteArgs(
            term=saved_current_term,
            candidate_id=self.id,
            last_log_index=-1,
            last_log_term=-1,
        )

        def count_vote() -> None:
            """Count a vote for us; with a majority, lead. Expects ``mu``."""
            nonlocal votes_received
            votes_received += 1
            if votes_received * 2 > len(self.peer_ids) + 1:
                self.dlog("wins election with %s votes", votes_received)
                self.start_leader()

        def request_vote_from(peer_id: int) -> None:
            assert self.server is not None
            self.dlog("sending RequestVote to %s: %s", peer_id, args)
            try:
                reply = self.server.call(peer_id, "ConsensusModule.RequestVote", args)
            except ConnectionError:
                return
            with self.mu:
                self.dlog("received RequestVoteReply %s", reply)
                # The reply is about our election in saved_current_term. If we
                # have moved on since (won, lost, or started a newer election),
                # it must not count towards anything.
                if (
                    self.state != CMState.CANDIDATE
                    or self.current_term != saved_current_term
                ):
                    self.dlog("while waiting for reply, election is over")
                    return
                if reply.term > self.current_term:
                    self.dlog("term out of date in RequestVoteReply")
                    self.become_follower(reply.term)
                elif reply.term == self.current_term and reply.vote_granted:
                    count_vote()

        # Our own vote: in a cluster of one server, it is a majority already.
        count_vote()
        for peer_id in self.peer_ids:
            self.spawn(f"vote-{peer_id}", request_vote_from, peer_id)

        # Run another election timer, in case this election is not successful.
        self.spawn("election-timer", self.run_election_timer)

    def become_follower(self, term: int) -> None:
        """Become a follower in ``term``. Expects ``mu`` to be held.

        The vote is forgotten only when the term really increases: a
        candidate that learns of this term's leader has already voted (for
        itself) in this term and must not vote again.

        The election timer keeps its deadline: only an AppendEntries from
        the current leader or a granted vote resets it (Figure 2), and the
        handlers do that. A leader ran no timer; its first one starts now.
        """
        self.dlog("becomes Follower with term=%s", term)
        if self.state == CMState.LEADER:
            self.election_reset_event = time.monotonic()
        self.state = CMState.FOLLOWER
        if term > self.current_term:
            self.current_term = term
            self.voted_for = -1
        self.wakeup.notify_all()
        # A dormant CM runs no timer: wait_until_ready starts the first one.
        if self.ready.is_set():
            self.spawn("election-timer", self.run_election_timer)

    # --- Leader -----------------------------------------------------------

    def start_leader(self) -> None:
        """Become leader and start sending heartbeats. Expects ``mu`` held.

        The test harness wraps this method on every CM it builds, to see
        each election won the moment it happens (its Election Safety check).
        """
        self.state = CMState.LEADER
        self.dlog("becomes Leader; term=%s", self.current_term)
        self.wakeup.notify_all()
        self.spawn("heartbeat-timer", self.run_heartbeat_timer)

    def run_heartbeat_timer(self) -> None:
        """Send heartbeats every HEARTBEAT_INTERVAL while this CM is leader.

        Heartbeats tell followers the leader is alive, so their election
        timers don't fire.
        """
        while True:
            self.leader_send_heartbeats()
            with self.mu:
                self.wakeup.wait_for(
                    lambda: self.state != CMState.LEADER, HEARTBEAT_INTERVAL
                )
                if self.state != CMState.LEADER:
                    return

    def leader_send_heartbeats(self) -> None:
        """Send one round of heartbeats (empty AppendEntries) to all peers."""
        requests: list[tuple[int, AppendEntriesArgs]] = []
        with self.mu:
            if self.state != CMState.LEADER:
                return
            for peer_id in self.peer_ids:
                args = AppendEntriesArgs(
                    term=self.current_term,
                    leader_id=self.id,
                    prev_log_index=-1,
                    prev_log_term=-1,
                    entries=[],
                    leader_commit=-1,
                )
                requests.append((peer_id, args))
        # Start the senders once the lock is released: starting a thread
        # waits until it runs, and submits and replies wait for the lock.
        for peer_id, args in requests:
            self.spawn(f"ae-{peer_id}", self.send_append_entries, peer_id, args)

    def send_append_entries(self, peer_id: int, args: AppendEntriesArgs) -> None:
        """Send one AppendEntries to a peer and act on its reply."""
        assert self.server is not None
        self.dlog("sending AppendEntries to %s: %s", peer_id, args)
        try:
            reply = self.server.call(peer_id, "ConsensusModule.AppendEntries", args)
        except ConnectionError:
            return
        with self.mu:
            # Only the leader that sent the request cares about its reply.
            if self.state != CMState.LEADER or self.current_term != args.term:
                return
            # A later term means another leader was elected: step down.
            if reply.term > self.current_term:
                self.dlog("term out of date in AppendEntries reply")
                self.become_follower(reply.term)
