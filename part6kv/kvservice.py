"""A replicated key/value service: a DataStore driven by part6's Raft log.

Read this file first. A request travels like this:

1. The HTTP server (``api.APIServer``) checks the request and calls
   ``handle_request`` on a thread of its own.
2. ``handle_request`` wraps the request in a Command with a unique
   ``command_id`` and submits it to Raft: ``submit`` appends it to the
   leader's log and returns its index (or -1: not the leader). In the same
   critical section the handler subscribes to that index, so its commit
   cannot slip by unseen.
3. Raft replicates the entry. Once it is committed, the consensus module
   of every replica delivers it on that replica's commit channel.
4. The updater thread (``run_updater``) of every replica takes the
   committed entries in log order, applies each new command to its
   DataStore, and hands the result to the subscriptions of the entry's index.
   The session table (``sessions.py``) tells which are new; a copy of a
   client's last request gets the result recorded for it, not a new one.
5. The handler looks at what was applied at its index. Its own command
   (the same ``command_id``): OK, with the result. Another command: a leader
   of another term put its entry there, and ours is gone: FailedCommit.
   Nothing within COMMIT_TIMEOUT: Timeout (the command may still commit).
   Its own command, but older than the client's last request, or of an
   expired session: DuplicateRequest, or SessionExpired (not applied).

A client resends a request whose answer it did not get, with the same ids:
the session table makes sure it is applied once, however many copies of it
reach the log.

The log does not grow forever. When the Raft state in storage outgrows
``max_raft_state`` bytes, the updater snapshots the DataStore and the
session table, after the entry it just applied, and hands the snapshot to
Raft, which drops the entries it covers (``take_snapshot``). A snapshot
comes back on the commit channel as a SnapshotEntry: the saved one when a
service restarts, the leader's when this replica fell too far behind. The
updater then replaces both with it (``restore_snapshot``), and goes on
with the entries after it. The sessions must be in the snapshot: without
them, a copy of a request whose entry the snapshot replaced would be
applied again.

Gets go through the log too, so a read sees every write acknowledged
before it: a leader cut off from the others cannot answer from stale data.

A service whose Raft server's storage fails, or whose updater raises, stops
for good, as a crash would stop it (see ``failure``).
"""

from __future__ import annotations

import functools
import logging
import pickle
import queue
import threading
import uuid
from dataclasses import dataclass
from typing import Protocol

from part6.raft import CommitEntry, SnapshotEntry, StorageFailedError
from part6.server import Listener, Server
from part6.storage import Storage

from .api import APIServer, Reply, Request, Status, brief
from .datastore import DataStore
from .sessions import Outcome, SessionTable

log = logging.getLogger(__name__)

COMMIT_TIMEOUT = 1.0
"""Seconds a handler waits for its command to be applied."""

SESSION_WINDOW = 10_000
"""A client's session is kept while the client made a request within the
last SESSION_WINDOW applied entries (see ``sessions``)."""

RESPONSE_BUDGET = 32 * 1024 * 1024
"""The bytes of responses the sessions keep, at most: when a new response
would exceed it, the least recently used sessions expire first (see
``sessions``)."""

DELAYED_RESPONSE = 0.3
"""Seconds ``delay_next_http_response`` holds a response back: longer than
a client's attempt timeout, so the client gives up on it and resends."""

END_OF_COMMITS = CommitEntry(command=None, index=-1, term=-1)
"""Put on the commit channel by shutdown() to end the updater."""


class SizedStorage(Storage, Protocol):
    """A Storage that tells how many bytes it holds."""

    def size(self) -> int:
        """The total number of bytes of the values stored."""
        ...


@dataclass(frozen=True, repr=False)
class Command:
    """What the service puts in the Raft log: a client's request, the
    service that submitted it, and an identity of its own. A request its
    client sent again is another Command, with the same request ids."""

    request: Request
    service_id: int
    command_id: str
    """Unique to this one submission. The service's id would not do: a
    service that loses leadership and wins it again can have another of its
    own commands at the index one of its handlers waits for."""

    def __repr__(self) -> str:
        return f"{self.request!r}@kv{self.service_id}#{self.command_id[:8]}"


