"""Replaying a test's entries: what each server was at every line.

Both views (HTML and terminal) draw the same ``Timeline``: one row per
entry, with the state and term of every server after that entry, whether the
entry is heartbeat noise, the per-server state segments of the overview
strip, markers where the TEST harness acted, and the test's messages.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from .messages import MessageTrace, trace_messages
from .parse import Entry, TestLog


class State(enum.Enum):
    """A server's state, as the ``becomes ...`` phrases of its log tell it."""

    FOLLOWER = "Follower"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    DEAD = "Dead"

    def __str__(self) -> str:
        return self.value


_STATES = {state.value: state for state in State}
_BECOMES = re.compile(r"\bbecomes (Follower|Candidate|Leader|Dead)\b")
# Matches both "currentTerm=1" and "term=3".
_TERM = re.compile(r"term=(\d+)", re.IGNORECASE)
# The harness's restart of a crashed server: a new CM starts as a follower.
_RESTART = re.compile(r"\brestart\w*\s+(\d+)", re.IGNORECASE)
_ACTION = re.compile(r"\b(disconnect|reconnect|crash|restart|submit)", re.IGNORECASE)
_CHECK = ("check_", "wait_until(")
DELIVERY = "collect_commits("
"""How the harness's line for an entry a server delivered starts: not an
action of the test, so not marked on the strip."""

# AppendEntries lines that carry the arguments, thus the entries list.
_AE_ENTRIES = "entries=["
_AE_SENDING = re.compile(r"sending AppendEntries to (\d+)")
# A follower's "AppendEntries reply: ..." or a leader's "... reply from N";
# not "term out of date in AppendEntries reply", which is news.
_AE_REPLY = re.compile(r"AppendEntries reply(?::| from (\d+))")


class Row(NamedTuple):
    """One entry with the cluster as it was right after it.

    A named tuple rather than a frozen dataclass: a long test has tens of
    thousands of rows, and a tuple is several times faster to build.
    """

    entry: Entry
    ms: float
    """Milliseconds since the test's first entry."""
    states: tuple[State, ...]
    """The state of every server, in the order of ``Timeline.servers``."""
    terms: tuple[int, ...]
    """The current term of every server, same order."""
    term_change: tuple[int, int] | None
    """(old, new) when this entry changed its server's term."""
    heartbeat: bool
    """Whether the entry is an empty AppendEntries or a reply to one."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time in which a server kept one state and one term."""

    server: int
    start_ms: float
    end_ms: float
    state: State
    term: int


@dataclass(frozen=True, slots=True)
class Marker:
    """A line of the TEST harness, shown on the overview strip."""

    ms: float
    kind: str
    """disconnect, reconnect, crash, restart, submit, check (a check that
    passed), failed (one that did not), violation (of a safety property),
    or other."""
    text: str
    row: int
    """Index of its row in ``Timeline.rows``."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """A test replayed, ready to draw."""

    test: TestLog
    servers: list[int]
    rows: list[Row]
    segments: list[Segment]
    markers: list[Marker]
    span_ms: float
    """Milliseconds from the first entry to the last."""
    messages: MessageTrace
    """The test's RPCs, paired from their ``rpc`` lines."""


class HeartbeatTracker:
    """Tells heartbeat noise: AppendEntries without entries and replies to it.

    The network's ``rpc`` lines carry a message id: they are heartbeat noise
    when their message is a heartbeat. Of the consensus module's lines, an
    arguments line says itself whether its ``entries=[...]`` is empty. A
    reply line does not, so it is matched with the request it answers: a
    follower's ``AppendEntries reply`` answers the last AppendEntries that
    server received; a leader's ``AppendEntries reply from N`` answers the
    last one it sent to N. A reply with no known request is kept in view.
    """

    def __init__(self, messages: MessageTrace) -> None:
        self.messages = messages
        self.received_empty: dict[int, bool] = {}
        self.sent_empty: dict[tuple[int, int], bool] = {}

    def is_heartbeat(self, row: int, server: int, message: str) -> bool:
        """Whether ``message``, logged by ``server`` at ``row``, is heartbeat
        noise."""
        if message.startswith("rpc "):
            return self.messages.is_heartbeat_row(row)
        if "AppendEntries" not in message:
            return False
        # Plain string searches, not regular expressions: this runs on
        # most lines of a long log.
        entries = message.find(_AE_ENTRIES)
        if entries >= 0:
            empty = message.startswith("]", entries + len(_AE_ENTRIES))
            sending = _AE_SENDING.match(message)
            if sending is not None:
                self.sent_empty[server, int(sending[1])] = empty
            else:
                self.received_empty[server] = empty
            return empty
        reply = _AE_REPLY.match(message)
        if reply is None:
            return False
        if reply[1] is not None:
            return self.sent_empty.get((server, int(reply[1])), False)
        return self.received_empty.get(server, False)


