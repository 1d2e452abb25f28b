"""The safety checks catch real violations: tests with planted bugs.

Each test installs a deliberately broken ConsensusModule in the harness's
servers, drives the cluster into a state where the bug surely shows, and
asserts that both checkers report it in words that name the servers, terms
and indices involved: the harness's continuous checks (the test fails) and
``tools.raft_check`` run on the test's log.

The scenarios force who can win each election by cutting single links
(``Server.disconnect_peer``) and dropping a server's outgoing calls, so the
outcome does not depend on which election timer fires first.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

import part3.server
from part3.harness import Harness, SafetyViolationError
from part3.raft import CommitEntry, ConsensusModule, RequestVoteArgs, RequestVoteReply
from tests.part3.test_raft import wait_until
from tools.raft_check import PLANTED_BUG, check_lines


class DoubleVoteCM(ConsensusModule):
    """BUG: forgets whom it voted for before each RequestVote of its term,
    so it may vote for two candidates in one term."""

    def request_vote(self, args: RequestVoteArgs) -> RequestVoteReply:
        with self.mu:
            if args.term == self.current_term:
                self.voted_for = -1
        return super().request_vote(args)


class EarlierTermCommitCM(ConsensusModule):
    """BUG: a leader commits any entry stored on a majority, whatever its
    term: the mistake of the paper's Figure 8 (section 5.4.2)."""

    def leader_advance_commit_index(self) -> None:
        matches = sorted([len(self.log) - 1, *self.match_index.values()])
        majority_match = matches[(len(matches) - 1) // 2]
        if majority_match > self.commit_index:
            self.commit_index = majority_match
            self.dlog("leader sets commitIndex := %s", self.commit_index)
            self.new_commit_ready.notify()
            self.trigger_ae()


class DoubleDeliveryCM(ConsensusModule):
    """BUG: puts each committed entry on the commit channel twice."""

    def deliver(self, commit: CommitEntry) -> bool:
        return super().deliver(commit) and super().deliver(commit)


def has_violation(h: Harness, prop: str) -> bool:
    """True once the harness has recorded a violation of ``prop``."""
    with h.mu:
        return any(v.startswith(prop) for v in h.violations)


def is_committed(h: Harness, index: int) -> bool:
    """True once some server has delivered ``index``."""
    with h.mu:
        return index in h.committed


def logged_violations(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What tools.raft_check finds in the test's log, one line each."""
    return [str(v) for v in check_lines(caplog.text.splitlines()).violations]


def cut_link(h: Harness, from_id: int, to_id: int) -> None:
    """Cut the link from one server to another, in that direction only."""
    h.tlog(f"Cut link {from_id} -> {to_id}")
    h.cluster[from_id].disconnect_peer(to_id)


def run_planted_bug(
    monkeypatch: pytest.MonkeyPatch,
    broken_cm: type[ConsensusModule],
    what: str,
    scenario: Callable[[Harness], None],
) -> str:
    """Run ``scenario`` on 3 servers running ``broken_cm``; return the
    message the harness fails the test with. (The bug may show before the
    scenario forces it: the harness then fails the test at once.)"""
    monkeypatch.setattr(part3.server, "ConsensusModule", broken_cm)

    def run() -> None:
        with Harness(3) as h:
            h.tlog(f"{PLANTED_BUG}{what}")
            scenario(h)

    with pytest.raises(SafetyViolationError) as failure:
        run()
    return str(failure.value)


def two_leaders_in_one_term(h: Harness) -> None:
    """Make both followers run in the same term, unable to reach each
    other: each asks the leader for its vote."""
    leader, _ = h.check_single_leader()
    a, b = (i for i in range(3) if i != leader)
    cut_link(h, a, b)
    cut_link(h, b, a)
    cm_a, cm_b = h.cluster[a].cm, h.cluster[b].cm

    def start_both_elections() -> bool:
        """If a and b are in one term, make both run for the next one."""
        with cm_a.mu, cm_b.mu:
            if cm_a.current_term != cm_b.current_term:
                return False
            cm_a.start_election()
            cm_b.start_election()
            return True

    wait_until(start_both_elections, "both followers run in one term")
    wait_until(lambda: has_violation(h, "Election Safety"), "two leaders")


def test_election_safety_violation_is_caught(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A correct server refuses the second candidate; this one grants both
    # votes, and both candidates win. (That may happen in the very first
    # election already, if two servers run at once.)
    message = run_planted_bug(
        monkeypatch, DoubleVoteCM, "grants two votes per term", two_leaders_in_one_term
    )
    reported = re.findall(
        r"Election Safety: servers (\d+) and (\d+) both became leader in term (\d+)",
        message,
    )
    logged = re.findall(
        r"Election Safety: servers (\d+) \(line \d+\) and (\d+) both became "
        r"leader in term (\d+)\Z",
        "\n".join(logged_violations(caplog)),
        re.MULTILINE,
    )
    assert reported, message
    assert all(a != b for a, b, _ in reported)
    assert set(reported) <= set(logged)


def figure8(h: Harness) -> None:
    """Figure 8 of the paper with 3 servers.

    Server a leads and stores entry "e" alone; x leads a later term and
    stores "f" alone at the same index. Then a leads again and, counting
    replicas, commits "e" of its old term once the third server stores it.
    But x, whose log ends with a later term, can still win an election: it
    lacks the committed "e", and overwrites it with "f".
    """
    a, t1 = h.check_single_leader()
    h.peer_drop_calls_after_n(a, 0)
    assert h.submit_to_server(a, "e") == 0

    # One of the two others wins the next term without hearing from a.
    x, _ = h.check_single_leader(min_term=t1 + 1)
    h.peer_drop_calls_after_n(x, 0)
    assert h.submit_to_server(x, "f") == 0

    # a can reach the third server only, whose log is empty (and x refuses
    # a's log): a wins with its vote, copies "e" to it and, wrongly, commits.
    cut_link(h, a, x)
    h.peer_dont_drop_calls(a)
    wait_until(lambda: is_committed(h, 0), '"e" is committed')

    # x hears from no leader and runs; its log's last term is later than
    # the others', so both vote for it.
    h.peer_dont_drop_calls(x)
    wait_until(
        lambda: (
            has_violation(h, "Leader Completeness")
            and has_violation(h, "State Machine Safety")
        ),
        'x leads without "e", and delivers "f" in its place',
    )


def test_leader_completeness_and_state_machine_safety_violations_are_caught(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A correct leader commits an entry of an earlier term only together
    # with one of its own, so "e" would not be committed.
    message = run_planted_bug(
        monkeypatch,
        EarlierTermCommitCM,
        "commits an entry of an earlier term by counting replicas",
        figure8,
    )
    incomplete = re.search(
        r"Leader Completeness: server (\d+) became leader in term (\d+) with "
        r"LogEntry\(command='f', term=\d+\) at index 0, but "
        r"CommitEntry\(command='e', index=0, term=\d+\) was committed there",
        message,
    )
    assert incomplete is not None, message
    x, term = incomplete.groups()
    overwriters = re.findall(
        r"State Machine Safety: server (\d+) delivered CommitEntry\(command='f', "
        r"index=0, term=\d+\), but server \d+ delivered CommitEntry\(command='e'",
        message,
    )
    assert x in overwriters, message

    logged = logged_violations(caplog)
    assert any(
        f"Leader Completeness: server {x} became leader in term {term} with "
        "command 'f' of term"
        in v
        and "but command 'e' of term" in v
        for v in logged
    ), logged
    assert any(
        f"State Machine Safety: server {x} delivered command 'f' of term" in v
        and "at index 0, but server" in v
        for v in logged
    ), logged


def double_delivery(h: Harness) -> None:
    """Commit one command."""
    leader, _ = h.check_single_leader()
    assert h.submit_to_server(leader, 42) == 0
    wait_until(lambda: has_violation(h, "Delivery order"), "a double delivery")


def test_delivery_order_violation_is_caught(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    message = run_planted_bug(
        monkeypatch, DoubleDeliveryCM, "delivers each entry twice", double_delivery
    )
    twice = re.search(r"server (\d+) delivered index 0, expected 1", message)
    assert twice is not None, message
    assert any(
        f"Delivery order: server {twice[1]} delivered index 0, expected 1" in v
        for v in logged_violations(caplog)
    )
