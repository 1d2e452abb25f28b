"""Raft consensus module, part 3: persistence and fast log backtracking.

Part 2 replicated a log, but a server that crashed lost everything. Now the
state Figure 2 calls persistent (current_term, voted_for, log) is saved to a
Storage each time it changes, before the server answers or sends anything
that depends on it, and is restored when the server restarts. A restarted
server therefore keeps its vote (no second vote in a term) and its log.

A write that fails (a full disk) stops the server at once, as a crash
would: a server must never vote or acknowledge on the strength of state that
may not be on disk.

A follower whose log conflicts with the leader's now also tells the leader
where the conflict starts, so the leader backs up a whole term at a time
instead of one entry per round trip.

Each server runs on real threads (an election timer, a heartbeat loop,
one short-lived thread per outgoing RPC and a commit sender) and every
field of the ConsensusModule is guarded by its one lock, ``mu``.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import pickle
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVarTuple

from .storage import Storage

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
class CommitEntry:
    """A committed command, as delivered on the commit channel."""

    command: Any
    index: int
    term: int
    """The term in which a leader accepted the command into its log."""


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
    """Arguments of the AppendEntries RPC; with no entries, a heartbeat."""

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
    """Reply of the AppendEntries RPC.

    On a log mismatch, the conflict fields tell the leader where to resume:
    if the follower has no entry at prev_log_index, conflict_index is the
    length of its log and conflict_term is -1; otherwise conflict_term is
    the term of its entry there, and conflict_index the first index of its
    log holding that term.
    """

    term: int
    success: bool
    conflict_index: int = -1
    conflict_term: int = -1


class StorageFailedError(ConnectionError):
    """A storage write failed, so the CM stopped (see ``fail_stop``).

    It is a ConnectionError because that is what the caller of a dead
    server sees: an RPC handler that raises it gives no answer at all, as
    if the message had been lost.
    """


class PeerCaller(Protocol):
    """What a ConsensusModule needs from its server: a way to call a peer."""

    def call(self, peer_id: int, service_method: str, args: Any) -> Any:
        """Call ``service_method`` on peer ``peer_id``; raise ConnectionError
        when the call does not get through."""
        ...


class ConsensusModule:
    """A single Raft peer: the state machine of Figure 2.

    The CM is dormant until ``ready`` is set: before that it never touches
    ``server``, so tests can build one with ``server=None`` and call its RPC
    handlers directly. Committed commands are delivered on ``commit_chan``,
    which must be unbounded: the CM never waits for its consumer.
    If ``storage`` holds the state of an earlier incarnation, the CM starts
    from it.
    """

    def __init__(
        self,
        id: int,
        peer_ids: list[int],
        server: PeerCaller | None,
        storage: Storage,
        ready: threading.Event,
        commit_chan: queue.Queue[CommitEntry],
    ) -> None:
        if commit_chan.maxsize > 0:
            raise ValueError("commit_chan must be an unbounded queue.Queue()")
        # mu guards every field below. `wakeup` lets the threads that wait for
        # a deadline (election timer, heartbeat loop) be woken early when the
        # state changes, so they never need to poll. `new_commit_ready` wakes
        # the commit sender when commit_index advances.
        self.mu = threading.Lock()
        self.wakeup = threading.Condition(self.mu)
        self.new_commit_ready = threading.Condition(self.mu)
        # Held while putting on commit_chan, which happens outside `mu`;
        # stop() takes it to wait out a delivery in progress.
        self.commit_chan_mu = threading.Lock()

        self.id = id
        self.peer_ids = list(peer_ids)
        self.server = server
        self.storage = storage
        # The length of the log as last saved to storage.
        self.saved_log_length = 0
        # The error of the storage write that stopped this CM, if one did.
        self.storage_error: Exception | None = None
        self.ready = ready
        self.commit_chan = commit_chan

        # Persistent state on all servers (Figure 2).
        self.current_term = 0
        self.voted_for = -1
        self.log: list[LogEntry] = []

        # Volatile state on all servers.
        self.commit_index = -1
        self.last_applied = -1
        self.state = CMState.FOLLOWER
        self.election_reset_event = time.monotonic()

        # Volatile state on leaders, reinitialized after each election.
        self.next_index: dict[int, int] = {}
        self.match_index: dict[int, int] = {}
        # Set to make the leader send AppendEntries now, not at the next
        # heartbeat: a new command or a new commit index should go out fast.
        self.ae_triggered = False

        if self.storage.has_data():
            self.restore_from_storage()

        self.spawn("start", self.wait_until_ready)
        self.spawn("commit-chan-sender", self.commit_chan_sender)

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

    def submit(self, command: Any) -> int:
        """Submit a command to this CM; return the log index it was appended
        at, or -1 if this CM is not the leader.

        The leader appends the command to its log and returns at once; the
        command is committed later, and reported on commit_chan then.
        """
        with self.mu:
            self.dlog("Submit received by %s: %s", self.state, command)
            if self.state != CMState.LEADER:
                return -1
            self.log.append(LogEntry(command=command, term=self.current_term))
            index = len(self.log) - 1
            try:
                self.persist_to_storage(log_changed_from=index)
            except StorageFailedError:
                return -1
            self.dlog("... log index=%s", index)
            self.trigger_ae()
            return index

    def stop(self) -> None:
        """Stop this CM for good; its threads end soon after.

        Every thread checks the state under ``mu`` before acting, so once the
        state is Dead nothing else happens; the notify wakes waiting loops so
        they notice at once instead of at their next deadline. Nothing is put
        on commit_chan after stop() returns.
        """
        with self.mu:
            if self.state != CMState.DEAD:  # else a failed write stopped it
                self.state = CMState.DEAD
                self.dlog("becomes Dead")
            self.wakeup.notify_all()
            self.new_commit_ready.notify_all()
        # Wait until a delivery in progress is over.
        with self.commit_chan_mu:
            pass

    def persist_to_storage(self, log_changed_from: int | None = None) -> None:
        """Save the persistent state that changed. Expects ``mu`` held.

        With no argument, save current_term and voted_for; with
        ``log_changed_from``, save the log from that index on. Writing only
        what changed keeps the cost of an append in line with what it adds:
        saving the whole log each time would make n appends cost O(n^2).

        The server may crash between any two ``storage.set`` calls, so what
        one crash can leave behind must still be a state Raft allows:

        * current_term and voted_for change together (a new term starts
          with no vote), so they share one key: a crash never restores a new
          term with the vote of an older one.
        * The log is saved one entry per key, plus its length; restore reads
          only the entries below that length. New entries are written before
          the length that takes them in, so a crash loses at most entries
          that nobody was told of yet.
        * Replacing a conflicting suffix first cuts the saved length back to
          the entries that stay, then writes the new entries and their
          length. A crash in between restores the shorter log, never a new
          entry followed by the stale ones it replaced.

        A write that fails (a full disk, a broken one) stops the CM: see
        ``fail_stop``.
        """
        try:
            if log_changed_from is None:
                term_and_vote = (self.current_term, self.voted_for)
                self.storage.set("termAndVote", pickle.dumps(term_and_vote))
                return
            if log_changed_from < self.saved_log_length:
                self.storage.set("logLength", pickle.dumps(log_changed_from))
            for i in range(log_changed_from, len(self.log)):
                entry = self.log[i]
                command_and_term = pickle.dumps((entry.command, entry.term))
                self.storage.set(f"log/{i}", command_and_term)
            self.storage.set("logLength", pickle.dumps(len(self.log)))
            self.saved_log_length = len(self.log)
        except Exception as error:
            self.fail_stop(error)

    def fail_stop(self, error: Exception) -> NoReturn:
        """Stop for good because a storage write failed. Expects ``mu`` held.

        Memory now holds a term, a vote or entries that storage may lack, and
        nothing tells which writes got through. Answering, voting or
        acknowledging on the strength of them could break Raft's promises
        after a restart (a vote given twice, an acknowledged entry gone), so
        the CM stops at once, as a crash would stop it: it becomes Dead and
        raises StorageFailedError, which unwinds whatever called
        persist_to_storage. An RPC handler then gives no answer, ``submit``
        returns -1, and a thread of the CM ends. A new incarnation on the
        same storage restores what did reach it, a state Raft allows (see
        persist_to_storage).
        """
        self.storage_error = error
        self.state = CMState.DEAD
        self.dlog("becomes Dead: storage write failed: %s", error)
        self.wakeup.notify_all()
        self.new_commit_ready.notify_all()
        raise StorageFailedError(
            f"server {self.id} stopped: a storage write failed: {error}"
        ) from error

    def restore_from_storage(self) -> None:
        """Load the state persist_to_storage saved. Expects ``mu`` held, or
        the CM still under construction."""
        self.current_term, self.voted_for = self.load("termAndVote", (0, -1))
        self.saved_log_length = self.load("logLength", 0)
        self.log = [
            LogEntry(*self.load(f"log/{i}")) for i in range(self.saved_log_length)
        ]
        self.dlog(
            "restored from storage: currentTerm=%s, votedFor=%s, log=%s",
            self.current_term,
            self.voted_for,
            self.log,
        )

    def load(self, key: str, default: Any = None) -> Any:
        """Unpickle the value of ``key`` in storage. If nothing was ever
        saved under it, return ``default``; without one, the storage is
        corrupt: raise RuntimeError."""
        data = self.storage.get(key)
        if data is not None:
            return pickle.loads(data)
        if default is None:
            raise RuntimeError(f"server {self.id}: storage has no {key!r}")
        return default

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
        Go original). Its name starts with the CM's id, to find it in a dump.
        A thread whose storage write failed just ends: the CM has stopped,
        and ``fail_stop`` logged why."""

        def run() -> None:
            with contextlib.suppress(StorageFailedError):
                target(*args)

        thread = threading.Thread(target=run, name=f"cm{self.id}-{name}")
        thread.daemon = True
        thread.start()

    # --- RPC handlers ---------------------------------------------------

    def request_vote(self, args: RequestVoteArgs) -> RequestVoteReply:
        """Handle a RequestVote RPC: grant at most one vote per term.

        A stopped CM does not answer: the call fails with ConnectionError,
        as if the message had been lost. So does a CM whose storage write
        fails while it handles the call (StorageFailedError).
        """
        with self.mu:
            if self.state == CMState.DEAD:
                raise ConnectionError(f"server {self.id} is dead: no answer")
            last_log_index, last_log_term = self.last_log_index_and_term()
            self.dlog(
                "RequestVote: %s [currentTerm=%s, votedFor=%s, "
                "log index/term=(%s, %s)]",
                args,
                self.current_term,
                self.voted_for,
                last_log_index,
                last_log_term,
            )

            if args.term > self.current_term:
                self.dlog("... term out of date in RequestVote")
                self.become_follower(args.term)

            # Election restriction (paper 5.4.1): vote only for a candidate
            # whose log is at least as up to date as ours (a later last
            # term, or the same last term and at least as long), so that a
            # leader always holds every committed entry.
            candidate_log_is_up_to_date = args.last_log_term > last_log_term or (
                args.last_log_term == last_log_term
                and args.last_log_index >= last_log_index
            )
            vote_granted = False
            if (
                self.current_term == args.term
                # At most one vote per term.
                and self.voted_for in (-1, args.candidate_id)
                and candidate_log_is_up_to_date
            ):
                vote_granted = True
                self.voted_for = args.candidate_id
                self.persist_to_storage()
                # Granting a vote counts as hearing from a live candidate:
                # don't start a competing election right away.
                self.election_reset_event = time.monotonic()
            reply = RequestVoteReply(term=self.current_term, vote_granted=vote_granted)
            self.dlog("... RequestVote reply: %s", reply)
            return reply

    def append_entries(self, args: AppendEntriesArgs) -> AppendEntriesReply:
        """Handle an AppendEntries RPC: add the leader's entries to our log.

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
            conflict_index = conflict_term = -1
            if args.term == self.current_term:
                # There is exactly one leader per term, and it is the sender:
                # a candidate of this term lost the election.
                if self.state != CMState.FOLLOWER:
                    self.become_follower(args.term)
                self.election_reset_event = time.monotonic()

                # Log Matching: accept the entries only if our log holds the
                # entry just before them, with the same term. If it does, our
                # log is identical to the leader's up to that point.
                if args.prev_log_index == -1 or (
                    args.prev_log_index < len(self.log)
                    and args.prev_log_term == self.log[args.prev_log_index].term
                ):
                    success = True
                    self.append_new_entries(args)
                    # Entries past the ones this request proves match the
                    # leader's may still be stale: never commit beyond them.
                    # A delayed request may prove less than we know already:
                    # the commit index never moves back.
                    last_new_index = args.prev_log_index + len(args.entries)
                    new_commit_index = min(args.leader_commit, last_new_index)
                    if new_commit_index > self.commit_index:
                        self.commit_index = new_commit_index
                        self.dlog("... setting commitIndex=%s", self.commit_index)
                        self.new_commit_ready.notify()
                elif args.prev_log_index >= len(self.log):
                    # We lack the entry: the leader may resume at our end.
                    conflict_index = len(self.log)
                else:
                    # Our entry there is of another term: name it, and where
                    # our run of it starts, so the leader can skip it whole.
                    conflict_term = self.log[args.prev_log_index].term
                    conflict_index = args.prev_log_index
                    while (
                        conflict_index > 0
                        and self.log[conflict_index - 1].term == conflict_term
                    ):
                        conflict_index -= 1
            reply = AppendEntriesReply(
                term=self.current_term,
                success=success,
                conflict_index=conflict_index,
                conflict_term=conflict_term,
            )
            self.dlog("AppendEntries reply: %s", reply)
            return reply

    def append_new_entries(self, args: AppendEntriesArgs) -> None:
        """Add the entries of an accepted AppendEntries to the log.

        Skip the entries we already hold with the same term; at the first
        conflict (same index, other term) drop our entry and all after it.
        A delayed, shorter request must not cut entries that match: they
        may have been acknowledged to the leader since. Expects ``mu``.
        """
        log_insert_index = args.prev_log_index + 1
        new_entries_index = 0
        while (
            log_insert_index < len(self.log)
            and new_entries_index < len(args.entries)
            and self.log[log_insert_index].term == args.entries[new_entries_index].term
        ):
            log_insert_index += 1
            new_entries_index += 1
        if new_entries_index < len(args.entries):
            self.dlog("... inserting entries from index %s", log_insert_index)
            self.log[log_insert_index:] = args.entries[new_entries_index:]
            self.persist_to_storage(log_changed_from=log_insert_index)

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
        self.persist_to_storage()
        self.dlog("becomes Candidate (currentTerm=%s)", saved_current_term)

        votes_received = 0
        last_log_index, last_log_term = self.last_log_index_and_term()
        args = RequestVoteArgs(
            term=saved_current_term,
            candidate_id=self.id,
            last_log_index=last_log_index,
            last_log_term=last_log_term,
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
            self.persist_to_storage()
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
        # Optimistically assume each follower's log matches ours; AppendEntries
        # failures walk next_index back until it really does.
        for peer_id in self.peer_ids:
            self.next_index[peer_id] = len(self.log)
            self.match_index[peer_id] = -1
        self.dlog("becomes Leader; term=%s, log=%s", self.current_term, self.log)
        self.wakeup.notify_all()
        self.spawn("heartbeat-timer", self.run_heartbeat_timer)

    def run_heartbeat_timer(self) -> None:
        """Send AppendEntries every HEARTBEAT_INTERVAL while this CM is leader,
        and at once when triggered.

        Heartbeats tell followers the leader is alive, so their election
        timers don't fire; they also carry any entries a follower lacks.
        """
        while True:
            self.leader_send_aes()
            with self.mu:
                self.wakeup.wait_for(
                    lambda: self.state != CMState.LEADER or self.ae_triggered,
                    HEARTBEAT_INTERVAL,
                )
                if self.state != CMState.LEADER:
                    return
                self.ae_triggered = False

    def trigger_ae(self) -> None:
        """Make the leader send AppendEntries now. Expects ``mu`` held."""
        if not self.ae_triggered:  # else the heartbeat timer was woken already
            self.ae_triggered = True
            self.wakeup.notify_all()

    def leader_send_aes(self) -> None:
        """Send one round of AppendEntries to all peers: to each, the entries
        from its next_index on (none, for a follower that is up to date)."""
        requests: list[tuple[int, AppendEntriesArgs]] = []
        with self.mu:
            if self.state != CMState.LEADER:
                return
            # The leader's own copy of its entries counts too: in a cluster
            # of one server, that is a majority already.
            self.leader_advance_commit_index()
            for peer_id in self.peer_ids:
                next_index = self.next_index[peer_id]
                prev_log_index = next_index - 1
                prev_log_term = self.log[prev_log_index].term if next_index else -1
                args = AppendEntriesArgs(
                    term=self.current_term,
                    leader_id=self.id,
                    prev_log_index=prev_log_index,
                    prev_log_term=prev_log_term,
                    entries=self.log[next_index:],
                    leader_commit=self.commit_index,
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
                return
            # A reply of an earlier term is no answer to this request.
            if reply.term != args.term:
                return
            if reply.success:
                # Replies may arrive out of order: never move match_index back.
                match = args.prev_log_index + len(args.entries)
                self.match_index[peer_id] = max(self.match_index[peer_id], match)
                self.next_index[peer_id] = self.match_index[peer_id] + 1
                self.dlog(
                    "AppendEntries reply from %s success: nextIndex=%s, matchIndex=%s",
                    peer_id,
                    self.next_index[peer_id],
                    self.match_index[peer_id],
                )
                self.leader_advance_commit_index()
            else:
                # The follower lacks the entry before next_index, or holds
                # another term there. Rather than back up one entry per round
                # trip, use its hints (paper 5.3, end): if we hold entries of
                # its conflicting term, resume after our last one; otherwise
                # skip its whole run of that term.
                next_index = reply.conflict_index
                if reply.conflict_term >= 0:
                    for i in range(args.prev_log_index, -1, -1):
                        if self.log[i].term < reply.conflict_term:
                            break
                        if self.log[i].term == reply.conflict_term:
                            next_index = i + 1
                            break
                self.next_index[peer_id] = next_index
                self.dlog(
                    "AppendEntries reply from %s !success: nextIndex=%s",
                    peer_id,
                    self.next_index[peer_id],
                )

    def leader_advance_commit_index(self) -> None:
        """Commit the entries a majority of servers store. Expects ``mu``.

        Sort every server's match index (the leader matches its whole log):
        the one at position (n-1)//2 from the lowest is stored by its server
        and by every server after it, a majority.
        Only an entry of the current term is committed this way (paper
        5.4.2): an entry of an earlier term stored on a majority can still be
        overwritten by a later leader (Figure 8). It becomes committed
        together with the current term's entries that follow it.
        """
        matches = sorted([len(self.log) - 1, *self.match_index.values()])
        majority_match = matches[(len(matches) - 1) // 2]
        if (
            majority_match > self.commit_index
            and self.log[majority_match].term == self.current_term
        ):
            self.commit_index = majority_match
            self.dlog("leader sets commitIndex := %s", self.commit_index)
            self.new_commit_ready.notify()
            # Tell the followers at once, so they deliver it too.
            self.trigger_ae()

    def last_log_index_and_term(self) -> tuple[int, int]:
        """Index and term of the last log entry, or (-1, -1) for an empty
        log. Expects ``mu`` held."""
        if self.log:
            last_index = len(self.log) - 1
            return last_index, self.log[last_index].term
        return -1, -1

    def commit_chan_sender(self) -> None:
        """Deliver newly committed entries on commit_chan, in index order,
        each exactly once.

        It builds and puts the entries without holding ``mu``: a long batch
        must not hold up the consensus module.
        """
        while True:
            with self.mu:
                self.new_commit_ready.wait_for(
                    lambda: (
                        self.state == CMState.DEAD
                        or self.commit_index > self.last_applied
                    )
                )
                first_index = self.last_applied + 1
                entries = self.log[first_index : self.commit_index + 1]
                self.last_applied = self.commit_index
            with self.commit_chan_mu:
                # stop() makes the CM Dead, then waits for this lock: once it
                # returned, the channel may belong to a successor.
                if self.state == CMState.DEAD:
                    return
                self.dlog(
                    "commitChanSender entries=%s, firstIndex=%s", entries, first_index
                )
                for i, entry in enumerate(entries):
                    commit = CommitEntry(entry.command, first_index + i, entry.term)
                    self.commit_chan.put(commit)
