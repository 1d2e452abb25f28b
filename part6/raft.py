"""Raft consensus module, part 6: log compaction with snapshots.

Part 3 persisted the log, but never forgot any of it: the log grows without
bound, and a restarted server replays every command ever submitted. Now the
service using Raft may, at any time, hand the CM a snapshot of its state
after some index (``snapshot``): the CM drops every entry up to that index
and keeps only their last index and term, ``last_included_index`` and
``last_included_term``, the base of its log (paper section 7).

The log therefore no longer starts at index 0: ``log[0]`` holds the entry
right after the base. Every index the CM uses, in its messages, its logs
and on its commit channel, is still absolute, so each place that reads the
log must translate (``position``, ``term_at``); the comments say where the
base makes that subtle. That is the heart of this stage.

A follower that needs entries the leader has dropped gets the leader's
snapshot instead (``install_snapshot``, the paper's Figure 13), and hands it
to its service as a SnapshotEntry on the commit channel. The snapshot, its
base and the log are saved so that a crash between any two writes leaves a
state Raft allows (``persist_snapshot``), and the entries a snapshot covers
are deleted from storage.

Everything else is part 3's: persistent term, vote and log, fail-stop on a
failed write, and the conflict hints of fast log backtracking.

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
class SnapshotEntry:
    """A snapshot, as delivered on the commit channel: the service replaces
    its state with ``data``, which covers every entry up to ``index``; the
    next CommitEntry is ``index + 1``."""

    data: bytes
    index: int
    term: int
    """The term of the entry at ``index``."""

    def __str__(self) -> str:
        """The dataclass repr, with the length of the data, not its bytes."""
        return (
            f"SnapshotEntry(data=<{len(self.data)} bytes>, index={self.index}, "
            f"term={self.term})"
        )


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
    length of its log (the index after its last entry) and conflict_term is
    -1; otherwise conflict_term is the term of its entry there, and
    conflict_index the first index after its base holding that term.
    """

    term: int
    success: bool
    conflict_index: int = -1
    conflict_term: int = -1


@dataclass(frozen=True)
class InstallSnapshotArgs:
    """Arguments of the InstallSnapshot RPC (Figure 13), the whole snapshot
    in one message: ``data`` covers every entry up to last_included_index."""

    term: int
    leader_id: int
    last_included_index: int
    last_included_term: int
    data: bytes

    def __str__(self) -> str:
        """The dataclass repr, with the length of the data, not its bytes."""
        return (
            f"InstallSnapshotArgs(term={self.term}, leader_id={self.leader_id}, "
            f"last_included_index={self.last_included_index}, "
            f"last_included_term={self.last_included_term}, "
            f"data=<{len(self.data)} bytes>)"
        )


