"""The measurements of part6, the Raft stage that compacts its log.

Its clusters are part6's servers with a Collector that snapshots its server
every ``snapshot_every`` entries, as a service would (see cluster.py).
Throughput and commit latency are measured on part6, then on part3 in the
same run, so that what compaction costs shows beside what it replaces.
Two phases are part6's own: how long a snapshot holds the consensus
module's lock, and how long a follower far behind takes to catch up, from
the leader's snapshot in part6 and from AppendEntries in part3.
"""

from __future__ import annotations

import dataclasses
import pickle
import statistics
import time
from collections.abc import Callable

from .cluster import Cluster, Collector, compacts
from .measure import (
    Bench,
    Measurement,
    Phase,
    latency,
    run_on,
    submit,
    throughput,
)

BASELINE = "part3"
"""The Raft stage part6 is a copy of, measured beside it."""


def on_baseline(
    bench: Bench, m: Measurement, phase: Phase, part: str = BASELINE
) -> Measurement:
    """Run ``phase`` on ``part`` (part3) in the same sitting; its notes and
    failures go to ``m``."""
    measured = run_on(bench, part, phase)
    m.notes += [f"{part}: {note}" for note in measured.notes]
    if measured.status != "ok":
        m.fail(measured.status, f"{part} {measured.status}")
    return measured


def beside_baseline(
    m: Measurement,
    baseline: Measurement,
    labels: list[str],
    compared: str,
    parts: tuple[str, str] = ("part6", BASELINE),
) -> None:
    """Give the baseline's figures ``labels`` as "part3 LABEL", and the
    ratio of part6's figure ``compared`` to part3's (or those of the
    ``parts`` measured and beside it)."""
    part, base = parts
    for label in labels:
        m.figures(baseline.units[label], f"{base} {label}")
        if label in baseline.values:
            m.values[f"{base} {label}"] = baseline.values[label]
    ratio = f"{compared} {part} / {base}"
    m.figures("x", ratio)
    if compared in m.values and compared in baseline.values:
        m.values[ratio] = m.values[compared] / baseline.values[compared]


def compaction_throughput(bench: Bench, m: Measurement) -> None:
    """The throughput phase, every server snapshotted every
    ``snapshot_every`` entries; then part3's, in the same run."""
    throughput(bench, m)
    baseline = on_baseline(bench, m, throughput)
    labels = [f"throughput N={n:,}" for n in bench.settings.throughput_ns]
    largest = f"throughput N={max(bench.settings.throughput_ns):,}"
    beside_baseline(m, baseline, labels, largest)


def compaction_latency(bench: Bench, m: Measurement) -> None:
    """The latency phase (commands one at a time, so snapshots fall between
    them); then part3's, in the same run."""
    latency(bench, m)
    baseline = on_baseline(bench, m, latency)
    beside_baseline(m, baseline, ["latency p50", "latency p99"], "latency p50")


def delivered_by(
    bench: Bench, cluster: Cluster, server_ids: list[int], n: int
) -> Callable[[float], float | None]:
    """For ``Bench.wait``: the time once the servers ``server_ids`` have
    each delivered ``n`` distinct commands."""

    def done(timeout: float) -> float | None:
        counts = [cluster.collectors[i].count() for i in server_ids]
        bench.advance(sum(counts))
        if min(counts) >= n:
            return time.perf_counter()
        time.sleep(timeout)
        return None

    return done


def last_index(n: int, every: int) -> int:
    """The index of the last snapshot taken once ``n`` entries are
    delivered, one every ``every`` entries."""
    return n // every * every - 1


def snapshotted(collector: Collector, index: int) -> Callable[[float], float | None]:
    """For ``Bench.wait``: the time once ``collector``'s server holds a
    snapshot at ``index`` or later (its own, taken right after it delivered
    the entry, or one its leader sent it)."""

    def done(timeout: float) -> float | None:
        if collector.snapshot_index >= index:
            return time.perf_counter()
        time.sleep(timeout)
        return None

    return done


