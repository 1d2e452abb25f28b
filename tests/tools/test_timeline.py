"""Replaying a test: states, terms, heartbeats, segments and TEST markers."""

from __future__ import annotations

import re

from tools.raft_testlog_viz.parse import RunLog, parse_log
from tools.raft_testlog_viz.timeline import State, Timeline, build_timeline


def timeline_of(*lines: str) -> Timeline:
    """The timeline of one test made of the given log lines."""
    run = parse_log(["=== RUN test_a", *lines, "--- PASS: test_a (1.00s)"])
    return build_timeline(run.tests[0])


def test_real_log_states_follow_the_becomes_phrases(real_run: RunLog) -> None:
    for test in real_run.tests:
        timeline = build_timeline(test)
        assert len(timeline.rows) == len(test.entries)
        column = {s: i for i, s in enumerate(timeline.servers)}
        for row in timeline.rows:
            server, message = row.entry.server, row.entry.message
            if server is None:
                continue
            for state in State:
                if f"becomes {state}" in message:
                    assert row.states[column[server]] == state
        # Each test elected a leader, and the harness stopped every server.
        assert any(State.LEADER in row.states for row in timeline.rows)
        assert set(timeline.rows[-1].states) == {State.DEAD}


def test_real_log_terms_and_term_changes(real_run: RunLog) -> None:
    timeline = build_timeline(real_run.tests[1])  # the leader disconnect test
    changes = [r for r in timeline.rows if r.term_change is not None]
    assert changes, "the log has elections, so terms change"
    for row in changes:
        assert row.term_change is not None
        old, new = row.term_change
        assert new > old
        # "currentTerm=N" or "term=N" in the line itself.
        term = re.search(r"[tT]erm=(\d+)", row.entry.message)
        assert term is not None
        assert int(term[1]) == new
    # The leader was disconnected, so a second election raised the term.
    assert max(max(r.terms) for r in timeline.rows) >= 2


def test_real_log_heartbeats(real_run: RunLog) -> None:
    timeline = build_timeline(real_run.tests[1])
    heartbeats = [r.entry.message for r in timeline.rows if r.heartbeat]
    assert heartbeats
    # In part1 every AppendEntries is a heartbeat; nothing else is. The
    # network's lines of a message say what it is in its send line only.
    ae_ids = {
        m[1]
        for row in timeline.rows
        if (m := re.match(r"rpc (\S+) send to \d+: AppendEntries", row.entry.message))
    }
    assert ae_ids
    for row in timeline.rows:
        message = row.entry.message
        if message.startswith("rpc "):
            is_ae = message.split()[1] in ae_ids
        else:
            is_ae = "AppendEntries" in message and "term out of date" not in message
        assert row.heartbeat == is_ae, message


def test_heartbeat_filter_keeps_appendentries_with_entries_and_replies() -> None:
    timeline = timeline_of(
        "12:00:00.000000 [0] sending AppendEntries to 1: AppendEntriesArgs("
        "term=1, leader_id=0, prev_log_index=-1, prev_log_term=-1, entries=[], "
        "leader_commit=-1)",
        "12:00:00.001000 [0] sending AppendEntries to 2: ni=0, args="
        "AppendEntriesArgs(term=1, leader_id=0, prev_log_index=-1, "
        "prev_log_term=-1, entries=[LogEntry(command=42, term=1)], "
        "leader_commit=-1)",
        "12:00:00.002000 [1] AppendEntries: AppendEntriesArgs(term=1, "
        "entries=[], leader_commit=-1)",
        "12:00:00.003000 [2] AppendEntries: AppendEntriesArgs(term=1, "
        "entries=[LogEntry(command=42, term=1)], leader_commit=-1)",
        "12:00:00.004000 [1] AppendEntries reply: AppendEntriesReply(term=1, "
        "success=True)",
        "12:00:00.005000 [2] AppendEntries reply: AppendEntriesReply(term=1, "
        "success=True)",
        "12:00:00.006000 [0] AppendEntries reply from 1 success: nextIndex := 1",
        "12:00:00.007000 [0] AppendEntries reply from 2 success: nextIndex := 2",
        "12:00:00.008000 [0] AppendEntries reply from 3 with no request seen",
        "12:00:00.009000 [0] term out of date in heartbeat reply",
        "12:00:00.010000 [0] term out of date in AppendEntries reply",
    )
    assert [r.heartbeat for r in timeline.rows] == [
        True,  # empty, sent
        False,  # with an entry, sent
        True,  # empty, received
        False,  # with an entry, received
        True,  # follower's reply to the empty one
        False,  # follower's reply to the one with an entry
        True,  # leader sees the reply to the empty one
        False,  # leader sees the reply to the one with an entry
        False,  # a reply we cannot match stays in view
        False,  # news about a heartbeat is not noise
        False,  # nor about any AppendEntries
    ]


