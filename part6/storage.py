"""Stable storage for the Raft state that must survive a crash."""

from __future__ import annotations

import threading
from typing import Protocol


class Storage(Protocol):
    """A key-value store that survives the crash of the server using it."""

    def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        ...

    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or None."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` and its value; nothing happens if it is absent."""
        ...

    def has_data(self) -> bool:
        """True iff anything was ever stored."""
        ...


class MapStorage:
    """A thread-safe, in-memory Storage: it outlives a crashed server (the
    harness keeps it and hands it to the server's next incarnation)."""

    def __init__(self) -> None:
        self.mu = threading.Lock()
        self.m: dict[str, bytes] = {}
        # The total length of the values in m.
        self.total = 0

    def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``."""
        with self.mu:
            self.total += len(value) - len(self.m.get(key, b""))
            self.m[key] = value

    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or None."""
        with self.mu:
            return self.m.get(key)

    def delete(self, key: str) -> None:
        """Remove ``key``, if it is there."""
        with self.mu:
            self.total -= len(self.m.pop(key, b""))

    def has_data(self) -> bool:
        """True iff anything was ever stored."""
        with self.mu:
            return bool(self.m)

    def size(self) -> int:
        """The total number of bytes of the values stored."""
        with self.mu:
            return self.total
