"""The run's log, kept whole, and read as it comes for the live page.

A ``Recorder`` is a logging handler on the loggers of the stage that runs
(``part3``: its consensus modules, network layer and harness). Each record
becomes a line of the log in the format the tools read
(``HH:MM:SS.ffffff [ID] message``, docs/log-format.md), timed by the
simulation's virtual clock, which starts at midnight. The log is kept
whole: "Open log" writes it, and a replay must give it again byte for
byte. As the lines come, the recorder also follows what the page draws:

- each message, from its ``rpc ID send`` to its ``deliver`` (or ``drop``)
  and its ``reply`` (or ``lost``), and, while it travels, the moment it
  will arrive: the sender's thread sleeps out the network's delay, and the
  simulation knows when that sleep ends (``Thread.wakes_at``);
- the timeout of each server's election timer, from its ``election timer
  started (Nms)`` line;
- which lines are heartbeat noise (the visualizer's rules), for the page's
  filter.

Every change bumps the ``Board``'s version; the page asks for what changed
since the version it has. The page is sent only the latest lines and the
messages that ended lately: a page that fell further behind (a tab in the
background polls rarely) learns that it missed some (``forgotten``).
"""

from __future__ import annotations

import collections
import datetime
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tools.raft_testlog_viz.messages import (
    HEARTBEAT,
    LOST,
    REPLY,
    RPC_LINE,
    MessageTrace,
    message_kind,
)
from tools.raft_testlog_viz.timeline import HeartbeatTracker
from tools.sim import runtime

RECENT_LINES = 400
"""How many of the latest lines the page can be sent (it shows fewer)."""

ENDED_MESSAGES = 400
"""How many messages that ended are remembered for the page, besides those
still travelling."""

_SOURCE = re.compile(r"\[(\d+|TEST)\] ")
_TIMER = re.compile(r"election timer started \((\d+)ms\)")


class Board:
    """What the page reads, under one lock, with a version that grows at
    each change: the page asks for what changed since its version."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.version = 0

    def bump(self) -> int:
        """Note a change (the caller holds ``cv``); return the new version."""
        self.version += 1
        self.cv.notify_all()
        return self.version


@dataclass(slots=True)
class Message:
    """One RPC, as far as its lines have told it."""

    id: str
    sender: int
    receiver: int
    kind: str
    """RequestVote, AppendEntries, heartbeat (an empty AppendEntries)."""
    sent: float
    thread: runtime.Thread
    """The sender's thread: it carries the call through the network."""
    version: int
    """The board's version when the message last changed."""
    arrive: float | None = None
    """When it reaches (or reached) the receiver's network layer, once
    known."""
    reached: str = ""
    """``deliver`` or ``drop`` once it arrived."""
    ended: float | None = None
    outcome: str = ""
    """REPLY or LOST once it ended."""

    def to_json(self) -> list[Any]:
        """The message as the page reads it."""
        return [
            self.id,
            self.sender,
            self.receiver,
            self.kind,
            self.sent,
            self.arrive,
            self.reached,
            self.ended,
            self.outcome,
        ]


@dataclass(frozen=True, slots=True)
class Line:
    """A line of the log, for the page."""

    version: int
    number: int
    """Its index in the run's whole log."""
    at: float
    server: int
    """The server that logged it; -1 for the harness (TEST)."""
    text: str
    heartbeat: bool

    def to_json(self) -> list[Any]:
        """The line as the page reads it."""
        return [self.at, self.server, self.text, self.heartbeat]