def test_terms_from_every_becomes_phrase_and_restart() -> None:
    timeline = timeline_of(
        "12:00:00.000000 [0] election timer started",
        "12:00:00.100000 [0] becomes Candidate (currentTerm=1)",
        "12:00:00.200000 [0] becomes Leader; term=1",
        "12:00:00.300000 [0] becomes Follower with term=3",
        "12:00:00.400000 [TEST] Crash 0",
        "12:00:00.400500 [0] becomes Dead",
        "12:00:00.500000 [TEST] Restart 0",
        "12:00:00.600000 [0] election timer started",
    )
    assert [(r.states[0], r.terms[0], r.term_change) for r in timeline.rows] == [
        (State.FOLLOWER, 0, None),
        (State.CANDIDATE, 1, (0, 1)),
        (State.LEADER, 1, None),
        (State.FOLLOWER, 3, (1, 3)),
        (State.FOLLOWER, 3, None),
        (State.DEAD, 3, None),
        # A restarted server is a new CM: a follower, with its stored term.
        (State.FOLLOWER, 3, None),
        (State.FOLLOWER, 3, None),
    ]
    assert [(m.kind, m.text, m.row) for m in timeline.markers] == [
        ("crash", "Crash 0", 4),
        ("restart", "Restart 0", 6),
    ]


def test_segments_cover_the_test_for_every_server() -> None:
    timeline = timeline_of(
        "12:00:00.000000 [TEST] Disconnect 2",
        "12:00:00.100000 [0] becomes Candidate (currentTerm=1)",
        "12:00:00.150000 [0] becomes Leader; term=1",
        "12:00:00.200000 [TEST] submitting 7 to 0",
        "12:00:00.250000 [1] becomes Follower with term=1",
        "12:00:00.300000 [TEST] Reconnect 2",
        "12:00:00.400000 [6] a late server's first line",
    )
    assert timeline.servers == [0, 1, 6]
    assert timeline.span_ms == 400.0
    by_server = {
        s: [
            (g.start_ms, g.end_ms, g.state, g.term)
            for g in timeline.segments
            if g.server == s
        ]
        for s in timeline.servers
    }
    assert sorted(by_server[0]) == [
        (0.0, 100.0, State.FOLLOWER, 0),
        (100.0, 150.0, State.CANDIDATE, 1),
        (150.0, 400.0, State.LEADER, 1),
    ]
    assert sorted(by_server[1]) == [
        (0.0, 250.0, State.FOLLOWER, 0),
        (250.0, 400.0, State.FOLLOWER, 1),
    ]
    # Server 6 logs only at the end, but it has a column from the start.
    assert by_server[6] == [(0.0, 400.0, State.FOLLOWER, 0)]
    assert all(len(row.states) == 3 for row in timeline.rows)
    assert [m.kind for m in timeline.markers] == ["disconnect", "submit", "reconnect"]


def test_an_empty_test_has_an_empty_timeline() -> None:
    timeline = timeline_of()
    assert timeline.rows == []
    assert timeline.servers == []
    assert timeline.segments == []
    assert timeline.span_ms == 0.0


def test_rpc_lines_are_heartbeats_when_their_message_is() -> None:
    heartbeat = (
        "AppendEntriesArgs(term=1, leader_id=0, prev_log_index=-1, "
        "prev_log_term=-1, entries=[], leader_commit=-1)"
    )
    with_entry = heartbeat.replace(
        "entries=[]", "entries=[LogEntry(command=1, term=1)]"
    )
    timeline = timeline_of(
        f"12:00:00.000000 [0] rpc 0.1 send to 1: {heartbeat}",
        f"12:00:00.000100 [0] rpc 0.2 send to 2: {with_entry}",
        "12:00:00.001000 [1] rpc 0.1 deliver AppendEntries",
        "12:00:00.001000 [2] rpc 0.2 deliver AppendEntries",
        "12:00:00.002000 [0] rpc 0.1 reply from 1: AppendEntriesReply(term=1, "
        "success=True)",
        "12:00:00.002000 [0] rpc 0.2 lost to 2: connection lost before the reply "
        "arrived",
        "12:00:00.003000 [1] rpc 0.9 deliver AppendEntries",
        "12:00:00.004000 [0] rpc 0.3 send to 1: RequestVoteArgs(term=2)",
    )
    assert [r.heartbeat for r in timeline.rows] == [
        True,
        False,
        True,
        False,
        True,
        False,
        False,  # a message this test did not send: kept in view
        False,
    ]
    assert [m.kind for m in timeline.messages.messages] == [
        "heartbeat",
        "AppendEntries",
        "RequestVote",
    ]


def test_key_value_lines_change_no_state() -> None:
    timeline = timeline_of(
        "12:00:00.000000 [kv 0] becomes Leader; term=4",
        "12:00:00.000100 [client 1] Restart 0",
        "12:00:00.000200 [0] becomes Candidate (currentTerm=1)",
    )
    assert timeline.servers == [0]
    assert [(r.states[0], r.terms[0]) for r in timeline.rows] == [
        (State.FOLLOWER, 0),
        (State.FOLLOWER, 0),
        (State.CANDIDATE, 1),
    ]
    assert timeline.markers == []
