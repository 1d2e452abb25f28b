"""A Storage on disk, in an SQLite database, for ``python -m part6kv
--data-dir``.

The consensus module calls ``set`` for each change it must not forget, and
only then answers or sends anything that depends on it. So ``set`` must not
return before the value is on disk, and a crash must leave every key either
as it was or as it was set: here each ``set`` is one SQLite transaction,
synced to disk before it returns. After a crash at any instant, the
database holds exactly the values of the ``set`` calls that returned (and
maybe of the one under way), never half of one; making every such cut a
state Raft allows is the job of the order in which the consensus module
writes its keys.

A ``set`` that fails (a full disk, a failing one) raises: the consensus
module then stops, as a crash would, rather than go on with a state it
could not save.

A snapshot deletes the log entries it covers (``delete``). A delete is a
transaction of its own too, but it is not synced: it need not be on disk
at once. The write-ahead log keeps transactions in order, so the next
synced ``set`` makes every delete before it durable, and a crash can only
undo the deletes made since the last ``set``, never a ``set`` that
returned. What it undoes leaves log entries at or below the snapshot's
base, which the consensus module never reads, and deletes again with its
next snapshot. SQLite reuses the pages the deleted rows took for the rows
written next, so the file stays as large as the most the storage ever held
at once: bounded, when snapshots bound the log. ``size`` is what the
service measures the log by.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path


class StorageError(Exception):
    """An SQLite error, in a message that names the database file."""


@contextlib.contextmanager
def naming(what: str) -> Iterator[None]:
    """Raise an SQLite error of the block as a StorageError saying ``what``
    failed, such as ``"a write to /data/service-0.sqlite"``."""
    try:
        yield
    except sqlite3.Error as error:
        raise StorageError(f"{what} failed: {error}") from error


class SqliteStorage:
    """A Storage kept in the SQLite database file at ``path`` (created if
    missing), which tells its size. Thread-safe. Each method raises
    StorageError if SQLite fails."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.mu = threading.Lock()
        with naming(f"opening {path}"):
            # isolation_level=None: no implicit transaction spanning
            # statements, so each statement commits on its own.
            self.db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False
            )
            try:
                # In WAL mode with synchronous=FULL, each commit syncs the
                # log file to disk before it returns.
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
                self.db.execute(
                    "CREATE TABLE IF NOT EXISTS storage "
                    "(key TEXT PRIMARY KEY, value BLOB NOT NULL)"
                )
                # The total length of the values, kept up to date by set
                # and delete.
                self.total = int(
                    self.db.execute(
                        "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM storage"
                    ).fetchone()[0]
                )
            except sqlite3.Error:
                self.db.close()
                raise

    def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``; it is on disk when this returns."""
        with self.mu, naming(f"a write to {self.path}"):
            replaced = self.stored_length(key)
            self.db.execute(
                "INSERT OR REPLACE INTO storage (key, value) VALUES (?, ?)",
                (key, value),
            )
            self.total += len(value) - replaced

    def delete(self, key: str) -> None:
        """Remove ``key`` and its value, if it is there; on disk for sure
        once the next ``set`` returns."""
        with self.mu, naming(f"a write to {self.path}"):
            deleted = self.stored_length(key)
            self.db.execute("PRAGMA synchronous=NORMAL")  # commits unsynced
            try:
                self.db.execute("DELETE FROM storage WHERE key = ?", (key,))
            finally:
                self.db.execute("PRAGMA synchronous=FULL")
            self.total -= deleted

    def stored_length(self, key: str) -> int:
        """The length of the value stored under ``key``, 0 if none. Expects
        mu held."""
        row = self.db.execute(
            "SELECT LENGTH(value) FROM storage WHERE key = ?", (key,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def size(self) -> int:
        """The total number of bytes of the values stored."""
        with self.mu:
            return self.total

    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or None."""
        with self.mu, naming(f"a read of {self.path}"):
            row = self.db.execute(
                "SELECT value FROM storage WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def has_data(self) -> bool:
        """True iff anything was ever stored."""
        with self.mu, naming(f"a read of {self.path}"):
            return (
                self.db.execute("SELECT 1 FROM storage LIMIT 1").fetchone() is not None
            )

    def close(self) -> None:
        """Close the database; the storage cannot be used afterwards."""
        with self.mu:
            self.db.close()
