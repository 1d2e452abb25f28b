"""The measurements of a Raft part, each on fresh clusters.

A phase is a function that runs once and fills a Measurement: it announces
the figures it will give (label and unit), then sets their values. What a
part is measured in is a table of such phases (``RAFT_PHASES``).

Walls are ``time.perf_counter``; CPU is ``resource.getrusage(RUSAGE_SELF)``,
user + system of every thread of the process. Garbage is collected before a
cluster is built and its threads are waited for after it is shut down, so
that no measurement pays for another.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import importlib
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress, TaskID

from tools.threadcheck import leaked_threads

from .cluster import (
    Cluster,
    LeaderChangedError,
    StalledError,
    make_server,
    persistent,
)

LEADER_TIMEOUT = 10.0
"""Seconds a fresh cluster gets to agree on a leader before it is STALLED."""

WAIT_TICK = 0.02
"""Seconds between two checks (leader, stall, progress bar) while waiting
for commands to be delivered."""

FAILOVER_SETTLE = 0.1
"""Seconds between a cluster's agreeing on a leader and the leader's being
cut off: two heartbeats, so the followers have heard from it."""

IDLE_SETTLE = 0.5
"""Seconds the idle cluster gets after its election before the count starts."""

IDLE_TICK = 1.0
"""Seconds between two progress updates while idle: a redraw costs about a
millisecond of CPU, which the idle figure counts."""

REFRESH_INTERVAL = 0.2
"""Seconds between two redraws of the progress bars."""


@dataclass(frozen=True)
class Settings:
    """What a run measures; the defaults are the full set."""

    part: str = "part3"
    logging: tuple[str, ...] = ("off", "on")
    only: tuple[str, ...] = ("throughput", "latency", "failover", "idle")
    """The phases to measure, in the part's order."""
    throughput_ns: tuple[int, ...] = (1_000, 5_000, 20_000)
    latency_commands: int = 500
    failover_trials: int = 30
    idle_seconds: float = 10.0
    kv_clients: tuple[int, ...] = (1, 4, 16)
    """The numbers of concurrent clients of a key/value stage's throughput."""
    kv_seconds: float = 3.0
    """How long each key/value throughput run lasts."""
    stall_seconds: float = 10.0
    """A throughput or latency run that delivers nothing new for this long
    is STALLED."""
    snapshot_every: int = 1_000
    """In a part that compacts its log (part6), each server is snapshotted
    after every this many delivered entries."""
    behind: int = 10_000
    """How many entries a follower is behind in the catch-up phase."""
    max_raft_state: int = 64 * 1024
    """In a key/value stage that compacts its log (part6kv), the bytes of
    Raft state after which a service takes a snapshot."""
    repeat: int = 1
    quick: bool = False


QUICK = dataclasses.replace(
    Settings(),
    throughput_ns=(1_000, 5_000),
    latency_commands=100,
    failover_trials=5,
    idle_seconds=3.0,
    kv_seconds=1.0,
    behind=2_000,
    quick=True,
)
"""The reduced set of ``--quick``."""


@dataclass
class Measurement:
    """One run of one phase.

    ``units`` maps the label of every figure the run was to give to its
    unit, ``values`` those it gave; a failed run (``status`` "STALLED" or
    "LEADER CHANGED") lacks some. ``samples`` are the raw timings in ms,
    ``notes`` what a reader of the table should know about the run.
    """

    status: str = "ok"
    units: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def figures(self, unit: str, *labels: str) -> None:
        """Announce figures this run will give, so a failure shows in them."""
        self.units.update(dict.fromkeys(labels, unit))

    def distribution(self, name: str, samples_ms: list[float]) -> None:
        """Give p50, p99 and max of timings in ms, and keep the timings."""
        cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
        self.values |= {f"{name} p50": cuts[49], f"{name} p99": cuts[98]}
        self.values[f"{name} max"] = max(samples_ms)
        self.samples[name] = samples_ms

    def fail(self, status: str, note: str) -> None:
        """Record a failure; the run's status stays that of the first."""
        if self.status == "ok":
            self.status = status
        self.notes.append(note)


