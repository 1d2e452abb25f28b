"""The cluster at a moment, rebuilt from the log: a real part3 run against
what its servers really held, and the rules on small logs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from part3.harness import CHECK_DEADLINE, POLL_INTERVAL, Harness, sleep_ms
from part6.harness import Harness as Harness6
from tests.tools.conftest import PART3_TESTS
from tools.raft_testlog_viz.cluster import History, LogOp, Truncation, build_history
from tools.raft_testlog_viz.parse import RunLog, parse_log
from tools.raft_testlog_viz.timeline import State, Timeline, build_timeline


def history_of(*lines: str) -> tuple[Timeline, History]:
    """The timeline and history of one test made of ``lines``."""
    run = parse_log(["=== RUN test_a", *lines, "--- PASS: test_a (1.00s)"])
    timeline = build_timeline(run.tests[0])
    return timeline, build_history(timeline)


def commit(h: Harness | Harness6, command: Any, servers: int) -> None:
    """Get ``command`` delivered by ``servers`` servers: submit it to whoever
    leads, again if that leader lost it, until CHECK_DEADLINE."""
    deadline = time.monotonic() + CHECK_DEADLINE
    while time.monotonic() < deadline:
        for i in range(h.n):
            if h.connected[i]:
                h.submit_to_server(i, command)
        attempt = time.monotonic() + 0.5
        while time.monotonic() < attempt:
            done = sum(
                any(e.command == command for e in h.delivered(i)) for i in range(h.n)
            )
            if done >= servers:
                return
            time.sleep(POLL_INTERVAL)
    raise AssertionError(f"{command!r} not delivered by {servers} servers")


def test_a_real_run_ends_as_its_servers_did(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A leader and a follower, cut off over a lossy network, take more
    # commands than a logged AppendEntries shows; the other three commit
    # their own; then all five meet and the pair's divergent suffix is
    # replaced; last, one server crashes and comes back.
    with Harness(5) as h:
        commit(h, "first", 5)
        leader, _ = h.check_single_leader()
        follower = (leader + 1) % 5
        majority = [i for i in range(5) if i not in (leader, follower)]
        for i in majority:
            h.disconnect_peer(i)
        monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
        for k in range(12):
            h.submit_to_server(leader, f"lost-{k}")
        sleep_ms(300)
        monkeypatch.delenv("RAFT_UNRELIABLE_RPC")
        h.disconnect_peer(leader)
        h.disconnect_peer(follower)
        for i in majority:
            h.reconnect_peer(i)
        for k in range(10):
            commit(h, f"kept-{k}", 3)
        h.reconnect_peer(leader)
        h.reconnect_peer(follower)
        commit(h, "all together", 5)
        h.crash_peer(majority[0])
        commit(h, "while one is down", 4)
        h.restart_peer(majority[0])
        commit(h, "last", 5)
    # Shut down: what each server's CM holds now is its final state.
    cms = [server.cm for server in h.cluster]
    delivered = [h.delivered(i) for i in range(5)]

    run = parse_log(["=== RUN test_x", *caplog.text.splitlines(), "--- PASS: test_x"])
    timeline = build_timeline(run.tests[0])
    history = build_history(timeline)
    assert history.contradictions == []
    assert history.has_log
    views = history.at(len(timeline.rows) - 1)
    for i, cm in enumerate(cms):
        view = views[i]
        assert view.log == [entry.term for entry in cm.log]
        assert [history.commands[k, e.term] for k, e in enumerate(cm.log)] == [
            str(entry.command) for entry in cm.log
        ]
        assert view.commit_index == cm.commit_index
        assert view.state == State.DEAD
        assert view.term == cm.current_term
        # What the server delivered since its restart is a prefix of its
        # committed log.
        assert len(delivered[i]) <= view.commit_index + 1
        for entry in delivered[i]:
            assert view.log[entry.index] == entry.term
            assert history.commands[entry.index, entry.term] == str(entry.command)
    # The scenario did what it says: a logged AppendEntries left entries
    # out, and the pair's suffix of "lost" entries was replaced.
    assert any("more ..." in entry.message for entry in run.tests[0].entries)
    for i in (leader, follower):
        assert not any(str(e.command).startswith("lost") for e in cms[i].log)
        replaced = [
            op
            for op in history.ops[i]
            if isinstance(op, LogOp) and op.start < max_log_length(history, i, op.row)
        ]
        assert replaced, f"server {i}'s suffix was never replaced"
        # ... and these are the truncations, with the "lost" entries' terms.
        cuts = [t for t in history.truncations if t.server == i]
        assert [(t.row, t.start) for t in cuts] == [
            (op.row, op.start) for op in replaced
        ]
        for cut in cuts:
            before = history.at(cut.row - 1)[i].log
            assert cut.old == tuple(before[cut.start :])
            assert history.at(cut.row)[i].log[cut.start] != cut.old[0]
    # What is known to be committed at the end is every server's log up to
    # the highest commit index; a server's own commit index may lag.
    last = max(view.commit_index for view in views.values())
    assert history.committed_at(len(timeline.rows) - 1) == [
        e.term for e in cms[0].log[: last + 1]
    ]
    # And it never shrinks, nor changes an entry: it is known for good.
    rows = [first for first, _ in history.committed]
    assert rows == sorted(rows)


def max_log_length(history: History, server: int, row: int) -> int:
    """The length of ``server``'s log just before ``row``."""
    return len(history.at(row - 1)[server].log)


