"""Test harness: a cluster of KVServices, clients, fault injection and checks.

A test builds a cluster with ``Harness(n)``, talks to it through clients
from ``new_client()`` and friends, cuts services off, crashes and restarts
them, and checks what clients see. Use it as a context manager, so the
cluster is shut down even when a check fails::

    with Harness(3) as h:
        h.check_single_leader()
        c = h.new_client()
        h.check_put(c, "k", "v")
        h.check_get(c, "k", "v")

Each service serves HTTP on a free port of 127.0.0.1, so two harnesses can
run at once. Every call made on a client of ``new_client*()`` is recorded:
``history()`` returns the calls in the history format of ``tools.lincheck``.

With ``Harness(n, max_raft_state=B)``, each service takes a snapshot when
its Raft state in storage outgrows B bytes; ``raft_state_size(i)`` and
``snapshot_size(i)`` tell what service i's storage holds.
"""

from __future__ import annotations

import logging
import pickle
import random
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from part6.storage import MapStorage

from .api import Request
from .kvclient import (
    KVClient,
    KVDuplicateRequestError,
    KVSessionExpiredError,
    KVTimeoutError,
)
from .kvservice import KVService, SizedStorage

log = logging.getLogger(__name__)

CHECK_DEADLINE = 5.0
"""Seconds a positive check (a leader is elected, a call succeeds) may take."""

TIMES_OUT_DEADLINE = 0.3
"""The deadline of the call ``check_get_times_out`` expects to time out."""

POLL_INTERVAL = 0.010
"""Seconds between two looks at the cluster while waiting for a condition."""


class History:
    """The operations clients made, with when they were called and returned.

    Times are ``time.monotonic()`` seconds, one clock for every client of
    the process.
    """

    def __init__(self) -> None:
        self.mu = threading.Lock()
        self.operations: list[dict[str, Any]] = []

    def record(
        self,
        client: int,
        request: Request,
        call: float,
        returned: float | None,
        output: tuple[str, bool] | None,
    ) -> None:
        """Record one operation; ``returned`` and ``output`` are None when
        the call raised (its outcome is unknown)."""
        operation = {
            "client": client,
            "op": request.op,
            "key": request.key,
            "value": request.value,
            "compare_value": request.compare_value,
            "call": call,
            "return": returned,
            "output": None
            if output is None
            else {"value": output[0], "found": output[1]},
        }
        with self.mu:
            self.operations.append(operation)

    def operations_so_far(self) -> list[dict[str, Any]]:
        """The operations recorded so far, in the order they ended."""
        with self.mu:
            return [dict(operation) for operation in self.operations]


class RecordedClient(KVClient):
    """A KVClient that records each of its calls in a History."""

    def __init__(
        self, service_addrs: list[str], attempt_timeout: float, history: History
    ) -> None:
        super().__init__(service_addrs, attempt_timeout)
        self.history = history

    def send(self, request: Request, timeout: float) -> tuple[str, bool]:
        """Send as KVClient does, and record the call and its result."""
        call = time.monotonic()
        try:
            result = super().send(request, timeout)
        except BaseException:
            self.history.record(self.id, request, call, None, None)
            raise
        self.history.record(self.id, request, call, time.monotonic(), result)
        return result