def snapshot_cost(bench: Bench, m: Measurement) -> None:
    """How long ``cm.snapshot`` takes. It holds the CM's lock for all of it
    but the wait to get it, so it is measured two ways: every call while N
    commands (the largest throughput N) are submitted as fast as the leader
    takes them, each server snapshotting every ``snapshot_every`` entries
    (the wait for the lock included); and on a quiet cluster, where the
    lock is free: calls that each compact ``snapshot_every`` entries, and
    one that compacts ``behind`` entries at once."""
    n, behind = max(bench.settings.throughput_ns), bench.settings.behind
    every = bench.settings.snapshot_every
    m.figures("ms", *(f"snapshot call under load {q}" for q in ("p50", "p99", "max")))
    m.figures("bytes", f"snapshot size N={n:,}")
    step = f"quiet snapshot of {every:,} entries"
    m.figures("ms", f"{step} p50", f"{step} max")
    whole = f"quiet snapshot of {behind:,} entries at once"
    m.figures("ms", whole)

    def under_load(cluster: Cluster, leader: tuple[int, int]) -> None:
        for command in range(n):
            submit(cluster.servers[leader[0]], command)
        bench.wait(cluster, leader, delivered_by(bench, cluster, [0, 1, 2], n))
        for collector in cluster.collectors:
            bench.wait(cluster, leader, snapshotted(collector, last_index(n, every)))
        samples = [ms for c in cluster.collectors for ms in c.snapshot_ms]
        if len(samples) < 2:
            m.notes.append(f"N={n:,} is too few entries for a snapshot every {every}")
            return
        m.distribution("snapshot call under load", samples)
        sizes = [c.snapshot_bytes for c in cluster.collectors]
        m.values[f"snapshot size N={n:,}"] = max(sizes)

    bench.one_leader(m, f"snapshots N={n:,}", 3 * n, under_load)

    quiet = Bench(dataclasses.replace(bench.settings, snapshot_every=0), bench.progress)
    quiet.prefix = bench.prefix

    def timed_snapshots(indices: range) -> Callable[[Cluster, tuple[int, int]], None]:
        """Once ``behind`` commands are delivered, snapshot every server at
        each of ``indices``, timing each call."""

        def run(cluster: Cluster, leader: tuple[int, int]) -> None:
            for command in range(behind):
                submit(cluster.servers[leader[0]], command)
            done = delivered_by(quiet, cluster, [0, 1, 2], behind)
            bench.wait(cluster, leader, done)
            samples = []
            for index in indices:
                data = pickle.dumps(list(range(index + 1)))
                for server in cluster.servers:
                    start = time.perf_counter()
                    server.cm.snapshot(index, data)
                    samples.append((time.perf_counter() - start) * 1000)
            label = step if len(indices) > 1 else whole
            m.samples[label] = samples
            if len(indices) > 1:
                m.values[f"{step} p50"] = statistics.median(samples)
                m.values[f"{step} max"] = max(samples)
            else:
                m.values[whole] = statistics.median(samples)

        return run

    steps = range(every - 1, behind, every)
    if len(steps) > 1:
        quiet.one_leader(m, step, 3 * behind, timed_snapshots(steps))
    quiet.one_leader(m, whole, 3 * behind, timed_snapshots(range(behind - 1, behind)))
    bench.leaked += quiet.leaked


def catch_up_ms(bench: Bench, m: Measurement, label: str) -> None:
    """One catch-up run of ``bench``'s part, into ``m.values[label]``."""
    behind = bench.settings.behind
    every = bench.settings.snapshot_every if compacts(bench.settings.part) else 0

    def run(cluster: Cluster, leader: tuple[int, int]) -> None:
        leader_id = leader[0]
        follower, other = (leader_id + 1) % 3, (leader_id + 2) % 3
        cluster.cut(follower, crash=True)
        for command in range(behind):
            submit(cluster.servers[leader_id], command)
        done = delivered_by(bench, cluster, [leader_id, other], behind)
        bench.wait(cluster, leader, done)
        # Let the leader take its last snapshot: the follower needs more
        # than its log then holds.
        if every:
            last = last_index(behind, every)
            bench.wait(
                cluster, leader, snapshotted(cluster.collectors[leader_id], last)
            )
        start = time.perf_counter()
        cluster.restart(follower)
        caught_up = cluster.collectors[follower]
        arrived = bench.wait(
            cluster, leader, lambda t: caught_up.wait_for(behind - 1, t)
        )
        m.values[label] = (arrived - start) * 1000

    bench.one_leader(m, label, 2 * behind, run)


def catch_up(bench: Bench, m: Measurement) -> None:
    """A follower crashes; the leader commits ``behind`` commands with the
    third server (in part6 every server snapshots every ``snapshot_every``
    entries); the follower restarts on its storage, empty of them. The
    figure is the time from its restart until it delivers the last
    command: in part6 from the leader's snapshot, by InstallSnapshot; in
    part3, in the same run, from AppendEntries carrying every entry."""
    label = f"catch-up {bench.settings.behind:,} behind"
    m.figures("ms", label)
    catch_up_ms(bench, m, label)

    def baseline_phase(baseline: Bench, measured: Measurement) -> None:
        measured.figures("ms", label)
        catch_up_ms(baseline, measured, label)

    baseline = on_baseline(bench, m, baseline_phase)
    beside_baseline(m, baseline, [label], label)


COMPACTION_PHASES: dict[str, Phase] = {
    "throughput": compaction_throughput,
    "latency": compaction_latency,
    "snapshot": snapshot_cost,
    "catch-up": catch_up,
}
"""The phases of part6, in the order a run measures them."""
