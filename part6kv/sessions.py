"""Client sessions: what makes every request take effect exactly once.

A client whose reply is lost cannot tell whether its request was applied:
the leader may have applied it and crashed before answering, or lost it.
So it sends the request again, and in part4kv a request sent twice may be
applied twice. Here every request carries the client's ``client_id`` and a
``request_id`` that the client draws once per call and keeps on every
retry. The state machine keeps, per client, a session: the last request it
applied and the response that request got. A copy of that request is not
applied again; it gets the recorded response, so the client learns what the
one execution returned.

Two rules make this work.

* **Duplicates are detected when an entry is applied, not when it is
  submitted.** Two copies of one request can both be in the log: the first
  went to a leader that lost touch before answering, the retry went to the
  next leader, which may not know yet whether the first copy is in its log
  or will ever commit. Only the order in which entries are applied is the
  same on every replica, so only there is "was this request applied
  before?" answered the same way everywhere. That is also why the table is
  part of the replicated state: each replica builds it from the log, and
  rebuilds it after a restart from its snapshot, then the log after it.
  So a snapshot holds the table as well as the data: the entries it
  replaces are gone, and a copy of one of their requests, arriving after
  the snapshot, must still be recognized.
* **A client sends one request at a time.** The session holds only the
  client's *last* request. Had a client two requests in flight, the later
  one could be applied first; the earlier one would then be refused as
  older although it was never applied, and a retry of it could not get
  its response back. ``KVClient`` serializes its calls.

The table must not grow forever, and every replica must drop the same
sessions at the same point, so expiry is driven by the log, never by a
clock: a session expires when its client made no request in the last
``window`` applied entries. Its client is then remembered for another
``window`` entries as expired, so that a late retry of its last request is
answered "session expired" instead of being taken for the first request of
a new client and applied again. After that the client is forgotten: a
request from it starts a new session. A copy of its old last request that
arrives so late is applied a second time: exactly-once holds for the
copies that arrive within the window, the price of a bounded table.

The window bounds the number of sessions, but not what they hold: each
keeps its client's last response, and a response can be as large as the
value it read. A hundred clients appending to one growing key would each
keep another version of it. So the responses the sessions keep have a
byte ``budget`` too: when a new response would exceed it, the least
recently used sessions expire first, exactly as if their window had
passed. This too is decided in log order, by sizes every replica computes
alike, so every replica expires the same sessions. A response larger than
the whole budget is not kept at all: its own session expires at once
(its request was applied, and its handler still gets the response).
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace


class Outcome(enum.Enum):
    """What the session table made of a request."""

    APPLIED = "applied"
    """A new request: it was applied, and its response recorded."""
    REPEATED = "a copy of the client's last request: not applied again"
    """The client's last request again: it gets the recorded response."""
    OLDER = "older than the client's last request: not applied"
    """Older than the client's last request: the client sent a later one
    already, so this one must not take effect any more."""
    EXPIRED = "from a client whose session expired: not applied"
    """The client's session expired: its last response is forgotten, so
    this could be a copy of it."""


@dataclass
class Session:
    """What the state machine remembers of one client."""

    request_id: int
    """The client's last applied request."""
    value: str
    found: bool
    """The response that request got."""
    last_index: int
    """The log index of the client's latest entry."""
    size: int
    """The bytes of the response, UTF-8 encoded, that count against the
    table's budget."""


class SessionTable:
    """The sessions of the clients, driven by the committed log entries.

    ``execute`` is called for every committed entry, in log order, with the
    entry's index: the indexes are the table's only clock. A session is
    kept while its client made a request in the last ``window`` entries,
    as long as the responses of the sessions fit in ``budget`` bytes.
    Thread-safe.
    """

    def __init__(self, window: int, budget: int) -> None:
        if window < 1:
            raise ValueError(f"the session window must be at least 1, got {window}")
        if budget < 0:
            raise ValueError(f"the session budget must be at least 0, got {budget}")
        self.window = window
        self.budget = budget
        self.mu = threading.Lock()
        # Ordered by last_index, oldest first: the next to expire comes first.
        self.sessions: OrderedDict[int, Session] = OrderedDict()
        # The sum of the sessions' sizes, at most budget.
        self.size = 0
        # Clients whose session expired, with the index at which it did,
        # oldest first.
        self.expired: OrderedDict[int, int] = OrderedDict()

    def execute(
        self,
        index: int,
        client_id: int,
        request_id: int,
        apply: Callable[[], tuple[str, bool]],
    ) -> tuple[Outcome, str, bool]:
        """Handle request ``request_id`` of ``client_id``, the entry at log
        ``index``: call ``apply`` (which runs it on the data and returns
        its response) only if the request is new. Return the outcome and
        the response: the new one, the recorded one for a repeat, or
        ``("", False)`` for a request not applied."""
        with self.mu:
            self.expire(index)
            if client_id in self.expired:
                return Outcome.EXPIRED, "", False
            session = self.sessions.get(client_id)
            if session is None or request_id > session.request_id:
                value, found = apply()
                size = len(value.encode())
                self.keep(client_id, Session(request_id, value, found, index, size))
                return Outcome.APPLIED, value, found
            # A request of the client all the same: the session lives on.
            session.last_index = index
            self.sessions.move_to_end(client_id)
            if request_id == session.request_id:
                return Outcome.REPEATED, session.value, session.found
            return Outcome.OLDER, "", False

    def keep(self, client_id: int, session: Session) -> None:
        """Make ``session`` the latest of ``client_id``, within the budget:
        expire the least recently used sessions until its response fits.
        A response larger than the whole budget expires its own session
        instead. Expects mu."""
        old = self.sessions.pop(client_id, None)
        if old is not None:
            self.size -= old.size
        if session.size > self.budget:
            self.expired[client_id] = session.last_index
            return
        while self.size + session.size > self.budget:
            self.expire_oldest(session.last_index)
        self.sessions[client_id] = session
        self.size += session.size

    def expire(self, index: int) -> None:
        """Before the entry at ``index``: expire the sessions whose client
        made no request in the ``window`` entries before it, and forget the
        clients whose session expired ``window`` entries ago. Expects mu."""
        while self.sessions:
            session = next(iter(self.sessions.values()))
            if index - session.last_index <= self.window:
                break
            self.expire_oldest(index)
        while self.expired:
            client_id, expired_at = next(iter(self.expired.items()))
            if index - expired_at <= self.window:
                break
            del self.expired[client_id]

    def expire_oldest(self, index: int) -> None:
        """Expire the least recently used session, at the entry at
        ``index``. Expects mu."""
        client_id, session = self.sessions.popitem(last=False)
        self.size -= session.size
        self.expired[client_id] = index

    def snapshot(self) -> tuple[dict[int, Session], dict[int, int]]:
        """A copy of the table: the sessions, and the expired clients with
        the index at which their session expired."""
        with self.mu:
            sessions = {c: replace(s) for c, s in self.sessions.items()}
            return sessions, dict(self.expired)

    def restore(self, sessions: dict[int, Session], expired: dict[int, int]) -> None:
        """Replace the table with a copy made by ``snapshot``, whose dicts
        keep the order of the table's: the next to expire first."""
        with self.mu:
            self.sessions = OrderedDict((c, replace(s)) for c, s in sessions.items())
            self.size = sum(session.size for session in self.sessions.values())
            self.expired = OrderedDict(expired)