def cpu_seconds() -> float:
    """User plus system CPU seconds used so far by the whole process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Bench:
    """What every phase needs: the settings, progress bars, and
    fresh clusters whose leaked threads it collects in ``leaked``."""

    def __init__(self, settings: Settings, progress: Progress) -> None:
        self.settings = settings
        self.progress = progress
        self.prefix = ""
        """Put before every bar's label (the logging mode, the run)."""
        self.task: TaskID | None = None
        self.last_refresh = 0.0
        self.leaked: list[str] = []

    def bar(self, label: str, total: float) -> None:
        """Show a new progress bar for ``total`` units of work."""
        self.task = self.progress.add_task(self.prefix + label, total=total)
        self.progress.refresh()

    def advance(self, completed: float) -> None:
        """Set the bar; redraw at most every REFRESH_INTERVAL s. The bars
        never refresh on a thread of their own (rich's default): that thread
        would count in the idle CPU and compete with the servers."""
        assert self.task is not None
        self.progress.update(self.task, completed=completed)
        now = time.perf_counter()
        if now - self.last_refresh >= REFRESH_INTERVAL:
            self.progress.refresh()
            self.last_refresh = now

    @contextlib.contextmanager
    def threads_checked(self) -> Iterator[None]:
        """Collect garbage, run the block, then record the threads it left."""
        gc.collect()
        before = set(threading.enumerate())
        try:
            yield
        finally:
            self.leaked += sorted(t.name for t in leaked_threads(before))

    @contextlib.contextmanager
    def cluster(self, n: int) -> Iterator[Cluster]:
        """A fresh cluster of ``n`` servers, shut down at the end of the block
        (in part6, each snapshotted every ``snapshot_every`` entries)."""
        with self.threads_checked():
            cluster = Cluster(self.settings.part, n, self.settings.snapshot_every)
            try:
                yield cluster
            finally:
                cluster.close()

    def one_leader(
        self,
        m: Measurement,
        label: str,
        total: int,
        run: Callable[[Cluster, tuple[int, int]], None],
    ) -> None:
        """``run(cluster, leader)`` on a fresh 3-server cluster, and once more
        on another if leadership changes: the figure assumes one leader, as
        commands a deposed leader took may be lost. A stall, or a second
        change, is recorded in ``m`` and the phase goes on."""
        for attempt in range(2):
            with self.cluster(3) as cluster:
                try:
                    leader = cluster.wait_for_leader(LEADER_TIMEOUT)
                    retry = " (retry: leader changed)" if attempt else ""
                    self.bar(label + retry, total)
                    run(cluster, leader)
                except LeaderChangedError:
                    continue
                except StalledError as stall:
                    m.fail("STALLED", f"{label}: {stall}")
                    return
            if attempt:
                m.notes.append(f"{label}: leader changed, retried once")
            return
        m.fail("LEADER CHANGED", f"{label}: leader changed twice")

    def wait(
        self,
        cluster: Cluster,
        leader: tuple[int, int],
        done: Callable[[float], float | None],
    ) -> float:
        """The first time ``done(timeout)`` gives (it may block that long).
        Between two calls, check the leader, and raise StalledError if no
        server delivered anything new for ``stall_seconds``."""
        last_count, last_change = sum(cluster.delivered()), time.perf_counter()
        while (found := done(WAIT_TICK)) is None:
            cluster.check_leader(leader)
            delivered, now = cluster.delivered(), time.perf_counter()
            if sum(delivered) != last_count:
                last_count, last_change = sum(delivered), now
            elif now - last_change > self.settings.stall_seconds:
                raise StalledError(
                    f"nothing new for {self.settings.stall_seconds:g} s, "
                    f"delivered {'/'.join(map(str, delivered))}"
                )
        return found


