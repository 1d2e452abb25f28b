"""The network layer of every part traces each RPC, and the visualizer pairs
the lines: a call's send, its delivery, and its reply or loss."""

from __future__ import annotations

import importlib
import logging
import queue
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tools.raft_testlog_viz.messages import LOST, REPLY, Message, trace_messages
from tools.raft_testlog_viz.parse import TestLog, parse_log

PARTS = ["part1", "part2", "part3", "part6"]
VOTE = "ConsensusModule.RequestVote"


@pytest.fixture(autouse=True)
def reliable_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenarios make their own faults."""
    monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)


def pair(part: str) -> tuple[Any, Any]:
    """Two serving servers of ``part`` whose CMs stay dormant; a reaches b."""
    server_module = importlib.import_module(f"{part}.server")
    ready = threading.Event()
    servers = []
    for i in range(2):
        args: list[Any] = [i, [1 - i]]
        if part in ("part3", "part6"):
            args.append(importlib.import_module(f"{part}.storage").MapStorage())
        args.append(ready)
        if part != "part1":
            args.append(queue.Queue())
        server = server_module.Server(*args)
        server.serve()
        servers.append(server)
    servers[0].connect_to_peer(1, servers[1].get_listen_addr())
    return servers[0], servers[1]


def vote_args(part: str, term: int = 1) -> Any:
    raft: ModuleType = importlib.import_module(f"{part}.raft")
    return raft.RequestVoteArgs(
        term=term, candidate_id=0, last_log_index=-1, last_log_term=-1
    )


def traced(caplog: pytest.LogCaptureFixture) -> tuple[TestLog, list[Message]]:
    """The lines logged so far, as one test, and its messages."""
    run = parse_log(["=== RUN test_x", *caplog.text.splitlines(), "--- PASS: test_x"])
    (test,) = run.tests
    trace = trace_messages(test.entries)
    assert trace.orphans == []
    assert trace.malformed == []
    return test, trace.messages


def call(server: Any, args: Any, peer: int = 1) -> str:
    """Call a RequestVote on ``peer``; what came of it."""
    try:
        server.call(peer, VOTE, args)
    except ConnectionError as e:
        return f"error: {e}"
    return "reply"


@pytest.fixture
def stop_servers() -> Iterator[list[Any]]:
    """Servers to shut down after the test."""
    servers: list[Any] = []
    yield servers
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize("part", PARTS)
def test_each_outcome_of_a_call_is_traced(
    part: str, caplog: pytest.LogCaptureFixture, stop_servers: list[Any]
) -> None:
    a, b = pair(part)
    stop_servers += [a, b]
    args = vote_args(part)
    outcomes = [call(a, args)]  # through
    outcomes.append(call(b, args, peer=0))  # b never connected to a
    # A reply over a link cut while the call is handled is lost.
    entered, release = threading.Event(), threading.Event()
    handler = b.cm.request_vote

    def slow_request_vote(args: Any) -> Any:
        entered.set()
        release.wait()
        return handler(args)

    b.cm.request_vote = slow_request_vote
    caller = threading.Thread(target=lambda: outcomes.append(call(a, args)))
    caller.start()
    assert entered.wait(5)
    a.disconnect_peer(1)
    a.connect_to_peer(1, b.get_listen_addr())
    release.set()
    caller.join()
    b.cm.request_vote = handler
    # A stopped CM does not answer, though its server still listens.
    b.cm.stop()
    outcomes.append(call(a, args))

    assert [o.split(":")[0] for o in outcomes] == ["reply", "error", "error", "error"]
    test, messages = traced(caplog)
    through, unconnected, cut, dead = messages
    assert [(m.sender, m.receiver, m.kind) for m in messages] == [
        (0, 1, "RequestVote"),
        (1, 0, "RequestVote"),
        (0, 1, "RequestVote"),
        (0, 1, "RequestVote"),
    ]
    assert through.outcome == REPLY
    assert through.send_row < through.deliver_row < through.end_row
    assert test.entries[through.end_row].message.endswith(
        "RequestVoteReply(term=1, vote_granted=True)"
    )
    assert (unconnected.outcome, unconnected.deliver_row) == (LOST, -1)
    assert unconnected.never_sent
    assert unconnected.reason == "call to peer 0: not connected"
    assert cut.outcome == LOST
    assert cut.deliver_row > cut.send_row
    assert cut.reason == "connection lost before the reply arrived"
    assert not cut.never_sent
    assert dead.outcome == LOST
    assert dead.deliver_row > dead.send_row
    assert dead.reason == "server 1 is dead: no answer"
    # Every line of a message is logged by the server it happens on.
    for m in messages:
        assert test.entries[m.send_row].server == m.sender
        assert test.entries[m.end_row].server == m.sender
        if m.deliver_row >= 0:
            assert test.entries[m.deliver_row].server == m.receiver
    # The ids are "<sender>.<n>", unique.
    assert len({m.id for m in messages}) == 4
    assert all(m.id.startswith(f"{m.sender}.") for m in messages)


def test_an_install_snapshot_is_traced(
    caplog: pytest.LogCaptureFixture, stop_servers: list[Any]
) -> None:
    a, b = pair("part6")
    stop_servers += [a, b]
    raft: ModuleType = importlib.import_module("part6.raft")
    args = raft.InstallSnapshotArgs(1, 0, 9, 1, b"x" * 1000)
    assert a.call(1, "ConsensusModule.InstallSnapshot", args).term == 1
    test, (message,) = traced(caplog)
    assert (message.kind, message.outcome) == ("InstallSnapshot", REPLY)
    assert message.send_row < message.deliver_row < message.end_row
    # The data is shown by its length, not its bytes.
    assert test.entries[message.send_row].message.endswith(
        "last_included_term=1, data=<1000 bytes>)"
    )
    assert test.entries[message.deliver_row].message.endswith("deliver InstallSnapshot")


def test_the_drop_knobs_of_part3_are_traced(
    caplog: pytest.LogCaptureFixture, stop_servers: list[Any]
) -> None:
    a, b = pair("part3")
    stop_servers += [a, b]
    args = vote_args("part3")
    a.proxy().drop_calls_after_n(0)
    assert call(a, args) == "error: call to peer 1 dropped"
    a.proxy().dont_drop_calls()
    a.proxy().drop_replies()
    assert call(a, args) == "error: reply from peer 1 dropped"
    _, (dropped, reply_lost) = traced(caplog)
    assert (dropped.outcome, dropped.deliver_row, dropped.never_sent) == (
        LOST,
        -1,
        False,
    )
    assert (reply_lost.outcome, reply_lost.reason) == (
        LOST,
        "reply from peer 1 dropped",
    )
    assert reply_lost.deliver_row > reply_lost.send_row


def test_the_unreliable_network_is_traced(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    stop_servers: list[Any],
) -> None:
    a, b = pair("part3")
    stop_servers += [a, b]
    monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    # Each call is dropped with a chance of one in ten: in 150 calls, some
    # are but for one time in 10**6.
    outcomes = [call(a, vote_args("part3")) for _ in range(150)]
    _, messages = traced(caplog)
    assert any(m.drop_row >= 0 for m in messages)
    for m, outcome in zip(messages, outcomes, strict=True):
        if m.drop_row >= 0:
            assert outcome == "error: RequestVote dropped by the network"
            assert (m.outcome, m.deliver_row) == (LOST, -1)
            assert m.send_row < m.drop_row < m.end_row
        else:
            assert outcome == "reply"
            assert m.outcome == REPLY
            assert m.send_row < m.deliver_row < m.end_row


@pytest.mark.parametrize("part", PARTS)
def test_with_logging_off_a_call_formats_nothing(
    part: str, stop_servers: list[Any]
) -> None:
    formatted: list[str] = []

    class Args:
        """RequestVote arguments that note each time they are formatted."""

        def __init__(self) -> None:
            self.inner = vote_args(part)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def __str__(self) -> str:
            formatted.append("str")
            return str(self.inner)

        __repr__ = __str__

    a, b = pair(part)
    stop_servers += [a, b]
    logger = logging.getLogger(part)
    level = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert call(a, Args()) == "reply"
        assert formatted == []
        logger.setLevel(logging.DEBUG)
        assert call(a, Args()) == "reply"
        assert formatted
    finally:
        logger.setLevel(level)
