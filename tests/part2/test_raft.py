"""Tests of part 2: the election tests of part 1, plus replication.

Positive checks (a leader exists) wait for the condition with a deadline;
negative checks (no leader) keep a fixed wait, since nothing can prove a
negative sooner. Fixed sleeps that remain are part of a scenario: they give
a partitioned server time to run elections, or a healed cluster the chance to
misbehave.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from part2.harness import Harness, sleep_ms

ROOT = Path(__file__).resolve().parents[2]


def test_election_basic() -> None:
    with Harness(3) as h:
        h.check_single_leader()


def test_election_leader_disconnect() -> None:
    with Harness(3) as h:
        orig_leader_id, orig_term = h.check_single_leader()

        h.disconnect_peer(orig_leader_id)
        new_leader_id, new_term = h.check_single_leader()
        assert new_leader_id != orig_leader_id
        assert new_term > orig_term


def test_election_leader_and_another_disconnect() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()

        h.disconnect_peer(orig_leader_id)
        other_id = (orig_leader_id + 1) % 3
        h.disconnect_peer(other_id)

        # No quorum: the one connected server cannot win an election.
        sleep_ms(450)
        h.check_no_leader()

        # Reconnect one other server; now there is a quorum.
        h.reconnect_peer(other_id)
        h.check_single_leader()


def test_disconnect_all_then_restore() -> None:
    with Harness(3) as h:
        # Disconnect every server before any election timeout can fire.
        for i in range(3):
            h.disconnect_peer(i)
        sleep_ms(450)
        # Nobody is connected, so check every server, not just connected ones:
        # none may have become leader without votes.
        for server in h.cluster:
            _, term, is_leader = server.cm.report()
            assert not is_leader, f"server {server.server_id} leads term {term}"

        # Reconnect all servers. A leader will be found.
        for i in range(3):
            h.reconnect_peer(i)
        h.check_single_leader()


def leader_disconnect_then_reconnect(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # That the new leader keeps its place is the point here, and a lossy
    # network can take it away on its own: a follower that misses two
    # heartbeats in a row starts an election. So the network is reliable.
    monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)
    with Harness(n) as h:
        orig_leader_id, _ = h.check_single_leader()

        h.disconnect_peer(orig_leader_id)
        new_leader_id, new_term = h.check_single_leader()

        # The old leader comes back: it must learn the new term and follow,
        # not disrupt the new leader.
        h.reconnect_peer(orig_leader_id)
        sleep_ms(150)
        again_leader_id, again_term = h.check_single_leader()
        assert again_leader_id == new_leader_id
        assert again_term == new_term


def test_election_leader_disconnect_then_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leader_disconnect_then_reconnect(3, monkeypatch)


def test_election_leader_disconnect_then_reconnect5(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leader_disconnect_then_reconnect(5, monkeypatch)


def test_election_follower_comes_back() -> None:
    with Harness(3) as h:
        orig_leader_id, orig_term = h.check_single_leader()

        # A partitioned follower keeps timing out and raising its term.
        other_id = (orig_leader_id + 1) % 3
        h.disconnect_peer(other_id)
        sleep_ms(650)
        h.reconnect_peer(other_id)

        # Its higher term makes the leader step down, so a new election must
        # happen. Which server wins depends on the timeouts; the term tells:
        # the check fails if no leader of a later term shows up.
        h.check_single_leader(min_term=orig_term + 1)


def test_election_disconnect_loop() -> None:
    with Harness(3) as h:
        for _ in range(5):
            leader_id, _ = h.check_single_leader()

            h.disconnect_peer(leader_id)
            other_id = (leader_id + 1) % 3
            h.disconnect_peer(other_id)
            sleep_ms(310)
            h.check_no_leader()

            # Reconnect both, and give the cluster time to settle.
            h.reconnect_peer(other_id)
            h.reconnect_peer(leader_id)
            sleep_ms(150)


# --- Commands and log replication ------------------------------------------


def test_commit_one_command() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()

        assert h.submit_to_server(orig_leader_id, 42)
        h.check_committed_n(42, 3)


def test_submit_non_leader_fails() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()

        sid = (orig_leader_id + 1) % 3
        assert not h.submit_to_server(sid, 42)
        sleep_ms(10)


def test_commit_multiple_commands() -> None:
    with Harness(3) as h:
        orig_leader_id, _ = h.check_single_leader()

        for value in (42, 55, 81):
            assert h.submit_to_server(orig_leader_id, value)
            sleep_ms(100)

        nc, i1 = h.check_committed(42)
        _, i2 = h.check_committed(55)
        assert nc == 3
        assert i1 < i2
        _, i3 = h.check_committed(81)
        assert i2 < i3


def test_commit_with_disconnection_and_recover() -> None:
    with Harness(3) as h:
        # Submit a couple of values to a fully connected cluster.
        orig_leader_id, _ = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5)
        assert h.submit_to_server(orig_leader_id, 6)
        h.check_committed_n(6, 3)

        d_peer_id = (orig_leader_id + 1) % 3
        h.disconnect_peer(d_peer_id)
        sleep_ms(250)

        # Submit a new command; it is committed, but only by two servers.
        assert h.submit_to_server(orig_leader_id, 7)
        h.check_committed_n(7, 2)

        # Reconnect the follower: it catches up and delivers 7 too.
        h.reconnect_peer(d_peer_id)
        h.check_single_leader()
        h.check_committed_n(7, 3)


def test_no_commit_with_no_quorum() -> None:
    with Harness(3) as h:
        # Submit a couple of values to a fully connected cluster.
        orig_leader_id, orig_term = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5)
        assert h.submit_to_server(orig_leader_id, 6)
        h.check_committed_n(6, 3)

        # Disconnect both followers: the leader alone is no majority.
        d_peer1 = (orig_leader_id + 1) % 3
        d_peer2 = (orig_leader_id + 2) % 3
        h.disconnect_peer(d_peer1)
        h.disconnect_peer(d_peer2)
        sleep_ms(250)

        assert h.submit_to_server(orig_leader_id, 8)
        sleep_ms(250)
        h.check_not_committed(8)

        # Reconnect both followers: there is a quorum again.
        h.reconnect_peer(d_peer1)
        h.reconnect_peer(d_peer2)
        sleep_ms(600)

        # 8 is still not committed: whoever leads now is in a later term, and
        # a leader commits an entry of an earlier term only together with
        # one of its own.
        h.check_not_committed(8)

        # A new leader is elected. It may not be the original one, even
        # though its log is longer: the two reconnected servers can elect
        # each other.
        _, again_term = h.check_single_leader()
        assert again_term != orig_term

        # But new values are committed for sure. Over a lossy network the
        # leadership can move again meanwhile, to a server that has not
        # heard that they are committed: submit them as a client would.
        for value in (9, 10, 11):
            submit_and_check_committed(h, value, 3)


def submit_and_check_committed(h: Harness, command: Any, n: int) -> None:
    """Submit ``command`` to the leader and check that ``n`` servers deliver it.

    Over a lossy network the leadership may move on before every server has
    delivered the command: before the leader stored it on a majority (it may
    be lost), or just after (it is committed, but a new leader learns that
    an entry of an earlier term is committed only by committing one of its
    own term, paper 5.4.2, so the others do not deliver it yet). Either way,
    as a client would, submit it again to each new leader until it is
    delivered everywhere (perhaps twice).
    """
    leader_id, term = h.check_single_leader()
    assert h.submit_to_server(leader_id, command)

    def delivered_everywhere() -> bool:
        nonlocal term
        connected = [i for i in range(h.n) if h.connected[i]]
        if all(command in [e.command for e in h.delivered(i)] for i in connected):
            return True
        for i in connected:
            _, leader_term, is_leader = h.cluster[i].cm.report()
            if is_leader and leader_term > term:
                term = leader_term
                h.submit_to_server(i, command)
        return False

    h.wait_until(delivered_everywhere, f"{command!r} is delivered everywhere")
    h.check_committed_n(command, n)


def test_commits_with_leader_disconnects() -> None:
    with Harness(5) as h:
        # Submit a couple of values to a fully connected cluster.
        orig_leader_id, orig_term = h.check_single_leader()
        assert h.submit_to_server(orig_leader_id, 5)
        assert h.submit_to_server(orig_leader_id, 6)
        h.check_committed_n(6, 5)

        # Disconnect the leader, then submit 7 to it: it still believes it
        # leads, but it cannot reach a majority.
        h.disconnect_peer(orig_leader_id)
        sleep_ms(10)
        assert h.submit_to_server(orig_leader_id, 7)
        sleep_ms(250)
        h.check_not_committed(7)

        # Submit 8 to the new leader; it is committed by the four connected
        # servers.
        submit_and_check_committed(h, 8, 4)

        # Reconnect the old leader and let it settle. It cannot win while
        # its log ends with 7, an entry of an older term than the others'
        # (the election restriction). Once the new leader has replaced 7
        # with 8 it may: over a lossy network, a few lost heartbeats are
        # enough to make it run.
        h.reconnect_peer(orig_leader_id)
        sleep_ms(600)

        h.check_single_leader()
        stale_wins = [
            won
            for won in h.leaderships()
            if won.server == orig_leader_id
            and won.term > orig_term
            and 7 in [entry.command for entry in won.log]
        ]
        assert stale_wins == []

        # Submit 9 and check it is fully committed.
        submit_and_check_committed(h, 9, 5)
        h.check_committed_n(8, 5)

        # But 7 never is: the new leader's entries replaced it.
        h.check_not_committed(7)


# --- A cluster of one server ------------------------------------------------


def test_single_server_elects_itself_and_commits_alone() -> None:
    # Its own vote is a majority of one, and so is its own copy of an entry.
    with Harness(1) as h:
        assert h.check_single_leader() == (0, 1)
        assert h.submit_to_server(0, 42)
        h.check_committed_n(42, 1)


# --- A program that ends without shutting its servers down -------------------

EXIT_WITHOUT_SHUTDOWN = """
import queue, threading, time
from part2.server import Server

def peers(i):
    return [p for p in range(3) if p != i]

ready = threading.Event()
servers = [Server(i, peers(i), ready, queue.Queue()) for i in range(3)]
for server in servers:
    server.serve()
for i, server in enumerate(servers):
    for j in peers(i):
        server.connect_to_peer(j, servers[j].get_listen_addr())
ready.set()
deadline = time.monotonic() + 10
while not any(s.cm.report()[2] for s in servers):
    assert time.monotonic() < deadline, "no leader"
    time.sleep(0.01)
# A thread that outlives the main one keeps the leader's heartbeats going
# while the interpreter shuts down.
threading.Thread(target=time.sleep, args=(0.3,)).start()
"""


def test_exit_without_shutdown_is_quiet() -> None:
    # At exit, the interpreter shuts down every thread pool, the leader's
    # AppendEntries senders too, while its heartbeat loop still runs. The
    # program must still end cleanly, without a traceback.
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_SHUTDOWN],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
