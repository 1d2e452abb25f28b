"""The safety checks catch real violations: tests with planted bugs.

Each test installs a deliberately broken ConsensusModule in the harness's
servers, drives the cluster into a state where the bug surely shows, and
asserts that both checkers report it, naming the servers, terms and indices
involved: the harness's continuous checks (the test fails) and
``tools.raft_check`` run on the test's log. Both report violations as data,
which the tests compare. Part 3's planted bugs come first; then those of
log compaction, which the checks catch across snapshots: an off-by-one at
the base, and a restarted server that forgets its snapshot. (The third, the
log cut persisted before the snapshot, is caught by the crash test of
test_persistence.py.)

The scenarios force who can win each election by cutting single links
(``Server.disconnect_peer``) and dropping a server's outgoing calls, so the
outcome does not depend on which election timer fires first.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import pytest

import part6.server
from part6.harness import Harness, Leadership, SafetyViolationError, Violation
from part6.raft import (
    AppendEntriesArgs,
    CMState,
    CommitEntry,
    ConsensusModule,
    InstallSnapshotArgs,
    LogEntry,
    RequestVoteArgs,
    RequestVoteReply,
    SnapshotEntry,
)
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


class Twice(queue.Queue[CommitEntry | SnapshotEntry]):
    """A commit channel that passes every entry on to ``target`` twice."""

    def __init__(self, target: queue.Queue[CommitEntry | SnapshotEntry]) -> None:
        super().__init__()
        self.target = target

    def put(
        self,
        item: CommitEntry | SnapshotEntry,
        block: bool = True,
        timeout: float | None = None,
    ) -> None:
        self.target.put(item)
        self.target.put(item)


class DoubleDeliveryCM(ConsensusModule):
    """BUG: puts each committed entry on the commit channel twice."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.commit_chan = Twice(self.commit_chan)


class Reported(Protocol):
    """A violation as either checker reports it."""

    @property
    def prop(self) -> str: ...
    @property
    def servers(self) -> tuple[int, ...]: ...
    @property
    def term(self) -> int | None: ...
    @property
    def index(self) -> int | None: ...
    @property
    def message(self) -> str: ...


def has_violation(h: Harness, prop: str) -> bool:
    """True once the harness has recorded a violation of ``prop``."""
    return any(v.prop == prop for v in h.violations())


def of(prop: str, violations: Iterable[Reported]) -> list[Reported]:
    """The violations of ``prop``."""
    return [v for v in violations if v.prop == prop]


def leaders_by_term(violations: Iterable[Reported]) -> dict[int | None, set[int]]:
    """Per term, every server an Election Safety violation names as one of
    its leaders. (Which leader of a term counts as the first depends on who
    looks: the harness and the log may see two elections won at once in
    either order; the set of leaders is what the property is about.)"""
    leaders: dict[int | None, set[int]] = {}
    for v in of("Election Safety", violations):
        leaders.setdefault(v.term, set()).update(v.servers)
    return leaders


def logged(caplog: pytest.LogCaptureFixture) -> list[Reported]:
    """What tools.raft_check finds in the test's log."""
    return list(check_lines(caplog.text.splitlines()).violations)


def cut_link(h: Harness, from_id: int, to_id: int) -> None:
    """Cut the link from one server to another, in that direction only."""
    h.tlog(f"Cut link {from_id} -> {to_id}")
    h.cluster[from_id].disconnect_peer(to_id)


def run_planted_bug(
    monkeypatch: pytest.MonkeyPatch,
    broken_cm: type[ConsensusModule],
    what: str,
    scenario: Callable[[Harness], None],
    snapshot_every: int = 0,
) -> list[Violation]:
    """Run ``scenario`` on 3 servers running ``broken_cm`` (snapshotted
    every ``snapshot_every`` entries), which must fail the test; return the
    violations the harness found. (The bug may show before the scenario
    forces it: the harness then fails the test at once.)"""
    monkeypatch.setattr(part6.server, "ConsensusModule", broken_cm)
    # The scenarios force who wins which election; random drops would undo
    # that. (The unreliable network gets its own tests.)
    monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)
    harness: list[Harness] = []

    def run() -> None:
        with Harness(3, snapshot_every) as h:
            harness.append(h)
            h.tlog(f"{PLANTED_BUG}{what}")
            scenario(h)

    with pytest.raises(SafetyViolationError):
        run()
    return harness[0].violations()


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

    h.wait_until(start_both_elections, "both followers run in one term")
    h.wait_until(lambda: has_violation(h, "Election Safety"), "two leaders")


