"""The simulated network of part 6: links, lost replies, fault knobs, errors."""

from __future__ import annotations

import pickle
import queue
import threading
from collections.abc import Iterator

import pytest

from part6.raft import (
    CommitEntry,
    ConsensusModule,
    RequestVoteArgs,
    RequestVoteReply,
    SnapshotEntry,
)
from part6.server import RPCError, Server
from part6.storage import MapStorage

VOTE = "ConsensusModule.RequestVote"


def vote_args(term: int = 1) -> RequestVoteArgs:
    return RequestVoteArgs(
        term=term, candidate_id=0, last_log_index=-1, last_log_term=-1
    )


@pytest.fixture(autouse=True)
def reliable_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests inject their own faults: random drops would blur them."""
    monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)


@pytest.fixture
def pair() -> Iterator[tuple[Server, Server]]:
    """Two serving servers whose CMs stay dormant (``ready`` is never set)."""
    ready = threading.Event()
    servers = []
    for i in range(2):
        commit_chan: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
        server = Server(i, [1 - i], MapStorage(), ready, commit_chan)
        server.serve()
        servers.append(server)
    a, b = servers
    yield a, b
    for server in servers:
        server.shutdown()


def test_call_needs_a_connection_in_that_direction(pair: tuple[Server, Server]) -> None:
    a, b = pair
    a.connect_to_peer(1, b.get_listen_addr())
    assert a.call(1, VOTE, vote_args()).vote_granted
    with pytest.raises(RPCError, match="not connected"):
        b.call(0, VOTE, vote_args())


def test_reply_is_lost_when_the_link_is_cut_meanwhile(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    a.connect_to_peer(1, b.get_listen_addr())
    handler_entered = threading.Event()
    release = threading.Event()
    real_request_vote = b.cm.request_vote

    def slow_request_vote(args: RequestVoteArgs) -> RequestVoteReply:
        handler_entered.set()
        release.wait()
        return real_request_vote(args)

    b.cm.request_vote = slow_request_vote  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def call() -> None:
        try:
            a.call(1, VOTE, vote_args())
        except RPCError as e:
            errors.append(e)

    caller = threading.Thread(target=call)
    caller.start()
    assert handler_entered.wait(5)
    # Cut the link and open a new one before the reply comes back: the
    # reply travels on the old link, so it is lost all the same.
    a.disconnect_peer(1)
    a.connect_to_peer(1, b.get_listen_addr())
    release.set()
    caller.join()
    assert len(errors) == 1
    assert "lost" in str(errors[0])
    # The request itself got through: b voted.
    assert b.cm.voted_for == 0


def test_calls_to_a_shut_down_server_fail(pair: tuple[Server, Server]) -> None:
    a, b = pair
    a.connect_to_peer(1, b.get_listen_addr())
    b.shutdown()
    with pytest.raises(RPCError, match="not serving"):
        a.call(1, VOTE, vote_args())


def test_drop_calls_after_n(pair: tuple[Server, Server]) -> None:
    a, b = pair
    a.connect_to_peer(1, b.get_listen_addr())
    a.proxy().drop_calls_after_n(2)
    a.call(1, VOTE, vote_args())
    a.call(1, VOTE, vote_args())
    with pytest.raises(RPCError, match="dropped"):
        a.call(1, VOTE, vote_args())
    a.proxy().dont_drop_calls()
    a.call(1, VOTE, vote_args())


def test_drop_replies_delivers_the_call(pair: tuple[Server, Server]) -> None:
    a, b = pair
    a.connect_to_peer(1, b.get_listen_addr())
    a.proxy().drop_replies()
    with pytest.raises(RPCError, match="reply"):
        a.call(1, VOTE, vote_args(term=7))
    assert b.cm.current_term == 7
    a.proxy().dont_drop_replies()
    assert a.call(1, VOTE, vote_args(term=7)).term == 7


def test_bad_arguments_get_clear_errors(pair: tuple[Server, Server]) -> None:
    a, b = pair
    with pytest.raises(ValueError, match="unknown peer 5"):
        a.call(5, VOTE, vote_args())
    with pytest.raises(ValueError, match="unknown peer 5"):
        a.connect_to_peer(5, b.get_listen_addr())
    a.connect_to_peer(1, b.get_listen_addr())
    with pytest.raises(ValueError, match="unknown service method"):
        a.call(1, "ConsensusModule.Nope", vote_args())
    with pytest.raises(ValueError, match="n must be >= 0"):
        a.proxy().drop_calls_after_n(-1)


def test_server_must_serve_before_use() -> None:
    commit_chan: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
    server = Server(0, [1], MapStorage(), threading.Event(), commit_chan)
    with pytest.raises(RuntimeError, match="not serving"):
        server.submit(1)


def test_submit_to_a_stopped_server_returns_minus_one(
    pair: tuple[Server, Server],
) -> None:
    a, _ = pair
    a.shutdown()
    assert a.submit("x") == -1
    assert not a.is_leader()


def test_corrupt_storage_is_reported() -> None:
    storage = MapStorage()
    storage.set("termAndVote", pickle.dumps((3, -1)))
    storage.set("logLength", pickle.dumps(1))  # but no entry log/0
    with pytest.raises(RuntimeError, match="storage has no 'log/0'"):
        ConsensusModule(0, [1], None, storage, threading.Event(), queue.Queue())
