"""The cluster at any moment: every server's state, term, log, commit index
and, for a leader, each follower's next and match index, rebuilt from the
consensus modules' own log lines (docs/log-format.md).

Nothing here guesses. A log entry is known by its term (and, where a line
shows it, its command); where the lines do not tell an entry's term, it is
*unknown* (``None``), and the page shows it as such. The lines used:

* ``becomes Leader; term=T, log=[...]``: the leader's whole log; its next
  index for every peer is the log's length, its match index -1;
* ``Submit received by Leader: C`` then ``... log index=N``: the leader
  appended C at N, in its term (both lines come from one critical section);
* ``AppendEntries: AppendEntriesArgs(...)`` then ``... inserting entries
  from index I``: the follower replaced its log from I on with the entries
  of those arguments. A logged AppendEntries shows only the ends of a long
  list: the entries in the middle are those of the leader of that term at
  the same indices (a leader's log only grows during its term);
* ``... setting commitIndex=N``, ``leader sets commitIndex := N``;
* ``AppendEntries reply from P success: nextIndex=N, matchIndex=M`` and
  ``... !success: nextIndex=N``;
* ``restored from storage: ..., log=[...]``: a restarted server's log, and
  ``[TEST] Restart N``: its commit index is -1 again (it is not persisted).

With log compaction (part6) a server's log starts after a *base*, the last
index its snapshot covers; every index stays absolute, and the history
keeps each log from index 0 with the base beside it (the entries up to the
base are in the snapshot: the page draws the base, not them). The lines:

* ``snapshot at index I (term T)``: the server's service took a snapshot
  up to I, now its base;
* ``... installing snapshot at index I (term T), keeping the log after
  it`` or ``..., discarding the log``: a follower took the leader's
  snapshot; its base and commit index are I, and its log after I stays or
  is gone;
* ``becomes Leader; ..., lastIncludedIndex=I, lastIncludedTerm=T, log=[...]``
  and ``restored from storage: ..., lastIncludedIndex=I, lastIncludedTerm=T,
  log=[...]``: the base, and the log after it (a restarted server's commit
  index starts at its base);
* ``InstallSnapshot reply from P: nextIndex=N, matchIndex=M``.

Where a line contradicts what the earlier lines built (a leader's logged log
differs from the rebuilt one, say), the line wins and the contradiction is
recorded: the visualizer's tests require none in real runs.

Two facts about the whole cluster come with it. What is *known to be
committed*: once a server's commit index reaches an index, the entry its log
holds there is committed, for good (a restarted server's commit index starts
at -1 again, but what was committed stays committed). And the *truncations*:
where a follower's ``inserting entries from index I`` overwrites entries it
held from I on (the lesson of the paper's Figure 8).

The result is a list of *operations* per server, replayed up to a row to get
the cluster after that row: ``History.at`` does it here (for tests), the
page's script does the same in the browser.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from .timeline import State, Timeline

# The base of a part6 log, in the lines that show a whole log.
_BASE = r"(?:lastIncludedIndex=(-?\d+), lastIncludedTerm=(-?\d+), )?"
_LEADER = re.compile(rf"becomes Leader; term=(\d+), {_BASE}log=\[(.*)\]\Z")
_RESTORED = re.compile(rf"restored from storage: .*?\b{_BASE}log=\[(.*)\]\Z")
_SNAPSHOT = re.compile(r"snapshot at index (\d+) \(term (-?\d+)\)\Z")
_INSTALLING = re.compile(
    r"\.\.\. installing snapshot at index (\d+) \(term (-?\d+)\), "
    r"(keeping the log after it|discarding the log)\Z"
)
_INSTALL_REPLY = re.compile(
    r"InstallSnapshot reply from (\d+): nextIndex=(-?\d+), matchIndex=(-?\d+)\Z"
)
_ENTRY = re.compile(r"LogEntry\(command=(.*?), term=(-?\d+)\)")
_HIDDEN = re.compile(r"\.\.\. (\d+) more \.\.\.")
_ARGS = re.compile(
    r"AppendEntries: AppendEntriesArgs\(term=(\d+), leader_id=\d+, "
    r"prev_log_index=(-?\d+), prev_log_term=-?\d+, entries=\[(.*)\], "
    r"leader_commit=-?\d+\)\Z"
)
_COMMIT_PREFIXES = ("... setting commitIndex=", "leader sets commitIndex := ")
_LAST_NUMBER = re.compile(r"(-?\d+)\Z")
_REPLY = re.compile(r"AppendEntries reply from (\d+) (!?)success: nextIndex=(-?\d+)")
_MATCH = re.compile(r"matchIndex=(-?\d+)")
_RESTART = re.compile(r"Restart (\d+)\Z")

Term = int | None
"""A log entry as the history knows it: its term, or None if unknown."""


@dataclass(frozen=True, slots=True)
class StateOp:
    """From ``row`` on, the server is in ``state`` and ``term``."""

    row: int
    state: State
    term: int


@dataclass(frozen=True, slots=True)
class LogOp:
    """At ``row`` the server's log becomes its first ``start`` entries
    followed by ``terms``."""

    row: int
    start: int
    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class CommitOp:
    """From ``row`` on, the server's commit index is ``commit_index``."""

    row: int
    commit_index: int


