"""Pairing the rpc lines into messages: real runs, and the edge cases."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from part3.harness import Harness
from tests.tools.conftest import LIVE_LOG, PART3_TESTS, PLAIN_RUN, run_python
from tools.raft_testlog_viz.cluster import build_history
from tools.raft_testlog_viz.messages import (
    HEARTBEAT,
    LOST,
    REPLY,
    MessageTrace,
    trace_messages,
)
from tools.raft_testlog_viz.pages import render_page
from tools.raft_testlog_viz.parse import RunLog, parse_log
from tools.raft_testlog_viz.timeline import build_timeline

SEND = re.compile(r"rpc \d+\.\d+ send to \d+: ")


def check_real_trace(run: RunLog) -> Counter[str]:
    """Check what must hold of every message of a real run; count how each
    ended."""
    seen: Counter[str] = Counter()
    for test in run.tests:
        timeline = build_timeline(test)
        trace = timeline.messages
        entries = test.entries
        assert trace.orphans == [], test.name
        assert trace.malformed == [], test.name
        rpc_rows = [r for r, e in enumerate(entries) if e.message.startswith("rpc ")]
        assert sorted(trace.row_message) == rpc_rows
        sends = [e for e in entries if SEND.match(e.message)]
        assert len(trace.messages) == len(sends)
        dead = {
            (e.server, row)
            for row, e in enumerate(entries)
            if e.message == "becomes Dead"
        }
        for m in trace.messages:
            args = entries[m.send_row].message.split(": ", 1)[1]
            assert (m.kind == HEARTBEAT) == ("entries=[]" in args)
            for row in m.rows:
                assert timeline.rows[row].heartbeat == (m.kind == HEARTBEAT)
            if not m.outcome:
                # A call may end after the test's last phase (pytest logs
                # DEBUG lines only during a phase): only once the harness
                # has shut its sender down.
                assert any(s == m.sender and r > m.send_row for s, r in dead), m
                seen["unfinished at shutdown"] += 1
                continue
            assert m.outcome in (REPLY, LOST)
            assert m.send_row < m.end_row
            if m.outcome == REPLY:
                assert m.send_row < m.deliver_row < m.end_row
                assert m.drop_row == -1
                seen["reply"] += 1
            elif m.never_sent:
                assert m.deliver_row == m.drop_row == -1
                seen["not connected"] += 1
            elif m.drop_row >= 0:
                assert m.deliver_row == -1
                assert m.reason.endswith("dropped by the network")
                seen["dropped by the network"] += 1
            elif m.deliver_row >= 0:
                # Delivered, but its reply did not come back.
                assert m.reason in (
                    "connection lost before the reply arrived",
                    f"reply from peer {m.receiver} dropped",
                    f"server {m.receiver} is dead: no answer",
                ), m.reason
                seen["reply lost"] += 1
                if m.reason.startswith("reply from"):
                    seen["reply dropped"] += 1
            else:
                assert m.reason in (
                    f"call to peer {m.receiver} dropped",
                    "connection refused: server is not serving",
                    "connection is closed",
                ), m.reason
                seen["not delivered"] += 1
    return seen


def test_every_rpc_of_real_part1_runs_is_paired(real_run: RunLog) -> None:
    seen = check_real_trace(real_run)
    assert seen["reply"] > 0
    # The leader disconnect test cuts the leader off.
    assert seen["not connected"] > 0


def test_every_rpc_of_real_part3_runs_is_paired(part3_run: RunLog) -> None:
    assert [t.name for t in part3_run.tests] == PART3_TESTS
    seen = check_real_trace(part3_run)
    # The tests cut links, and drop replies on purpose. (Whether
    # test_commit_after_call_drops drops a call depends on whether the
    # leader's first heartbeats leave before its drop_calls_after_n(2): the
    # next test makes sure of a dropped call.)
    assert seen["reply"] > 0
    assert seen["not connected"] > 0
    assert seen["reply dropped"] > 0  # drop_replies


def test_every_rpc_of_a_leader_whose_calls_are_dropped_is_paired(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # part3's drop_calls_after_n(0): the leader's calls never leave, until
    # they may again.
    monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)
    with Harness(3) as h:
        leader, _ = h.check_single_leader()
        h.peer_drop_calls_after_n(leader, 0)
        h.submit_to_server(leader, 1)
        h.wait_until(lambda: " dropped" in caplog.text, "a call is dropped")
        h.peer_dont_drop_calls(leader)
    run = parse_log(["=== RUN test_x", *caplog.text.splitlines(), "--- PASS: test_x"])
    seen = check_real_trace(run)
    assert seen["not delivered"] > 0


def test_every_rpc_of_a_cluster_on_an_unreliable_network_is_paired(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five servers elect, send heartbeats and take commands over a network
    # that drops one message in ten, until 300 messages have reached it:
    # that some were dropped is then sure but for a chance below 10**-13.
    monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    with Harness(5) as h:
        deadline = time.monotonic() + 20
        while caplog.text.count(" deliver ") + caplog.text.count(" drop ") < 300:
            assert time.monotonic() < deadline, "the cluster sends no messages"
            for i in range(5):
                h.submit_to_server(i, "x")
            time.sleep(0.1)
    run = parse_log(["=== RUN test_x", *caplog.text.splitlines(), "--- PASS: test_x"])
    seen = check_real_trace(run)
    assert seen["dropped by the network"] > 0
    assert seen["reply"] > 0


def trace_of(*lines: str) -> tuple[MessageTrace, list[str]]:
    """The trace of one test made of ``lines``, and its messages' texts."""
    run = parse_log(["=== RUN test_a", *lines, "--- PASS: test_a (1.00s)"])
    entries = run.tests[0].entries
    return trace_messages(entries), [e.message for e in entries]


