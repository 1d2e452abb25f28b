"""Clusters of one part's servers, built through the public API only.

The benchmark drives a part the way an outside client would (DESIGN.md,
"Public API"): it creates ``partN.server.Server`` objects, connects every
pair, sets ``ready``, finds the leader with ``cm.report()``, submits with
``server.submit`` and reads every server's commit channel on a thread of its
own. It never imports a part's harness, so what it measures is the part
itself.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, cast

POLL_INTERVAL = 0.001
"""Seconds between two looks at the cluster while waiting for a leader: the
resolution of the failover figure."""

THREAD_END_GRACE = 2.0
"""Seconds a closed cluster's threads get to end (DESIGN.md: about one
election timeout; the rest is slack for a loaded machine)."""

LOG_FORMAT = "%(message)s"
"""How Raft log records are formatted when logging is on."""


class ConsensusModuleView(Protocol):
    """What the benchmark reads from a server's ConsensusModule."""

    def report(self) -> tuple[int, int, bool]:
        """Return ``(id, current_term, is_leader)``."""
        ...


class RaftServer(Protocol):
    """The part of ``partN.server.Server`` the benchmark uses.

    ``call`` is declared as an attribute, not a method, because the cluster
    replaces it on each instance with a wrapper that counts RPCs.
    """

    call: Callable[[int, str, Any], Any]

    @property
    def cm(self) -> ConsensusModuleView:
        """The server's ConsensusModule."""
        ...

    def serve(self) -> None:
        """Create the ConsensusModule and start accepting RPCs."""
        ...

    def get_listen_addr(self) -> Any:
        """The opaque address peers connect to."""
        ...

    def connect_to_peer(self, peer_id: int, addr: Any) -> None:
        """Open the link to ``peer_id``."""
        ...

    def disconnect_peer(self, peer_id: int) -> None:
        """Close the link to ``peer_id``."""
        ...

    def disconnect_all(self) -> None:
        """Close every outgoing link."""
        ...

    def submit(self, command: Any) -> bool | int:
        """Submit a command: a bool in part2, an index or -1 in part3."""
        ...

    def shutdown(self) -> None:
        """Stop the server; all its threads end."""
        ...


def accepted(result: bool | int) -> bool:
    """Whether a ``submit`` result means the leader took the command.

    part2 returns a bool, part3 the log index (-1: not the leader). The bool
    test comes first because ``False`` is also the int 0, a valid index.
    """
    if isinstance(result, bool):
        return result
    return result >= 0


@dataclass(frozen=True)
class Part:
    """One stage of the implementation, loaded by its package name."""

    name: str
    server_module: ModuleType
    storage_module: ModuleType | None
    """``partN.storage`` for a part with persistence, else None."""

    @property
    def persistent(self) -> bool:
        """True for a part whose servers survive a crash (part3 on)."""
        return self.storage_module is not None

    def make_server(
        self,
        server_id: int,
        peer_ids: list[int],
        ready: threading.Event,
        commit_chan: queue.Queue[Any],
    ) -> RaftServer:
        """A new Server of this part, with fresh storage if it has any."""
        server_class = self.server_module.Server
        if self.storage_module is None:
            server = server_class(server_id, peer_ids, ready, commit_chan)
        else:
            storage = self.storage_module.MapStorage()
            server = server_class(server_id, peer_ids, storage, ready, commit_chan)
        return cast(RaftServer, server)


def load_part(name: str) -> Part:
    """Import ``name.server`` (and ``name.storage`` if the part has one)."""
    server_module = importlib.import_module(f"{name}.server")
    try:
        storage_module: ModuleType | None = importlib.import_module(f"{name}.storage")
    except ModuleNotFoundError as error:
        if error.name != f"{name}.storage":
            raise
        storage_module = None
    return Part(name, server_module, storage_module)


@contextlib.contextmanager
def raft_logging(part_name: str, enabled: bool) -> Iterator[None]:
    """Set how the part logs while the block runs, then restore it.

    Off: the part's loggers are at WARNING, so ``dlog`` returns before it
    formats anything. On: every DEBUG record is formatted with
    ``LOG_FORMAT`` and written to the null device, so a run pays the whole
    cost of logging except the disk. Records never reach other handlers
    (pytest's, the root logger's), whose cost would depend on the caller.
    """
    logger = logging.getLogger(part_name)
    saved = (logger.level, logger.propagate, list(logger.handlers))
    handler: logging.Handler | None = None
    if enabled:
        handler = logging.FileHandler(os.devnull)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.handlers = [handler]
        logger.setLevel(logging.DEBUG)
    else:
        logger.handlers = []
        logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        level, logger.propagate, logger.handlers = saved
        logger.setLevel(level)
        if handler is not None:
            handler.close()


class StalledError(Exception):
    """No progress for the stall timeout: a bug in the part, never a figure."""

    def __init__(self, what: str, delivered: list[int]) -> None:
        super().__init__(f"{what}; delivered per server: {delivered}")
        self.what = what
        self.delivered = delivered


class LeaderChangedError(Exception):
    """Leadership moved during a run whose figure assumes one leader."""


END_OF_COMMITS = object()
"""Put on a commit channel once its server is shut down, to end its
Collector (the CM never writes its channel after ``stop()``)."""