def test_the_part3_runs_have_no_contradiction(part3_run: RunLog) -> None:
    assert [t.name for t in part3_run.tests] == PART3_TESTS
    for test in part3_run.tests:
        history = build_history(build_timeline(test))
        assert history.contradictions == [], test.name


LEADER = "12:00:00.000000 [0] becomes Leader; term=2, log=[]"


def test_a_leaders_appends_and_its_view_of_the_peers() -> None:
    timeline, history = history_of(
        "12:00:00.000000 [1] election timer started",
        "12:00:00.000000 [2] election timer started",
        LEADER,
        "12:00:00.001000 [0] Submit received by Leader: x",
        "12:00:00.001000 [0] rpc 0.1 send to 1: AppendEntriesArgs(term=2)",
        "12:00:00.001000 [0] ... log index=0",
        "12:00:00.002000 [0] AppendEntries reply from 1 success: nextIndex=1, "
        "matchIndex=0",
        "12:00:00.003000 [0] leader sets commitIndex := 0",
        "12:00:00.004000 [0] AppendEntries reply from 2 !success: nextIndex=0",
    )
    assert history.has_log
    after = [history.at(row)[0] for row in range(len(timeline.rows))]
    assert after[2].log == []
    assert after[2].next_index == {1: 0, 2: 0}
    assert after[2].match_index == {1: -1, 2: -1}
    assert after[5].log == [2]
    assert history.commands == {(0, 2): "x"}
    assert (after[6].next_index[1], after[6].match_index[1]) == (1, 0)
    assert after[7].commit_index == 0
    assert (after[8].next_index[2], after[8].match_index[2]) == (0, -1)
    assert after[8].state == State.LEADER
    assert history.contradictions == []


def test_a_follower_takes_the_entries_an_appendentries_leaves_out() -> None:
    shown = ", ".join(f"LogEntry(command={k}, term=1)" for k in (0, 1, 2))
    last = ", ".join(f"LogEntry(command={k}, term=1)" for k in (7, 8, 9))
    leader_log = ", ".join(f"LogEntry(command={k}, term=1)" for k in range(10))
    args = (
        "AppendEntriesArgs(term=1, leader_id=0, prev_log_index=-1, "
        f"prev_log_term=-1, entries=[{shown}, ... 4 more ..., {last}], "
        "leader_commit=3)"
    )
    timeline, history = history_of(
        f"12:00:00.000000 [0] becomes Leader; term=1, log=[{leader_log}]",
        f"12:00:00.001000 [1] AppendEntries: {args}",
        "12:00:00.001000 [1] ... inserting entries from index 0",
        "12:00:00.001000 [1] ... setting commitIndex=3",
        f"12:00:00.002000 [2] AppendEntries: {args.replace('term=1, l', 'term=5, l')}",
        "12:00:00.002000 [2] ... inserting entries from index 0",
    )
    end = history.at(len(timeline.rows) - 1)
    assert end[1].log == [1] * 10
    assert end[1].commit_index == 3
    # No leader of term 5 logged its log: the hidden entries are unknown.
    assert end[2].log == [1, 1, 1, None, None, None, None, 1, 1, 1]
    assert history.commands[5, 1] == "5"