def run_on(bench: Bench, part: str, phase: Phase) -> Measurement:
    """Measure ``phase`` on another ``part`` in the same sitting as
    ``bench`` (its progress bars; the threads it leaves are reported with
    ``bench``'s), and return the measurement."""
    other = Bench(dataclasses.replace(bench.settings, part=part), bench.progress)
    other.prefix = bench.prefix + f"{part} "
    measured = Measurement()
    phase(other, measured)
    bench.leaked += other.leaked
    return measured


def submit(server: Any, command: int) -> None:
    """Submit ``command``; a refusal means the leader was deposed. part2
    answers with a bool, part3 with the log index or -1; the bool test comes
    first because False is also the int 0, a valid index."""
    result = server.submit(command)
    if not (result if isinstance(result, bool) else result >= 0):
        raise LeaderChangedError(f"submit of {command} refused")


def throughput(bench: Bench, m: Measurement) -> None:
    """For each N, submit 0..N-1 to the leader as fast as ``submit`` returns;
    time from the first submit until every server has delivered all N. The
    growth of µs/cmd from the smallest N to the largest shows work that grows
    with the log."""
    ns = bench.settings.throughput_ns
    for n in ns:
        m.figures("cmd/s", f"throughput N={n:,}")
        m.figures("µs", f"cost per command N={n:,}")
    growth = f"growth N={min(ns):,}→{max(ns):,}"
    if len(ns) > 1:
        m.figures("x", growth)
    for n in ns:
        run = functools.partial(submit_n, bench, m, n)
        bench.one_leader(m, f"throughput N={n:,}", 3 * n, run)
    small, large = (
        m.values.get(f"cost per command N={n:,}") for n in (min(ns), max(ns))
    )
    if len(ns) > 1 and small and large:
        m.values[growth] = large / small


def submit_n(
    bench: Bench, m: Measurement, n: int, cluster: Cluster, leader: tuple[int, int]
) -> None:
    """One throughput run: N commands, timed until all servers deliver them."""

    def all_delivered(timeout: float) -> float | None:
        delivered = cluster.delivered()
        bench.advance(sum(delivered))
        if min(delivered) >= n:
            return max(c.last() for c in cluster.collectors)
        time.sleep(timeout)
        return None

    start = time.perf_counter()
    for command in range(n):
        submit(cluster.servers[leader[0]], command)
    seconds = bench.wait(cluster, leader, all_delivered) - start
    m.values[f"throughput N={n:,}"] = n / seconds
    m.values[f"cost per command N={n:,}"] = seconds / n * 1e6


def latency(bench: Bench, m: Measurement) -> None:
    """Submit commands one at a time, each timed from ``submit`` until the
    bench's consumer thread takes it off the leader's commit channel; then
    set it beside the simulated network's floor (``network_floor``)."""
    m.figures("ms", "latency p50", "latency p99", "latency max", "network floor p50")
    m.figures("x", "latency p50 / floor")
    commands = bench.settings.latency_commands

    def run(cluster: Cluster, leader: tuple[int, int]) -> None:
        collector = cluster.collectors[leader[0]]
        samples = []
        for command in range(commands):
            start = time.perf_counter()
            submit(cluster.servers[leader[0]], command)
            arrived = functools.partial(collector.wait_for, command)
            done = bench.wait(cluster, leader, arrived)
            samples.append((done - start) * 1000)
            bench.advance(command + 1)
        m.distribution("latency", samples)

    bench.one_leader(m, "latency", commands, run)
    if "latency p50" in m.values:
        m.samples["network floor"] = floor = network_floor(bench, commands)
        m.values["network floor p50"] = p50 = statistics.median(floor)
        m.values["latency p50 / floor"] = m.values["latency p50"] / p50


