"""Test harness: a cluster of servers with fault injection and checks.

A test builds a cluster with ``Harness(n)``, disconnects and reconnects
servers to simulate partitions, and asks the harness to check what the
cluster should look like (one leader, no leader). Use it as a context manager
so the cluster is shut down even when a check fails::

    with Harness(3) as h:
        leader_id, term = h.check_single_leader()
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from .server import Server

log = logging.getLogger(__name__)

CHECK_DEADLINE = 5.0
"""Seconds a positive check (a leader is elected...) may wait for it."""

POLL_INTERVAL = 0.010
"""Seconds between two looks at the cluster while waiting for a condition."""


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
        ready = threading.Event()
        self.cluster: list[Server] = []
        for i in range(n):
            peer_ids = [p for p in range(n) if p != i]
            server = Server(i, peer_ids, ready)
            server.serve()
            self.cluster.append(server)
        for i in range(n):
            for j in range(n):
                if i != j:
                    self.cluster[i].connect_to_peer(
                        j, self.cluster[j].get_listen_addr()
                    )
            self.connected[i] = True
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

    def shutdown(self) -> None:
        """Disconnect and shut down every server."""
        for i in range(self.n):
            self.cluster[i].disconnect_all()
            self.connected[i] = False
        for server in self.cluster:
            server.shutdown()

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
                            raise self.failed_check(
                                f"both {leaders[term]} and {i} are leaders "
                                f"in term {term}"
                            )
                        leaders[term] = i
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
        for i in range(self.n):
            if self.connected[i]:
                _, term, is_leader = self.cluster[i].cm.report()
                if is_leader:
                    raise self.failed_check(
                        f"server {i} is leader in term {term}; want none"
                    )
        self.tlog("check_no_leader: ok")

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