@dataclass(frozen=True, slots=True)
class PeerOp:
    """From ``row`` on, the server, as leader, holds this next and match
    index for ``peer``."""

    row: int
    peer: int
    next_index: int
    match_index: int


@dataclass(frozen=True, slots=True)
class BaseOp:
    """From ``row`` on, the server's snapshot covers every entry up to
    ``index``, the last of term ``term``: the base of its log."""

    row: int
    index: int
    term: int


Op = StateOp | LogOp | CommitOp | PeerOp | BaseOp
"""One change to one server, at a row of the test's table."""


@dataclass(frozen=True, slots=True)
class Truncation:
    """At ``row``, ``server`` overwrote the entries it held from index
    ``start`` on (of terms ``old``) with those of an AppendEntries."""

    row: int
    server: int
    start: int
    old: tuple[Term, ...]


@dataclass(slots=True)
class ServerView:
    """One server after a given row."""

    state: State = State.FOLLOWER
    term: int = 0
    log: list[Term] = field(default_factory=list)
    commit_index: int = -1
    next_index: dict[int, int] = field(default_factory=dict)
    match_index: dict[int, int] = field(default_factory=dict)
    base: int = -1
    """The last index the server's snapshot covers (-1: no snapshot)."""
    base_term: int = -1
    """The term of the entry at ``base``."""

    def apply(self, op: Op) -> None:
        """Apply one operation."""
        match op:
            case StateOp():
                self.state, self.term = op.state, op.term
            case LogOp():
                del self.log[op.start :]
                self.log.extend(op.terms)
            case CommitOp():
                self.commit_index = op.commit_index
            case PeerOp():
                self.next_index[op.peer] = op.next_index
                self.match_index[op.peer] = op.match_index
            case BaseOp():
                self.base, self.base_term = op.index, op.term


@dataclass(frozen=True, slots=True)
class History:
    """What the log lines tell of every server's state, as operations."""

    servers: list[int]
    has_log: bool
    """Whether the part has a log at all (part1 has none)."""
    ops: dict[int, list[Op]]
    """Per server, its operations in row order."""
    commands: dict[tuple[int, int], str]
    """(index, term) -> the command of that entry, where a line shows it.
    In Raft one entry has one index and term (Log Matching), so this holds
    for every server's log. A command is written as ``str`` shows it: as
    the leader's submit line does, or its ``repr`` in a LogEntry made back
    into the value if it is a literal (else the ``repr`` as it is)."""
    contradictions: list[tuple[int, str]]
    """(row, what): a line that contradicted the history built so far."""
    committed: list[tuple[int, Term]]
    """Per index, from 0: the row from which its entry is known to be
    committed (a server's commit index reached it), and the entry's term."""
    truncations: list[Truncation]
    """Every time a follower overwrote entries of its log, in row order."""

    def committed_at(self, row: int) -> list[Term]:
        """The terms of the entries known to be committed after ``row``."""
        return [term for first, term in self.committed if first <= row]

    def at(self, row: int) -> dict[int, ServerView]:
        """Every server after ``row`` (-1: before the first row)."""
        views: dict[int, ServerView] = {}
        for server in self.servers:
            view = ServerView()
            for op in self.ops[server]:
                if op.row > row:
                    break
                view.apply(op)
            views[server] = view
        return views


