"""A Raft server on a simulated, in-process network.

Nothing here opens a socket; instead the classes below behave like a real RPC
layer, so the consensus module meets the problems of a real network:

* every delivered RPC takes 1-5 ms;
* with the environment variable RAFT_UNRELIABLE_RPC set, 10% of RPCs are
  dropped and 10% take a further 75 ms;
* links are per direction: server A reaches B through a Connection A opened
  to B's Listener;
* a message gets through only while its link is up when it is sent *and*
  when the reply comes back. Closing a Connection loses the replies still in
  flight on it, even if a new Connection is opened before they arrive;
* a stopped server does not answer: a call that reaches its dead CM fails
  like a lost message, so no leader ever acts on a dead server's reply.

Every call is logged under a message id of its own, from its send to its
delivery and its reply, or its loss, so that a reader of the log (and the
log visualizer) can follow each message; docs/log-format.md lists the lines.
"""

from __future__ import annotations

import itertools
import os
import queue
import random
import threading
import time
from typing import Any

from .raft import (
    AppendEntriesArgs,
    AppendEntriesReply,
    CommitEntry,
    ConsensusModule,
    InstallSnapshotArgs,
    InstallSnapshotReply,
    RequestVoteArgs,
    RequestVoteReply,
    SnapshotEntry,
)
from .storage import Storage


class RPCError(ConnectionError):
    """An RPC did not get through: not connected, dropped, or reply lost."""


_message_numbers = itertools.count(1)
_message_numbers_mu = threading.Lock()


def new_message_id(sender: int) -> str:
    """A fresh id for a call from server ``sender``: ``"<sender>.<n>"``.

    ``n`` counts the calls of the whole process, so an id stays unique across
    servers, restarts and tests: it is what ties a message's log lines
    together.
    """
    with _message_numbers_mu:
        n = next(_message_numbers)
    return f"{sender}.{n}"


class RPCProxy:
    """Sits in front of a ConsensusModule and simulates the network.

    Each delivered RPC is delayed 1-5 ms. With RAFT_UNRELIABLE_RPC set (read
    at every call) one RPC in ten is dropped before it reaches the CM, and
    one in ten is delayed a further 75 ms.

    Tests can also make the server's own outgoing calls fail on purpose:
    ``drop_calls_after_n`` drops them after the next n, ``drop_replies``
    delivers them but loses their replies.
    """

    def __init__(self, cm: ConsensusModule) -> None:
        self.cm = cm
        self.mu = threading.Lock()
        # -1: drop no outgoing call; 0: drop every one; n > 0: let n more
        # through, then drop.
        self.num_calls_before_drop = -1
        self.dropping_replies = False

    def drop_calls_after_n(self, n: int) -> None:
        """Drop this server's outgoing calls after the next ``n``."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        with self.mu:
            self.num_calls_before_drop = n

    def dont_drop_calls(self) -> None:
        """Stop dropping outgoing calls."""
        with self.mu:
            self.num_calls_before_drop = -1

    def drop_replies(self) -> None:
        """Deliver this server's outgoing calls, but lose their replies."""
        with self.mu:
            self.dropping_replies = True

    def dont_drop_replies(self) -> None:
        """Stop losing the replies of outgoing calls."""
        with self.mu:
            self.dropping_replies = False

    def should_drop_call(self) -> bool:
        """Count an outgoing call; True if it must be dropped."""
        with self.mu:
            if self.num_calls_before_drop == 0:
                return True
            if self.num_calls_before_drop > 0:
                self.num_calls_before_drop -= 1
            return False

    def should_drop_reply(self) -> bool:
        """True if the reply of an outgoing call must be lost."""
        with self.mu:
            return self.dropping_replies

    def request_vote(self, args: RequestVoteArgs, msg_id: str) -> RequestVoteReply:
        """Deliver a RequestVote to the CM through the simulated network."""
        self.transmit(msg_id, "RequestVote")
        return self.cm.request_vote(args)

    def append_entries(
        self, args: AppendEntriesArgs, msg_id: str
    ) -> AppendEntriesReply:
        """Deliver an AppendEntries to the CM through the simulated network."""
        self.transmit(msg_id, "AppendEntries")
        return self.cm.append_entries(args)

    def install_snapshot(
        self, args: InstallSnapshotArgs, msg_id: str
    ) -> InstallSnapshotReply:
        """Deliver an InstallSnapshot to the CM through the simulated network."""
        self.transmit(msg_id, "InstallSnapshot")
        return self.cm.install_snapshot(args)

    def transmit(self, msg_id: str, name: str) -> None:
        """Carry the call ``msg_id`` over the simulated network, and log
        whether it reached the CM."""
        try:
            self.simulate_network(name)
        except RPCError:
            self.cm.dlog("rpc %s drop %s", msg_id, name)
            raise
        self.cm.dlog("rpc %s deliver %s", msg_id, name)

    def simulate_network(self, name: str) -> None:
        """Delay, or drop, an incoming RPC."""
        if os.environ.get("RAFT_UNRELIABLE_RPC"):
            dice = random.randrange(10)
            if dice == 9:
                raise RPCError(f"{name} dropped by the network")
            if dice == 8:
                self.cm.dlog("delay %s", name)
                time.sleep(0.075)
        time.sleep(random.uniform(0.001, 0.005))