class Collector:
    """Reads one server's commit channel on a thread of its own and records
    when each distinct command was first delivered (``perf_counter``).

    It drains whatever is queued before taking its lock, so a burst of
    deliveries costs one lock round and one timestamp, not one per entry.
    """

    def __init__(self, server_id: int, commit_chan: queue.Queue[Any]) -> None:
        self.commit_chan = commit_chan
        self.cond = threading.Condition()
        self.first_delivery: dict[Any, float] = {}
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
                    self.first_delivery.setdefault(entry.command, now)
                self.cond.notify_all()

    def count(self) -> int:
        """How many distinct commands this server delivered."""
        with self.cond:
            return len(self.first_delivery)

    def last_delivery(self) -> float:
        """When the latest of the distinct commands was first delivered."""
        with self.cond:
            return max(self.first_delivery.values())

    def wait_for(self, command: Any, timeout: float) -> float | None:
        """Wait up to ``timeout`` s for ``command``; when it was delivered."""
        with self.cond:
            self.cond.wait_for(lambda: command in self.first_delivery, timeout)
            return self.first_delivery.get(command)

    def stop(self) -> None:
        """End the thread (the server must be shut down already)."""
        self.commit_chan.put(END_OF_COMMITS)
        self.thread.join()


class Cluster:
    """``n`` servers of ``part``, fully connected and ready.

    Every server's outgoing RPCs are counted. ``close()`` shuts everything
    down and waits for every thread started since the cluster was built.
    """

    def __init__(self, part: Part, n: int) -> None:
        self.threads_before = set(threading.enumerate())
        self.rpc_mu = threading.Lock()
        self.rpc_calls = 0
        self.isolated: set[int] = set()
        self.crashed: set[int] = set()
        ready = threading.Event()
        self.servers: list[RaftServer] = []
        self.collectors: list[Collector] = []
        for i in range(n):
            commit_chan: queue.Queue[Any] = queue.Queue()
            server = part.make_server(
                i, [p for p in range(n) if p != i], ready, commit_chan
            )
            server.serve()
            self.count_calls(server)
            self.servers.append(server)
            self.collectors.append(Collector(i, commit_chan))
        for i, server in enumerate(self.servers):
            for j, other in enumerate(self.servers):
                if i != j:
                    server.connect_to_peer(j, other.get_listen_addr())
        ready.set()

    def count_calls(self, server: RaftServer) -> None:
        """Wrap ``server.call`` so that every outgoing RPC is counted."""
        call = server.call

        def counted_call(peer_id: int, service_method: str, args: Any) -> Any:
            with self.rpc_mu:
                self.rpc_calls += 1
            return call(peer_id, service_method, args)

        server.call = counted_call

    def rpc_count(self) -> int:
        """RPCs sent so far by all servers (delivered or not)."""
        with self.rpc_mu:
            return self.rpc_calls

    def delivered(self) -> list[int]:
        """Distinct commands delivered so far, per server."""
        return [collector.count() for collector in self.collectors]

    def live(self) -> list[int]:
        """Ids of the servers still connected (and not crashed)."""
        return [i for i in range(len(self.servers)) if i not in self.isolated]

    def agreed_leader(self) -> tuple[int, int] | None:
        """``(leader id, term)`` if the live servers have exactly one leader
        and all report its term; else None."""
        reports = [self.servers[i].cm.report() for i in self.live()]
        leaders = [(i, term) for i, term, is_leader in reports if is_leader]
        if len(leaders) != 1:
            return None
        leader_term = leaders[0][1]
        if any(term != leader_term for _, term, _ in reports):
            return None
        return leaders[0]

    def wait_for_leader(self, timeout: float) -> tuple[int, int]:
        """Wait for ``agreed_leader()``; raise StalledError after ``timeout`` s."""
        deadline = time.perf_counter() + timeout
        while (found := self.agreed_leader()) is None:
            if time.perf_counter() > deadline:
                raise StalledError(f"no agreed leader within {timeout:g} s", [])
            time.sleep(POLL_INTERVAL)
        return found

    def check_leader(self, leader_id: int, term: int) -> None:
        """Raise LeaderChangedError unless ``leader_id`` still leads in ``term``
        and no live server has moved to another term."""
        reports = {i: self.servers[i].cm.report() for i in self.live()}
        still_leads = reports[leader_id][2]
        if not still_leads or any(t != term for _, t, _ in reports.values()):
            raise LeaderChangedError(f"leader {leader_id} of term {term} was deposed")

    def isolate(self, server_id: int) -> None:
        """Cut every link to and from ``server_id``, in both directions."""
        self.servers[server_id].disconnect_all()
        for i, server in enumerate(self.servers):
            if i != server_id:
                server.disconnect_peer(server_id)
        self.isolated.add(server_id)

    def crash(self, server_id: int) -> None:
        """Isolate ``server_id`` and shut it down, as a crash would."""
        self.isolate(server_id)
        self.servers[server_id].shutdown()
        self.crashed.add(server_id)

    def close(self) -> list[str]:
        """Shut every server down, end the collectors, and wait for the
        cluster's threads to end; return the names of those still alive."""
        for i, server in enumerate(self.servers):
            if i not in self.crashed:
                server.shutdown()
        for collector in self.collectors:
            collector.stop()
        deadline = time.perf_counter() + THREAD_END_GRACE
        for thread in threading.enumerate():
            if thread not in self.threads_before:
                thread.join(max(0.0, deadline - time.perf_counter()))
        return sorted(
            t.name
            for t in threading.enumerate()
            if t not in self.threads_before and t.is_alive()
        )
