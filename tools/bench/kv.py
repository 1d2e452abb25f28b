"""The measurements of a key/value stage (part4kv, part5kv, part6kv): its
services over HTTP, driven by the stage's own client.

A cluster is built from the stage's public API only: three ``KVService``
on the ``MapStorage`` of the Raft stage it runs on, connected to each
other, each serving HTTP on a free port of 127.0.0.1; clients are the
stage's ``KVClient``. Every figure is what a client of the service sees: a
request goes through HTTP, the handler, the Raft log and the updater, and
back. part6kv's services take a snapshot whenever their Raft state outgrows
``max_raft_state`` bytes, and part5kv is measured beside it, in the same
run, so that what compaction costs shows beside what it replaces.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .cluster import StalledError
from .compaction import beside_baseline, on_baseline
from .measure import LEADER_TIMEOUT, Bench, Measurement, Phase, latency, run_on

RAFT_STAGES = {"part4kv": "part3", "part5kv": "part3", "part6kv": "part6"}
"""The Raft stage each key/value stage runs on."""

KV_BASELINE = "part5kv"
"""The key/value stage part6kv is a copy of, measured beside it."""

ATTEMPT_TIMEOUT = 2.0
"""The clients' attempt timeout: above the services' COMMIT_TIMEOUT, so a
client waits for the handler's answer rather than resend a request that
part4kv might then apply twice."""

CALL_TIMEOUT = 5.0
"""Seconds one call may take before the run counts as STALLED."""


class KVCluster:
    """Three services of ``part``, connected and ready, serving HTTP; in
    part6kv, each takes a snapshot past ``max_raft_state`` bytes of Raft
    state."""

    def __init__(self, part: str, max_raft_state: int) -> None:
        kvservice = importlib.import_module(f"{part}.kvservice")
        storage = importlib.import_module(f"{RAFT_STAGES[part]}.storage")
        self.kvclient = importlib.import_module(f"{part}.kvclient")
        ready = threading.Event()
        compaction = (max_raft_state,) if part == "part6kv" else ()
        self.services = [
            kvservice.KVService(i, peers, storage.MapStorage(), ready, *compaction)
            for i, peers in enumerate([[1, 2], [0, 2], [0, 1]])
        ]
        for i, service in enumerate(self.services):
            for j, peer in enumerate(self.services):
                if i != j:
                    service.connect_to_raft_peer(j, peer.get_raft_listen_addr())
        self.addrs = [service.serve_http() for service in self.services]
        ready.set()

    def wait_for_leader(self) -> None:
        """Poll until one service leads; StalledError after LEADER_TIMEOUT."""
        deadline = time.perf_counter() + LEADER_TIMEOUT
        while sum(service.is_leader() for service in self.services) != 1:
            if time.perf_counter() > deadline:
                raise StalledError(f"no leader within {LEADER_TIMEOUT:g} s")
            time.sleep(0.001)

    def client(self) -> Any:
        """A new client of the cluster."""
        return self.kvclient.KVClient(self.addrs, ATTEMPT_TIMEOUT)

    def close(self) -> None:
        """Shut every service down."""
        for service in self.services:
            service.shutdown()


@contextlib.contextmanager
def kv_cluster(bench: Bench) -> Iterator[KVCluster]:
    """A fresh cluster with a leader, shut down at the end of the block."""
    with bench.threads_checked():
        cluster = KVCluster(bench.settings.part, bench.settings.max_raft_state)
        try:
            cluster.wait_for_leader()
            yield cluster
        finally:
            cluster.close()


def timed_ms(call: Callable[[], object], what: str) -> float:
    """How long ``call()`` takes, in ms. A call that fails stalls the run:
    with one leader and no faults, every call must succeed."""
    start = time.perf_counter()
    try:
        call()
    except Exception as error:
        raise StalledError(f"{what} failed: {error!r}") from None
    return (time.perf_counter() - start) * 1000


def kv_latency(bench: Bench, m: Measurement) -> None:
    """One client: puts one at a time, then gets of what they wrote, each
    timed from the call until it returns; and, in the same run, the commit
    latency of the Raft stage (part3 or part6), which every request pays
    and the service adds to."""
    commands = bench.settings.latency_commands
    raft_stage = RAFT_STAGES[bench.settings.part]
    commit, ratio = (
        f"{raft_stage} commit latency p50",
        f"put p50 / {raft_stage} commit p50",
    )
    for op in ("put", "get"):
        m.figures("ms", f"{op} latency p50", f"{op} latency p99", f"{op} latency max")
    m.figures("ms", commit)
    m.figures("x", ratio)
    with kv_cluster(bench) as cluster:
        client = cluster.client()
        timed_ms(functools.partial(client.put, "warm-up", "x"), "the first put")
        bench.bar("put and get latency", 2 * commands)
        samples: dict[str, list[float]] = {"put": [], "get": []}
        for i in range(commands):
            put = functools.partial(client.put, f"k{i}", f"v{i}", CALL_TIMEOUT)
            samples["put"].append(timed_ms(put, f"put #{i}"))
            bench.advance(i + 1)
        for i in range(commands):
            get = functools.partial(client.get, f"k{i}", CALL_TIMEOUT)
            samples["get"].append(timed_ms(get, f"get #{i}"))
            bench.advance(commands + i + 1)
    for op, ms in samples.items():
        m.distribution(f"{op} latency", ms)

    raft = run_on(bench, raft_stage, latency)
    m.notes += raft.notes
    if "latency p50" in raft.values:
        m.values[commit] = raft.values["latency p50"]
        m.values[ratio] = m.values["put latency p50"] / m.values[commit]


def kv_throughput(bench: Bench, m: Measurement) -> None:
    """For each number of clients, every client puts to a key of its own,
    one call after the other, for ``kv_seconds``; the figure is all the
    calls that returned, per second. More clients keep the leader busier:
    their requests share AppendEntries rounds."""
    counts = bench.settings.kv_clients
    for clients in counts:
        m.figures("op/s", throughput_label(clients))
    growth = f"growth {counts[0]}→{counts[1]} clients" if len(counts) > 1 else ""
    if growth:
        m.figures("x", growth)
    for clients in counts:
        m.values[throughput_label(clients)] = puts_per_second(bench, clients)
    if growth:
        first, second = (m.values[throughput_label(c)] for c in counts[:2])
        m.values[growth] = second / first


def throughput_label(clients: int) -> str:
    """The label of the throughput figure with ``clients`` clients."""
    return f"throughput {clients} client{'s' * (clients > 1)}"


def puts_per_second(bench: Bench, clients: int) -> float:
    """One throughput run with ``clients`` clients on a fresh cluster."""
    seconds = bench.settings.kv_seconds
    with kv_cluster(bench) as cluster:
        workers = [cluster.client() for _ in range(clients)]
        for c, client in enumerate(workers):
            timed_ms(functools.partial(client.put, f"c{c}", ""), "the first put")
        bench.bar(throughput_label(clients), seconds)
        start_line = threading.Barrier(clients + 1)
        stop = threading.Event()
        done = [0] * clients
        errors: list[str] = []

        def work(c: int) -> None:
            start_line.wait()
            while not stop.is_set():
                try:
                    workers[c].put(f"c{c}", str(done[c]), CALL_TIMEOUT)
                except Exception as error:
                    errors.append(repr(error))
                    return
                done[c] += 1

        threads = [
            threading.Thread(target=work, args=(c,), name=f"bench-kv-client-{c}")
            for c in range(clients)
        ]
        for thread in threads:
            thread.start()
        start_line.wait()
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            time.sleep(min(0.1, seconds - elapsed))
            bench.advance(min(seconds, time.perf_counter() - start))
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    if errors:
        raise StalledError(f"a put failed: {errors[0]}")
    return sum(done) / elapsed


KV_PHASES: dict[str, Phase] = {"latency": kv_latency, "throughput": kv_throughput}
"""The phases of a key/value stage, in the order a run measures them."""


def compacting_kv_latency(bench: Bench, m: Measurement) -> None:
    """The latency phase of part6kv; then part5kv's, in the same run."""
    kv_latency(bench, m)
    baseline = on_baseline(bench, m, kv_latency, KV_BASELINE)
    labels = [f"{op} latency {q}" for op in ("put", "get") for q in ("p50", "p99")]
    beside_baseline(m, baseline, labels, "put latency p50", ("part6kv", KV_BASELINE))


def compacting_kv_throughput(bench: Bench, m: Measurement) -> None:
    """The throughput phase of part6kv; then part5kv's, in the same run."""
    kv_throughput(bench, m)
    baseline = on_baseline(bench, m, kv_throughput, KV_BASELINE)
    labels = [throughput_label(clients) for clients in bench.settings.kv_clients]
    beside_baseline(m, baseline, labels, labels[-1], ("part6kv", KV_BASELINE))


KV_COMPACTION_PHASES: dict[str, Phase] = {
    "latency": compacting_kv_latency,
    "throughput": compacting_kv_throughput,
}
"""The phases of part6kv, each measured beside part5kv."""