class _Args(NamedTuple):
    """What the history needs of a received AppendEntries."""

    term: int
    prev_log_index: int
    entries: list[Term]
    """The terms of its entries; None for those the line leaves out."""


class _Builder:
    """One pass over a timeline's rows, collecting the operations."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.servers = timeline.servers
        self.column = {server: i for i, server in enumerate(self.servers)}
        self.ops: dict[int, list[Op]] = {server: [] for server in self.servers}
        self.views = {server: ServerView() for server in self.servers}
        self.commands: dict[tuple[int, int], str] = {}
        self.contradictions: list[tuple[int, str]] = []
        self.has_log = False
        # The log of the leader of each term, as it grows during the term.
        self.leader_logs: dict[int, list[Term]] = {}
        self.submitted: dict[int, str] = {}
        self.received: dict[int, _Args | None] = {}
        self.command_text: dict[str, str] = {}
        self.committed: list[tuple[int, Term]] = []
        # Indices known to be committed whose term is not known yet.
        self.unknown: set[int] = set()
        self.truncations: list[Truncation] = []

    def emit(self, server: int, op: Op) -> None:
        self.ops[server].append(op)
        self.views[server].apply(op)
        if isinstance(op, CommitOp):
            self.commit(op.row, server, op.commit_index)

    def commit(self, row: int, server: int, commit_index: int) -> None:
        """Note the entries known to be committed once ``server``'s commit
        index is ``commit_index``; an entry whose term was unknown gets it
        when a server that knows it commits it."""
        log = self.views[server].log
        told = [k for k in self.unknown if k <= commit_index and k < len(log)]
        for k in told:
            if log[k] is not None:
                self.committed[k] = (self.committed[k][0], log[k])
                self.unknown.remove(k)
        for k in range(len(self.committed), commit_index + 1):
            term = log[k] if k < len(log) else None
            if term is None:
                self.unknown.add(k)
            self.committed.append((row, term))

    def contradiction(self, row: int, what: str) -> None:
        self.contradictions.append((row, what))

    def build(self) -> History:
        previous = None
        for row, line in enumerate(self.timeline.rows):
            if line.states is not previous:
                self.state_changes(row, line.states, line.terms)
                previous = line.states
            entry = line.entry
            if entry.source:
                continue
            if entry.server is None:
                restart = _RESTART.match(entry.message)
                if restart is not None and int(restart[1]) in self.views:
                    self.emit(int(restart[1]), CommitOp(row, -1))
                continue
            self.feed(row, entry.server, entry.message, line.terms)
        return History(
            self.servers,
            self.has_log,
            self.ops,
            self.commands,
            self.contradictions,
            self.committed,
            self.truncations,
        )

    def state_changes(
        self, row: int, states: tuple[State, ...], terms: tuple[int, ...]
    ) -> None:
        for server, state, term in zip(self.servers, states, terms, strict=True):
            view = self.views[server]
            if view.state != state or view.term != term:
                self.emit(server, StateOp(row, state, term))

    def feed(self, row: int, server: int, message: str, terms: tuple[int, ...]) -> None:
        # The cheap prefix tests first: most lines are none of these.
        if message.startswith("AppendEntries: "):
            self.received[server] = self.parse_args(message)
        elif message.startswith("... inserting entries from index "):
            self.insert(row, server, int(message.rsplit(" ", 1)[1]))
        elif message.startswith("AppendEntries reply from "):
            self.reply(row, server, message)
        elif message.startswith(_COMMIT_PREFIXES):
            commit = _LAST_NUMBER.search(message)
            if commit is not None:
                self.emit(server, CommitOp(row, int(commit[1])))
        elif message.startswith("Submit received by Leader: "):
            self.submitted[server] = message.split(": ", 1)[1]
        elif message.startswith("... log index="):
            self.append(row, server, int(message.split("=", 1)[1]), terms)
        elif message.startswith("becomes Leader; "):
            self.leader(row, server, message)
        elif message.startswith("restored from storage: "):
            self.restored(row, server, message)
        elif message.startswith("snapshot at index "):
            self.snapshot(row, server, message)
        elif message.startswith("... installing snapshot at index "):
            self.install(row, server, message)
        elif message.startswith("InstallSnapshot reply from "):
            self.install_reply(row, server, message)

    def parse_entries(self, text: str, first_index: int) -> list[Term]:
        """The terms of a logged list of LogEntry, the first at index
        ``first_index``, noting their commands; a ``... N more ...`` in it
        stands for N entries of unknown term."""
        hidden = _HIDDEN.search(text)
        if hidden is None:
            return self.shown_entries(text, first_index)
        before = self.shown_entries(text[: hidden.start()], first_index)
        count = int(hidden[1])
        after_index = first_index + len(before) + count
        after = self.shown_entries(text[hidden.end() :], after_index)
        return [*before, *[None] * count, *after]

    def shown_entries(self, text: str, first_index: int) -> list[Term]:
        terms: list[Term] = []
        for match in _ENTRY.finditer(text):
            term = int(match[2])
            key = (first_index + len(terms), term)
            if key not in self.commands:
                self.commands[key] = self.command(match[1])
            terms.append(term)
        return terms

    def command(self, text: str) -> str:
        """A command as ``str`` shows it, from its ``repr`` in a LogEntry."""
        shown = self.command_text.get(text)
        if shown is None:
            try:
                shown = str(ast.literal_eval(text))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                shown = text
            self.command_text[text] = shown
        return shown

    def parse_args(self, message: str) -> _Args | None:
        match = _ARGS.match(message)
        if match is None:
            return None
        prev = int(match[2])
        return _Args(int(match[1]), prev, self.parse_entries(match[3], prev + 1))

    def set_log(self, row: int, server: int, start: int, terms: list[Term]) -> None:
        """Make the server's log its first ``start`` entries plus ``terms``."""
        log = self.views[server].log
        if start > len(log):
            self.contradiction(
                row, f"server {server} changes its log at {start}, past its end"
            )
            unknown: list[Term] = [None] * (start - len(log))
            terms = unknown + terms
            start = len(log)
        self.emit(server, LogOp(row, start, tuple(terms)))

    def replace_log(self, row: int, server: int, logged: list[Term], what: str) -> None:
        """The server's whole log as a line shows it: note where it differs
        from the history's, and take it."""
        log = self.views[server].log
        if logged == log:
            return
        start = next(
            (i for i, (a, b) in enumerate(zip(log, logged, strict=False)) if a != b),
            min(len(log), len(logged)),
        )
        self.contradiction(row, f"server {server} {what} differs from index {start}")
        self.set_log(row, server, start, logged[start:])

    def leader(self, row: int, server: int, message: str) -> None:
        match = _LEADER.match(message)
        if match is None:
            return  # part1: a leader without a log
        self.has_log = True
        term = int(match[1])
        self.replace_based_log(row, server, match[2], match[3], match[4], "as leader")
        log = self.views[server].log
        self.leader_logs[term] = list(log)
        for peer in self.servers:
            if peer != server:
                self.emit(server, PeerOp(row, peer, len(log), -1))

    def append(self, row: int, server: int, index: int, terms: tuple[int, ...]) -> None:
        self.has_log = True
        command = self.submitted.pop(server, None)
        term = terms[self.column[server]]
        if command is not None:
            self.commands[index, term] = command
        if index != len(self.views[server].log):
            self.contradiction(row, f"leader {server} appends at {index}")
        self.set_log(row, server, index, [term])
        leader_log = self.leader_logs.get(term)
        if leader_log is not None:
            del leader_log[index:]
            leader_log.append(term)

    def insert(self, row: int, server: int, start: int) -> None:
        self.has_log = True
        args = self.received.get(server)
        if args is None:
            self.contradiction(row, f"server {server} inserts entries of no request")
            self.set_log(row, server, start, [None])
            return
        first = args.prev_log_index + 1
        if not first <= start <= first + len(args.entries):
            self.contradiction(
                row, f"server {server} inserts at {start}, outside its request"
            )
            self.set_log(row, server, start, [None])
            return
        leader_log = self.leader_logs.get(args.term, [])
        entries = list(args.entries)
        for k, term in enumerate(entries):
            index = first + k
            known = leader_log[index] if index < len(leader_log) else None
            if term is None:
                entries[k] = known
            elif known is not None and known != term:
                self.contradiction(
                    row, f"entry {index} of term {term} is not the leader's {known}"
                )
        log = self.views[server].log
        if start < len(log):
            self.truncations.append(Truncation(row, server, start, tuple(log[start:])))
        self.set_log(row, server, start, entries[start - first :])

    def reply(self, row: int, server: int, message: str) -> None:
        match = _REPLY.match(message)
        if match is None:
            return
        peer, next_index = int(match[1]), int(match[3])
        view = self.views[server]
        match_index = view.match_index.get(peer, -1)
        if not match[2]:
            found = _MATCH.search(message)
            if found is not None:
                match_index = int(found[1])
        self.emit(server, PeerOp(row, peer, next_index, match_index))

    def restored(self, row: int, server: int, message: str) -> None:
        match = _RESTORED.match(message)
        if match is None:
            return
        self.has_log = True
        self.replace_based_log(
            row, server, match[1], match[2], match[3], "restored from storage"
        )
        base = self.views[server].base
        if base >= 0:
            # The snapshot is committed: the commit index starts there.
            self.emit(server, CommitOp(row, base))

    def replace_based_log(
        self,
        row: int,
        server: int,
        base_text: str | None,
        base_term_text: str | None,
        entries: str,
        what: str,
    ) -> None:
        """The server's base (if the line shows one, else -1) and its log
        after it, as a line shows them: take both. The entries up to the
        base are not shown; the history keeps those it knew."""
        base = -1 if base_text is None else int(base_text)
        log = self.views[server].log
        logged: list[Term] = [log[k] if k < len(log) else None for k in range(base)]
        if base >= 0:
            logged.append(int(base_term_text or -1))
        logged.extend(self.parse_entries(entries, base + 1))
        self.replace_log(row, server, logged, f"log {what}")
        self.set_base(row, server, base, int(base_term_text or -1))

    def set_base(self, row: int, server: int, index: int, term: int) -> None:
        view = self.views[server]
        if (view.base, view.base_term) != (index, term):
            self.emit(server, BaseOp(row, index, term))

    def snapshot(self, row: int, server: int, message: str) -> None:
        match = _SNAPSHOT.match(message)
        if match is None:
            return  # "... ignored": nothing changes
        self.set_base(row, server, int(match[1]), int(match[2]))

    def install(self, row: int, server: int, message: str) -> None:
        match = _INSTALLING.match(message)
        if match is None:
            return
        index, term = int(match[1]), int(match[2])
        if match[3] == "discarding the log":
            # The log ends at the snapshot's last entry; what the server held
            # from there on is gone, written over like a conflicting suffix.
            log = self.views[server].log
            start = min(index, len(log))
            if index < len(log):
                self.truncations.append(
                    Truncation(row, server, index, tuple(log[index:]))
                )
            self.set_log(row, server, start, [*[None] * (index - start), term])
        self.set_base(row, server, index, term)
        self.emit(server, CommitOp(row, index))

    def install_reply(self, row: int, server: int, message: str) -> None:
        match = _INSTALL_REPLY.match(message)
        if match is not None:
            peer, next_index, match_index = (int(g) for g in match.groups())
            self.emit(server, PeerOp(row, peer, next_index, match_index))


def build_history(timeline: Timeline) -> History:
    """Rebuild every server's state over ``timeline`` from its lines."""
    return _Builder(timeline).build()