@dataclass(frozen=True)
class Applied:
    """A committed command, what the session table made of it, and the
    response."""

    command: Command
    outcome: Outcome
    value: str
    found: bool


class CommitSubscription:
    """A handler's wish to learn what is applied at log index ``index``.

    The updater sets ``applied`` and then ``done``; shutdown sets only
    ``done``.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.applied: Applied | None = None
        self.done = threading.Event()


class KVService:
    """One replica of the key/value service: a Raft server, a DataStore,
    the updater thread between them, and (after ``serve_http``) an HTTP
    server for clients.

    The Raft consensus module stays dormant until ``ready`` is set, so a
    harness can connect the services first. Its state is kept in
    ``storage``; a service restarted on the same storage rebuilds its
    DataStore and its sessions from its last snapshot, then applies the
    committed entries after it. When the Raft state in storage, besides
    the snapshot, outgrows ``max_raft_state`` bytes, the service takes a
    snapshot; with -1 it never does.
    """

    def __init__(
        self,
        id: int,
        peer_ids: list[int],
        storage: SizedStorage,
        ready: threading.Event,
        max_raft_state: int = -1,
    ) -> None:
        self.id = id
        self.storage = storage
        self.max_raft_state = max_raft_state
        # The length of the snapshot Raft keeps in storage: the last one
        # this service took or restored. Only the updater uses it.
        self.snapshot_size = 0
        # mu guards commit_subs: a handler submits and subscribes under it,
        # the updater takes the subscriptions of an index under it.
        self.mu = threading.Lock()
        self.commit_subs: dict[int, list[CommitSubscription]] = {}
        # What the updater raised, if it did (see failure); guarded by mu.
        self.updater_error: Exception | None = None
        self.datastore = DataStore()
        self.sessions = SessionTable(SESSION_WINDOW, RESPONSE_BUDGET)
        self.commit_chan: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
        self.raft_server = Server(id, peer_ids, storage, ready, self.commit_chan)
        self.raft_server.serve()
        self.http_server: APIServer | None = None
        self.updater = threading.Thread(
            target=self.run_updater, name=f"kv{id}-updater", daemon=True
        )
        self.updater.start()

    def serve_http(self, port: int = 0) -> str:
        """Serve the HTTP API on ``127.0.0.1:port`` (0 picks a free port) on
        threads of its own; return the address, ``"127.0.0.1:PORT"``.

        Raises OSError if the port is taken; the service carries on.
        """
        if self.http_server is not None:
            raise RuntimeError(f"kv {self.id} serves HTTP already")
        self.http_server = APIServer(
            port, f"kv{self.id}", self.handle_request, self.kvlog
        )
        self.http_server.start()
        addr = f"127.0.0.1:{self.http_server.server_port}"
        self.kvlog("serving HTTP on %s", addr)
        return addr

    def shutdown(self) -> None:
        """Stop Raft, the updater and the HTTP server.

        Every handler still waiting is answered Timeout, every thread the
        service started ends, and the HTTP port refuses connections, all
        before this returns.
        """
        self.kvlog("shutting down")
        if self.http_server is not None:
            self.http_server.stop_accepting()
        # After this nothing more comes on commit_chan, and submit fails.
        self.raft_server.shutdown()
        self.commit_chan.put(END_OF_COMMITS)
        self.updater.join()
        self.answer_waiting_handlers()
        if self.http_server is not None:
            self.http_server.close()
        self.kvlog("shut down")

    def failure(self) -> Exception | None:
        """Why this service stopped for good, or None while it works.

        Two failures stop it. Its Raft server's storage failed: the consensus
        module stopped at once, since it cannot promise anything it did not
        write (part6's ``fail_stop``), and it never comes back. Or its
        updater raised: its DataStore may no longer match the other
        replicas', so nothing it would answer can be trusted. A failed
        service answers no more requests: its HTTP port is closed, at once
        when the updater fails, at the first request after its Raft server
        stopped.
        """
        with self.mu:
            if self.updater_error is not None:
                return self.updater_error
        cm = self.raft_server.cm
        with cm.mu:
            return cm.storage_error

    def stop_serving(self) -> None:
        """Stop for good, as a crash would, after a failure: stop Raft, close
        the HTTP port, and answer Timeout to the handlers still waiting.
        Unlike shutdown() it may run on a thread of the service, so it waits
        for none of them; shutdown() ends them later."""
        self.kvlog("stops serving: %s", self.failure())
        if self.http_server is not None:
            self.http_server.stop_accepting()
            self.http_server.server_close()
        self.raft_server.shutdown()
        self.answer_waiting_handlers()

    def answer_waiting_handlers(self) -> None:
        """Wake every handler still waiting: with nothing applied for it, it
        answers Timeout. Only once Raft is stopped: no handler subscribes
        after this."""
        with self.mu:
            for subscriptions in self.commit_subs.values():
                for subscription in subscriptions:
                    subscription.done.set()
            self.commit_subs.clear()

    def handle_request(self, request: Request) -> Reply:
        """Have the cluster apply ``request``, and say what became of it."""
        command = Command(request, self.id, uuid.uuid4().hex)
        with self.mu:
            index = self.raft_server.submit(command)
            if index >= 0:
                # Subscribing while still holding mu: the updater needs mu
                # to hand out the entry at this index, so it cannot do that
                # before we are subscribed.
                subscription = CommitSubscription(index)
                self.commit_subs.setdefault(index, []).append(subscription)
        if index < 0:
            self.kvlog("not leader: %r", command)
            if self.failure() is not None:
                # Not a follower: a Raft server stopped for good.
                self.stop_serving()
            return Reply(Status.NOT_LEADER)
        self.kvlog("submitted %r at index %d", command, index)

        subscription.done.wait(COMMIT_TIMEOUT)
        with self.mu:
            self.unsubscribe(subscription)
            applied = subscription.applied
        if applied is None:
            self.kvlog("timeout: %r at index %d", command, index)
            return Reply(Status.TIMEOUT)
        if applied.command.command_id != command.command_id:
            self.kvlog(
                "failed commit: %r lost index %d to %r", command, index, applied.command
            )
            return Reply(Status.FAILED_COMMIT)
        match applied.outcome:
            case Outcome.APPLIED | Outcome.REPEATED:
                return Reply(Status.OK, applied.found, applied.value)
            case Outcome.OLDER:
                return Reply(Status.DUPLICATE_REQUEST)
            case Outcome.EXPIRED:
                return Reply(Status.SESSION_EXPIRED)

    def unsubscribe(self, subscription: CommitSubscription) -> None:
        """Drop a subscription, if the updater has not taken it. Expects mu."""
        subscriptions = self.commit_subs.get(subscription.index, [])
        if subscription in subscriptions:
            subscriptions.remove(subscription)
            if not subscriptions:
                del self.commit_subs[subscription.index]

    def run_updater(self) -> None:
        """Apply each new committed command to the DataStore, in log order, and
        tell the handlers waiting for its index.

        This is the replicated state machine: every replica runs the same
        commands in the same order, so every DataStore holds the same data.
        The sessions are part of it: every replica builds the same table.
        An entry it cannot apply (a bug, or a log written by another
        program) stops the service for good, loudly: skipping the entry
        would leave this replica's data unlike the others'.
        """
        try:
            while (entry := self.commit_chan.get()) is not END_OF_COMMITS:
                if isinstance(entry, SnapshotEntry):
                    self.restore_snapshot(entry)
                    continue
                command = entry.command
                request = command.request
                outcome, value, found = self.sessions.execute(
                    entry.index,
                    request.client_id,
                    request.request_id,
                    functools.partial(self.apply, request),
                )
                applied = Applied(command, outcome, value, found)
                self.kvlog(
                    "%r at index %d: %s; found=%s, value=%s",
                    command,
                    entry.index,
                    outcome.value,
                    found,
                    brief(value),
                )
                with self.mu:
                    for subscription in self.commit_subs.pop(entry.index, []):
                        subscription.applied = applied
                        subscription.done.set()
                if 0 <= self.max_raft_state < self.raft_state_size():
                    self.take_snapshot(entry.index)
        except StorageFailedError:
            # The snapshot could not be saved, and the Raft server stopped
            # (its log says why): the service stops with it.
            self.stop_serving()
        except Exception as error:
            log.exception("[kv %d] the updater failed", self.id)
            with self.mu:
                self.updater_error = error
            self.stop_serving()

    def raft_state_size(self) -> int:
        """The bytes the Raft server keeps in storage besides its snapshot:
        its term, vote, base and log."""
        return self.storage.size() - self.snapshot_size

    def take_snapshot(self, index: int) -> None:
        """Hand Raft a snapshot of the state after the entry at ``index``,
        the last one applied, so that it drops the entries up to it.

        Only the updater changes the DataStore and the sessions, and it is
        here: they stay as they are while they are serialized, and every
        request waits meanwhile. Raft then saves the snapshot, holding its
        own lock, before this returns.
        """
        data = self.snapshot_state()
        self.kvlog("takes a snapshot after index %d: %d bytes", index, len(data))
        self.raft_server.cm.snapshot(index, data)
        # Had Raft installed a later snapshot meanwhile, it would ignore
        # this one; but then that one is next on the commit channel, and
        # restore_snapshot sets the size again.
        self.snapshot_size = len(data)

    def snapshot_state(self) -> bytes:
        """The DataStore and the session table, serialized."""
        return pickle.dumps((self.datastore.snapshot(), *self.sessions.snapshot()))

    def restore_snapshot(self, snapshot: SnapshotEntry) -> None:
        """Replace the DataStore and the sessions with those of ``snapshot``.

        The entries it covers are not applied here: a handler waiting for
        one of them will never see what became of its command, so it is
        answered now (Timeout: the command may have committed).
        """
        data, sessions, expired = pickle.loads(snapshot.data)
        self.datastore.restore(data)
        self.sessions.restore(sessions, expired)
        self.snapshot_size = len(snapshot.data)
        self.kvlog("restores %s", snapshot)
        with self.mu:
            for index in [i for i in self.commit_subs if i <= snapshot.index]:
                for subscription in self.commit_subs.pop(index):
                    subscription.done.set()

    def apply(self, request: Request) -> tuple[str, bool]:
        """Run ``request`` on the DataStore and return its result."""
        match request.op:
            case "get":
                return self.datastore.get(request.key)
            case "put":
                return self.datastore.put(request.key, request.value)
            case "cas":
                return self.datastore.cas(
                    request.key, request.compare_value, request.value
                )
            case "append":
                return self.datastore.append(request.key, request.value)
        raise ValueError(f"unknown operation in {request!r}")

    def delay_next_http_response(self) -> None:
        """Hold back the next HTTP response this service writes, whatever it
        is, for DELAYED_RESPONSE seconds: a client's attempt times out
        meanwhile, although the request is carried out as usual."""
        if self.http_server is None:
            raise RuntimeError(f"kv {self.id} does not serve HTTP")
        self.kvlog("will delay the next HTTP response")
        self.http_server.delay_next_response(DELAYED_RESPONSE)

    def is_leader(self) -> bool:
        """True iff this service's Raft server is the leader."""
        return self.raft_server.is_leader()

    def connect_to_raft_peer(self, peer_id: int, addr: Listener) -> None:
        """Open the Raft connection to ``peer_id``."""
        self.raft_server.connect_to_peer(peer_id, addr)

    def disconnect_from_raft_peer(self, peer_id: int) -> None:
        """Close the Raft connection to ``peer_id``."""
        self.raft_server.disconnect_peer(peer_id)

    def disconnect_from_all_raft_peers(self) -> None:
        """Close every Raft connection of this service."""
        self.raft_server.disconnect_all()

    def get_raft_listen_addr(self) -> Listener:
        """The address other services' Raft servers connect to."""
        return self.raft_server.get_listen_addr()

    def kvlog(self, message: str, *args: object) -> None:
        """Log a debug line as ``[kv id] message``."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[kv %d] " + message, self.id, *args)