@dataclass(frozen=True)
class InstallSnapshotReply:
    """Reply of the InstallSnapshot RPC."""

    term: int


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
    which must be unbounded: the CM never waits for its consumer; so are
    snapshots, as SnapshotEntry. If ``storage`` holds the state of an
    earlier incarnation, the CM starts from it, and delivers its snapshot
    first.
    """

    def __init__(
        self,
        id: int,
        peer_ids: list[int],
        server: PeerCaller | None,
        storage: Storage,
        ready: threading.Event,
        commit_chan: queue.Queue[CommitEntry | SnapshotEntry],
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
        # The length of the log as last saved to storage (the index after
        # its last entry), and the first index whose entry storage may
        # still hold: entries below it were deleted by a snapshot.
        self.saved_log_length = 0
        self.saved_log_start = 0
        # The error of the storage write that stopped this CM, if one did.
        self.storage_error: Exception | None = None
        self.ready = ready
        self.commit_chan = commit_chan

        # Persistent state on all servers (Figure 2), plus the snapshot and
        # its base (Figure 13): the index and term of the last entry it
        # covers. log[0] is the entry at index last_included_index + 1.
        self.current_term = 0
        self.voted_for = -1
        self.log: list[LogEntry] = []
        self.last_included_index = -1
        self.last_included_term = -1
        self.snapshot_data = b""

        # Volatile state on all servers. The base is committed and applied:
        # last_included_index <= last_applied <= commit_index, always.
        self.commit_index = -1
        self.last_applied = -1
        # Set when the service must be handed the snapshot before anything
        # else: after a restart, or once the leader's snapshot is installed.
        self.snapshot_pending = False
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
            index, _ = self.last_log_index_and_term()
            try:
                self.persist_to_storage(log_changed_from=index)
            except StorageFailedError:
                return -1
            self.dlog("... log index=%s", index)
            self.trigger_ae()
            return index

    def snapshot(self, index: int, data: bytes) -> None:
        """Compact the log: ``data`` is the service's state after it applied
        every entry up to and including ``index``.

        The CM drops those entries, makes ``index`` the base of its log, and
        saves the snapshot and the base before it returns (see
        persist_snapshot). An index at or below the base changes nothing;
        an index not yet delivered on commit_chan raises ValueError, since
        the service cannot have applied it. A stopped CM ignores the call.
        Never blocks on the network. If a storage write fails, the CM stops
        (see ``fail_stop``) and this raises StorageFailedError.
        """
        with self.mu:
            if self.state == CMState.DEAD:
                return
            if index > self.last_applied:
                raise ValueError(
                    f"snapshot at index {index}: only up to {self.last_applied} "
                    f"was delivered"
                )
            if index <= self.last_included_index:
                self.dlog(
                    "snapshot at index %s ignored: the base is already %s",
                    index,
                    self.last_included_index,
                )
                return
            term = self.term_at(index)
            self.dlog("snapshot at index %s (term %s)", index, term)
            self.compact_log(index, term, data)
            self.persist_snapshot()

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
        * The log is saved one entry per key, named by its index, plus its
          length; restore reads only the entries below that length (and
          after the base: see persist_snapshot). New entries are written
          before the length that takes them in, so a crash loses at most
          entries that nobody was told of yet.
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
            log_length = self.last_log_index_and_term()[0] + 1
            for i in range(log_changed_from, log_length):
                entry = self.log[self.position(i)]
                command_and_term = pickle.dumps((entry.command, entry.term))
                self.storage.set(f"log/{i}", command_and_term)
            self.storage.set("logLength", pickle.dumps(log_length))
            self.saved_log_length = log_length
        except Exception as error:
            self.fail_stop(error)

    def persist_snapshot(self, discarded_log: bool = False) -> None:
        """Save the snapshot and its base, and delete from storage the
        entries the snapshot covers. Expects ``mu`` held.

        ``discarded_log`` says that the CM has just installed a leader's
        snapshot whose last entry its log lacked, and dropped its whole log
        (Figure 13). As in persist_to_storage, the server may crash between
        any two writes, and what one crash leaves must be a state Raft
        allows:

        * The snapshot, its base (last_included_index and term) and the
          first index whose entry storage may still hold change together,
          so they share one key, "snapshot": a crash never restores a base
          with the data of another snapshot.
        * Restore reads only the entries after the base. So the snapshot is
          written first, and only then are the entries it covers deleted:
          deleting them first, a crash would restore the old base with
          entries missing after it, entries the server may have
          acknowledged.
        * A crash in the middle of the deletes leaves entries at or below
          the base, which nothing reads. The "snapshot" key says where the
          deletes began, so the next snapshot deletes them too.
        * A discarded log may hold, at the snapshot's index, an entry of
          another term, and entries after it: stale entries that must never
          be read after the new base. So the saved length is first cut back
          to that index, as persist_to_storage cuts a conflicting suffix;
          a crash right after restores the old base with the shorter log.

        Entries the base has not reached yet, beyond a cut length, stay in
        storage until a new entry overwrites them or a snapshot deletes
        them; nothing reads them meanwhile.

        A write or delete that fails stops the CM: see ``fail_stop``.
        """
        try:
            saved_length = self.saved_log_length
            base = self.last_included_index
            if discarded_log and self.saved_log_length > base:
                self.storage.set("logLength", pickle.dumps(base))
                self.saved_log_length = base
            record = (base, self.last_included_term, self.saved_log_start)
            self.storage.set("snapshot", pickle.dumps((*record, self.snapshot_data)))
            for i in range(self.saved_log_start, min(saved_length, base + 1)):
                self.storage.delete(f"log/{i}")
            self.saved_log_start = base + 1
        except Exception as error:
            self.fail_stop(error)

    def compact_log(self, index: int, term: int, data: bytes) -> None:
        """Make ``index``, an entry of ``term``, the base of the log, with
        ``data`` its snapshot: drop the entries up to it, keep those after.
        Expects ``mu`` held. (``position`` still counts from the old base
        here: the new one is set after the cut.)"""
        self.log = self.log[self.position(index) + 1 :]
        self.last_included_index, self.last_included_term = index, term
        self.snapshot_data = data

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
        """Load the state persist_to_storage and persist_snapshot saved.
        Expects ``mu`` held, or the CM still under construction.

        The snapshot covers committed entries that its service had applied:
        the commit index starts at its base, and the commit channel hands
        the service the snapshot first, then the entries committed after it.
        """
        self.current_term, self.voted_for = self.load("termAndVote", (0, -1))
        (
            self.last_included_index,
            self.last_included_term,
            self.saved_log_start,
            self.snapshot_data,
        ) = self.load("snapshot", (-1, -1, 0, b""))
        self.commit_index = self.last_applied = self.last_included_index
        self.snapshot_pending = self.last_included_index >= 0
        self.saved_log_length = self.load("logLength", 0)
        first = self.last_included_index + 1
        self.log = [
            LogEntry(*self.load(f"log/{i}"))
            for i in range(first, self.saved_log_length)
        ]
        self.dlog(
            "restored from storage: currentTerm=%s, votedFor=%s, "
            "lastIncludedIndex=%s, lastIncludedTerm=%s, log=%s",
            self.current_term,
            self.voted_for,
            self.last_included_index,
            self.last_included_term,
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
                # log is identical to the leader's up to that point. An entry
                # before our base is in our snapshot, hence committed: the
                # leader holds the same one. At the base, our snapshot tells
                # its term (-1 at index -1, before any snapshot).
                last_index, _ = self.last_log_index_and_term()
                if args.prev_log_index < self.last_included_index or (
                    args.prev_log_index <= last_index
                    and args.prev_log_term == self.term_at(args.prev_log_index)
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
                elif args.prev_log_index > last_index:
                    # We lack the entry: the leader may resume at our end.
                    conflict_index = last_index + 1
                else:
                    # Our entry there is of another term: name it, and where
                    # our run of it starts, so the leader can skip it whole.
                    # The run is searched back to the entry after our base:
                    # entries before it are gone.
                    conflict_term = self.term_at(args.prev_log_index)
                    conflict_index = args.prev_log_index
                    while (
                        conflict_index - 1 > self.last_included_index
                        and self.term_at(conflict_index - 1) == conflict_term
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
        may have been acknowledged to the leader since. Entries up to our
        base are in our snapshot already: they are skipped too. Expects
        ``mu``.
        """
        log_insert_index = args.prev_log_index + 1
        new_entries_index = 0
        if log_insert_index <= self.last_included_index:
            new_entries_index = self.last_included_index + 1 - log_insert_index
            log_insert_index = self.last_included_index + 1
        last_index, _ = self.last_log_index_and_term()
        while (
            log_insert_index <= last_index
            and new_entries_index < len(args.entries)
            and self.term_at(log_insert_index) == args.entries[new_entries_index].term
        ):
            log_insert_index += 1
            new_entries_index += 1
        if new_entries_index < len(args.entries):
            self.dlog("... inserting entries from index %s", log_insert_index)
            self.log[self.position(log_insert_index) :] = args.entries[
                new_entries_index:
            ]
            self.persist_to_storage(log_changed_from=log_insert_index)

    def install_snapshot(self, args: InstallSnapshotArgs) -> InstallSnapshotReply:
        """Handle an InstallSnapshot RPC: take the leader's snapshot in place
        of the entries it covers (Figure 13), and hand it to the service.

        A snapshot up to an index we know to be committed brings nothing
        new (it is a delayed or repeated message): it changes nothing. If
        our log holds the snapshot's last entry, with its term, the entries
        after it are the leader's too and stay; otherwise our whole log is
        discarded. The snapshot is saved before the reply, and before the
        service gets it. A stopped CM does not answer, as in
        ``request_vote``.
        """
        with self.mu:
            if self.state == CMState.DEAD:
                raise ConnectionError(f"server {self.id} is dead: no answer")
            self.dlog("InstallSnapshot: %s", args)

            if args.term > self.current_term:
                self.dlog("... term out of date in InstallSnapshot")
                self.become_follower(args.term)

            if args.term == self.current_term:
                # As in append_entries: the sender is this term's leader.
                if self.state != CMState.FOLLOWER:
                    self.become_follower(args.term)
                self.election_reset_event = time.monotonic()

                index, term = args.last_included_index, args.last_included_term
                last_index, _ = self.last_log_index_and_term()
                if index <= self.commit_index:
                    self.dlog(
                        "... stale snapshot at index %s: commitIndex=%s, ignored",
                        index,
                        self.commit_index,
                    )
                else:
                    # index > commit_index >= our base: term_at reads the log.
                    keep = index <= last_index and self.term_at(index) == term
                    self.dlog(
                        "... installing snapshot at index %s (term %s), %s",
                        index,
                        term,
                        "keeping the log after it" if keep else "discarding the log",
                    )
                    if not keep:
                        self.log = []
                    self.compact_log(index, term, args.data)
                    # The snapshot is committed state: it is the next thing
                    # the service gets, in place of the entries it covers.
                    self.commit_index = self.last_applied = index
                    self.snapshot_pending = True
                    self.persist_snapshot(discarded_log=not keep)
                    self.new_commit_ready.notify()
            reply = InstallSnapshotReply(term=self.current_term)
            self.dlog("InstallSnapshot reply: %s", reply)
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
        last_index, _ = self.last_log_index_and_term()
        for peer_id in self.peer_ids:
            self.next_index[peer_id] = last_index + 1
            self.match_index[peer_id] = -1
        self.dlog(
            "becomes Leader; term=%s, lastIncludedIndex=%s, lastIncludedTerm=%s, "
            "log=%s",
            self.current_term,
            self.last_included_index,
            self.last_included_term,
            self.log,
        )
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
        from its next_index on (none, for a follower that is up to date).
        A follower whose next entry is at or before our base gets our
        snapshot instead: we no longer hold that entry."""
        requests: list[tuple[int, AppendEntriesArgs | InstallSnapshotArgs]] = []
        with self.mu:
            if self.state != CMState.LEADER:
                return
            # The leader's own copy of its entries counts too: in a cluster
            # of one server, that is a majority already.
            self.leader_advance_commit_index()
            for peer_id in self.peer_ids:
                next_index = self.next_index[peer_id]
                if next_index <= self.last_included_index:
                    snapshot = InstallSnapshotArgs(
                        term=self.current_term,
                        leader_id=self.id,
                        last_included_index=self.last_included_index,
                        last_included_term=self.last_included_term,
                        data=self.snapshot_data,
                    )
                    requests.append((peer_id, snapshot))
                    continue
                # next_index > base, so the entry before it is the base or
                # in the log: either way we know its term.
                prev_log_index = next_index - 1
                prev_log_term = self.term_at(prev_log_index)
                args = AppendEntriesArgs(
                    term=self.current_term,
                    leader_id=self.id,
                    prev_log_index=prev_log_index,
                    prev_log_term=prev_log_term,
                    entries=self.log[self.position(next_index) :],
                    leader_commit=self.commit_index,
                )
                requests.append((peer_id, args))
        # Start the senders once the lock is released: starting a thread
        # waits until it runs, and submits and replies wait for the lock.
        for peer_id, request in requests:
            if isinstance(request, InstallSnapshotArgs):
                self.spawn(
                    f"is-{peer_id}", self.send_install_snapshot, peer_id, request
                )
            else:
                self.spawn(f"ae-{peer_id}", self.send_append_entries, peer_id, request)

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
                # skip its whole run of that term. Our entries before the
                # base are gone: the search stops at the base, whose term we
                # know (a snapshot taken since the request may even have
                # moved the base past prev_log_index).
                next_index = reply.conflict_index
                if reply.conflict_term >= 0:
                    for i in range(
                        args.prev_log_index, self.last_included_index - 1, -1
                    ):
                        if self.term_at(i) < reply.conflict_term:
                            break
                        if self.term_at(i) == reply.conflict_term:
                            next_index = i + 1
                            break
                self.next_index[peer_id] = next_index
                self.dlog(
                    "AppendEntries reply from %s !success: nextIndex=%s",
                    peer_id,
                    self.next_index[peer_id],
                )

    def send_install_snapshot(self, peer_id: int, args: InstallSnapshotArgs) -> None:
        """Send our snapshot to a peer and act on its reply."""
        assert self.server is not None
        self.dlog("sending InstallSnapshot to %s: %s", peer_id, args)
        try:
            reply = self.server.call(peer_id, "ConsensusModule.InstallSnapshot", args)
        except ConnectionError:
            return
        with self.mu:
            # As for AppendEntries: only the leader that sent it cares, a
            # later term deposes it, and an earlier one is no answer.
            if self.state != CMState.LEADER or self.current_term != args.term:
                return
            if reply.term > self.current_term:
                self.dlog("term out of date in InstallSnapshot reply")
                self.become_follower(reply.term)
                return
            if reply.term != args.term:
                return
            # The follower now holds everything up to the snapshot's last
            # entry (or had committed it already): resume after it.
            match = max(self.match_index[peer_id], args.last_included_index)
            self.match_index[peer_id] = match
            self.next_index[peer_id] = match + 1
            self.dlog(
                "InstallSnapshot reply from %s: nextIndex=%s, matchIndex=%s",
                peer_id,
                self.next_index[peer_id],
                self.match_index[peer_id],
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
        An entry past the commit index is past the base too: it is in the
        log, and term_at reads its term there.
        """
        last_index, _ = self.last_log_index_and_term()
        matches = sorted([last_index, *self.match_index.values()])
        majority_match = matches[(len(matches) - 1) // 2]
        if (
            majority_match > self.commit_index
            and self.term_at(majority_match) == self.current_term
        ):
            self.commit_index = majority_match
            self.dlog("leader sets commitIndex := %s", self.commit_index)
            self.new_commit_ready.notify()
            # Tell the followers at once, so they deliver it too.
            self.trigger_ae()

    def last_log_index_and_term(self) -> tuple[int, int]:
        """Index and term of the last log entry; with no entry after the
        base, those of the base ((-1, -1) before any snapshot). Expects
        ``mu`` held."""
        if self.log:
            last_index = self.last_included_index + len(self.log)
            return last_index, self.log[-1].term
        return self.last_included_index, self.last_included_term

    def position(self, index: int) -> int:
        """Where the entry at log index ``index`` sits in ``self.log``, which
        starts right after the base. Expects ``mu`` held."""
        return index - self.last_included_index - 1

    def term_at(self, index: int) -> int:
        """The term of the entry at ``index``, the base or an entry of the
        log (the base before any snapshot is index -1, of term -1). Entries
        before the base are gone: callers never ask for one. Expects ``mu``
        held."""
        if index == self.last_included_index:
            return self.last_included_term
        return self.log[self.position(index)].term

    def commit_chan_sender(self) -> None:
        """Deliver newly committed entries on commit_chan, in index order,
        each exactly once; a pending snapshot goes first, in place of the
        entries it covers.

        It builds and puts the entries without holding ``mu``: a long batch
        must not hold up the consensus module.
        """
        while True:
            with self.mu:
                self.new_commit_ready.wait_for(
                    lambda: (
                        self.state == CMState.DEAD
                        or self.commit_index > self.last_applied
                        or self.snapshot_pending
                    )
                )
                snapshot = None
                if self.snapshot_pending:
                    snapshot = SnapshotEntry(
                        self.snapshot_data,
                        self.last_included_index,
                        self.last_included_term,
                    )
                    self.snapshot_pending = False
                # last_applied >= base: the entries after it are in the log.
                first_index = self.last_applied + 1
                first, last = (
                    self.position(first_index),
                    self.position(self.commit_index),
                )
                entries = self.log[first : last + 1]
                self.last_applied = self.commit_index
            with self.commit_chan_mu:
                # stop() makes the CM Dead, then waits for this lock: once it
                # returned, the channel may belong to a successor.
                if self.state == CMState.DEAD:
                    return
                if snapshot is not None:
                    self.dlog("commitChanSender %s", snapshot)
                    self.commit_chan.put(snapshot)
                self.dlog(
                    "commitChanSender entries=%s, firstIndex=%s", entries, first_index
                )
                for i, entry in enumerate(entries):
                    commit = CommitEntry(entry.command, first_index + i, entry.term)
                    self.commit_chan.put(commit)