class Listener:
    """A server's listening address: Connections deliver their calls here.

    It refuses calls until the server serves, and again after it shuts down.
    """

    def __init__(self) -> None:
        self.proxy: RPCProxy | None = None

    def dispatch(self, service_method: str, args: Any, msg_id: str) -> Any:
        """Run one incoming call on the proxy and return its reply."""
        proxy = self.proxy
        if proxy is None:
            raise RPCError("connection refused: server is not serving")
        if service_method == "ConsensusModule.RequestVote":
            return proxy.request_vote(args, msg_id)
        if service_method == "ConsensusModule.AppendEntries":
            return proxy.append_entries(args, msg_id)
        if service_method == "ConsensusModule.InstallSnapshot":
            return proxy.install_snapshot(args, msg_id)
        raise ValueError(f"unknown service method {service_method!r}")


class Connection:
    """One direction of a link: a client's connection to a peer's Listener."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.closed = False

    def call(self, service_method: str, args: Any, msg_id: str) -> Any:
        """Send the call ``msg_id`` and wait for its reply, which is lost if
        this connection was closed (or the peer stopped serving) meanwhile."""
        if self.closed:
            raise RPCError("connection is closed")
        reply = self.listener.dispatch(service_method, args, msg_id)
        if self.closed or self.listener.proxy is None:
            raise RPCError("connection lost before the reply arrived")
        return reply

    def close(self) -> None:
        """Cut this link: later calls fail and pending replies are lost."""
        self.closed = True


class Server:
    """A Raft server: a ConsensusModule plus its RPC endpoints.

    ``serve()`` creates the CM and starts accepting RPCs; the CM stays dormant
    until ``ready`` is set, which lets a harness connect all servers first.
    Committed commands come out on ``commit_chan``, and so do snapshots to
    install. The CM keeps its state and its snapshot in ``storage``, which
    a restarted server is given back.
    """

    def __init__(
        self,
        server_id: int,
        peer_ids: list[int],
        storage: Storage,
        ready: threading.Event,
        commit_chan: queue.Queue[CommitEntry | SnapshotEntry],
    ) -> None:
        self.server_id = server_id
        self.peer_ids = list(peer_ids)
        self.storage = storage
        self.ready = ready
        self.commit_chan = commit_chan
        self.mu = threading.Lock()
        self.peer_clients: dict[int, Connection] = {}
        self.listener = Listener()
        self._cm: ConsensusModule | None = None
        self._rpc_proxy: RPCProxy | None = None

    @property
    def cm(self) -> ConsensusModule:
        """The server's ConsensusModule (it exists once ``serve()`` ran)."""
        if self._cm is None:
            raise RuntimeError(f"server {self.server_id} is not serving yet")
        return self._cm

    def proxy(self) -> RPCProxy:
        """The RPCProxy in front of the CM, to inject faults."""
        if self._rpc_proxy is None:
            raise RuntimeError(f"server {self.server_id} is not serving yet")
        return self._rpc_proxy

    def serve(self) -> None:
        """Create the ConsensusModule and start accepting RPCs."""
        self._cm = ConsensusModule(
            self.server_id,
            self.peer_ids,
            self,
            self.storage,
            self.ready,
            self.commit_chan,
        )
        self._rpc_proxy = RPCProxy(self._cm)
        self.listener.proxy = self._rpc_proxy

    def get_listen_addr(self) -> Listener:
        """The address other servers pass to ``connect_to_peer``."""
        return self.listener

    def connect_to_peer(self, peer_id: int, addr: Listener) -> None:
        """Open a connection to ``peer_id`` if there is none."""
        self.check_peer(peer_id)
        with self.mu:
            if peer_id not in self.peer_clients:
                self.peer_clients[peer_id] = Connection(addr)

    def disconnect_peer(self, peer_id: int) -> None:
        """Close the connection to ``peer_id``, if there is one."""
        self.check_peer(peer_id)
        with self.mu:
            connection = self.peer_clients.pop(peer_id, None)
        if connection is not None:
            connection.close()

    def disconnect_all(self) -> None:
        """Close every outgoing connection."""
        with self.mu:
            connections = list(self.peer_clients.values())
            self.peer_clients.clear()
        for connection in connections:
            connection.close()

    def call(self, peer_id: int, service_method: str, args: Any) -> Any:
        """Call ``service_method`` on ``peer_id`` and return its reply.

        Raises a ConnectionError when the call does not get through: an
        RPCError when the peer is not connected, the call was dropped or the
        reply was lost, and the peer's own when its CM is dead.

        The log follows the call by its message id: ``rpc ID send`` here,
        ``rpc ID deliver`` (or ``drop``) at the peer, then ``rpc ID reply``
        or ``rpc ID lost`` here.
        """
        self.check_peer(peer_id)
        with self.mu:
            connection = self.peer_clients.get(peer_id)
        msg_id = new_message_id(self.server_id)
        self.cm.dlog("rpc %s send to %s: %s", msg_id, peer_id, args)
        try:
            if connection is None:
                raise RPCError(f"call to peer {peer_id}: not connected")
            if self.proxy().should_drop_call():
                raise RPCError(f"call to peer {peer_id} dropped")
            reply = connection.call(service_method, args, msg_id)
            if self.proxy().should_drop_reply():
                raise RPCError(f"reply from peer {peer_id} dropped")
        except ConnectionError as error:
            self.cm.dlog("rpc %s lost to %s: %s", msg_id, peer_id, error)
            raise
        self.cm.dlog("rpc %s reply from %s: %s", msg_id, peer_id, reply)
        return reply

    def submit(self, command: Any) -> int:
        """Submit a command to this server's CM; return its log index, or -1
        if the CM is not the leader (a stopped server is not)."""
        return self.cm.submit(command)

    def is_leader(self) -> bool:
        """True iff this server's CM is the leader."""
        return self.cm.report()[2]

    def shutdown(self) -> None:
        """Stop the CM and stop serving; every thread of the CM then ends."""
        self.cm.stop()
        self.listener.proxy = None
        self.disconnect_all()

    def check_peer(self, peer_id: int) -> None:
        """Raise ValueError for an id that is not one of this server's peers."""
        if peer_id not in self.peer_ids:
            raise ValueError(
                f"server {self.server_id}: unknown peer {peer_id} "
                f"(peers are {self.peer_ids})"
            )
