"""Thread-leak checking: the analogue of Go's goroutine-leak tests.

The tests use it after every test (``tests/conftest.py``), and the
benchmark after every cluster it shuts down.
"""

from __future__ import annotations

import threading
import time

LEAK_GRACE = 1.0
"""Seconds a thread may outlive its test or cluster: a server's threads end
within about one election timeout (300 ms) after shutdown; the rest is
slack for a loaded machine."""


def leaked_threads(
    before: set[threading.Thread], grace: float = LEAK_GRACE
) -> list[threading.Thread]:
    """Wait up to ``grace`` seconds for every thread not in ``before`` to end,
    and return those still alive.

    Threads started while it waits (a server's loop may start a sender just
    before it ends) are waited for too.
    """
    deadline = time.monotonic() + grace
    while True:
        alive = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        remaining = deadline - time.monotonic()
        if not alive or remaining <= 0:
            return alive
        alive[0].join(remaining)
