"""Clusters of one part's servers, driven through the part's public API only.

The benchmark builds ``partN.server.Server`` objects itself, connects every
pair, sets ``ready``, finds the leader with ``cm.report()``, submits with
``server.submit`` and reads each server's commit channel on a thread of its
own, as a client would. It never imports a part's harness, so what it
measures is the part itself.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

POLL_INTERVAL = 0.001
"""Seconds between two looks at the cluster while waiting for a leader: the
resolution of the failover figure."""

LOG_FORMAT = "%(message)s"
"""How Raft log records are formatted when logging is on."""


class StalledError(Exception):
    """Nothing happened for the stall timeout: a bug in the part, not a figure."""


class LeaderChangedError(Exception):
    """Leadership moved during a run whose figure assumes a single leader."""


def persistent(part: str) -> bool:
    """Whether ``part`` keeps its state in storage and survives a crash."""
    return importlib.util.find_spec(f"{part}.storage") is not None


def make_server(
    part: str, server_id: int, peer_ids: list[int], ready: threading.Event
) -> tuple[Any, queue.Queue[Any]]:
    """A new Server of ``part`` (with fresh storage if it persists its state)
    and the server's commit channel."""
    chan: queue.Queue[Any] = queue.Queue()
    args: list[Any] = [server_id, peer_ids, ready, chan]
    if persistent(part):
        args.insert(2, importlib.import_module(f"{part}.storage").MapStorage())
    return importlib.import_module(f"{part}.server").Server(*args), chan


@contextlib.contextmanager
def raft_logging(part_names: tuple[str, ...], enabled: bool) -> Iterator[None]:
    """Set how the parts log while the block runs, then restore it.

    Off: the parts' loggers are at WARNING, so ``dlog`` returns before it
    formats anything. On: every DEBUG record is formatted and written to the
    null device, so a run pays all the cost of logging but the disk. Either
    way records never propagate to other handlers (pytest's, the root's),
    whose cost would depend on who runs the benchmark.
    """
    loggers = [logging.getLogger(name) for name in part_names]
    saved = [(lg.level, lg.propagate, lg.handlers) for lg in loggers]
    handler = logging.FileHandler(os.devnull)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for logger in loggers:
        logger.handlers = [handler] if enabled else []
        logger.setLevel(logging.DEBUG if enabled else logging.WARNING)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (level, logger.propagate, logger.handlers) in zip(
            loggers, saved, strict=True
        ):
            # setLevel, not assignment: it clears the loggers' cache.
            logger.setLevel(level)
        handler.close()


END_OF_COMMITS = object()
"""Put on a commit channel after its server shut down, to end its Collector
(a stopped CM never writes to its channel again)."""


class Collector:
    """Reads one server's commit channel on a thread of its own and records
    when each distinct command was first delivered (``perf_counter``).

    It drains whatever is queued before it takes its lock, so that a burst
    of deliveries costs one lock round and one timestamp, not one per entry.
    """

    def __init__(self, server_id: int, commit_chan: queue.Queue[Any]) -> None:
        self.commit_chan = commit_chan
        self.cond = threading.Condition()
        self.delivered: dict[Any, float] = {}
        self.thread = threading.Thread(
            target=self.run, name=f"bench-collector-{server_id}", daemon=True
        )
        self.thread.start()

    def run(self) -> None:
        """Consume the channel until END_OF_COMMITS."""
        while True:
            batch = [self.commit_chan.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self.commit_chan.get_nowait())
            now = time.perf_counter()
            with self.cond:
                for entry in batch:
                    if entry is END_OF_COMMITS:
                        return
                    self.delivered.setdefault(entry.command, now)
                self.cond.notify_all()

    def count(self) -> int:
        """How many distinct commands this server has delivered."""
        with self.cond:
            return len(self.delivered)

    def last(self) -> float:
        """When the latest distinct command was first delivered."""
        with self.cond:
            return max(self.delivered.values())

    def wait_for(self, command: Any, timeout: float) -> float | None:
        """Wait up to ``timeout`` s for ``command``; when it was delivered."""
        with self.cond:
            self.cond.wait_for(lambda: command in self.delivered, timeout)
            return self.delivered.get(command)


class Cluster:
    """``n`` servers of ``part``, fully connected and ready, each with a
    Collector; every RPC a server sends is counted."""

    def __init__(self, part: str, n: int) -> None:
        ready = threading.Event()
        self.rpc_mu = threading.Lock()
        self.rpcs = 0
        self.servers: list[Any] = []
        self.chans: list[queue.Queue[Any]] = []
        self.cut_off: set[int] = set()
        self.crashed: set[int] = set()
        for i in range(n):
            server, chan = make_server(part, i, [p for p in range(n) if p != i], ready)
            server.serve()
            server.call = self.counting(server.call)
            self.servers.append(server)
            self.chans.append(chan)
        self.collectors = [Collector(i, chan) for i, chan in enumerate(self.chans)]
        for i, server in enumerate(self.servers):
            for j, peer in enumerate(self.servers):
                if i != j:
                    server.connect_to_peer(j, peer.get_listen_addr())
        ready.set()

    def counting(self, call: Any) -> Any:
        """``call`` (a server's outgoing RPC), counting every use."""

        def counted(peer_id: int, service_method: str, args: Any) -> Any:
            with self.rpc_mu:
                self.rpcs += 1
            return call(peer_id, service_method, args)

        return counted

    def rpc_count(self) -> int:
        """RPCs sent so far by all servers, delivered or not."""
        with self.rpc_mu:
            return self.rpcs

    def delivered(self) -> list[int]:
        """Distinct commands delivered so far, per server."""
        return [collector.count() for collector in self.collectors]

    def agreed_leader(self) -> tuple[int, int] | None:
        """``(leader id, term)`` if the servers not cut off have exactly one
        leader and all report its term; else None."""
        reports = [
            s.cm.report() for i, s in enumerate(self.servers) if i not in self.cut_off
        ]
        leaders = [(i, term) for i, term, is_leader in reports if is_leader]
        if len(leaders) != 1 or any(term != leaders[0][1] for _, term, _ in reports):
            return None
        return leaders[0]

    def wait_for_leader(self, timeout: float) -> tuple[int, int]:
        """Poll for ``agreed_leader()``; StalledError after ``timeout`` s."""
        deadline = time.perf_counter() + timeout
        while (found := self.agreed_leader()) is None:
            if time.perf_counter() > deadline:
                raise StalledError(f"no agreed leader within {timeout:g} s")
            time.sleep(POLL_INTERVAL)
        return found

    def check_leader(self, leader: tuple[int, int]) -> None:
        """LeaderChangedError unless ``leader`` (id, term) still leads and no
        server has moved to another term."""
        if self.agreed_leader() != leader:
            raise LeaderChangedError(f"leader {leader[0]} of term {leader[1]} deposed")

    def cut(self, server_id: int, crash: bool) -> None:
        """Cut every link to and from ``server_id``; with ``crash``, also
        shut it down, as a crash would."""
        self.servers[server_id].disconnect_all()
        for i, server in enumerate(self.servers):
            if i != server_id:
                server.disconnect_peer(server_id)
        self.cut_off.add(server_id)
        if crash:
            self.servers[server_id].shutdown()
            self.crashed.add(server_id)

    def close(self) -> None:
        """Shut every server down and end the collectors."""
        for i, server in enumerate(self.servers):
            if i not in self.crashed:
                server.shutdown()
        for chan, collector in zip(self.chans, self.collectors, strict=True):
            chan.put(END_OF_COMMITS)
            collector.thread.join()
