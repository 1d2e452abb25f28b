"""Following each RPC of a test through its ``rpc ID ...`` lines.

The network layer of every part (``Server.call`` and ``RPCProxy``) logs each
call under a message id ``<sender>.<n>`` (docs/log-format.md):

* ``rpc ID send to P: ARGS``, by the sender, as the call leaves;
* ``rpc ID deliver METHOD`` by the receiver, as the call reaches its CM, or
  ``rpc ID drop METHOD`` where the unreliable network drops it;
* ``rpc ID reply from P: REPLY`` or ``rpc ID lost to P: REASON``, by the
  sender, as the call returns.

``trace_messages`` pairs these lines into ``Message`` objects, one test at a
time: an id is looked up only among the lines of its own test. A line of a
message whose send this test never logged (a thread of the previous test,
logging late) is an *orphan*, and a line that starts with ``rpc `` but does
not parse is *malformed*; both stay rows of the table, with no arrow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .parse import Entry

REQUEST_VOTE = "RequestVote"
APPEND_ENTRIES = "AppendEntries"
HEARTBEAT = "heartbeat"
"""The kinds of message: a RequestVote, an AppendEntries with entries, and
one without (a heartbeat); any other call's kind is its method name."""

REPLY = "reply"
LOST = "lost"
"""How a message ended, if its test saw it end: its reply came back, or it
was lost (the reason says where)."""

_PREFIX = "rpc "
RPC_LINE = re.compile(
    r"rpc (?P<sender>\d+)\.(?P<n>\d+) (?:"
    r"(?P<event>send|lost) to (?P<to>\d+): (?P<text>.*)"
    r"|reply from (?P<from>\d+): (?P<reply>.*)"
    r"|(?P<net>deliver|drop) (?P<method>\w+)"
    r")\Z"
)
"""An ``rpc`` line of the network layer, in its groups: ``sender`` and ``n``
(the message id), then ``event`` (send, lost) with ``to`` and ``text``, or
``from`` and ``reply``, or ``net`` (deliver, drop) with ``method``."""
_ARGS_TYPE = re.compile(r"(\w+?)(?:Args)?\(")
NOT_CONNECTED = "not connected"
"""How the reason of a call that never left its sender ends."""


@dataclass(slots=True)
class Message:
    """One RPC, as its lines tell it. Rows are indices into the test's
    entries (the rows of its table); -1 where there is no such line."""

    id: str
    sender: int
    receiver: int
    kind: str
    send_row: int
    deliver_row: int = -1
    drop_row: int = -1
    """Where the receiver's network dropped the call (unreliable mode)."""
    end_row: int = -1
    """The ``reply`` or ``lost`` line; -1 if the test ended first."""
    outcome: str = ""
    """REPLY, LOST, or "" if the test ended before the call returned."""
    reason: str = ""
    """Why it was lost, as the sender logged it."""

    @property
    def rows(self) -> list[int]:
        """The rows of the message's lines, in order."""
        rows = (self.send_row, self.drop_row, self.deliver_row, self.end_row)
        return sorted(r for r in rows if r >= 0)

    @property
    def never_sent(self) -> bool:
        """Whether the call never left its sender: no link to the peer."""
        return self.outcome == LOST and self.reason.endswith(NOT_CONNECTED)


@dataclass(slots=True)
class MessageTrace:
    """The messages of one test and what could not be paired."""

    messages: list[Message] = field(default_factory=list)
    row_message: dict[int, int] = field(default_factory=dict)
    """Row of every paired ``rpc`` line -> index of its message."""
    orphans: list[int] = field(default_factory=list)
    """Rows of lines whose message was not sent in this test."""
    malformed: list[tuple[int, str]] = field(default_factory=list)
    """Rows of ``rpc`` lines that do not parse, or contradict their message,
    with the reason."""

    def is_heartbeat_row(self, row: int) -> bool:
        """Whether the ``rpc`` line at ``row`` belongs to a heartbeat."""
        index = self.row_message.get(row)
        return index is not None and self.messages[index].kind == HEARTBEAT


def message_kind(args: str) -> str:
    """The kind of a message, from the arguments its send line shows."""
    match = _ARGS_TYPE.match(args)
    if match is None:
        return "call"
    kind = match[1]
    if kind == APPEND_ENTRIES and "entries=[]" in args:
        return HEARTBEAT
    return kind


def trace_messages(entries: Sequence[Entry]) -> MessageTrace:
    """Pair the ``rpc`` lines of one test's entries into messages."""
    trace = MessageTrace()
    by_id: dict[str, int] = {}
    for row, entry in enumerate(entries):
        if entry.source or entry.server is None:
            continue  # not a consensus module's line
        if not entry.message.startswith(_PREFIX):
            continue
        match = RPC_LINE.match(entry.message)
        if match is None:
            trace.malformed.append((row, "not an rpc line of docs/log-format.md"))
            continue
        msg_id = f"{match['sender']}.{match['n']}"
        sender = int(match["sender"])
        event = match["event"]
        if event == "send":
            if sender != entry.server:
                trace.malformed.append((row, f"server {entry.server} sends {msg_id}"))
                continue
            if msg_id in by_id:
                trace.malformed.append((row, f"{msg_id} is sent a second time"))
                continue
            by_id[msg_id] = len(trace.messages)
            trace.row_message[row] = len(trace.messages)
            trace.messages.append(
                Message(
                    msg_id, sender, int(match["to"]), message_kind(match["text"]), row
                )
            )
            continue
        index = by_id.get(msg_id)
        if index is None:
            trace.orphans.append(row)
            continue
        message = trace.messages[index]
        problem = _record(message, row, entry.server, match)
        if problem:
            trace.malformed.append((row, problem))
        else:
            trace.row_message[row] = index
    return trace


def _record(message: Message, row: int, server: int, match: re.Match[str]) -> str:
    """Note the line at ``row`` on its message; say what is wrong, if any."""
    net = match["net"]
    if net is not None:
        if server != message.receiver:
            return f"server {server} receives {message.id}, sent to {message.receiver}"
        if message.deliver_row >= 0 or message.drop_row >= 0:
            return f"{message.id} reaches its receiver a second time"
        if net == "deliver":
            message.deliver_row = row
        else:
            message.drop_row = row
        return ""
    peer = match["to"] if match["event"] == "lost" else match["from"]
    if server != message.sender or int(peer) != message.receiver:
        return (
            f"{message.id} is from {message.sender} to {message.receiver}, "
            f"not {server} and {peer}"
        )
    if message.end_row >= 0:
        return f"{message.id} ends a second time"
    message.end_row = row
    if match["event"] == "lost":
        message.outcome = LOST
        message.reason = match["text"]
    else:
        message.outcome = REPLY
    return ""
