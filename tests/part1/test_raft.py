"""Election tests of part 1: the scenarios of the Go original's suite.

Positive checks (a leader exists) wait for the condition with a deadline;
negative checks (no leader) keep a fixed wait, since nothing can prove a
negative sooner. Fixed sleeps that remain are part of a scenario: they give
a partitioned server time to run elections, or a healed cluster the chance to
misbehave.
"""

from __future__ import annotations

import pytest

from part1.harness import Harness, sleep_ms


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


def test_single_server_elects_itself() -> None:
    # Its own vote is a majority of one.
    with Harness(1) as h:
        leader_id, term = h.check_single_leader()
        assert (leader_id, term) == (0, 1)
