"""Clusters of one part's servers, driven through the part's public API only.

The benchmark builds ``partN.server.Server`` objects itself, connects every
pair, sets ``ready``, finds the leader with ``cm.report()``, submits with
``server.submit`` and reads each server's commit channel on a thread of its
own, as a client would; in a part that compacts its log (part6), that
thread also snapshots its server with ``cm.snapshot``, as a service would.
It never imports a part's harness, so what it measures is the part itself.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterator
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


def compacts(part: str) -> bool:
    """Whether ``part`` compacts its log with snapshots."""
    return hasattr(importlib.import_module(f"{part}.raft"), "SnapshotEntry")


def make_server(
    part: str,
    server_id: int,
    peer_ids: list[int],
    ready: threading.Event,
    storage: Any = None,
    chan: queue.Queue[Any] | None = None,
) -> tuple[Any, queue.Queue[Any]]:
    """A new Server of ``part`` and its commit channel: ``chan``, or a new
    one. A part that persists its state gets ``storage``, or fresh storage."""
    chan = queue.Queue() if chan is None else chan
    args: list[Any] = [server_id, peer_ids, ready, chan]
    if persistent(part):
        fresh = importlib.import_module(f"{part}.storage").MapStorage()
        args.insert(2, fresh if storage is None else storage)
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


Snapshot = Callable[[int, bytes], None]
"""A server's ``cm.snapshot``, as a Collector calls it."""


class Collector:
    """Reads one server's commit channel on a thread of its own and records
    when each distinct command was first delivered (``perf_counter``).

    It drains whatever is queued before it takes its lock, so that a burst
    of deliveries costs one lock round and one timestamp, not one per entry.

    With ``snapshot``, it is the server's service: after every
    ``snapshot_every``-th entry it snapshots its state (the commands
    delivered so far, pickled; once per batch of deliveries, at the latest
    index due), times the call in ``snapshot_ms`` and keeps the index and
    size of its latest snapshot in ``snapshot_index`` and
    ``snapshot_bytes``; a snapshot delivered to it gives it the commands
    the snapshot holds, and its index.
    """

    def __init__(
        self,
        server_id: int,
        commit_chan: queue.Queue[Any],
        snapshot: Snapshot | None = None,
        snapshot_every: int = 0,
    ) -> None:
        self.commit_chan = commit_chan
        self.snapshot = snapshot
        self.snapshot_every = snapshot_every
        self.snapshot_ms: list[float] = []
        self.snapshot_bytes = 0
        self.snapshot_index = -1
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
            due: tuple[int, bytes] | None = None
            with self.cond:
                for entry in batch:
                    if entry is END_OF_COMMITS:
                        return
                    if hasattr(entry, "data"):  # a SnapshotEntry
                        for command in pickle.loads(entry.data):
                            self.delivered.setdefault(command, now)
                        # Its server installed it: the entries it covers
                        # never come, and need no snapshot of their own.
                        self.snapshot_index = max(self.snapshot_index, entry.index)
                        continue
                    self.delivered.setdefault(entry.command, now)
                    every = self.snapshot_every
                    if self.snapshot and every and (entry.index + 1) % every == 0:
                        due = (entry.index, pickle.dumps(list(self.delivered)))
                self.cond.notify_all()
            if due is not None and self.snapshot is not None:
                start = time.perf_counter()
                self.snapshot(*due)
                self.snapshot_ms.append((time.perf_counter() - start) * 1000)
                self.snapshot_index, self.snapshot_bytes = due[0], len(due[1])

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
    Collector; every RPC a server sends is counted. In a part that compacts
    its log, each Collector snapshots its server every ``snapshot_every``
    entries (0: never)."""

    def __init__(self, part: str, n: int, snapshot_every: int = 0) -> None:
        self.part = part
        self.n = n
        self.ready = threading.Event()
        self.rpc_mu = threading.Lock()
        self.rpcs = 0
        self.servers: list[Any] = []
        self.chans: list[queue.Queue[Any]] = []
        self.cut_off: set[int] = set()
        self.crashed: set[int] = set()
        for i in range(n):
            server, chan = make_server(part, i, self.peers(i), self.ready)
            server.serve()
            server.call = self.counting(server.call)
            self.servers.append(server)
            self.chans.append(chan)
        every = snapshot_every if compacts(part) else 0
        self.collectors = [
            Collector(i, chan, self.snapshotter(i), every)
            for i, chan in enumerate(self.chans)
        ]
        for i in range(n):
            self.connect(i)
        self.ready.set()

    def peers(self, server_id: int) -> list[int]:
        """The ids of the other servers."""
        return [p for p in range(self.n) if p != server_id]

    def connect(self, server_id: int) -> None:
        """Connect ``server_id`` to every other server, both ways."""
        server = self.servers[server_id]
        for j in self.peers(server_id):
            server.connect_to_peer(j, self.servers[j].get_listen_addr())
            self.servers[j].connect_to_peer(server_id, server.get_listen_addr())

    def snapshotter(self, server_id: int) -> Snapshot:
        """Snapshot whichever server ``server_id`` is now (it may restart)."""

        def snapshot(index: int, data: bytes) -> None:
            self.servers[server_id].cm.snapshot(index, data)

        return snapshot

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

    def restart(self, server_id: int) -> None:
        """Restart crashed ``server_id`` on its storage and connect it; its
        Collector goes on reading its commit channel."""
        old = self.servers[server_id]
        server, _ = make_server(
            self.part,
            server_id,
            self.peers(server_id),
            self.ready,
            old.storage,
            self.chans[server_id],
        )
        server.serve()
        server.call = self.counting(server.call)
        self.servers[server_id] = server
        self.connect(server_id)
        self.cut_off.discard(server_id)
        self.crashed.discard(server_id)

    def close(self) -> None:
        """Shut every server down and end the collectors."""
        for i, server in enumerate(self.servers):
            if i not in self.crashed:
                server.shutdown()
        for chan, collector in zip(self.chans, self.collectors, strict=True):
            chan.put(END_OF_COMMITS)
            collector.thread.join()
