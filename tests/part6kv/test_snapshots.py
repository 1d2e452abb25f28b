"""Snapshots of the service: the scenarios of MIT 6.5840's lab 4C.

Every cluster here takes a snapshot when a service's Raft state outgrows
MAX_RAFT_STATE bytes, as the lab's tests do, and every test checks what
the lab checks: that the log was trimmed (the Raft state of every service
stays under 8 times MAX_RAFT_STATE), that a service far behind catches up from
the leader's snapshot, and that what the clients saw is right across
partitions, lost messages and restarts of the whole cluster, which restore
each service from its snapshot.

The tests with many clients draw their partitions and their clients'
operations from a seed they print, as ``RAFT_SEED=...``; set it to replay a
run's script (the threads' interleaving stays random).
"""

from __future__ import annotations

import functools
import itertools
import random
import threading
import time
from pathlib import Path

import pytest

from part6kv.api import Request
from part6kv.harness import Harness, RecordedClient
from part6kv.kvclient import KVTimeoutError
from tests.part6kv.helpers import Background, wait_until
from tests.part6kv.test_main import check_tokens
from tools.lincheck import assert_linearizable

MAX_RAFT_STATE = 1000
"""The lab's maxraftstate: a snapshot every few entries."""

MAX_SNAPSHOT = 500
"""The lab's bound on the snapshot of one key and one client."""

ELECTION_TIMEOUT = 0.3
"""Seconds: the longest election timeout of part6."""

ITERATIONS = 3
"""Rounds of clients, each ended by healing and restarting the cluster."""

ROUND_SECONDS = 2.0
"""How long the clients run in each round."""

CALL_TIMEOUT = 2.0
"""The deadline of a client's call in a round: a call cut short by a
partition has an unknown outcome, and the client goes on."""


def test_snapshot_rpc(caplog: pytest.LogCaptureFixture) -> None:
    """If one service falls behind, then rejoins, does it catch up with the
    InstallSnapshot RPC? And does the majority trim its log even though the
    minority does not answer?"""
    with Harness(3, max_raft_state=MAX_RAFT_STATE) as h:
        c = h.new_client()
        h.check_put(c, "a", "A")
        h.check_get(c, "a", "A")

        # A bunch of puts into the majority partition.
        h.disconnect_service_from_peers(2)
        majority = h.client([h.service_addr(0), h.service_addr(1)], 0.1)
        for i in range(50):
            h.check_put(majority, str(i), str(i))
        time.sleep(ELECTION_TIMEOUT)
        h.check_put(majority, "b", "B")
        # The majority has thrown away most of its log.
        for i in range(3):
            assert h.raft_state_size(i) <= 8 * MAX_RAFT_STATE, i

        # Now a majority that needs the lagging service: it must catch up,
        # and the entries it lacks are gone from the leader's log.
        h.reconnect_service_to_peers(2)
        h.disconnect_service_from_peers(1)
        with_lagging = h.client([h.service_addr(0), h.service_addr(2)], 0.1)
        h.check_put(with_lagging, "c", "C")
        h.check_put(with_lagging, "d", "D")
        h.check_get(with_lagging, "a", "A")
        h.check_get(with_lagging, "b", "B")
        h.check_get(with_lagging, "1", "1")
        h.check_get(with_lagging, "49", "49")
        assert "[2] ... installing snapshot at index" in caplog.text

        # Now everybody.
        h.reconnect_service_to_peers(1)
        h.check_put(c, "e", "E")
        h.check_get(c, "c", "C")
        h.check_get(c, "e", "E")
        h.check_get(c, "1", "1")


def test_snapshot_size() -> None:
    """Are the snapshots not too large? 500 bytes is generous for one key
    and one client's session."""
    with Harness(3, max_raft_state=MAX_RAFT_STATE) as h:
        c = h.new_client()
        for _ in range(200):
            h.check_put(c, "x", "0")
            h.check_get(c, "x", "0")
            h.check_put(c, "x", "1")
            h.check_get(c, "x", "1")
        # Every service has thrown away most of its log, for a small
        # snapshot.
        for i in range(3):
            assert h.raft_state_size(i) <= 8 * MAX_RAFT_STATE, i
            assert 0 < h.snapshot_size(i) <= MAX_SNAPSHOT, i