def network_floor(bench: Bench, pairs: int) -> list[float]:
    """What the simulated network alone costs a commit, in ms, ``pairs`` times.

    A command commits once the faster of the two followers has answered, so
    the floor is the faster of two deliveries, each timed around the part's
    own ``RPCProxy.simulate_network`` on the proxy of a dormant CM, with the
    network reliable. The rest of a latency is the implementation's work:
    mostly thread hand-offs.
    """
    bench.bar("network floor", pairs)
    samples = []
    unreliable = os.environ.pop("RAFT_UNRELIABLE_RPC", None)
    try:
        with bench.threads_checked():
            # Never ready, the CM stays dormant: nothing else runs meanwhile.
            part = bench.settings.part
            server, _ = make_server(part, 0, [1, 2], threading.Event())
            server.serve()
            proxy = importlib.import_module(f"{part}.server").RPCProxy(server.cm)
            try:
                for pair in range(pairs):
                    samples.append(min(delivery_ms(proxy), delivery_ms(proxy)))
                    bench.advance(pair + 1)
            finally:
                server.shutdown()
    finally:
        if unreliable is not None:
            os.environ["RAFT_UNRELIABLE_RPC"] = unreliable
    return samples


def delivery_ms(proxy: Any) -> float:
    """How long ``proxy`` takes to deliver one AppendEntries, in ms."""
    start = time.perf_counter()
    proxy.simulate_network("AppendEntries")
    return (time.perf_counter() - start) * 1000


def failover(bench: Bench, m: Measurement) -> None:
    """On fresh clusters, cut the leader off (and crash it, in a part with
    persistence); time until the other two agree on one leader and its term."""
    m.figures("ms", "failover p50", "failover p99", "failover max")
    crash = persistent(bench.settings.part)
    m.details["leader"] = "crashed" if crash else "cut off"
    bench.bar(f"failover, leader {m.details['leader']}", bench.settings.failover_trials)
    samples = []
    for trial in range(bench.settings.failover_trials):
        with bench.cluster(3) as cluster:
            leader, _ = cluster.wait_for_leader(LEADER_TIMEOUT)
            time.sleep(FAILOVER_SETTLE)
            start = time.perf_counter()
            cluster.cut(leader, crash)
            cluster.wait_for_leader(LEADER_TIMEOUT)
            samples.append((time.perf_counter() - start) * 1000)
        bench.advance(trial + 1)
    m.distribution("failover", samples)


def idle(bench: Bench, m: Measurement) -> None:
    """Leave a 5-server cluster with a leader alone; the process's CPU and
    the RPCs sent, per wall second. The bench's own thread (its progress
    bar) counts in the CPU, and is also shown alone: it is negligible."""
    m.figures("CPU-s/s", "idle CPU", "idle CPU, bench thread")
    m.figures("RPC/s", "idle RPCs")
    seconds = bench.settings.idle_seconds
    with bench.cluster(5) as cluster:
        leader = cluster.wait_for_leader(LEADER_TIMEOUT)
        time.sleep(IDLE_SETTLE)
        bench.bar("idle", seconds)
        rpcs, cpu, own_cpu = cluster.rpc_count(), cpu_seconds(), time.thread_time()
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            time.sleep(min(IDLE_TICK, seconds - elapsed))
            bench.advance(min(seconds, time.perf_counter() - start))
        wall = time.perf_counter() - start
        cpu, own_cpu = cpu_seconds() - cpu, time.thread_time() - own_cpu
        rpcs = cluster.rpc_count() - rpcs
        if cluster.agreed_leader() != leader:
            m.notes.append("leadership changed while idle")
    m.values |= {"idle CPU": cpu / wall, "idle CPU, bench thread": own_cpu / wall}
    m.values["idle RPCs"] = rpcs / wall
    m.details |= {"wall_seconds": wall, "cpu_seconds": cpu, "rpcs": rpcs}


Phase = Callable[[Bench, Measurement], None]
"""A kind of measurement: a function that runs it once and fills the
Measurement it is given."""

RAFT_PHASES: dict[str, Phase] = {
    "throughput": throughput,
    "latency": latency,
    "failover": failover,
    "idle": idle,
}
"""The phases of a Raft part (part2, part3), in the order a run measures them."""
