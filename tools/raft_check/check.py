"""Check a test run's log against the safety properties of Raft.

The log is the one ``pytest -o log_cli=true`` prints (the format is
described in ``docs/log-format.md``); it is read with the visualizer's
parser.
Three kinds of lines carry what the checks need:

* ``[i] becomes Leader; term=T, log=[LogEntry(...), ...]``: server ``i``
  won the election of term ``T`` holding that log;
* ``[TEST] collect_commits(i) got CommitEntry(command=C, index=I, term=T)``:
  the harness took a committed entry delivered by server ``i``;
* ``[TEST] Restart i``: a new incarnation of server ``i``, which delivers
  its committed log again from index 0; ``[TEST] New cluster of N servers``
  starts everything afresh.

With log compaction (part6), two more: a leader's line names the base of
its log, ``lastIncludedIndex=B, lastIncludedTerm=BT``, and its log holds
the entries after B only; and ``collect_commits(i) got SnapshotEntry(...,
index=I, term=T)`` says that server ``i``'s service took a snapshot of
every entry up to I (the data is logged by its length only), after which
the server delivers I + 1 next.

From them it checks, per test, the properties of the paper's Figure 3:

* Election Safety: at most one server becomes leader in a term;
* State Machine Safety: no two deliveries at one index differ (across
  servers, crashes and restarts); and (Delivery order) each incarnation of a
  server delivers indices in order, each once;
* Leader Completeness: a leader holds every entry committed in an earlier
  term. The log does not tell in which term U an entry was committed; but
  the leader that committed it logged "becomes Leader" before, so U is at
  most the highest leader term logged before the entry's first delivery.
  Only leaders of later terms are checked: a leader of an older term (one
  elected in a partition, say) may rightly lack the entry.

Across snapshots the checks stay sound but see less: of a snapshot the log
shows only its last entry's index and term, which must agree with what was
delivered there, and a snapshot must come after what its server delivered
before. A leader's entries below its base are in its snapshot, out of
sight: at the base its term is checked, after it its log.

Commands are compared by their ``repr`` as the log shows it.

A test that logs ``[TEST] planted bug: <what>`` runs a deliberately broken
consensus module: for it, finding a violation is the expected outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tools.raft_testlog_viz.parse import Entry, RunLog, parse_log

PLANTED_BUG = "planted bug: "
"""How a test's harness line announces a deliberately broken CM."""

_LEADER = re.compile(
    r"becomes Leader; term=(?P<term>\d+)"
    r"(?:, lastIncludedIndex=(?P<base>-?\d+), lastIncludedTerm=(?P<base_term>-?\d+))?"
    r"(?:, log=\[(?P<log>.*)\])?"
)
_LOG_ENTRY = re.compile(r"LogEntry\(command=(?P<command>.*?), term=(?P<term>-?\d+)\)")
_DELIVERY = re.compile(
    r"collect_commits\((?P<server>\d+)\) got CommitEntry\(command=(?P<command>.*), "
    r"index=(?P<index>\d+), term=(?P<term>-?\d+)\)\Z"
)
_SNAPSHOT = re.compile(
    r"collect_commits\((?P<server>\d+)\) got SnapshotEntry\(data=<\d+ bytes>, "
    r"index=(?P<index>-?\d+), term=(?P<term>-?\d+)\)\Z"
)
_RESTART = re.compile(r"Restart (?P<server>\d+)\Z")
_NEW_CLUSTER = re.compile(r"New cluster of \d+ servers\Z")


@dataclass(frozen=True)
class Violation:
    """A broken safety property, at the log line that shows it."""

    lineno: int
    """1-based number of the line in the input."""
    prop: str
    """The property: "Election Safety", "State Machine Safety", "Delivery
    order" or "Leader Completeness"."""
    servers: tuple[int, ...]
    """The servers involved: the two leaders of one term; the server that
    delivered, and (State Machine Safety) the one that delivered first; the
    leader that lacks an entry."""
    term: int | None
    """The term of the leader involved (Election Safety, Leader
    Completeness)."""
    index: int | None
    """The log index involved (all but Election Safety)."""
    message: str

    def __str__(self) -> str:
        return f"line {self.lineno}: {self.prop}: {self.message}"


@dataclass(frozen=True)
class Verdict:
    """What the checks found in one test of the run."""

    name: str
    violations: list[Violation] = field(default_factory=list)
    planted_bug: str | None = None
    """What the test's deliberately broken CM does, if it runs one."""

    @property
    def ok(self) -> bool:
        """No violation; or, for a planted bug, at least one."""
        if self.planted_bug is None:
            return not self.violations
        return bool(self.violations)


@dataclass(frozen=True)
class _Delivery:
    """The first delivery of an index."""

    command: str
    term: int
    server: int
    lineno: int
    max_leader_term: int
    """The highest term any server had become leader in by then."""