def test_election_safety_violation_is_caught(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A correct server refuses the second candidate; this one grants both
    # votes, and both candidates win. (That may happen in the very first
    # election already, if two or three servers run at once.)
    found = run_planted_bug(
        monkeypatch, DoubleVoteCM, "grants two votes per term", two_leaders_in_one_term
    )
    reported = leaders_by_term(found)
    assert reported, found
    assert all(len(servers) >= 2 for servers in reported.values()), found
    assert leaders_by_term(logged(caplog)) == reported


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
    h.wait_until(lambda: h.deliveries_at(0) != [], '"e" is committed')

    # x hears from no leader and runs; its log's last term is later than
    # the others', so both vote for it. The third server must not run
    # instead: a would vote for it too (their logs are alike), were a stall
    # of the process to let its election timer fire. Its calls are dropped.
    third = next(i for i in range(3) if i not in (a, x))
    h.peer_drop_calls_after_n(third, 0)
    h.peer_dont_drop_calls(x)
    h.wait_until(
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
    found = run_planted_bug(
        monkeypatch,
        EarlierTermCommitCM,
        "commits an entry of an earlier term by counting replicas",
        figure8,
    )
    incomplete = of("Leader Completeness", found)
    assert incomplete, found
    assert {v.index for v in incomplete} == {0}
    # x is the leader without "e": it delivers "f" in its place.
    (x,) = {v.servers[0] for v in incomplete}
    overwritten = of("State Machine Safety", found)
    assert any(v.servers[0] == x and v.index == 0 for v in overwritten), found

    # The log shows the same: x leads without "e", and delivers over it.
    in_log = logged(caplog)
    assert any(
        v.servers == (x,) and v.index == 0 for v in of("Leader Completeness", in_log)
    ), in_log
    assert any(
        v.servers[0] == x and v.index == 0 for v in of("State Machine Safety", in_log)
    ), in_log


def double_delivery(h: Harness) -> None:
    """Commit one command."""
    leader, _ = h.check_single_leader()
    assert h.submit_to_server(leader, 42) == 0
    h.wait_until(lambda: has_violation(h, "Delivery order"), "a double delivery")


def test_delivery_order_violation_is_caught(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    found = run_planted_bug(
        monkeypatch, DoubleDeliveryCM, "delivers each entry twice", double_delivery
    )
    twice = of("Delivery order", found)
    assert twice, found
    assert {v.index for v in twice} == {0}
    assert {v.servers for v in twice} <= {
        v.servers for v in of("Delivery order", logged(caplog))
    }


def test_a_later_leader_without_a_committed_entry_is_said_to_hold_no_entry() -> None:
    # The check itself, fed a leadership as watch_elections would: a leader
    # of a later term whose log lacks the committed entry at index 0.
    h = Harness(1)
    try:
        leader, term = h.check_single_leader()
        assert h.submit_to_server(leader, 5) == 0
        h.check_committed_n(5, 1)
        h.record_leader(Leadership(leader, term + 1, ()))
    finally:
        h.shutdown()
    (found,) = h.violations()
    assert (found.prop, found.servers, found.term, found.index) == (
        "Leader Completeness",
        (leader,),
        term + 1,
        0,
    )
    assert found.message.startswith(
        f"server {leader} became leader in term {term + 1} with no entry at "
        "index 0, but CommitEntry(command=5, index=0, "
    )


# --- Log compaction -------------------------------------------------------


class OffByOneAtTheBaseCM(ConsensusModule):
    """BUG: a leader sends its snapshot only to a follower whose next entry
    is strictly before its base (``<`` where ``<=`` belongs). A follower
    that needs the base entry itself gets an AppendEntries instead, built
    from the entry before the base, which the leader no longer holds; and
    Python's negative indices read the end of the log in its place."""

    def leader_send_aes(self) -> None:
        requests: list[tuple[int, AppendEntriesArgs | InstallSnapshotArgs]] = []
        with self.mu:
            if self.state != CMState.LEADER:
                return
            self.leader_advance_commit_index()
            for peer_id in self.peer_ids:
                next_index = self.next_index[peer_id]
                if next_index < self.last_included_index:  # BUG: <=
                    snapshot = InstallSnapshotArgs(
                        term=self.current_term,
                        leader_id=self.id,
                        last_included_index=self.last_included_index,
                        last_included_term=self.last_included_term,
                        data=self.snapshot_data,
                    )
                    requests.append((peer_id, snapshot))
                    continue
                prev_log_index = next_index - 1
                args = AppendEntriesArgs(
                    term=self.current_term,
                    leader_id=self.id,
                    prev_log_index=prev_log_index,
                    prev_log_term=self.term_at(prev_log_index),
                    entries=self.log[self.position(next_index) :],
                    leader_commit=self.commit_index,
                )
                requests.append((peer_id, args))
        for peer_id, request in requests:
            if isinstance(request, InstallSnapshotArgs):
                self.spawn("is", self.send_install_snapshot, peer_id, request)
            else:
                self.spawn("ae", self.send_append_entries, peer_id, request)


def base_and_log_length(cm: ConsensusModule) -> tuple[int, int]:
    with cm.mu:
        return cm.last_included_index, len(cm.log)


def follower_needs_the_base_entry(h: Harness) -> None:
    """With a snapshot every 10 entries: a follower holds entries 0-8 when
    it is cut off; the others commit 9, 10 and 11 and snapshot up to 9.
    The leader restarts, so that no request it built before its snapshot
    is still on its way; then, whichever of the two leads, the follower
    comes back needing entry 9, the leader's base, next."""
    leader, _ = h.check_single_leader()
    follower = (leader + 1) % 3
    for command in range(9):
        assert h.submit_to_server(leader, command) == command
    h.check_committed_n(8, 3)
    h.disconnect_peer(follower)
    for command in (9, 10, 11):
        h.submit_to_server(leader, command)
    others = [h.cluster[i].cm for i in range(3) if i != follower]
    h.wait_until(
        lambda: all(base_and_log_length(cm) == (9, 2) for cm in others),
        "the others snapshotted up to 9",
    )
    h.crash_peer(leader)
    h.restart_peer(leader)
    h.check_single_leader()
    h.reconnect_peer(follower)
    h.wait_until(
        lambda: has_violation(h, "State Machine Safety"),
        "the follower delivers at index 9 an entry that is not entry 9",
    )


def test_an_off_by_one_at_the_base_is_caught(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    found = run_planted_bug(
        monkeypatch,
        OffByOneAtTheBaseCM,
        "sends AppendEntries to a follower that needs its base entry",
        follower_needs_the_base_entry,
        snapshot_every=10,
    )
    # The follower writes entry 11 (the log's last) at index 9.
    wrong = of("State Machine Safety", found)
    assert wrong, found
    assert {v.index for v in wrong} == {9}
    assert all("command=11" in v.message for v in wrong), wrong
    # The log shows the same delivery.
    in_log = of("State Machine Safety", logged(caplog))
    assert {v.index for v in in_log} == {9}, in_log


class ForgetsItsSnapshotCM(ConsensusModule):
    """BUG: a restarted server reads its log from where the snapshot ends,
    but forgets the snapshot itself: it counts the log from index 0 again,
    and the next time it saves its log, it saves it there."""

    def restore_from_storage(self) -> None:
        self.current_term, self.voted_for = self.load("termAndVote", (0, -1))
        base, _, self.saved_log_start, _ = self.load("snapshot", (-1, -1, 0, b""))
        self.saved_log_length = self.load("logLength", 0)
        self.log = [
            LogEntry(*self.load(f"log/{i}"))
            for i in range(base + 1, self.saved_log_length)
        ]


def restart_all(h: Harness) -> None:
    """MIT's TestSnapshotInit3D, up to its first restart: 12 commands (a
    snapshot every 10), then every server crashed and restarted."""
    leader, _ = h.check_single_leader()
    for command in range(12):
        h.submit_to_server(leader, command)
    h.check_committed_n(11, 3)
    for i in range(3):
        h.crash_peer(i)
    for i in range(3):
        h.restart_peer(i)
    h.wait_until(
        lambda: has_violation(h, "Leader Completeness"),
        "a restarted server leads with a log that starts at index 0 again",
    )


def test_a_server_that_forgets_its_snapshot_is_caught(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    found = run_planted_bug(
        monkeypatch,
        ForgetsItsSnapshotCM,
        "forgets its snapshot on restart",
        restart_all,
        snapshot_every=10,
    )
    # The first leader after the restart holds entries 10 and 11 at
    # indices 0 and 1, and nothing after.
    incomplete = of("Leader Completeness", found)
    assert {v.index for v in incomplete} == set(range(12)), found
    assert "with LogEntry(command=10, " in incomplete[0].message
    # The log shows the same: its "becomes Leader" line has no base.
    in_log = of("Leader Completeness", logged(caplog))
    assert {v.index for v in in_log} == set(range(12)), in_log