class AppendingClient:
    """A client that appends numbered tokens to a key of its own and reads
    it back, round after round (the lab's clients, with appends)."""

    def __init__(self, h: Harness, key: str) -> None:
        self.h = h
        self.key = key
        self.acknowledged: list[int] = []
        self.tokens = itertools.count()
        self.attempted = 0
        self.client: RecordedClient | None = None

    def run(self, seed: str, stop: threading.Event) -> None:
        """Until ``stop``: append or get, half of the time each, through a
        new client of every service. A get must show every append
        acknowledged so far, once."""
        rng = random.Random(seed)
        self.client = self.h.new_client()
        while not stop.is_set():
            if rng.random() < 0.5:
                token = next(self.tokens)
                self.attempted = token + 1
                try:
                    self.client.append(self.key, f"{token},", CALL_TIMEOUT)
                except KVTimeoutError:
                    continue  # the outcome is unknown
                self.acknowledged.append(token)
            else:
                try:
                    value, _ = self.client.get(self.key, CALL_TIMEOUT)
                except KVTimeoutError:
                    continue
                check_tokens(value, self.acknowledged, self.attempted)

    def check(self) -> None:
        """Read the key, which must hold every acknowledged append, once."""
        assert self.client is not None
        value, _ = self.h.check_call(self.client, Request("get", self.key))
        check_tokens(value, self.acknowledged, self.attempted)


def partition_until(h: Harness, rng: random.Random, stop: threading.Event) -> None:
    """Until ``stop``: cut off a random minority of the services (maybe
    none), for an election timeout or a little more each time, then heal."""
    cut: list[int] = []
    while not stop.is_set():
        for i in cut:
            h.reconnect_service_to_peers(i)
        cut = rng.sample(range(h.n), rng.randrange((h.n - 1) // 2 + 1))
        for i in cut:
            h.disconnect_service_from_peers(i)
        stop.wait(ELECTION_TIMEOUT + rng.uniform(0, 0.2))
    for i in cut:
        h.reconnect_service_to_peers(i)


def generic_test(n_clients: int, partitions: bool, seed: int, tmp_path: Path) -> None:
    """The lab's generic test with snapshots and restarts: ``n_clients``
    clients append and read for ROUND_SECONDS while (with ``partitions``)
    the network is cut up; then the network heals, every Raft state must
    be trimmed, and the whole cluster crashes and restarts. Three rounds;
    the values and the history must be right all along."""
    rng = random.Random(seed)
    with Harness(5, max_raft_state=MAX_RAFT_STATE) as h:
        clients = [AppendingClient(h, f"k{c}") for c in range(n_clients)]
        for iteration in range(ITERATIONS):
            stop_clients, stop_partitions = threading.Event(), threading.Event()
            running = [
                Background(
                    functools.partial(c.run, f"{seed}/{iteration}/{i}", stop_clients)
                )
                for i, c in enumerate(clients)
            ]
            if partitions:
                partitioner = Background(
                    functools.partial(partition_until, h, rng, stop_partitions)
                )
            time.sleep(ROUND_SECONDS)
            stop_clients.set()
            for background in running:
                background.join()
            if partitions:
                stop_partitions.set()
                partitioner.join()

            # Once the servers have applied what the clients did, and had
            # the time to take their snapshots, every log is trimmed.
            wait_until(
                lambda: all(
                    h.raft_state_size(i) <= 8 * MAX_RAFT_STATE for i in range(h.n)
                ),
                f"every Raft state is at most 8 * {MAX_RAFT_STATE} bytes",
            )
            for client in clients:
                client.check()

            # Crash and restart every service: each restores its snapshot,
            # then applies the entries after it.
            for i in range(h.n):
                h.crash_service(i)
            for i in range(h.n):
                h.restart_service(i)
            for client in clients:
                client.check()

        assert all(h.snapshot_size(i) > 0 for i in range(h.n))
        assert all(client.acknowledged for client in clients)
        assert_linearizable(h.history(), tmp_path / "history.html")


def test_snapshot_recover_many_clients(seed: int, tmp_path: Path) -> None:
    generic_test(20, partitions=False, seed=seed, tmp_path=tmp_path)


def test_snapshot_unreliable_recover(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    generic_test(5, partitions=False, seed=seed, tmp_path=tmp_path)


def test_snapshot_unreliable_recover_concurrent_partition(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    generic_test(5, partitions=True, seed=seed, tmp_path=tmp_path)