class Harness:
    """A cluster of ``n`` connected KVServices, ready to run, each taking a
    snapshot when its Raft state outgrows ``max_raft_state`` bytes (-1:
    never).

    Service ``i`` keeps its Raft state in ``storages[i]`` (by default a new
    MapStorage each) and serves HTTP on ``port + i`` (by default a free
    port). Raises OSError if a port is taken; the services started so far
    are shut down.
    """

    def __init__(
        self,
        n: int,
        storages: Sequence[SizedStorage] | None = None,
        port: int = 0,
        max_raft_state: int = -1,
    ) -> None:
        if n < 1:
            raise ValueError(f"a cluster needs at least one service, got {n}")
        if storages is not None and len(storages) != n:
            raise ValueError(f"{n} services need {n} storages, got {len(storages)}")
        self.n = n
        self.max_raft_state = max_raft_state
        # Tells a log reader (tools/raft_check) that a new cluster starts.
        self.tlog(f"New cluster of {n} servers")
        # A service's storage outlives its crashes: a restart gets it back.
        self.storage = (
            [MapStorage() for _ in range(n)] if storages is None else list(storages)
        )
        self.connected = [False] * n
        self.alive = [True] * n
        self.recorded = History()
        self.clients: list[RecordedClient] = []
        ready = threading.Event()
        self.services = [
            KVService(i, self.peer_ids(i), self.storage[i], ready, max_raft_state)
            for i in range(n)
        ]
        for i in range(n):
            for j in range(n):
                if i != j:
                    self.services[i].connect_to_raft_peer(
                        j, self.services[j].get_raft_listen_addr()
                    )
            self.connected[i] = True
        ready.set()
        try:
            self.addrs = [
                service.serve_http(port + service.id if port else 0)
                for service in self.services
            ]
        except BaseException:
            self.shutdown()
            raise

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
        """Disconnect and shut down every service, and close the clients'
        connections."""
        for i in range(self.n):
            self.services[i].disconnect_from_all_raft_peers()
            self.connected[i] = False
        for i in range(self.n):
            if self.alive[i]:
                self.alive[i] = False
                self.services[i].shutdown()
        for client in self.clients:
            client.close()

    def peer_ids(self, i: int) -> list[int]:
        """The ids of the services other than ``i``."""
        return [p for p in range(self.n) if p != i]

    def service_addr(self, i: int) -> str:
        """The HTTP address of service ``i``, ``"127.0.0.1:PORT"``."""
        self.check_id(i)
        return self.addrs[i]

    def history(self) -> list[dict[str, Any]]:
        """Every call made on the clients of this harness, in the history
        format of ``tools.lincheck``."""
        return self.recorded.operations_so_far()

    def raft_state_size(self, i: int) -> int:
        """The bytes service ``i``'s storage holds besides its snapshot:
        its Raft server's term, vote, base and log."""
        self.check_id(i)
        return self.storage[i].size() - self.snapshot_size(i)

    def snapshot_size(self, i: int) -> int:
        """The bytes of service ``i``'s snapshot in storage (0 if none).
        part6.raft saves it last in the record under "snapshot"."""
        self.check_id(i)
        record = self.storage[i].get("snapshot")
        return 0 if record is None else len(pickle.loads(record)[-1])

    # --- Faults -----------------------------------------------------------

    def disconnect_service_from_peers(self, i: int) -> None:
        """Cut service ``i``'s Raft server off from all others, both ways.
        Its HTTP server still answers clients."""
        self.check_id(i)
        self.tlog(f"Disconnect {i}")
        self.services[i].disconnect_from_all_raft_peers()
        for j in self.peer_ids(i):
            self.services[j].disconnect_from_raft_peer(i)
        self.connected[i] = False

    def reconnect_service_to_peers(self, i: int) -> None:
        """Connect service ``i`` again, both ways, to every service that is
        connected; a disconnected one stays cut off."""
        self.check_id(i)
        if not self.alive[i]:
            raise ValueError(f"service {i} is crashed: restart_service() it")
        self.tlog(f"Reconnect {i}")
        for j in self.peer_ids(i):
            if self.connected[j]:
                self.services[i].connect_to_raft_peer(
                    j, self.services[j].get_raft_listen_addr()
                )
                self.services[j].connect_to_raft_peer(
                    i, self.services[i].get_raft_listen_addr()
                )
        self.connected[i] = True

    def crash_service(self, i: int) -> None:
        """Crash service ``i``: cut it off and shut it down. Its storage
        survives; its HTTP port refuses connections until a restart."""
        self.check_id(i)
        if not self.alive[i]:
            raise ValueError(f"service {i} is already crashed")
        self.tlog(f"Crash {i}")
        self.disconnect_service_from_peers(i)
        self.alive[i] = False
        self.services[i].shutdown()

    def restart_service(self, i: int) -> None:
        """Restart crashed service ``i`` on its storage and its HTTP address,
        and reconnect it."""
        self.check_id(i)
        if self.alive[i]:
            raise ValueError(f"service {i} is alive: crash_service() it first")
        self.tlog(f"Restart {i}")
        ready = threading.Event()
        service = KVService(
            i, self.peer_ids(i), self.storage[i], ready, self.max_raft_state
        )
        port = int(self.addrs[i].rpartition(":")[2])
        try:
            self.addrs[i] = service.serve_http(port)
        except OSError:  # a stray process took the port
            service.shutdown()
            raise
        self.services[i] = service
        self.alive[i] = True
        self.reconnect_service_to_peers(i)
        ready.set()

    def delay_next_http_response_from_service(self, i: int) -> None:
        """Hold back the next HTTP response of service ``i`` (see
        ``KVService.delay_next_http_response``)."""
        self.check_id(i)
        self.tlog(f"Delay next HTTP response from {i}")
        self.services[i].delay_next_http_response()

    # --- Clients ------------------------------------------------------------

    def new_client(self, attempt_timeout: float = 0.1) -> RecordedClient:
        """A client of every alive service, in the order of their ids."""
        return self.client(
            [self.addrs[i] for i in range(self.n) if self.alive[i]], attempt_timeout
        )

    def new_client_with_random_addrs_order(
        self, attempt_timeout: float = 0.1
    ) -> RecordedClient:
        """A client of every alive service, in a random order."""
        addrs = [self.addrs[i] for i in range(self.n) if self.alive[i]]
        random.shuffle(addrs)
        return self.client(addrs, attempt_timeout)

    def new_client_single_service(
        self, i: int, attempt_timeout: float = 0.1
    ) -> RecordedClient:
        """A client of service ``i`` alone."""
        self.check_id(i)
        return self.client([self.addrs[i]], attempt_timeout)

    def client(self, addrs: list[str], attempt_timeout: float) -> RecordedClient:
        """A recorded client of ``addrs``."""
        client = RecordedClient(addrs, attempt_timeout, self.recorded)
        self.clients.append(client)
        self.tlog(f"new client {client.id} of {addrs}")
        return client

    # --- Checks -------------------------------------------------------------

    def check_single_leader(self) -> int:
        """Wait until exactly one connected service is leader; return its id.

        Two leaders in one term break Raft: that fails at once. Two leaders
        of different terms happen for a moment after a partition heals (the
        old one has not heard of the new term yet), so we wait.
        """
        deadline = time.monotonic() + CHECK_DEADLINE
        while True:
            leaders: dict[int, int] = {}
            for i in range(self.n):
                if self.connected[i]:
                    _, term, is_leader = self.services[i].raft_server.cm.report()
                    if is_leader:
                        if term in leaders:
                            raise AssertionError(
                                f"services {leaders[term]} and {i} both lead "
                                f"term {term}"
                            )
                        leaders[term] = i
            if len(leaders) == 1:
                return next(iter(leaders.values()))
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no single leader after {CHECK_DEADLINE}s; "
                    f"leaders by term: {leaders}"
                )
            time.sleep(POLL_INTERVAL)

    def check_put(self, c: KVClient, key: str, value: str) -> tuple[str, bool]:
        """Put through ``c``, which must succeed; return ``(prev, found)``."""
        return self.check_call(c, Request("put", key, value))

    def check_get(self, c: KVClient, key: str, value: str) -> None:
        """Get through ``c``: the key must be found, holding ``value``."""
        got, found = self.check_call(c, Request("get", key))
        if not found or got != value:
            raise AssertionError(
                f"get({key!r}) = ({got!r}, found={found}); want ({value!r}, found=True)"
            )

    def check_get_not_found(self, c: KVClient, key: str) -> None:
        """Get through ``c``: the key must be absent."""
        got, found = self.check_call(c, Request("get", key))
        if found:
            raise AssertionError(f"get({key!r}) found {got!r}; want it absent")

    def check_get_times_out(self, c: KVClient, key: str) -> None:
        """Get through ``c`` with a short deadline (TIMES_OUT_DEADLINE): it
        must raise KVTimeoutError."""
        self.tlog(f"client {c.id}: get({key!r}), which must time out")
        try:
            got = c.get(key, TIMES_OUT_DEADLINE)
        except KVTimeoutError:
            return
        raise AssertionError(f"get({key!r}) = {got}; want a timeout")

    def check_cas(
        self, c: KVClient, key: str, compare: str, value: str
    ) -> tuple[str, bool]:
        """CAS through ``c``, which must succeed (whether or not it swaps);
        return ``(prev, found)``."""
        return self.check_call(c, Request("cas", key, value, compare))

    def check_append(self, c: KVClient, key: str, value: str) -> tuple[str, bool]:
        """Append through ``c``, which must succeed; return ``(prev, found)``."""
        return self.check_call(c, Request("append", key, value))

    def check_call(self, c: KVClient, request: Request) -> tuple[str, bool]:
        """Send ``request`` through ``c``; a timeout, a duplicate request or
        an expired session fails the check."""
        self.tlog(f"client {c.id}: {request!r}")
        try:
            return c.send(request, CHECK_DEADLINE)
        except (
            KVTimeoutError,
            KVDuplicateRequestError,
            KVSessionExpiredError,
        ) as error:
            raise AssertionError(
                f"client {c.id}: {request!r} failed: {error!r}"
            ) from error

    def tlog(self, message: str) -> None:
        """Log a message of the test itself, as ``[TEST] message``."""
        log.debug("[TEST] %s", message)

    def check_id(self, i: int) -> None:
        """Raise ValueError for an id that is not in the cluster."""
        if not 0 <= i < self.n:
            raise ValueError(f"no service {i} in a cluster of {self.n}")