def test_a_conflicting_suffix_is_replaced() -> None:
    timeline, history = history_of(
        "12:00:00.000000 [1] becomes Leader; term=1, log=[]",
        "12:00:00.000100 [1] Submit received by Leader: a",
        "12:00:00.000100 [1] ... log index=0",
        "12:00:00.000200 [1] Submit received by Leader: b",
        "12:00:00.000200 [1] ... log index=1",
        "12:00:00.000300 [0] AppendEntries: AppendEntriesArgs(term=1, leader_id=1, "
        "prev_log_index=-1, prev_log_term=-1, entries=[LogEntry(command='a', "
        "term=1)], leader_commit=-1)",
        "12:00:00.000300 [0] ... inserting entries from index 0",
        "12:00:00.001000 [1] becomes Follower with term=2",
        "12:00:00.002000 [0] becomes Leader; term=2, log=[LogEntry(command='a', "
        "term=1)]",
        "12:00:00.002100 [0] Submit received by Leader: c",
        "12:00:00.002100 [0] ... log index=1",
        "12:00:00.003000 [1] AppendEntries: AppendEntriesArgs(term=2, leader_id=0, "
        "prev_log_index=0, prev_log_term=1, entries=[LogEntry(command='c', "
        "term=2)], leader_commit=-1)",
        "12:00:00.003000 [1] ... inserting entries from index 1",
    )
    assert history.at(4)[1].log == [1, 1]
    assert history.at(6)[0].log == [1]
    assert history.at(len(timeline.rows) - 1)[1].log == [1, 2]
    assert history.commands == {(0, 1): "a", (1, 1): "b", (1, 2): "c"}
    assert history.contradictions == []
    # Server 1's "b" was overwritten by "c"; server 0 only appended.
    assert history.truncations == [Truncation(12, 1, 1, (1,))]


def test_a_restart_keeps_the_log_and_forgets_the_commit_index() -> None:
    _, history = history_of(
        "12:00:00.000000 [0] becomes Leader; term=1, log=[]",
        "12:00:00.000100 [0] Submit received by Leader: a",
        "12:00:00.000100 [0] ... log index=0",
        "12:00:00.000200 [0] leader sets commitIndex := 0",
        "12:00:00.001000 [TEST] Crash 0",
        "12:00:00.001000 [0] becomes Dead",
        "12:00:00.002000 [TEST] Restart 0",
        "12:00:00.002000 [0] restored from storage: currentTerm=1, votedFor=0, "
        "log=[LogEntry(command='a', term=1)]",
    )
    dead, restarted = history.at(5)[0], history.at(7)[0]
    assert (dead.state, dead.log, dead.commit_index) == (State.DEAD, [1], 0)
    assert (restarted.state, restarted.log, restarted.commit_index) == (
        State.FOLLOWER,
        [1],
        -1,
    )
    assert history.contradictions == []
    # The entry is still known to be committed, though no server says so.
    assert history.committed == [(3, 1)]
    assert history.committed_at(2) == []
    assert history.committed_at(7) == [1]


def test_an_entry_committed_with_an_unknown_term_learns_it() -> None:
    leader_log = ", ".join(f"LogEntry(command={k}, term=1)" for k in range(8))
    hidden = ", ".join(f"LogEntry(command={k}, term=1)" for k in (0, 1, 2))
    last = ", ".join(f"LogEntry(command={k}, term=1)" for k in (5, 6, 7))
    _, history = history_of(
        # A leader of term 4 never logged its log: the follower cannot tell
        # the terms of the entries its request leaves out.
        "12:00:00.000000 [1] AppendEntries: AppendEntriesArgs(term=4, leader_id=0, "
        f"prev_log_index=-1, prev_log_term=-1, entries=[{hidden}, ... 2 more ..., "
        f"{last}], leader_commit=7)",
        "12:00:00.000000 [1] ... inserting entries from index 0",
        "12:00:00.000000 [1] ... setting commitIndex=7",
        f"12:00:00.001000 [2] becomes Leader; term=5, log=[{leader_log}]",
        "12:00:00.002000 [2] leader sets commitIndex := 7",
    )
    # Committed from the follower's commit on; the leader's log tells the
    # terms it left unknown.
    assert history.committed == [(2, 1)] * 8
    assert history.at(2)[1].log == [1, 1, 1, None, None, 1, 1, 1]