class Recorder(logging.Handler):
    """Keeps the run's log, and what the page needs of it (see the module).

    ``after_line`` is called after each line is kept, without the board's
    lock: the playground pauses there when the user steps line by line.
    """

    def __init__(self, board: Board, after_line: Callable[[], None]) -> None:
        super().__init__(logging.DEBUG)
        self.board = board
        self.after_line = after_line
        self.sim: runtime.Simulation | None = None
        self.lines: list[str] = []
        self.recent: collections.deque[Line] = collections.deque(maxlen=RECENT_LINES)
        self.messages: dict[str, Message] = {}
        self.ended: collections.deque[str] = collections.deque()
        self.timeouts: dict[int, float] = {}
        self.forgotten = 0
        """The newest version of a line or a message no longer kept for the
        page: a page that has an older version missed some."""
        self.heartbeats = HeartbeatTracker(MessageTrace())

    @contextmanager
    def attached(self, part: str, sim: runtime.Simulation) -> Iterator[None]:
        """Record the DEBUG lines of the stage ``part`` during the block."""
        logger = logging.getLogger(part)
        level = logger.level
        self.sim = sim
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        try:
            yield
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's line, and follow what it tells."""
        sim = self.sim
        assert sim is not None, "a recorder records only while attached"
        moment = datetime.datetime.fromtimestamp(record.created)
        text = f"{moment:%H:%M:%S.%f} {record.getMessage()}"
        with self.board.cv:
            version = self.board.bump()
            for line in text.splitlines():
                if len(self.recent) == self.recent.maxlen:
                    self.forget(self.recent[0].version)
                self.recent.append(self.follow(version, len(self.lines), sim, line))
                self.lines.append(line)
        self.after_line()

    def follow(
        self, version: int, number: int, sim: runtime.Simulation, line: str
    ) -> Line:
        """What a line tells the page. Expects the board's lock held."""
        message = line[16:]  # after the time
        source = _SOURCE.match(message)
        server = -1 if source is None or source[1] == "TEST" else int(source[1])
        heartbeat = False
        if source is not None and server >= 0:
            said = message[source.end() :]
            if said.startswith("rpc "):
                heartbeat = self.follow_message(version, sim, said)
            else:
                heartbeat = self.heartbeats.is_heartbeat(0, server, said)
                timer = _TIMER.match(said)
                if timer is not None:
                    self.timeouts[server] = int(timer[1]) / 1000
        return Line(version, number, sim.now, server, line, heartbeat)

    def follow_message(self, version: int, sim: runtime.Simulation, said: str) -> bool:
        """Note an ``rpc`` line on its message; True if the message is a
        heartbeat."""
        match = RPC_LINE.match(said)
        if match is None:
            return False
        msg_id = f"{match['sender']}.{match['n']}"
        if match["event"] == "send":
            message = Message(
                msg_id,
                int(match["sender"]),
                int(match["to"]),
                message_kind(match["text"]),
                sim.now,
                sim.current,
                version,
            )
            self.messages[msg_id] = message
            return message.kind == HEARTBEAT
        found = self.messages.get(msg_id)
        if found is None:
            return False
        found.version = version
        if match["net"] is not None:
            found.arrive = sim.now
            found.reached = match["net"]
        else:
            found.ended = sim.now
            found.outcome = LOST if match["event"] == "lost" else REPLY
            self.ended.append(msg_id)
            while len(self.ended) > ENDED_MESSAGES:
                gone = self.messages.pop(self.ended.popleft(), None)
                if gone is not None:
                    self.forget(gone.version)
        return found.kind == HEARTBEAT

    def forget(self, version: int) -> None:
        """Note that something of ``version`` is no longer kept for the page."""
        self.forgotten = max(self.forgotten, version)

    def look_at_messages(self) -> None:
        """Note when each travelling message will arrive: the end of its
        sender's sleep in the network. Expects the board's lock held, and
        the simulation between two runs of its threads."""
        for message in self.messages.values():
            if message.reached or message.ended is not None:
                continue
            arrive = message.thread.wakes_at
            if arrive is not None and arrive != message.arrive:
                message.arrive = arrive
                message.version = self.board.bump()

    def lines_since(self, version: int) -> list[Line]:
        """The recent lines newer than ``version``. Expects the lock held."""
        fresh: list[Line] = []
        for line in reversed(self.recent):
            if line.version <= version:
                break
            fresh.append(line)
        fresh.reverse()
        return fresh

    def messages_since(self, version: int) -> list[Message]:
        """The messages that changed since ``version``; all it follows if a
        page at ``version`` missed some. Expects the lock held."""
        if version < self.forgotten:
            return list(self.messages.values())
        return [m for m in self.messages.values() if m.version > version]
