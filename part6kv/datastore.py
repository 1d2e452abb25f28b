"""The state machine the Raft log drives: an in-memory key/value store.

Every replica holds one DataStore, and the service's updater thread applies
each committed command to it in log order. Since all replicas apply the same
commands in the same order, they all hold the same data. A snapshot holds a
copy of it, which ``restore`` puts back.
"""

from __future__ import annotations

import threading


class DataStore:
    """A thread-safe map from strings to strings.

    Keys and values are any strings, ``""`` and non-ASCII included. Each
    operation returns a pair: a value and whether the key was found.
    """

    def __init__(self) -> None:
        self.mu = threading.Lock()
        self.data: dict[str, str] = {}

    def get(self, key: str) -> tuple[str, bool]:
        """Return ``(value, True)``, or ``("", False)`` if ``key`` is absent."""
        with self.mu:
            if key in self.data:
                return self.data[key], True
            return "", False

    def put(self, key: str, value: str) -> tuple[str, bool]:
        """Store ``value`` under ``key``; return what ``get`` returned before."""
        with self.mu:
            prev = self.data.get(key)
            self.data[key] = value
        return ("", False) if prev is None else (prev, True)

    def cas(self, key: str, compare_value: str, value: str) -> tuple[str, bool]:
        """Compare and swap: store ``value`` only if ``key`` is present and
        holds ``compare_value``; return what ``get`` returned before.

        A CAS never creates a key: comparing with ``""`` does not match an
        absent key.
        """
        with self.mu:
            prev = self.data.get(key)
            if prev is None:
                return "", False
            if prev == compare_value:
                self.data[key] = value
            return prev, True

    def append(self, key: str, value: str) -> tuple[str, bool]:
        """Append ``value`` to the value of ``key``, an absent key counting as
        ``""``; return what ``get`` returned before."""
        with self.mu:
            prev = self.data.get(key)
            self.data[key] = (prev or "") + value
        return ("", False) if prev is None else (prev, True)

    def snapshot(self) -> dict[str, str]:
        """A copy of the data, for a snapshot."""
        with self.mu:
            return dict(self.data)

    def restore(self, data: dict[str, str]) -> None:
        """Replace the data with a snapshot's copy."""
        with self.mu:
            self.data = dict(data)
