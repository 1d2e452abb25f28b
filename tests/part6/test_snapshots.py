"""Log compaction, in the scenarios of MIT 6.5840's lab 3D tests.

Each cluster here snapshots every server after every SNAPSHOT_EVERY entries
it delivers (``Harness(n, snapshot_every=...)``); a snapshot holds every
command its server delivered, so the harness's safety checks stay exact
across snapshots (see part6/harness.py). Each scenario also checks that the
Raft state a server keeps in storage besides its snapshot (term, vote, base
and log: ``raft_state_size``) stays under MAX_LOG_SIZE bytes: without
compaction it grows with every command, and these scenarios commit hundreds.

Commands are random numbers drawn from the test's seed, printed as
``RAFT_SEED=...``; ``RAFT_SEED=1234 python -m pytest ...`` replays the
script of a run (see test_chaos.py).
"""

from __future__ import annotations

import pickle
import random

import pytest

from part6.harness import Harness, decode_snapshot
from part6.storage import MapStorage
from tests.part6.test_chaos import cluster, one

SNAPSHOT_EVERY = 10
"""Each server is snapshotted after every this many delivered entries."""

MAX_LOG_SIZE = 2000
"""Bytes of Raft state (besides the snapshot) a server may keep in storage.
An entry of these tests takes about 26 bytes there, so this is room for
some 75 entries. With a snapshot every 10 entries, the servers keep at
most about 300 bytes; without snapshots, the basic scenario passes 2,000
bytes in its 12th round of 30."""

ITERATIONS = 30
"""Rounds of the snapcommon scenarios."""


def check_log_size(h: Harness) -> None:
    """Fail if a server keeps more than MAX_LOG_SIZE bytes besides its
    snapshot."""
    sizes = [h.raft_state_size(i) for i in range(h.n)]
    assert max(sizes) <= MAX_LOG_SIZE, f"Raft state sizes {sizes} bytes: too large"


