"""The four measurements of issue 7, each on fresh clusters.

Walls are ``time.perf_counter``; CPU is ``resource.getrusage(RUSAGE_SELF)``
(user + system, every thread of the process). Before each cluster is built
the garbage of the previous one is collected, and after it is shut down its
threads are waited for, so that no phase pays for another.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .cluster import Cluster, LeaderChangedError, Part, StalledError, accepted
from .progress import PhaseProgress
from .settings import CLUSTER_SIZE, IDLE_CLUSTER_SIZE, Settings, Step

T = TypeVar("T")

Status = Literal["ok", "STALLED", "LEADER CHANGED"]

WAIT_TICK = 0.02
"""Seconds between two checks (leader, stall, progress bar) while waiting
for commands to be delivered."""

LEADER_CHANGE_RETRIES = 1
"""Fresh clusters a throughput or latency run gets after a leader change."""

FAILOVER_SETTLE = 0.1
"""Seconds between a trial's cluster agreeing on a leader and its leader
being cut off: two heartbeats, so the followers have heard from it."""

IDLE_SETTLE = 0.5
"""Seconds the idle cluster gets after its election before the count starts."""

IDLE_TICK = 1.0
"""Seconds between two progress updates in the idle phase: a redraw costs
the process about 1 ms of CPU, which the idle figure counts."""


@dataclass
class Measurement:
    """The outcome of one run of one step.

    ``values`` holds the figures (only when ``status`` is ok), ``samples``
    the individual timings in ms of latency and failover, ``details``
    whatever explains the figures (JSON-able).
    """

    phase: str
    n: int | None = None
    status: Status = "ok"
    values: dict[str, float] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100), interpolating between the two
    nearest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(samples_ms: list[float]) -> dict[str, float]:
    """p50, p99 and max of a list of timings in ms."""
    return {
        "p50_ms": percentile(samples_ms, 50),
        "p99_ms": percentile(samples_ms, 99),
        "max_ms": max(samples_ms),
    }


def cpu_seconds() -> float:
    """User plus system CPU seconds used so far by the whole process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Runner:
    """Runs the steps of a benchmark on one part.

    Threads of a cluster still alive after it is closed are collected in
    ``leaked_threads``: the parts promise that there are none.
    """

    def __init__(self, part: Part, settings: Settings, progress: PhaseProgress) -> None:
        self.part = part
        self.settings = settings
        self.progress = progress
        self.leaked_threads: list[str] = []

    def measure(self, step: Step, label: str) -> Measurement:
        """Run ``step`` once, showing progress under ``label``."""
        phases: dict[str, Callable[[Step, str], Measurement]] = {
            "throughput": self.throughput,
            "latency": self.latency,
            "failover": self.failover,
            "idle": self.idle,
        }
        try:
            return phases[step.phase](step, label)
        except StalledError as stall:
            return Measurement(
                step.phase,
                step.n,
                status="STALLED",
                details={"stalled": stall.what, "delivered": stall.delivered},
            )

    @contextlib.contextmanager
    def cluster(self, n: int) -> Iterator[Cluster]:
        """A fresh cluster of ``n`` servers, closed at the end of the block."""
        gc.collect()
        cluster = Cluster(self.part, n)
        try:
            yield cluster
        finally:
            self.leaked_threads.extend(cluster.close())

    def wait(
        self,
        cluster: Cluster,
        leader: tuple[int, int],
        result: Callable[[float], T | None],
        progress: Callable[[], int],
    ) -> T:
        """Return the first value ``result`` gives that is not None.

        ``result(timeout)`` may block up to ``timeout`` s. Between two calls
        the leader is checked (LeaderChangedError) and so is ``progress``, a
        count that must grow at least every ``stall_seconds`` (StalledError).
        """
        last_count = progress()
        last_change = time.perf_counter()
        while (found := result(WAIT_TICK)) is None:
            cluster.check_leader(*leader)
            count = progress()
            now = time.perf_counter()
            if count != last_count:
                last_count, last_change = count, now
            elif now - last_change > self.settings.stall_seconds:
                raise StalledError(
                    f"no progress for {self.settings.stall_seconds:g} s",
                    cluster.delivered(),
                )
        return found

    def with_one_leader(
        self,
        step: Step,
        label: str,
        total: int,
        run: Callable[[Cluster, tuple[int, int]], Measurement],
    ) -> Measurement:
        """Run ``run(cluster, (leader, term))`` on a fresh 3-server cluster,
        again on another one if leadership changes during the run (its
        figure would mean nothing), and record how many times it did."""
        changes = 0
        for attempt in range(1 + LEADER_CHANGE_RETRIES):
            retry = f" (retry {attempt}: leader changed)" if attempt else ""
            with self.cluster(CLUSTER_SIZE) as cluster:
                leader = cluster.wait_for_leader(self.settings.stall_seconds)
                self.progress.start(label + retry, total)
                try:
                    measurement = run(cluster, leader)
                except LeaderChangedError:
                    changes += 1
                    continue
            measurement.details["leader_changes"] = changes
            return measurement
        return Measurement(
            step.phase,
            step.n,
            status="LEADER CHANGED",
            details={"leader_changes": changes},
        )

    def throughput(self, step: Step, label: str) -> Measurement:
        """Submit commands 0..N-1 to the leader as fast as ``submit``
        returns; time until every server has delivered all N."""
        assert step.n is not None
        n = step.n

        def run(cluster: Cluster, leader: tuple[int, int]) -> Measurement:
            server = cluster.servers[leader[0]]

            def all_delivered(timeout: float) -> float | None:
                delivered = cluster.delivered()
                self.progress.update(sum(delivered))
                if min(delivered) >= n:
                    return max(c.last_delivery() for c in cluster.collectors)
                time.sleep(timeout)
                return None

            start = time.perf_counter()
            for command in range(n):
                if not accepted(server.submit(command)):
                    raise LeaderChangedError(f"submit of {command} refused")
            submitted = time.perf_counter()
            done = self.wait(
                cluster, leader, all_delivered, lambda: sum(cluster.delivered())
            )
            seconds = done - start
            return Measurement(
                step.phase,
                n,
                values={
                    "commands_per_s": n / seconds,
                    "us_per_command": seconds / n * 1e6,
                    "seconds": seconds,
                },
                details={"submit_seconds": submitted - start},
            )

        return self.with_one_leader(step, label, n * CLUSTER_SIZE, run)

    def latency(self, step: Step, label: str) -> Measurement:
        """Submit commands one at a time; time each from ``submit`` until
        the leader's commit channel delivers it."""
        commands = self.settings.latency_commands

        def run(cluster: Cluster, leader: tuple[int, int]) -> Measurement:
            server = cluster.servers[leader[0]]
            collector = cluster.collectors[leader[0]]
            samples: list[float] = []
            for command in range(commands):
                start = time.perf_counter()
                if not accepted(server.submit(command)):
                    raise LeaderChangedError(f"submit of {command} refused")
                done = self.wait(
                    cluster,
                    leader,
                    functools.partial(collector.wait_for, command),
                    collector.count,
                )
                samples.append((done - start) * 1000)
                self.progress.update(command + 1)
            return Measurement(
                step.phase, values=distribution(samples), samples=samples
            )

        return self.with_one_leader(step, label, commands, run)

    def failover(self, step: Step, label: str) -> Measurement:
        """On fresh 3-server clusters, cut the leader off (and crash it, for
        a part with persistence); time until the other two agree on a new
        leader and its term."""
        trials = self.settings.failover_trials
        self.progress.start(label, trials)
        samples: list[float] = []
        for trial in range(trials):
            with self.cluster(CLUSTER_SIZE) as cluster:
                leader_id, _ = cluster.wait_for_leader(self.settings.stall_seconds)
                time.sleep(FAILOVER_SETTLE)
                start = time.perf_counter()
                if self.part.persistent:
                    cluster.crash(leader_id)
                else:
                    cluster.isolate(leader_id)
                cluster.wait_for_leader(self.settings.stall_seconds)
                samples.append((time.perf_counter() - start) * 1000)
            self.progress.update(trial + 1)
        return Measurement(
            step.phase,
            values=distribution(samples),
            samples=samples,
            details={"leader": "crashed" if self.part.persistent else "disconnected"},
        )

    def idle(self, step: Step, label: str) -> Measurement:
        """Leave a 5-server cluster with a leader alone; measure the CPU the
        process uses and the RPCs the servers send, per wall second.

        The CPU of the bench's own thread (its progress bar) is part of the
        figure, and is also reported on its own to show it is negligible.
        """
        seconds = self.settings.idle_seconds
        with self.cluster(IDLE_CLUSTER_SIZE) as cluster:
            leader = cluster.wait_for_leader(self.settings.stall_seconds)
            time.sleep(IDLE_SETTLE)
            self.progress.start(label, seconds)
            rpcs_before = cluster.rpc_count()
            cpu_before = cpu_seconds()
            own_cpu_before = time.thread_time()
            start = time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                time.sleep(min(IDLE_TICK, seconds - elapsed))
                self.progress.update(min(seconds, time.perf_counter() - start))
            wall = time.perf_counter() - start
            cpu = cpu_seconds() - cpu_before
            own_cpu = time.thread_time() - own_cpu_before
            rpcs = cluster.rpc_count() - rpcs_before
            leader_kept = cluster.agreed_leader() == leader
        return Measurement(
            step.phase,
            values={"cpu_per_wall": cpu / wall, "rpcs_per_s": rpcs / wall},
            details={
                "servers": IDLE_CLUSTER_SIZE,
                "wall_seconds": wall,
                "cpu_seconds": cpu,
                "bench_thread_cpu_seconds": own_cpu,
                "rpcs": rpcs,
                "leader_kept": leader_kept,
            },
        )
