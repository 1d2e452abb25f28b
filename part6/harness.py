"""Test harness: a cluster of servers with fault injection and checks.

A test builds a cluster with ``Harness(n)``, disconnects and reconnects
servers to simulate partitions, crashes and restarts them, submits commands,
and asks the harness to check what the cluster should look like (one leader,
no leader, a command committed or not). Use it as a context manager so the
cluster is shut down even when a check fails::

    with Harness(3) as h:
        leader_id, term = h.check_single_leader()
        h.submit_to_server(leader_id, 42)
        h.check_committed_n(42, 3)

While a test runs, the harness checks the safety properties of Raft (paper
Figure 3) continuously, not only when the test asks:

* Election Safety: at most one server becomes leader in a term, counting
  disconnected servers and crashed incarnations too;
* State Machine Safety: no two servers ever deliver different entries at one
  index, across crashes and restarts too; and each server delivers indices in
  order, each once per incarnation;
* Leader Completeness: a leader of a term holds every entry committed in an
  earlier term.

A violation is recorded when it happens, as a ``Violation`` (tests read
them with ``violations()``), and fails the test at the harness's next check,
or at the latest when the ``with`` block ends.

With ``Harness(n, snapshot_every=K)``, each server is snapshotted after
every K-th entry it delivers, and the snapshot holds every command it
delivered so far (the trick of MIT's lab tester). A server that installs a
snapshot takes its deliveries from it, so the checks above, and
``check_committed``, stay exact across snapshots: a snapshot must agree with
every delivery at each index it covers.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .raft import (
    CommitEntry,
    ConsensusModule,
    LogEntry,
    SnapshotEntry,
    StorageFailedError,
)
from .server import Server
from .storage import MapStorage

log = logging.getLogger(__name__)

CHECK_DEADLINE = 5.0
"""Seconds a positive check (a leader is elected...) may wait for it."""

POLL_INTERVAL = 0.010
"""Seconds between two looks at the cluster while waiting for a condition."""


END_OF_COMMITS = CommitEntry(command=None, index=-1, term=-1)
"""Put on a commit channel by shutdown() to end its collector thread."""

MAX_REPORTED_VIOLATIONS = 10
"""How many safety violations a failure message quotes; the rest are counted."""


class SafetyViolationError(AssertionError):
    """A safety property of Raft was broken: the test fails with this."""


@dataclass(frozen=True)
class Violation:
    """A broken safety property, as data a test can compare."""

    prop: str
    """"Election Safety", "State Machine Safety", "Delivery order" or
    "Leader Completeness"."""
    servers: tuple[int, ...]
    """The servers involved: the two leaders of one term; the server that
    delivered, and (State Machine Safety) the one that delivered first; the
    leader that lacks an entry."""
    term: int | None
    """The term of the leader involved (Election Safety, Leader
    Completeness)."""
    index: int | None
    """The log index involved (all but Election Safety)."""
    message: str
    """What happened, in words."""

    def __str__(self) -> str:
        return f"{self.prop}: {self.message}"


@dataclass(frozen=True)
class Leadership:
    """A server becoming leader: its id, its term and its log at that moment,
    from index 0 (the entries its snapshot covers are read from it).

    A leader never removes entries from its own log, so the log it starts
    with holds every entry of earlier terms it will ever have.
    """

    server: int
    term: int
    log: tuple[LogEntry, ...]


@dataclass(frozen=True)
class FirstDelivery:
    """Who first delivered an index, and the highest term any server had
    become leader in by then."""

    server: int
    max_leader_term: int


def encode_snapshot(delivered: list[CommitEntry]) -> bytes:
    """The snapshot of a server that delivered ``delivered``: the command
    and term of each entry, in index order."""
    return pickle.dumps([(entry.command, entry.term) for entry in delivered])


def decode_snapshot(data: bytes) -> list[CommitEntry] | None:
    """The deliveries an encode_snapshot ``data`` holds; None if ``data``
    is not such a snapshot."""
    try:
        return [CommitEntry(c, i, t) for i, (c, t) in enumerate(pickle.loads(data))]
    except Exception:  # whatever the bytes are, they are no snapshot of ours
        return None


def sleep_ms(ms: int) -> None:
    """Sleep ``ms`` milliseconds: part of a scenario, or a negative check."""
    time.sleep(ms / 1000)


class Harness:
    """A cluster of ``n`` connected servers, all ready to run; with
    ``snapshot_every`` K > 0, each is snapshotted every K entries."""

    def __init__(self, n: int, snapshot_every: int = 0) -> None:
        if n < 1:
            raise ValueError(f"a cluster needs at least one server, got {n}")
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0, got {snapshot_every}")
        self.n = n
        self.snapshot_every = snapshot_every
        # Tells a log reader (tools/raft_check) that a new cluster starts.
        self.tlog(f"New cluster of {n} servers")
        self.connected = [False] * n
        self.alive = [True] * n
        # A server's storage outlives its crashes: a restart gets it back.
        self.storage = [MapStorage() for _ in range(n)]
        # mu guards the collected commits, the leaders seen and the safety
        # violations found. It is taken while a CM holds its own lock (see
        # watch_elections), never the other way round.
        self.mu = threading.Lock()
        self.commit_chans: list[queue.Queue[CommitEntry | SnapshotEntry]] = []
        self.commits: list[list[CommitEntry]] = [[] for _ in range(n)]
        # The first entry any server delivered at each index: every later
        # delivery at that index, on any server, must be the same entry.
        self.committed: dict[int, CommitEntry] = {}
        self.first_deliveries: dict[int, FirstDelivery] = {}
        # Who became leader in each term, and the highest such term.
        self.leaders: dict[int, Leadership] = {}
        self.max_leader_term = -1
        self.found: list[Violation] = []
        ready = threading.Event()
        self.cluster: list[Server] = []
        for i in range(n):
            peer_ids = [p for p in range(n) if p != i]
            commit_chan: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
            server = Server(i, peer_ids, self.storage[i], ready, commit_chan)
            server.serve()
            self.watch_elections(server.cm)
            self.commit_chans.append(commit_chan)
            self.cluster.append(server)
        for i in range(n):
            for j in range(n):
                if i != j:
                    self.cluster[i].connect_to_peer(
                        j, self.cluster[j].get_listen_addr()
                    )
            self.connected[i] = True
        self.collectors = [
            threading.Thread(
                target=self.collect_commits, args=(i,), name=f"harness-commits-{i}"
            )
            for i in range(n)
        ]
        for collector in self.collectors:
            collector.start()
        ready.set()

    def __enter__(self) -> Harness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
        # Also when the test failed otherwise: a violation is likely to be
        # the cause, and its message then comes with the original error.
        if not isinstance(exc, SafetyViolationError):
            with self.mu:
                self.check_safety()

    def shutdown(self) -> None:
        """Disconnect and shut down every server, and stop collecting."""
        for i in range(self.n):
            self.cluster[i].disconnect_all()
            self.connected[i] = False
        for i in range(self.n):
            if self.alive[i]:
                self.alive[i] = False
                self.cluster[i].shutdown()
        for commit_chan in self.commit_chans:
            commit_chan.put(END_OF_COMMITS)
        for collector in self.collectors:
            collector.join()

    def disconnect_peer(self, id: int) -> None:
        """Cut server ``id`` off from all others, in both directions."""
        self.check_id(id)
        self.tlog(f"Disconnect {id}")
        self.cluster[id].disconnect_all()
        for j in range(self.n):
            if j != id:
                self.cluster[j].disconnect_peer(id)
        self.connected[id] = False

    def reconnect_peer(self, id: int) -> None:
        """Connect server ``id`` again, in both directions, to every server
        that is connected (a disconnected one stays cut off)."""
        self.check_id(id)
        if not self.alive[id]:
            raise ValueError(f"server {id} is crashed: restart_peer() it")
        self.tlog(f"Reconnect {id}")
        for j in range(self.n):
            if j != id and self.connected[j]:
                self.cluster[id].connect_to_peer(j, self.cluster[j].get_listen_addr())
                self.cluster[j].connect_to_peer(id, self.cluster[id].get_listen_addr())
        self.connected[id] = True

    def crash_peer(self, id: int) -> None:
        """Crash server ``id``: cut it off and shut it down. Its storage
        survives; what it delivered is forgotten, since a restarted server
        delivers its snapshot and its committed log again."""
        self.check_id(id)
        if not self.alive[id]:
            raise ValueError(f"server {id} is already crashed")
        self.tlog(f"Crash {id}")
        self.disconnect_peer(id)
        self.alive[id] = False
        self.cluster[id].shutdown()
        # Shutdown guarantees nothing more comes from this incarnation; wait
        # until the collector has taken what came before, then forget it.
        self.commit_chans[id].join()
        with self.mu:
            self.commits[id] = []

    def restart_peer(self, id: int) -> None:
        """Restart crashed server ``id`` on its storage and reconnect it."""
        self.check_id(id)
        if self.alive[id]:
            raise ValueError(f"server {id} is alive: crash_peer() it first")
        self.tlog(f"Restart {id}")
        peer_ids = [p for p in range(self.n) if p != id]
        ready = threading.Event()
        server = Server(id, peer_ids, self.storage[id], ready, self.commit_chans[id])
        server.serve()
        self.watch_elections(server.cm)
        self.cluster[id] = server
        self.alive[id] = True
        self.reconnect_peer(id)
        ready.set()

    def peer_drop_calls_after_n(self, id: int, n: int) -> None:
        """Drop server ``id``'s outgoing calls after the next ``n``."""
        self.check_id(id)
        self.tlog(f"peer {id} drop calls after {n}")
        self.cluster[id].proxy().drop_calls_after_n(n)

    def peer_dont_drop_calls(self, id: int) -> None:
        """Stop dropping server ``id``'s outgoing calls."""
        self.check_id(id)
        self.tlog(f"peer {id} don't drop calls")
        self.cluster[id].proxy().dont_drop_calls()

    def peer_drop_replies(self, id: int) -> None:
        """Deliver server ``id``'s outgoing calls but lose their replies."""
        self.check_id(id)
        self.tlog(f"peer {id} drop replies")
        self.cluster[id].proxy().drop_replies()

    def peer_dont_drop_replies(self, id: int) -> None:
        """Stop losing the replies of server ``id``'s outgoing calls."""
        self.check_id(id)
        self.tlog(f"peer {id} don't drop replies")
        self.cluster[id].proxy().dont_drop_replies()

    def check_single_leader(self, min_term: int = 0) -> tuple[int, int]:
        """Wait until exactly one connected server is leader, and return its
        ``(id, term)``; with ``min_term``, wait for a leader of such a term.

        Two leaders in one term break Election Safety: that fails at once.
        Two leaders in different terms happen for a moment after a partition
        heals (the old one has not heard of the new term yet), so we wait.
        """
        deadline = time.monotonic() + CHECK_DEADLINE
        while True:
            leaders: dict[int, int] = {}
            for i in range(self.n):
                if self.connected[i]:
                    _, term, is_leader = self.cluster[i].cm.report()
                    if is_leader:
                        leaders[term] = i
            # A second leader of a term was recorded by watch_elections
            # before report() could show it: this sees it.
            with self.mu:
                self.check_safety()
            if len(leaders) == 1:
                ((term, leader_id),) = leaders.items()
                if term >= min_term:
                    self.tlog(f"check_single_leader -> {leader_id} (term {term})")
                    return leader_id, term
            if time.monotonic() > deadline:
                raise self.failed_check(
                    f"no single leader (with term >= {min_term}) after "
                    f"{CHECK_DEADLINE}s; leaders by term: {leaders}"
                )
            time.sleep(POLL_INTERVAL)

    def check_no_leader(self) -> None:
        """Fail if any connected server thinks it is the leader."""
        with self.mu:
            self.check_safety()
        for i in range(self.n):
            if self.connected[i]:
                _, term, is_leader = self.cluster[i].cm.report()
                if is_leader:
                    raise self.failed_check(
                        f"server {i} is leader in term {term}; want none"
                    )
        self.tlog("check_no_leader: ok")

    def submit_to_server(self, server_id: int, command: Any) -> int:
        """Submit ``command`` to a server; return its log index, or -1 if
        the server is not the leader."""
        self.check_id(server_id)
        self.tlog(f"submitting {command} to {server_id}")
        return self.cluster[server_id].submit(command)

    def check_committed(self, command: Any) -> tuple[int, int]:
        """Wait until every connected server has delivered the same number of
        commands, ``command`` among them; return the number of connected
        servers and the command's index."""
        nc, index = self.wait_committed(command)
        self.tlog(f"check_committed({command!r}) -> {nc} servers, index {index}")
        return nc, index

    def check_committed_n(self, command: Any, n: int) -> None:
        """Check that ``command`` is committed, by exactly ``n`` servers."""
        nc, index = self.wait_committed(command)
        if nc != n:
            raise self.failed_check(f"command {command!r} committed by {nc}, want {n}")
        self.tlog(f"check_committed_n({command!r}, {n}): ok (index {index})")

    def wait_committed(self, command: Any) -> tuple[int, int]:
        """``check_committed`` without its log line, for the checks that log
        their own outcome."""
        deadline = time.monotonic() + CHECK_DEADLINE
        while True:
            with self.mu:
                self.check_safety()
                connected = [i for i in range(self.n) if self.connected[i]]
                lengths = {len(self.commits[i]) for i in connected}
                indices = {self.index_of(command, i) for i in connected}
                if len(lengths) == 1 and len(indices) == 1 and -1 not in indices:
                    return len(connected), indices.pop()
                if time.monotonic() > deadline:
                    raise self.failed_check(
                        f"command {command!r} not committed by every connected "
                        f"server {connected} after {CHECK_DEADLINE}s; "
                        f"commands delivered: {self.delivered_commands()}"
                    )
            time.sleep(POLL_INTERVAL)

    def check_not_committed(self, command: Any) -> None:
        """Fail if any server has delivered ``command``."""
        with self.mu:
            self.check_safety()
            for i in range(self.n):
                index = self.index_of(command, i)
                if index != -1:
                    raise self.failed_check(
                        f"command {command!r} committed by server {i} at "
                        f"index {index}; want it not committed"
                    )
        self.tlog(f"check_not_committed({command!r}): ok")

    def watch_elections(self, cm: ConsensusModule) -> None:
        """Have ``cm`` tell the harness each time it becomes leader.

        A CM calls its ``start_leader`` the moment it wins an election,
        holding its lock, before it acts as leader. Wrapping that method on
        the instance sees every leadership, even one that lasts a
        millisecond or happens in a partition, without changing raft.py,
        and whatever ConsensusModule class the Server built.
        """
        start_leader = cm.start_leader

        def start_leader_watched() -> None:
            self.record_leader(Leadership(cm.id, cm.current_term, whole_log(cm)))
            start_leader()

        # mypy forbids assigning to a method; shadowing it on the instance
        # is exactly what we want here.
        cm.start_leader = start_leader_watched  # type: ignore[method-assign]

    def record_leader(self, leader: Leadership) -> None:
        """Check a new leader against Election Safety and Leader
        Completeness, and remember it.

        Leader Completeness (paper 5.4) promises that an entry committed in
        term U is in the log of every leader of a term after U. The harness
        does not see U; but the leader that committed the entry had become
        leader before the entry was delivered, so U is at most the highest
        leader term seen by the first delivery. Leaders of later terms are
        checked; a leader of an earlier term (say, one elected in a
        partition with a vote granted long ago) may rightly lack the entry.
        """
        with self.mu:
            first = self.leaders.setdefault(leader.term, leader)
            if first.server != leader.server:
                self.violation(
                    "Election Safety",
                    (first.server, leader.server),
                    leader.term,
                    None,
                    f"servers {first.server} and {leader.server} both became "
                    f"leader in term {leader.term}",
                )
            self.max_leader_term = max(self.max_leader_term, leader.term)
            for index, entry in self.committed.items():
                delivery = self.first_deliveries[index]
                if leader.term <= delivery.max_leader_term:
                    continue
                held = leader.log[index] if index < len(leader.log) else None
                if held != LogEntry(entry.command, entry.term):
                    has = "no entry" if held is None else held
                    self.violation(
                        "Leader Completeness",
                        (leader.server,),
                        leader.term,
                        index,
                        f"server {leader.server} became leader in term "
                        f"{leader.term} with {has} at index {index}, but "
                        f"{entry} was committed there (delivered by server "
                        f"{delivery.server} when the latest leader's term was "
                        f"{delivery.max_leader_term})",
                    )

    def collect_commits(self, i: int) -> None:
        """Collect what server ``i`` delivers, checking each delivery; with
        snapshot_every K, snapshot the server after every K-th entry."""
        while (entry := self.commit_chans[i].get()) is not END_OF_COMMITS:
            self.tlog(f"collect_commits({i}) got {entry}")
            if isinstance(entry, SnapshotEntry):
                self.collect_snapshot(i, entry)
                self.commit_chans[i].task_done()
                continue
            snapshot = None
            with self.mu:
                expected_index = len(self.commits[i])
                if entry.index != expected_index:
                    self.violation(
                        "Delivery order",
                        (i,),
                        None,
                        entry.index,
                        f"server {i} delivered index {entry.index}, expected "
                        f"{expected_index}: each index in order, once per "
                        f"incarnation",
                    )
                self.check_agreement(i, entry, f"delivered {entry}")
                self.commits[i].append(entry)
                k = self.snapshot_every
                if k and (entry.index + 1) % k == 0:
                    snapshot = encode_snapshot(self.commits[i])
            # Not under mu: the CM's lock is never taken while holding it.
            if snapshot is not None:
                self.snapshot(i, entry.index, snapshot)
            # crash_peer() joins the queue to know all has been taken.
            self.commit_chans[i].task_done()

    def check_agreement(self, i: int, entry: CommitEntry, what: str) -> None:
        """State Machine Safety: an entry server ``i`` delivered (``what``
        it did) must be the first one delivered at its index. Expects
        ``mu`` held."""
        first = self.committed.setdefault(entry.index, entry)
        if first == entry:
            self.first_deliveries.setdefault(
                entry.index, FirstDelivery(i, self.max_leader_term)
            )
        else:
            first_server = self.first_deliveries[entry.index].server
            self.violation(
                "State Machine Safety",
                (i, first_server),
                None,
                entry.index,
                f"server {i} {what}, but server {first_server} delivered "
                f"{first} at index {entry.index}",
            )

    def collect_snapshot(self, i: int, snapshot: SnapshotEntry) -> None:
        """Take a snapshot server ``i`` delivered: its deliveries become the
        snapshot's. It must hold the commands up to its index, agree with
        every delivery, and come after what the server delivered before."""
        covered = decode_snapshot(snapshot.data)
        with self.mu:
            if covered is None or [(e.index, e.term) for e in covered[-1:]] != [
                (snapshot.index, snapshot.term)
            ]:
                self.violation(
                    "State Machine Safety",
                    (i,),
                    None,
                    snapshot.index,
                    f"server {i} delivered {snapshot}, which does not hold "
                    f"the entries up to index {snapshot.index}",
                )
                return
            if snapshot.index < len(self.commits[i]):
                self.violation(
                    "Delivery order",
                    (i,),
                    None,
                    snapshot.index,
                    f"server {i} delivered a snapshot up to index "
                    f"{snapshot.index} after it delivered index "
                    f"{len(self.commits[i]) - 1}: a snapshot must bring "
                    f"something new",
                )
            for entry in covered:
                self.check_agreement(i, entry, f"delivered {entry} in {snapshot}")
            self.commits[i] = covered

    def snapshot(self, i: int, index: int, data: bytes) -> None:
        """Hand server ``i``'s CM the snapshot ``data`` at ``index``."""
        try:
            self.cluster[i].cm.snapshot(index, data)
        except StorageFailedError:
            pass  # its storage failed: the CM stopped, and logged why
        except ValueError as refused:
            with self.mu:
                self.violation(
                    "Delivery order",
                    (i,),
                    None,
                    index,
                    f"server {i} refused a snapshot at index {index}, which "
                    f"it delivered: {refused}",
                )

    def violation(
        self,
        prop: str,
        servers: tuple[int, ...],
        term: int | None,
        index: int | None,
        message: str,
    ) -> None:
        """Record a broken safety property; the test fails at the next
        check. Expects ``mu`` held."""
        found = Violation(prop, servers, term, index, message)
        self.tlog(f"VIOLATION {found}")
        self.found.append(found)

    def check_safety(self) -> None:
        """Fail if a safety property was broken. Expects ``mu`` held."""
        if self.found:
            quoted = [str(v) for v in self.found[:MAX_REPORTED_VIOLATIONS]]
            more = len(self.found) - len(quoted)
            raise SafetyViolationError(
                f"{len(self.found)} safety violation(s):\n  "
                + "\n  ".join(quoted)
                + (f"\n  ... and {more} more" if more else "")
            )

    # --- What a test may ask about the run ------------------------------------

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for ``condition`` to hold, failing after CHECK_DEADLINE."""
        deadline = time.monotonic() + CHECK_DEADLINE
        while not condition():
            if time.monotonic() > deadline:
                raise self.failed_check(f"timed out waiting until {what}")
            time.sleep(POLL_INTERVAL)
        self.tlog(f"wait_until({what!r}): ok")

    def violations(self) -> list[Violation]:
        """The safety violations found so far."""
        with self.mu:
            return list(self.found)

    def leaderships(self) -> list[Leadership]:
        """Every election won so far, one per term, in term order."""
        with self.mu:
            return [self.leaders[term] for term in sorted(self.leaders)]

    def raft_state_size(self, i: int) -> int:
        """The bytes server ``i``'s storage holds besides its snapshot: its
        term, vote, base and log."""
        self.check_id(i)
        return self.storage[i].size() - self.snapshot_size(i)

    def snapshot_size(self, i: int) -> int:
        """The bytes of server ``i``'s snapshot in storage (0 if none).
        part6.raft saves it last in the record under "snapshot"."""
        self.check_id(i)
        record = self.storage[i].get("snapshot")
        return 0 if record is None else len(pickle.loads(record)[-1])

    def delivered(self, i: int) -> list[CommitEntry]:
        """What server ``i`` has delivered, in order (since its restart, from
        its snapshot on)."""
        self.check_id(i)
        with self.mu:
            return list(self.commits[i])

    def deliveries_at(self, index: int) -> list[CommitEntry]:
        """The entries servers have delivered at ``index``, one per server
        that has (since its restart); the harness checks they are equal."""
        with self.mu:
            return [c[index] for c in self.commits if len(c) > index]

    def index_of(self, command: Any, i: int) -> int:
        """Index at which server ``i`` delivered ``command``, or -1."""
        for entry in self.commits[i]:
            if entry.command == command:
                return entry.index
        return -1

    def delivered_commands(self) -> dict[int, list[Any]]:
        """The commands each server delivered, for failure messages."""
        return {i: [e.command for e in self.commits[i]] for i in range(self.n)}

    def tlog(self, message: str) -> None:
        """Log a message of the test itself, as ``[TEST] message``; the
        tools read some of them back (docs/log-format.md)."""
        log.debug("[TEST] %s", message)

    def failed_check(self, message: str) -> AssertionError:
        """Log that a check failed, and return the error to raise. (Each
        check logs its outcome, so that a test's log shows what it checked:
        ``check_single_leader -> 1 (term 4)``.)"""
        self.tlog(f"check failed: {message}")
        return AssertionError(message)

    def check_id(self, id: int) -> None:
        """Raise ValueError for an id that is not in the cluster."""
        if not 0 <= id < self.n:
            raise ValueError(f"no server {id} in a cluster of {self.n}")


def whole_log(cm: ConsensusModule) -> tuple[LogEntry, ...]:
    """``cm``'s log from index 0: the entries its snapshot covers (read from
    the snapshot, which collect_commits made), then its log. Expects
    ``cm.mu`` held."""
    covered = decode_snapshot(cm.snapshot_data) if cm.last_included_index >= 0 else []
    return (*(LogEntry(e.command, e.term) for e in covered or []), *cm.log)
