"""Test harness: a cluster of servers with fault injection and checks.

A test builds a cluster with ``Harness(n)``, disconnects and reconnects
servers to simulate partitions, submits commands, and asks the harness to
check what the cluster should look like (one leader, no leader, a command
committed or not). Use it as a context manager so the cluster is shut down
even when a check fails::

    with Harness(3) as h:
        leader_id, term = h.check_single_leader()
        h.submit_to_server(leader_id, 42)
        h.check_committed_n(42, 3)

The harness collects what every server delivers on its commit channel and
checks each delivery as it arrives: a server delivers indices in order, each
once, and no two servers ever deliver different entries at one index.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from types import TracebackType
from typing import Any

from .raft import CommitEntry
from .server import Server

log = logging.getLogger(__name__)

CHECK_DEADLINE = 5.0
"""Seconds a positive check (a leader is elected...) may wait for it."""

POLL_INTERVAL = 0.010
"""Seconds between two looks at the cluster while waiting for a condition."""


END_OF_COMMITS = CommitEntry(command=None, index=-1, term=-1)
"""Put on a commit channel by shutdown() to end its collector thread."""


def sleep_ms(ms: int) -> None:
    """Sleep ``ms`` milliseconds: part of a scenario, or a negative check."""
    time.sleep(ms / 1000)


class Harness:
    """A cluster of ``n`` connected servers, all ready to run."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"a cluster needs at least one server, got {n}")
        self.n = n
        self.connected = [False] * n
        # mu guards the collected commits and the safety violations found.
        self.mu = threading.Lock()
        self.commit_chans: list[queue.Queue[CommitEntry]] = []
        self.commits: list[list[CommitEntry]] = [[] for _ in range(n)]
        # The first entry any server delivered at each index: every later
        # delivery at that index, on any server, must be the same entry.
        self.committed: dict[int, CommitEntry] = {}
        self.violations: list[str] = []
        ready = threading.Event()
        self.cluster: list[Server] = []
        for i in range(n):
            peer_ids = [p for p in range(n) if p != i]
            commit_chan: queue.Queue[CommitEntry] = queue.Queue()
            server = Server(i, peer_ids, ready, commit_chan)
            server.serve()
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
        if exc_type is None:
            self.check_safety()

    def shutdown(self) -> None:
        """Disconnect and shut down every server, and stop collecting."""
        for i in range(self.n):
            self.cluster[i].disconnect_all()
            self.connected[i] = False
        for server in self.cluster:
            server.shutdown()
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
        self.tlog(f"Reconnect {id}")
        for j in range(self.n):
            if j != id and self.connected[j]:
                self.cluster[id].connect_to_peer(j, self.cluster[j].get_listen_addr())
                self.cluster[j].connect_to_peer(id, self.cluster[id].get_listen_addr())
        self.connected[id] = True

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
                        if term in leaders:
                            raise AssertionError(
                                f"both {leaders[term]} and {i} are leaders "
                                f"in term {term}"
                            )
                        leaders[term] = i
            if len(leaders) == 1:
                ((term, leader_id),) = leaders.items()
                if term >= min_term:
                    return leader_id, term
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no single leader (with term >= {min_term}) after "
                    f"{CHECK_DEADLINE}s; leaders by term: {leaders}"
                )
            time.sleep(POLL_INTERVAL)

    def check_no_leader(self) -> None:
        """Fail if any connected server thinks it is the leader."""
        for i in range(self.n):
            if self.connected[i]:
                _, term, is_leader = self.cluster[i].cm.report()
                if is_leader:
                    raise AssertionError(
                        f"server {i} is leader in term {term}; want none"
                    )

    def submit_to_server(self, server_id: int, command: Any) -> bool:
        """Submit ``command`` to a server; True iff it was the leader."""
        self.check_id(server_id)
        self.tlog(f"submitting {command} to {server_id}")
        return self.cluster[server_id].submit(command)

    def check_committed(self, command: Any) -> tuple[int, int]:
        """Wait until every connected server has delivered the same number of
        commands, ``command`` among them; return the number of connected
        servers and the command's index."""
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
                    raise AssertionError(
                        f"command {command!r} not committed by every connected "
                        f"server {connected} after {CHECK_DEADLINE}s; "
                        f"commands delivered: {self.delivered_commands()}"
                    )
            time.sleep(POLL_INTERVAL)

    def check_committed_n(self, command: Any, n: int) -> None:
        """Check that ``command`` is committed, by exactly ``n`` servers."""
        nc, _ = self.check_committed(command)
        if nc != n:
            raise AssertionError(f"command {command!r} committed by {nc}, want {n}")

    def check_not_committed(self, command: Any) -> None:
        """Fail if any server has delivered ``command``."""
        with self.mu:
            self.check_safety()
            for i in range(self.n):
                index = self.index_of(command, i)
                if index != -1:
                    raise AssertionError(
                        f"command {command!r} committed by server {i} at "
                        f"index {index}; want it not committed"
                    )

    def collect_commits(self, i: int) -> None:
        """Collect what server ``i`` delivers, checking each delivery."""
        while (entry := self.commit_chans[i].get()) is not END_OF_COMMITS:
            self.tlog(f"collect_commits({i}) got {entry}")
            with self.mu:
                expected_index = len(self.commits[i])
                if entry.index != expected_index:
                    self.violations.append(
                        f"server {i} delivered index {entry.index}, expected "
                        f"{expected_index}: each index in order, once"
                    )
                first = self.committed.setdefault(entry.index, entry)
                if first != entry:
                    self.violations.append(
                        f"server {i} delivered {entry}, but {first} was "
                        f"delivered at index {entry.index} before"
                    )
                self.commits[i].append(entry)

    def check_safety(self) -> None:
        """Fail if a delivery broke the rules. Expects ``mu`` held."""
        if self.violations:
            raise AssertionError("; ".join(self.violations))

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
        """Log a message of the test itself, as ``[TEST] message``."""
        log.debug("[TEST] %s", message)

    def check_id(self, id: int) -> None:
        """Raise ValueError for an id that is not in the cluster."""
        if not 0 <= id < self.n:
            raise ValueError(f"no server {id} in a cluster of {self.n}")