def action_kind(message: str) -> str:
    """What a TEST line does, for its marker's colour."""
    if message.startswith("VIOLATION "):
        return "violation"
    if message.startswith("check failed: "):
        return "failed"
    if message.startswith(_CHECK):
        return "check"
    match = _ACTION.search(message)
    return match[1].lower() if match else "other"


def build_timeline(test: TestLog) -> Timeline:
    """Replay ``test``'s entries into a ``Timeline``.

    Every server starts as a Follower in term 0, as a new ConsensusModule
    does; a ``becomes X`` phrase changes its state, and the ``term=N`` (or
    ``currentTerm=N``) in that line its term.
    """
    servers = test.servers
    column = {server: i for i, server in enumerate(servers)}
    states = tuple(State.FOLLOWER for _ in servers)
    terms = tuple(0 for _ in servers)
    start = test.entries[0].seconds if test.entries else 0.0
    # Per server: when its current segment began.
    seg_start = [0.0 for _ in servers]
    segments: list[Segment] = []
    markers: list[Marker] = []
    rows: list[Row] = []
    messages = trace_messages(test.entries)
    heartbeats = HeartbeatTracker(messages)

    for entry in test.entries:
        # Rounded to the log's resolution, a microsecond: no float dust.
        ms = max(0.0, round((entry.seconds - start) * 1000, 3))
        new_states, new_terms = states, terms
        term_change = None
        heartbeat = False
        if entry.source:
            # A key/value service or client: its lines say nothing of the
            # Raft state.
            pass
        elif entry.server is None:
            if not entry.message.startswith(DELIVERY):
                markers.append(
                    Marker(ms, action_kind(entry.message), entry.message, len(rows))
                )
            restart = _RESTART.search(entry.message)
            if restart is not None and int(restart[1]) in column:
                new_states = _replace(states, column[int(restart[1])], State.FOLLOWER)
        else:
            i = column[entry.server]
            heartbeat = heartbeats.is_heartbeat(len(rows), entry.server, entry.message)
            # The substring test first: a regex search per line is slow.
            becomes = "becomes " in entry.message and _BECOMES.search(entry.message)
            if becomes:
                new_states = _replace(states, i, _STATES[becomes[1]])
                term = _TERM.search(entry.message)
                if term is not None and int(term[1]) != terms[i]:
                    term_change = (terms[i], int(term[1]))
                    new_terms = _replace(terms, i, int(term[1]))
        # Close the segments of servers whose state or term just changed.
        # Threads log a few microseconds out of order: a segment never ends
        # before it began.
        if new_states is not states or new_terms is not terms:
            for i, server in enumerate(servers):
                if new_states[i] == states[i] and new_terms[i] == terms[i]:
                    continue
                end = max(ms, seg_start[i])
                segments.append(Segment(server, seg_start[i], end, states[i], terms[i]))
                seg_start[i] = end
        states, terms = new_states, new_terms
        rows.append(Row(entry, ms, states, terms, term_change, heartbeat))

    span_ms = max((row.ms for row in rows), default=0.0)
    for i, server in enumerate(servers):
        segments.append(Segment(server, seg_start[i], span_ms, states[i], terms[i]))
    return Timeline(test, servers, rows, segments, markers, span_ms, messages)


T = TypeVar("T")


def _replace(values: tuple[T, ...], index: int, value: T) -> tuple[T, ...]:
    """``values`` with ``values[index]`` replaced by ``value``."""
    return (*values[:index], value, *values[index + 1 :])