def test_what_the_log_does_not_say_is_unknown_and_noted() -> None:
    # A follower built with a log of its own (as a handler test does), and
    # a restored log other than the one rebuilt.
    _, history = history_of(
        "12:00:00.000000 [0] AppendEntries: AppendEntriesArgs(term=1, leader_id=1, "
        "prev_log_index=1, prev_log_term=1, entries=[LogEntry(command=3, term=1)], "
        "leader_commit=-1)",
        "12:00:00.000000 [0] ... inserting entries from index 2",
        "12:00:00.001000 [TEST] Restart 0",
        "12:00:00.002000 [0] restored from storage: currentTerm=1, votedFor=1, "
        "log=[LogEntry(command=1, term=1)]",
    )
    assert history.at(1)[0].log == [None, None, 1]
    assert history.at(3)[0].log == [1]
    assert history.contradictions == [
        (1, "server 0 changes its log at 2, past its end"),
        (3, "server 0 log restored from storage differs from index 0"),
    ]


def test_part1_has_no_log() -> None:
    _, history = history_of(
        "12:00:00.000000 [0] becomes Candidate (currentTerm=1)",
        "12:00:00.001000 [0] becomes Leader; term=1",
    )
    assert not history.has_log
    assert history.at(1)[0].state == State.LEADER
    assert history.at(1)[0].term == 1


def test_key_value_lines_do_not_change_the_raft_state() -> None:
    timeline, history = history_of(
        "12:00:00.000000 [kv 0] becomes Leader; term=3, log=[]",
        "12:00:00.000000 [client 1] Submit received by Leader: x",
    )
    assert timeline.servers == [0]
    assert history.at(1)[0].state == State.FOLLOWER
    assert not history.has_log


# --- Snapshots (part6) --------------------------------------------------------


def entries(*terms: int, first: int = 0) -> str:
    """A logged list of LogEntry, commands named by their index."""
    return ", ".join(
        f"LogEntry(command={first + k}, term={t})" for k, t in enumerate(terms)
    )


def appended(server: int, prev: int, *terms: int, at: str = "000500") -> list[str]:
    """A follower's lines, at 12:00:00.``at``, as it takes entries of
    ``terms`` after ``prev``."""
    args = (
        f"AppendEntriesArgs(term={max(terms)}, leader_id=0, prev_log_index={prev}, "
        f"prev_log_term=1, entries=[{entries(*terms, first=prev + 1)}], "
        "leader_commit=-1)"
    )
    return [
        f"12:00:00.{at} [{server}] AppendEntries: {args}",
        f"12:00:00.{at} [{server}] ... inserting entries from index {prev + 1}",
    ]


def submitted(*commands: str) -> list[str]:
    """Leader 0's lines as it appends ``commands`` from index 0 on."""
    return [
        line
        for k, command in enumerate(commands)
        for line in (
            f"12:00:00.000100 [0] Submit received by Leader: {command}",
            f"12:00:00.000100 [0] ... log index={k}",
        )
    ]


_INSTALL = (
    "InstallSnapshotArgs(term=2, leader_id=0, last_included_index=1, "
    "last_included_term=2, data=<40 bytes>)"
)
SNAPSHOT_LINES = [
    "12:00:00.000000 [0] becomes Leader; term=2, lastIncludedIndex=-1, "
    "lastIncludedTerm=-1, log=[]",
    *submitted("a", "b", "c"),
    "12:00:00.001000 [0] leader sets commitIndex := 2",
    "12:00:00.002000 [0] snapshot at index 1 (term 2)",
    "12:00:00.002000 [0] snapshot at index 0 ignored: the base is already 1",
    # Follower 1 holds the snapshot's last entry: its log after it stays.
    *appended(1, -1, 2, 2, 2, at="002500"),
    f"12:00:00.003000 [1] InstallSnapshot: {_INSTALL}",
    "12:00:00.003000 [1] ... installing snapshot at index 1 (term 2), "
    "keeping the log after it",
    # Follower 2 holds nothing: its log ends with the snapshot's last
    # entry, of which it knows only the term.
    f"12:00:00.004000 [2] InstallSnapshot: {_INSTALL}",
    "12:00:00.004000 [2] ... installing snapshot at index 1 (term 2), "
    "discarding the log",
    "12:00:00.005000 [0] InstallSnapshot reply from 2: nextIndex=2, matchIndex=1",
]
"""A leader of term 2 appends three entries, commits them and snapshots up
to index 1; follower 1, which holds them, and follower 2, which holds
none, install its snapshot."""