SENT = "12:00:00.000000 [0] rpc 0.7 send to 1: AppendEntriesArgs(term=1, entries=[])"
DELIVERED = "12:00:00.002000 [1] rpc 0.7 deliver AppendEntries"
REPLIED = (
    "12:00:00.003000 [0] rpc 0.7 reply from 1: AppendEntriesReply(term=1, success=True)"
)


def test_a_full_exchange() -> None:
    trace, _ = trace_of(SENT, DELIVERED, REPLIED)
    (m,) = trace.messages
    assert (m.id, m.sender, m.receiver, m.kind) == ("0.7", 0, 1, HEARTBEAT)
    assert (m.send_row, m.deliver_row, m.end_row) == (0, 1, 2)
    assert m.outcome == REPLY
    assert trace.row_message == {0: 0, 1: 0, 2: 0}


def test_a_reply_after_the_frame_ends_leaves_the_message_in_flight() -> None:
    run = parse_log(
        ["=== RUN test_a", SENT, DELIVERED, "--- PASS: test_a (1.00s)", REPLIED]
    )
    (m,) = build_timeline(run.tests[0]).messages.messages
    assert (m.deliver_row, m.end_row, m.outcome) == (1, -1, "")
    assert [e.message for e in run.tests[0].late] == [REPLIED.split("] ")[1]]


def test_interleaved_tests_pair_only_their_own_lines() -> None:
    # test_b starts while a thread of test_a still runs: its reply lands in
    # test_b's frame. test_b's own message, of the same id (another run of
    # the suite, appended to the same file), is paired on its own.
    run = parse_log(
        [
            "=== RUN test_a",
            SENT,
            DELIVERED,
            "--- PASS: test_a (1.00s)",
            "=== RUN test_b",
            REPLIED,
            SENT.replace("to 1", "to 2"),
            DELIVERED.replace("[1]", "[2]"),
            REPLIED.replace("from 1", "from 2"),
            "--- PASS: test_b (1.00s)",
        ]
    )
    a, b = (build_timeline(t).messages for t in run.tests)
    assert [(m.end_row, m.outcome) for m in a.messages] == [(-1, "")]
    assert b.orphans == [0]
    ((m_b),) = b.messages
    assert (m_b.receiver, m_b.send_row, m_b.deliver_row, m_b.end_row) == (2, 1, 2, 3)
    assert m_b.outcome == REPLY


def test_malformed_and_contradicting_lines_are_not_drawn() -> None:
    trace, _ = trace_of(
        "12:00:00.000000 [0] rpc 0.x send to 1: RequestVoteArgs(term=1)",
        "12:00:00.000001 [0] rpc 0.8 explode",
        "12:00:00.000002 [0] rpc 3.9 send to 1: RequestVoteArgs(term=1)",
        SENT,
        SENT,
        "12:00:00.002000 [2] rpc 0.7 deliver AppendEntries",
        DELIVERED,
        "12:00:00.002100 [1] rpc 0.7 drop AppendEntries",
        REPLIED,
        REPLIED,
        "12:00:00.004000 [0] rpc 0.7 lost to 2: call to peer 2: not connected",
    )
    (m,) = trace.messages
    assert (m.send_row, m.deliver_row, m.drop_row, m.end_row) == (3, 6, -1, 8)
    assert [(row, why) for row, why in trace.malformed] == [
        (0, "not an rpc line of docs/log-format.md"),
        (1, "not an rpc line of docs/log-format.md"),
        (2, "server 0 sends 3.9"),
        (4, "0.7 is sent a second time"),
        (5, "server 2 receives 0.7, sent to 1"),
        (7, "0.7 reaches its receiver a second time"),
        (9, "0.7 ends a second time"),
        (10, "0.7 is from 0 to 1, not 0 and 2"),
    ]
    assert trace.orphans == []


def test_a_page_lists_the_message_lines_it_does_not_draw() -> None:
    run = parse_log(
        [
            "=== RUN test_a",
            "12:00:00.000000 [0] rpc 0.x send to 1: RequestVoteArgs(term=1)",
            REPLIED,
            "--- PASS: test_a (1.00s)",
        ]
    )
    html = render_page(build_timeline(run.tests[0]))
    assert "<summary>2 message lines not drawn</summary>" in html
    assert "line 2 (not an rpc line of docs/log-format.md)" in html
    assert "line 3 (its message was not sent in this test)" in html


def test_lines_of_other_loggers_are_not_messages() -> None:
    trace, _ = trace_of(
        "12:00:00.000000 [kv 0] rpc 0.7 send to 1: not a Raft message",
        "12:00:00.000000 [TEST] rpc 0.7 send to 1: nor this",
        "12:00:00.000000 [0] rpcs are fun",
    )
    assert trace.messages == []
    assert trace.malformed == []


def test_a_real_key_value_run() -> None:
    # part4kv's services log [kv N], its clients [client N]; their Raft runs
    # on part3, whose messages pair as ever.
    result = run_python(
        "-m",
        "pytest",
        "tests/part4kv/test_system.py::test_crash_leader",
        *LIVE_LOG,
        env=PLAIN_RUN,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = parse_log(result.stdout.splitlines())
    (test,) = run.tests
    assert test.malformed == []
    services = [e for e in test.entries if e.source == "kv"]
    clients = [e for e in test.entries if e.source.startswith("client ")]
    assert services
    assert clients
    assert {e.server for e in services} <= set(test.servers) == {0, 1, 2}
    assert all(e.server is None for e in clients)
    seen = check_real_trace(run)
    assert seen["reply"] > 0
    assert build_history(build_timeline(test)).contradictions == []
