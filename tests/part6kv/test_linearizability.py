"""Linearizability under faults, checked by ``tools.lincheck``.

The randomized test follows the classic lab test grid for a key/value
service on Raft: concurrent clients on a few keys while the test cuts off
the leader and random followers, crashes and restarts services, and holds
answers back so that clients resend. Whatever happened, the history the
clients saw must be linearizable: that is the contract of part6kv, and
without exactly-once a resent append would break it. Every service takes a
snapshot when its Raft state outgrows MAX_RAFT_STATE bytes, a few entries:
services cut off or crashed for a while catch up from the leader's
snapshot, and restarted ones restore their own.

The test draws its faults and the clients' operations from random
generators whose seed it prints, as ``RAFT_SEED=...``; a failure's message
repeats it. To replay a run::

    RAFT_SEED=1234 python -m pytest tests/part6kv/test_linearizability.py

The seed fixes the test's script (what each client asks, which fault comes
when); the servers' timers and the thread scheduling stay random, so a
replay follows the same script, not the same interleaving.

A planted bug shows that the check bites: a leader that answers a get from
its own data, without the log, is caught reading stale data once it is cut
off.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import part6kv.harness
from part6kv.api import Reply, Request, Status
from part6kv.harness import Harness, RecordedClient
from part6kv.kvclient import KVTimeoutError
from part6kv.kvservice import KVService
from tests.part6kv.helpers import Background, wait_until
from tools.lincheck import assert_linearizable, check

N_SERVICES = 5
N_CLIENTS = 5
KEYS = ["x", "y", "z"]

DURATION = 10.0
"""Seconds the clients run while the faults come."""

CALL_TIMEOUT = 1.0
"""The deadline of a client's call: long enough for an election, short
enough that a client stuck behind a fault tries something else soon."""

MAX_FAULTY = 3
"""At most this many services are cut off or crashed at once. With three,
the other two are no majority: then nothing commits, calls time out, and
their outcome stays unknown until the next heal."""

FAULT_TIME = 1.5
"""Longest time, in seconds, a service stays cut off or crashed."""

THINK_TIME = 0.02
"""Longest pause of a client between two calls, in seconds."""

MAX_RAFT_STATE = 1000
"""Bytes of Raft state after which a service takes a snapshot."""


def run_client(
    client: RecordedClient, rng: random.Random, stop: threading.Event
) -> None:
    """Call random operations on KEYS until ``stop``. Every value written is
    unique, so that the history says which write a read saw."""
    last_seen = dict.fromkeys(KEYS, "")
    for n in itertools.count():
        if stop.is_set():
            return
        key = rng.choice(KEYS)
        token = f"{client.id}.{n};"
        op = rng.choice(["get", "put", "append", "cas"])
        if op == "cas":
            request = Request("cas", key, token, last_seen[key])
        else:
            request = Request(op, key, token if op != "get" else "")
        try:
            value, _ = client.send(request, CALL_TIMEOUT)
        except KVTimeoutError:
            pass  # the outcome is unknown; the history says so
        else:
            last_seen[key] = value
        time.sleep(rng.uniform(0, THINK_TIME))


class Faults:
    """The faults the test injects into a cluster, drawn from ``rng``. Each
    cut or crash lasts FAULT_TIME seconds or less, then the service is
    healed."""

    def __init__(self, h: Harness, rng: random.Random) -> None:
        self.h = h
        self.rng = rng
        # The faulty services, each with when to heal it.
        self.heal_at: dict[int, float] = {}

    def step(self) -> None:
        """Heal the services whose time has come, then inject a fault."""
        h, rng = self.h, self.rng
        for i, when in list(self.heal_at.items()):
            if when <= time.monotonic():
                self.heal(i)
        healthy = [i for i in range(h.n) if i not in self.heal_at]
        leaders = [i for i in healthy if h.services[i].is_leader()]
        room = len(self.heal_at) < MAX_FAULTY
        action = rng.choice(["cut leader", "cut", "crash", "delay leader", "delay"])
        if action == "cut leader" and room and leaders:
            self.cut(rng.choice(leaders))
        elif action == "cut" and room:
            self.cut(rng.choice(healthy))
        elif action == "crash" and room:
            i = rng.choice(healthy)
            h.crash_service(i)
            self.heal_at[i] = time.monotonic() + rng.uniform(0, FAULT_TIME)
        elif action == "delay leader" and leaders:
            h.delay_next_http_response_from_service(rng.choice(leaders))
        elif action in ("delay", "delay leader"):
            h.delay_next_http_response_from_service(rng.choice(healthy))

    def cut(self, i: int) -> None:
        """Cut service ``i`` off for a while."""
        self.h.disconnect_service_from_peers(i)
        self.heal_at[i] = time.monotonic() + self.rng.uniform(0, FAULT_TIME)

    def heal(self, i: int) -> None:
        """Restart service ``i`` if it crashed, else reconnect it."""
        del self.heal_at[i]
        if self.h.alive[i]:
            self.h.reconnect_service_to_peers(i)
        else:
            self.h.restart_service(i)

    def heal_all(self) -> None:
        """Heal every faulty service."""
        for i in list(self.heal_at):
            self.heal(i)


@contextlib.contextmanager
def cluster(n: int, seed: int) -> Iterator[Harness]:
    """A Harness of ``n`` services, taking snapshots, whose failures tell how
    to replay the run."""
    try:
        with Harness(n, max_raft_state=MAX_RAFT_STATE) as h:
            yield h
    except BaseException as e:
        e.add_note(f"replay with RAFT_SEED={seed}")
        raise


def test_linearizable_under_partitions_crashes_and_lost_answers(
    seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    with cluster(N_SERVICES, seed) as h:
        h.check_single_leader()
        clients = [h.new_client() for _ in range(N_CLIENTS)]
        stop = threading.Event()
        running = [
            Background(
                functools.partial(run_client, c, random.Random(f"{seed}/{i}"), stop)
            )
            for i, c in enumerate(clients)
        ]
        try:
            faults = Faults(h, rng)
            end = time.monotonic() + DURATION
            while time.monotonic() < end:
                faults.step()
                time.sleep(rng.uniform(0.1, 0.5))
            faults.heal_all()
        finally:
            stop.set()
            for background in running:
                background.thread.join()
        for background in running:
            background.join()

        # The cluster recovers, every replica ends with the same data, and
        # the clients saw one copy of it, all along.
        reader = h.new_client()
        for key in KEYS:
            h.check_call(reader, Request("get", key))
        wait_until(
            lambda: all(
                s.datastore.data == h.services[0].datastore.data for s in h.services
            ),
            "every replica holds the same data",
        )
        history = h.history()
        answered = [op for op in history if op["return"] is not None]
        assert len(answered) >= 100, f"{len(answered)} of {len(history)} answered"
        assert all(h.snapshot_size(i) > 0 for i in range(h.n))
        assert_linearizable(history, tmp_path / "history.html")


class LocalReadService(KVService):
    """BUG: a leader answers a get from its own DataStore, without putting
    it in the log (a tempting shortcut: a get changes nothing)."""

    def handle_request(self, request: Request) -> Reply:
        if request.op == "get" and self.is_leader():
            value, found = self.datastore.get(request.key)
            return Reply(Status.OK, found, value)
        return super().handle_request(request)


def read_from_cut_off_leader(h: Harness) -> None:
    """A put; the leader is cut off and another elected, which takes a new
    put; then a client of the old leader reads."""
    lid = h.check_single_leader()
    h.check_put(h.new_client(), "k", "old")
    h.disconnect_service_from_peers(lid)
    new_lid = h.check_single_leader()
    h.check_put(h.new_client_single_service(new_lid), "k", "new")
    stale = h.new_client_single_service(lid)
    # A correct old leader cannot answer: it cannot commit.
    with contextlib.suppress(KVTimeoutError):
        stale.get("k", timeout=0.5)


def test_read_from_cut_off_leader_is_linearizable() -> None:
    with Harness(3) as h:
        read_from_cut_off_leader(h)
        assert check(h.history()).ok


def test_planted_bug_local_reads_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(part6kv.harness, "KVService", LocalReadService)
    with Harness(3) as h:
        read_from_cut_off_leader(h)
        result = check(h.history())
    assert result.verdict == "not linearizable"
    assert [part.key for part in result.failures] == ["k"]