def snapcommon(seed: int, disconnect: bool, crash: bool) -> None:
    """MIT's ``snapcommon``: 30 rounds in which a victim (a follower, or
    every third round the leader) is cut off or crashed, while the other
    two commit enough entries to snapshot; then it comes back, and must
    catch up, from the leader's snapshot if it lags behind it."""
    rng = random.Random(seed)

    def command() -> int:
        return rng.randrange(1 << 62)

    with cluster(3, seed, SNAPSHOT_EVERY) as h:
        one(h, command(), 3)
        leader, _ = h.check_single_leader()
        for i in range(ITERATIONS):
            victim, sender = (leader + 1) % 3, leader
            if i % 3 == 1:
                victim, sender = sender, victim
            if disconnect:
                h.disconnect_peer(victim)
                one(h, command(), 2)
            if crash:
                h.crash_peer(victim)
                one(h, command(), 2)

            # Perhaps enough for a snapshot; the sender may not lead any
            # more, and then takes none of them.
            for _ in range(SNAPSHOT_EVERY // 2 + rng.randrange(SNAPSHOT_EVERY)):
                h.submit_to_server(sender, command())

            # Let the servers that are up catch up. With no victim, that is
            # all three: in the basic scenario, no follower ever needs an
            # InstallSnapshot.
            one(h, command(), 2 if disconnect or crash else 3)
            check_log_size(h)

            if disconnect:
                h.reconnect_peer(victim)
            if crash:
                h.restart_peer(victim)
            if disconnect or crash:
                # The victim may lag behind the leader's snapshot by now.
                one(h, command(), 3)
                leader, _ = h.check_single_leader()
        check_log_size(h)


def test_snapshot_basic(seed: int) -> None:
    # TestSnapshotBasic3D: no faults; every server snapshots on its own.
    snapcommon(seed, disconnect=False, crash=False)


def test_snapshot_install(seed: int) -> None:
    # TestSnapshotInstall3D: a victim cut off comes back behind the
    # leader's snapshot.
    snapcommon(seed, disconnect=True, crash=False)


def test_snapshot_install_unreliable(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TestSnapshotInstallUnreliable3D: the same over a lossy network.
    monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    snapcommon(seed, disconnect=True, crash=False)


def test_snapshot_install_crash(seed: int) -> None:
    # TestSnapshotInstallCrash3D: the victim crashes instead, and restarts
    # from its own snapshot before it gets the leader's.
    snapcommon(seed, disconnect=False, crash=True)


def test_snapshot_install_unreliable_crash(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TestSnapshotInstallUnCrash3D: crashes over a lossy network.
    monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    snapcommon(seed, disconnect=False, crash=True)


def test_snapshot_all_crash(seed: int) -> None:
    # TestSnapshotAllCrash3D: every server crashes and restarts, five times,
    # each time after enough commands for a snapshot. The log goes on from
    # where it was: the snapshot is not lost, nor the log after it.
    rng = random.Random(seed)
    with cluster(3, seed, SNAPSHOT_EVERY) as h:
        one(h, rng.randrange(1 << 62), 3)
        for _ in range(5):
            for _ in range(SNAPSHOT_EVERY // 2 + rng.randrange(SNAPSHOT_EVERY)):
                one(h, rng.randrange(1 << 62), 3)
            index1 = one(h, rng.randrange(1 << 62), 3)
            for i in range(3):
                h.crash_peer(i)
            for i in range(3):
                h.restart_peer(i)
            index2 = one(h, rng.randrange(1 << 62), 3)
            assert index2 >= index1 + 1, f"index went back from {index1} to {index2}"
            check_log_size(h)


def test_snapshot_init(seed: int) -> None:
    # TestSnapshotInit3D: crash every server after a snapshot, commit one
    # command (which writes the log again), crash them all again, and
    # commit one more. A server that restarts without its snapshot in
    # memory, and then saves its state, loses the snapshot or its log.
    rng = random.Random(seed)
    with cluster(3, seed, SNAPSHOT_EVERY) as h:
        one(h, rng.randrange(1 << 62), 3)
        for _ in range(SNAPSHOT_EVERY + 1):
            one(h, rng.randrange(1 << 62), 3)
        for _ in range(2):
            for i in range(3):
                h.crash_peer(i)
            for i in range(3):
                h.restart_peer(i)
            # One command, which each server writes to its storage.
            one(h, rng.randrange(1 << 62), 3)
        check_log_size(h)


# --- What the scenarios measure -----------------------------------------------


def test_map_storage_counts_the_bytes_it_holds() -> None:
    storage = MapStorage()
    storage.set("a", b"xyz")
    storage.set("b", b"12")
    storage.set("a", b"x")  # replaced: its old value no longer counts
    assert storage.size() == 3
    storage.delete("b")
    storage.delete("b")  # already gone: nothing happens
    assert storage.size() == 1
    assert storage.get("b") is None


def test_raft_state_size_leaves_out_the_snapshot() -> None:
    with Harness(3, snapshot_every=10) as h:
        one(h, "first", 3)
        for command in range(19):
            one(h, command, 3)
        # Every server snapshots after indices 9 and 19 (right after it
        # delivers them): then its log is empty.
        h.wait_until(
            lambda: all(h.cluster[i].cm.last_included_index == 19 for i in range(3)),
            "every server snapshotted up to index 19",
        )
        for i in range(3):
            snapshot = pickle.loads(h.storage[i].m["snapshot"])[-1]
            assert h.snapshot_size(i) == len(snapshot)
            assert [e.command for e in decode_snapshot(snapshot) or []] == [
                "first",
                *range(19),
            ]
            assert h.raft_state_size(i) == h.storage[i].size() - len(snapshot)
            assert h.raft_state_size(i) < 100  # term, vote, base, no entry


def test_snapshot_every_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="snapshot_every must be >= 0"):
        Harness(3, snapshot_every=-1)
