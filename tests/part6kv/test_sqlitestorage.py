"""Tests of SqliteStorage, the Storage of ``python -m part6kv --data-dir``."""

from __future__ import annotations

import pickle
import queue
import re
import threading
from pathlib import Path

import pytest

from part6.raft import (
    AppendEntriesArgs,
    CommitEntry,
    ConsensusModule,
    LogEntry,
    RequestVoteArgs,
    SnapshotEntry,
)
from part6kv.sqlitestorage import SqliteStorage, StorageError


def test_set_get_has_data(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "s.sqlite")
    assert not storage.has_data()
    assert storage.get("k") is None
    storage.set("k", b"v")
    assert storage.has_data()
    assert storage.get("k") == b"v"
    storage.set("k", b"")  # the empty value is a value
    assert storage.get("k") == b""
    storage.set("bin", bytes(range(256)))
    assert storage.get("bin") == bytes(range(256))
    storage.close()


def test_reopened_storage_has_the_data(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    storage = SqliteStorage(path)
    for i in range(100):
        storage.set(f"log/{i}", pickle.dumps(i))
    storage.set("log/7", b"seven")
    storage.close()

    storage = SqliteStorage(path)
    assert storage.has_data()
    assert storage.get("log/7") == b"seven"
    assert [storage.get(f"log/{i}") for i in (0, 99)] == [
        pickle.dumps(0),
        pickle.dumps(99),
    ]
    storage.close()


def test_delete_and_size(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    storage = SqliteStorage(path)
    assert storage.size() == 0
    storage.set("a", b"xyz")
    storage.set("b", b"12")
    assert storage.size() == 5
    storage.set("a", b"x")  # replaced: its old length no longer counts
    assert storage.size() == 3
    storage.delete("b")
    storage.delete("missing")  # nothing happens
    assert storage.get("b") is None
    assert storage.size() == 1
    storage.close()

    storage = SqliteStorage(path)
    assert storage.get("b") is None
    assert storage.size() == 1
    storage.close()


def test_concurrent_sets(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "s.sqlite")

    def set_many(prefix: str) -> None:
        for i in range(50):
            storage.set(f"{prefix}{i}", prefix.encode())

    threads = [threading.Thread(target=set_many, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(storage.get(f"{p}{i}") == p.encode() for p in "abcd" for i in range(50))
    storage.close()


def test_consensus_module_restores_from_it(tmp_path: Path) -> None:
    # What part6's CM persists comes back in a CM built on the reopened file.
    path = tmp_path / "s.sqlite"
    storage = SqliteStorage(path)
    commits: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), commits)
    # A dormant CM, driven through its RPC handlers: it votes for server 1
    # in term 3, then takes two entries from it as leader.
    vote = cm.request_vote(
        RequestVoteArgs(term=3, candidate_id=1, last_log_index=-1, last_log_term=-1)
    )
    assert vote.vote_granted
    entries = [LogEntry("x", 1), LogEntry("y", 3)]
    append = cm.append_entries(
        AppendEntriesArgs(
            term=3,
            leader_id=1,
            prev_log_index=-1,
            prev_log_term=-1,
            entries=entries,
            leader_commit=-1,
        )
    )
    assert append.success
    cm.stop()
    storage.close()

    storage = SqliteStorage(path)
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), commits)
    assert (cm.current_term, cm.voted_for) == (3, 1)
    assert cm.log == entries
    cm.stop()
    storage.close()


def test_snapshot_deletes_the_entries_it_covers(tmp_path: Path) -> None:
    # part6's CM deletes from the file the entries its snapshot covers, and
    # a CM built on the reopened file starts from the snapshot.
    path = tmp_path / "s.sqlite"
    storage = SqliteStorage(path)
    commits: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), commits)
    # A dormant CM takes three entries from leader 1, two of them committed.
    append = cm.append_entries(
        AppendEntriesArgs(
            term=1,
            leader_id=1,
            prev_log_index=-1,
            prev_log_term=-1,
            entries=[LogEntry("x", 1), LogEntry("y", 1), LogEntry("z", 1)],
            leader_commit=1,
        )
    )
    assert append.success
    assert [commits.get(timeout=5).index for _ in range(2)] == [0, 1]
    size = storage.size()
    covered = sum(len(storage.get(f"log/{i}") or b"") for i in (0, 1))
    cm.snapshot(1, b"state")
    assert storage.get("log/0") is storage.get("log/1") is None
    assert storage.get("log/2") is not None
    # size() follows: the entries deleted, the snapshot's record added.
    record = storage.get("snapshot") or b""
    assert storage.size() == size - covered + len(record)
    cm.stop()
    storage.close()

    storage = SqliteStorage(path)
    cm = ConsensusModule(0, [1, 2], None, storage, threading.Event(), commits)
    assert commits.get(timeout=5) == SnapshotEntry(b"state", 1, 1)
    assert cm.log == [LogEntry("z", 1)]
    cm.stop()
    storage.close()


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_text("not a database\n" * 100)
    with pytest.raises(
        StorageError, match=f"opening {re.escape(str(path))} failed: file is not a"
    ):
        SqliteStorage(path)


def test_a_failed_write_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    storage = SqliteStorage(path)
    storage.set("k", b"v")
    # As on a full disk: the database may not grow by a page.
    (pages,) = storage.db.execute("PRAGMA page_count").fetchone()
    storage.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(
        StorageError,
        match=f"a write to {re.escape(str(path))} failed: database or disk is full",
    ):
        storage.set("big", bytes(100_000))
    assert storage.get("k") == b"v"
    assert storage.get("big") is None
    storage.close()
