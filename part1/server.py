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
import random
import threading
import time
from typing import Any

from .raft import (
    AppendEntriesArgs,
    AppendEntriesReply,
    ConsensusModule,
    RequestVoteArgs,
    RequestVoteReply,
)


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
    """

    def __init__(self, cm: ConsensusModule) -> None:
        self.cm = cm

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
    """

    def __init__(
        self, server_id: int, peer_ids: list[int], ready: threading.Event
    ) -> None:
        self.server_id = server_id
        self.peer_ids = list(peer_ids)
        self.ready = ready
        self.mu = threading.Lock()
        self.peer_clients: dict[int, Connection] = {}
        self.listener = Listener()
        self._cm: ConsensusModule | None = None

    @property
    def cm(self) -> ConsensusModule:
        """The server's ConsensusModule (it exists once ``serve()`` ran)."""
        if self._cm is None:
            raise RuntimeError(f"server {self.server_id} is not serving yet")
        return self._cm

    def serve(self) -> None:
        """Create the ConsensusModule and start accepting RPCs."""
        self._cm = ConsensusModule(self.server_id, self.peer_ids, self, self.ready)
        self.listener.proxy = RPCProxy(self._cm)

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
            reply = connection.call(service_method, args, msg_id)
        except ConnectionError as error:
            self.cm.dlog("rpc %s lost to %s: %s", msg_id, peer_id, error)
            raise
        self.cm.dlog("rpc %s reply from %s: %s", msg_id, peer_id, reply)
        return reply

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