class _Checker:
    """Follows one test's entries and collects the violations."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.planted_bug: str | None = None
        self.new_cluster()

    def new_cluster(self) -> None:
        """Forget every server, term and delivery."""
        # term -> (server, line of its "becomes Leader")
        self.leaders: dict[int, tuple[int, int]] = {}
        self.max_leader_term = -1
        self.delivered: dict[int, _Delivery] = {}
        # server -> index its current incarnation must deliver next
        self.next_index: dict[int, int] = {}

    def feed(self, lineno: int, server: int | None, message: str) -> None:
        """Take one log entry into account: the ``message`` a server (None:
        the harness) logged on line ``lineno``."""
        if server is not None:
            if match := _LEADER.match(message):
                self.leader(lineno, server, match)
        elif match := _DELIVERY.match(message):
            self.delivery(lineno, match)
        elif match := _SNAPSHOT.match(message):
            self.snapshot(lineno, match)
        elif match := _RESTART.match(message):
            self.next_index[int(match["server"])] = 0
        elif _NEW_CLUSTER.match(message):
            self.new_cluster()
        elif message.startswith(PLANTED_BUG):
            self.planted_bug = message.removeprefix(PLANTED_BUG)

    def report(
        self,
        lineno: int,
        prop: str,
        servers: tuple[int, ...],
        term: int | None,
        index: int | None,
        message: str,
    ) -> None:
        """Record a violation."""
        self.violations.append(Violation(lineno, prop, servers, term, index, message))

    def leader(self, lineno: int, server: int, match: re.Match[str]) -> None:
        """Check a new leader: one per term, holding what is committed."""
        term = int(match["term"])
        first_server, first_line = self.leaders.setdefault(term, (server, lineno))
        if first_server != server:
            self.report(
                lineno,
                "Election Safety",
                (first_server, server),
                term,
                None,
                f"servers {first_server} (line {first_line}) and {server} both "
                f"became leader in term {term}",
            )
        self.max_leader_term = max(self.max_leader_term, term)
        if match["log"] is None:
            return  # a log line without the leader's log: nothing to compare
        log = [
            (m["command"], int(m["term"])) for m in _LOG_ENTRY.finditer(match["log"])
        ]
        # The log starts after the base (-1 before any snapshot).
        base = int(match["base"] or -1)
        for index, first in self.delivered.items():
            if term <= first.max_leader_term or index < base:
                continue
            if index == base:
                base_term = int(match["base_term"])
                if base_term == first.term:
                    continue
                has = f"a snapshot up to index {base} of term {base_term}"
            else:
                position = index - base - 1
                held = log[position] if position < len(log) else None
                if held == (first.command, first.term):
                    continue
                what = (
                    "no entry"
                    if held is None
                    else f"command {held[0]} of term {held[1]}"
                )
                has = f"{what} at index {index}"
            self.report(
                lineno,
                "Leader Completeness",
                (server,),
                term,
                index,
                f"server {server} became leader in term {term} with {has}, but "
                f"command {first.command} of term {first.term} was committed "
                f"there (delivered by server {first.server} on line "
                f"{first.lineno}, when the latest leader's term was "
                f"{first.max_leader_term})",
            )

    def delivery(self, lineno: int, match: re.Match[str]) -> None:
        """Check a delivery: in order on its server, the same everywhere."""
        server, index = int(match["server"]), int(match["index"])
        command, term = match["command"], int(match["term"])
        expected = self.next_index.get(server, 0)
        if index != expected:
            self.report(
                lineno,
                "Delivery order",
                (server,),
                None,
                index,
                f"server {server} delivered index {index}, expected {expected}: "
                f"each index in order, once per incarnation",
            )
        self.next_index[server] = expected + 1
        first = self.delivered.setdefault(
            index, _Delivery(command, term, server, lineno, self.max_leader_term)
        )
        if (first.command, first.term) != (command, term):
            self.report(
                lineno,
                "State Machine Safety",
                (server, first.server),
                None,
                index,
                f"server {server} delivered command {command} of term {term} at "
                f"index {index}, but server {first.server} delivered command "
                f"{first.command} of term {first.term} there (line {first.lineno})",
            )

    def snapshot(self, lineno: int, match: re.Match[str]) -> None:
        """Check a delivered snapshot: it brings something new to its server,
        and its last entry is of the term delivered at its index."""
        server, index, term = (
            int(match["server"]),
            int(match["index"]),
            int(match["term"]),
        )
        expected = self.next_index.get(server, 0)
        if index < expected:
            self.report(
                lineno,
                "Delivery order",
                (server,),
                None,
                index,
                f"server {server} delivered a snapshot up to index {index} after "
                f"it delivered index {expected - 1}: a snapshot must bring "
                f"something new",
            )
        self.next_index[server] = index + 1
        first = self.delivered.get(index)
        if first is not None and first.term != term:
            self.report(
                lineno,
                "State Machine Safety",
                (server, first.server),
                None,
                index,
                f"server {server} delivered a snapshot up to index {index} of "
                f"term {term}, but server {first.server} delivered command "
                f"{first.command} of term {first.term} there (line {first.lineno})",
            )


def check_entries(entries: Iterable[Entry], name: str = "") -> Verdict:
    """Check the entries of one test (as the visualizer's parser reads them)."""
    checker = _Checker()
    for entry in entries:
        if not entry.source:  # a key/value service's or client's line
            checker.feed(entry.lineno, entry.server, entry.message)
    return Verdict(name, checker.violations, checker.planted_bug)


def check_run(run: RunLog) -> list[Verdict]:
    """Check every test of a parsed run."""
    return [check_entries(test.entries, test.name) for test in run.tests]


def check_log(lines: Iterable[str]) -> list[Verdict]:
    """Check a whole log: lines framed per test by ``=== RUN`` and ``---
    PASS`` (what ``pytest -o log_cli=true`` prints)."""
    return check_run(parse_log(lines))


def check_lines(lines: Iterable[str], name: str = "unframed log") -> Verdict:
    """Check the log lines of a single test, without frames: for instance
    pytest's ``caplog.text.splitlines()``."""
    run = parse_log(lines, unframed_name=name)
    return check_entries(run.tests[0].entries if run.tests else [], name)