def test_a_snapshot_sets_the_base_and_keeps_the_log_indexed_from_0() -> None:
    timeline, history = history_of(*SNAPSHOT_LINES)
    end = history.at(len(timeline.rows) - 1)
    assert (end[0].base, end[0].base_term, end[0].log) == (1, 2, [2, 2, 2])
    assert (end[0].next_index[2], end[0].match_index[2]) == (2, 1)
    # A follower's commit index becomes the snapshot's last index.
    assert (end[1].base, end[1].log, end[1].commit_index) == (1, [2, 2, 2], 1)
    assert (end[2].base, end[2].log, end[2].commit_index) == (1, [None, 2], 1)
    assert history.truncations == []
    assert history.contradictions == []


def test_a_discarded_log_is_written_over() -> None:
    _, history = history_of(
        *appended(1, -1, 1, 2, 2),
        # The leader's entry at index 1 is of term 3: ours and the rest go.
        "12:00:00.001000 [1] ... installing snapshot at index 1 (term 3), "
        "discarding the log",
    )
    assert history.at(2)[1].log == [1, 3]
    assert history.truncations == [Truncation(2, 1, 1, (2, 2))]
    assert history.contradictions == []


def test_a_leader_or_a_restarted_server_logs_its_log_after_its_base() -> None:
    _, history = history_of(
        *appended(0, -1, 1, 1, 1, 1, 2, 3),
        "12:00:00.001000 [0] snapshot at index 4 (term 2)",
        "12:00:00.002000 [TEST] Crash 0",
        "12:00:00.002000 [0] becomes Dead",
        "12:00:00.003000 [TEST] Restart 0",
        "12:00:00.003000 [0] restored from storage: currentTerm=3, votedFor=0, "
        f"lastIncludedIndex=4, lastIncludedTerm=2, log=[{entries(3, first=5)}]",
        "12:00:00.004000 [0] becomes Leader; term=4, lastIncludedIndex=4, "
        f"lastIncludedTerm=2, log=[{entries(3, first=5)}]",
    )
    restored, leader = history.at(6)[0], history.at(7)[0]
    assert (restored.base, restored.base_term) == (4, 2)
    assert restored.log == [1, 1, 1, 1, 2, 3]
    # The snapshot is committed: the commit index starts at its base.
    assert restored.commit_index == 4
    assert (leader.state, leader.base, leader.log) == (
        State.LEADER,
        4,
        [1, 1, 1, 1, 2, 3],
    )
    assert history.contradictions == []
    # A line that shows another log after the base is a contradiction.
    _, other = history_of(
        *appended(0, -1, 1, 1),
        "12:00:00.001000 [0] becomes Leader; term=4, lastIncludedIndex=0, "
        f"lastIncludedTerm=1, log=[{entries(4, first=1)}]",
    )
    assert other.contradictions == [(2, "server 0 log as leader differs from index 1")]


def test_a_real_part6_run_ends_as_its_servers_did(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A follower is cut off while the others commit past their snapshots,
    # and comes back to the leader's InstallSnapshot; then a server
    # restarts from its own snapshot.
    with Harness6(3, snapshot_every=5) as h:
        commit(h, "first", 3)
        leader, _ = h.check_single_leader()
        follower = (leader + 1) % 3
        h.disconnect_peer(follower)
        for k in range(12):
            commit(h, f"while cut off {k}", 2)
        h.reconnect_peer(follower)
        commit(h, "all together", 3)
        other = (leader + 2) % 3
        h.crash_peer(other)
        commit(h, "while one is down", 2)
        h.restart_peer(other)
        commit(h, "last", 3)
    cms = [server.cm for server in h.cluster]

    run = parse_log(["=== RUN test_x", *caplog.text.splitlines(), "--- PASS: test_x"])
    timeline = build_timeline(run.tests[0])
    history = build_history(timeline)
    assert history.contradictions == []
    assert any("InstallSnapshot" in e.message for e in run.tests[0].entries)
    views = history.at(len(timeline.rows) - 1)
    for i, cm in enumerate(cms):
        view = views[i]
        assert (view.base, view.base_term) == (
            cm.last_included_index,
            cm.last_included_term,
        )
        assert cm.last_included_index >= 0
        assert view.log[cm.last_included_index + 1 :] == [e.term for e in cm.log]
        assert view.commit_index == cm.commit_index
        assert view.term == cm.current_term
