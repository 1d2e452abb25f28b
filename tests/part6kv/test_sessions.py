"""Tests of the client sessions: the table itself, and what a cluster
answers to a request sent again, to a client silent for long, and after a
restart, also when a snapshot replaced the request's entry.

Requests are sent by hand where a test needs to choose their ids.
"""

from __future__ import annotations

import pickle
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

import part6kv.harness
from part6.raft import CommitEntry
from part6.storage import MapStorage
from part6kv import kvservice
from part6kv.api import Request
from part6kv.harness import CHECK_DEADLINE, Harness
from part6kv.kvclient import KVSessionExpiredError
from part6kv.kvservice import Command, CommitSubscription, KVService, SizedStorage
from part6kv.sessions import Outcome, Session, SessionTable
from tests.part6kv.helpers import new_ids, wait_until
from tests.part6kv.test_api import post_json

PATIENT = kvservice.COMMIT_TIMEOUT + 0.5
"""An attempt timeout above COMMIT_TIMEOUT: a client with it does not
resend, so each of its calls is one log entry."""

UNREACHED = 1 << 40
"""A response budget that the tests of the window never reach."""


def applies(
    response: tuple[str, bool],
) -> tuple[Callable[[], tuple[str, bool]], list[int]]:
    """An ``apply`` for ``SessionTable.execute`` that returns ``response``,
    and the list of its calls, to count them."""
    calls: list[int] = []

    def apply() -> tuple[str, bool]:
        calls.append(1)
        return response

    return apply, calls


def test_new_repeated_and_older_requests() -> None:
    table = SessionTable(window=100, budget=UNREACHED)
    apply, calls = applies(("v", True))
    assert table.execute(0, 7, 1, apply) == (Outcome.APPLIED, "v", True)
    assert len(calls) == 1

    # The last request again: its recorded response, not applied again.
    other, other_calls = applies(("other", False))
    assert table.execute(1, 7, 1, other) == (Outcome.REPEATED, "v", True)
    # A later one (gaps are fine) is applied; then the earlier one is older.
    assert table.execute(2, 7, 5, other) == (Outcome.APPLIED, "other", False)
    assert table.execute(3, 7, 1, other) == (Outcome.OLDER, "", False)
    assert table.execute(4, 7, 4, other) == (Outcome.OLDER, "", False)
    assert table.execute(5, 7, 5, other) == (Outcome.REPEATED, "other", False)
    assert len(other_calls) == 1
    # Another client is another session, whatever its ids.
    assert table.execute(6, 8, 1, other) == (Outcome.APPLIED, "other", False)
    assert len(other_calls) == 2


def test_session_kept_while_the_client_made_a_request_in_the_window() -> None:
    window = 3
    table = SessionTable(window, UNREACHED)
    apply, _ = applies(("", False))
    table.execute(0, 7, 1, apply)
    for index in range(1, window):
        table.execute(index, 8, index, apply)
    # Client 7's request is among the `window` entries before this one.
    assert table.execute(window, 7, 1, apply)[0] == Outcome.REPEATED
    for index in range(window + 1, 2 * window + 1):
        table.execute(index, 8, index, apply)
    # Now it is not: expired.
    assert table.execute(2 * window + 1, 7, 1, apply)[0] == Outcome.EXPIRED


def test_expired_client_is_remembered_for_another_window() -> None:
    window = 3
    table = SessionTable(window, UNREACHED)
    apply, calls = applies(("", False))
    table.execute(0, 7, 1, apply)
    # The entry at `window + 1` expires client 7's session...
    for index in range(1, window + 2):
        table.execute(index, 8, index, apply)
    assert table.snapshot()[1] == {7: window + 1}
    # ... and for `window` entries from there, its requests, old and new,
    # are answered "expired"...
    for index in range(window + 2, 2 * window + 2):
        assert table.execute(index, 7, index, apply)[0] == Outcome.EXPIRED
    # ... after which the client is forgotten, and starts a new session.
    calls.clear()
    assert table.execute(2 * window + 2, 7, 1, apply)[0] == Outcome.APPLIED
    assert calls == [1]
    sessions, expired = table.snapshot()
    assert 7 in sessions
    assert 7 not in expired


def test_table_stays_within_its_bound() -> None:
    # A new client at every entry: at most `window` sessions and `window`
    # expired clients are kept, plus the one of the entry at hand.
    window = 10
    table = SessionTable(window, UNREACHED)
    apply, _ = applies(("x" * 100, True))
    for index in range(1000):
        table.execute(index, index + 1, 1, apply)
        sessions, expired = table.snapshot()
        assert len(sessions) <= window + 1
        assert len(expired) <= window + 1
    assert set(sessions) == set(range(1000 - window, 1001))


def test_restored_table_goes_on_as_the_original() -> None:
    # A table restored from a snapshot of another expires the same
    # sessions, in the same order, and answers copies the same way.
    window, budget = 5, 10
    original = SessionTable(window, budget)
    for index, (client, response) in enumerate([(1, "aaa"), (2, "bbb"), (3, "c")]):
        original.execute(index, client, 1, applies((response, True))[0])
    original.execute(3, 1, 1, applies(("", False))[0])  # 1 is heard from again
    restored = SessionTable(window, budget)
    restored.restore(*original.snapshot())
    assert restored.snapshot() == original.snapshot()
    assert restored.size == original.size == 7

    def go_on(table: SessionTable) -> list[tuple[Outcome, str, bool]]:
        # 4 bytes more expire the least recently used session, 2's; 1's
        # is still in the window, then the window passes for 3's.
        apply = applies(("dddd", True))[0]
        return [
            table.execute(4, 4, 1, apply),
            table.execute(5, 2, 1, apply),
            table.execute(8, 1, 1, apply),
            table.execute(9, 3, 1, apply),
        ]

    outcomes = go_on(original)
    assert outcomes == [
        (Outcome.APPLIED, "dddd", True),
        (Outcome.EXPIRED, "", False),
        (Outcome.REPEATED, "aaa", True),
        (Outcome.EXPIRED, "", False),
    ]
    assert go_on(restored) == outcomes
    assert restored.snapshot() == original.snapshot()


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        SessionTable(0, UNREACHED)


def test_least_recently_used_sessions_expire_to_keep_the_budget() -> None:
    table = SessionTable(window=100, budget=10)
    table.execute(0, 1, 1, applies(("aaaa", True))[0])
    table.execute(1, 2, 1, applies(("bbbb", True))[0])
    # Client 1 is heard from again: now client 2 is the least recently used.
    assert table.execute(2, 1, 1, applies(("", False))[0])[0] == Outcome.REPEATED
    # 4 + 4 + 4 bytes would exceed the budget: client 2's session expires.
    assert table.execute(3, 3, 1, applies(("cccc", True))[0])[0] == Outcome.APPLIED
    sessions, expired = table.snapshot()
    assert set(sessions) == {1, 3}
    assert expired == {2: 3}
    assert table.size == 8
    # Its copy is not applied again, nor is its next request.
    apply, calls = applies(("", False))
    assert table.execute(4, 2, 1, apply) == (Outcome.EXPIRED, "", False)
    assert table.execute(5, 2, 2, apply) == (Outcome.EXPIRED, "", False)
    assert calls == []
    assert table.execute(6, 1, 1, apply) == (Outcome.REPEATED, "aaaa", True)


def test_budget_counts_utf8_bytes() -> None:
    table = SessionTable(window=100, budget=4)
    table.execute(0, 1, 1, applies(("éé", True))[0])  # 4 bytes: it fits
    assert set(table.snapshot()[0]) == {1}
    table.execute(1, 2, 1, applies(("a", True))[0])  # 4 + 1: client 1 expires
    assert table.snapshot() == (
        {2: Session(request_id=1, value="a", found=True, last_index=1, size=1)},
        {1: 1},
    )


def test_response_larger_than_the_budget_expires_its_own_session() -> None:
    table = SessionTable(window=100, budget=10)
    table.execute(0, 1, 1, applies(("aa", True))[0])
    # Applied, and answered; but the response cannot be kept, and the
    # other sessions need not make room for it in vain.
    big = "x" * 11
    assert table.execute(1, 2, 1, applies((big, True))[0]) == (
        Outcome.APPLIED,
        big,
        True,
    )
    sessions, expired = table.snapshot()
    assert set(sessions) == {1}
    assert expired == {2: 1}
    assert table.execute(2, 2, 2, applies(("", False))[0])[0] == Outcome.EXPIRED


def test_budget_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="budget"):
        SessionTable(1, -1)


def test_memory_is_bounded_by_the_budget_not_clients_times_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 100 clients append in turn to one key, which grows. Each append's
    # response is the value before it: were every response kept, each
    # session would hold a version of the key of its own, 25 MiB in all.
    budget = 1024 * 1024
    monkeypatch.setattr(kvservice, "RESPONSE_BUDGET", budget)
    clients, rounds, chunk = 100, 3, "x" * 1024
    # Raft stays dormant: the test puts the committed entries on the
    # commit channel itself, and the updater applies them.
    service = KVService(0, [1, 2], MapStorage(), threading.Event())
    last = CommitSubscription(clients * rounds - 1)
    service.commit_subs[last.index] = [last]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for index in range(clients * rounds):
            round, client = divmod(index, clients)
            request = Request(
                "append", "k", chunk, client_id=client + 1, request_id=round + 1
            )
            command = Command(request, 0, str(index))
            service.commit_chan.put(CommitEntry(command, index, 1))
        assert last.done.wait(CHECK_DEADLINE), "the updater applied every entry"
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        service.shutdown()
    stored = len(service.datastore.get("k")[0])
    # The value itself, the responses within the budget, and what the
    # sessions and the log lines of the test take besides.
    assert grown < stored + budget + 1024 * 1024, f"{grown / 2**20:.1f} MiB"


def test_sessions_expire_to_keep_the_response_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kvservice, "RESPONSE_BUDGET", 1000)
    expired = {"status": "SessionExpired", "found": False, "value": ""}
    with Harness(3) as h:
        h.check_single_leader()
        value = "x" * 600
        assert post_to_leader(h, "/put/", {"key": "k", "value": value, **new_ids()})
        a_get = {"key": "k", **new_ids()}
        b_get = {"key": "k", **new_ids()}
        assert post_to_leader(h, "/get/", a_get) == ok(True, value, "value")
        # a's and b's 600-byte responses do not both fit: a's session, the
        # least recently used, expires.
        assert post_to_leader(h, "/get/", b_get) == ok(True, value, "value")
        assert post_to_leader(h, "/get/", a_get) == expired
        assert post_to_leader(h, "/get/", {**a_get, "request_id": 2}) == expired
        assert post_to_leader(h, "/get/", b_get) == ok(True, value, "value")

        def replicas_agree() -> bool:
            states = [(s.sessions.snapshot(), s.datastore.data) for s in h.services]
            return all(state == states[0] for state in states)

        wait_until(replicas_agree, "every replica has the same sessions and data")


def ok(found: bool, value: str, field: str = "prev_value") -> dict[str, object]:
    """An OK reply."""
    return {"status": "OK", "found": found, field: value}


def post_to_leader(h: Harness, path: str, obj: dict[str, Any]) -> Any:
    """Send ``obj`` by hand to the leader, again and again as a client
    would (a copy is safe), until it answers other than NotLeader,
    FailedCommit or Timeout; return that answer."""
    deadline = time.monotonic() + CHECK_DEADLINE
    while True:
        addr = h.service_addr(h.check_single_leader())
        reply: Any = post_json(addr, path, obj).json()
        if reply["status"] not in ("NotLeader", "FailedCommit", "Timeout"):
            return reply
        if time.monotonic() > deadline:
            raise AssertionError(f"{obj} got {reply} until {CHECK_DEADLINE}s")


def test_duplicate_gets_the_original_answer() -> None:
    with Harness(3) as h:
        # Service 0 is cut off, so another one leads: the Go original
        # answered duplicates "commit failed" on every service but 0.
        h.disconnect_service_from_peers(0)
        client_id = new_ids()["client_id"]

        def send(path: str, request_id: int, **fields: str) -> Any:
            obj = {**fields, "client_id": client_id, "request_id": request_id}
            return post_to_leader(h, path, obj)

        # A put sent twice: the copy is answered as the first one was.
        assert send("/put/", 1, key="k", value="v") == ok(False, "")
        assert send("/put/", 1, key="k", value="v") == ok(False, "")
        # A get sent twice reads the value once: another client's put in
        # between does not change what the copy answers.
        assert send("/get/", 2, key="k") == ok(True, "v", "value")
        other = {"key": "k", "value": "w", **new_ids()}
        assert post_to_leader(h, "/put/", other) == ok(True, "v")
        assert send("/get/", 2, key="k") == ok(True, "v", "value")
        # An older request is not applied.
        assert send("/put/", 1, key="k", value="v") == {
            "status": "DuplicateRequest",
            "found": False,
            "prev_value": "",
        }
        # The ids may skip; the value is still the other client's.
        assert send("/append/", 7, key="k", value="x") == ok(True, "w")
        assert send("/get/", 8, key="k") == ok(True, "wx", "value")


def test_session_expires_after_window_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    window = 10
    monkeypatch.setattr(kvservice, "SESSION_WINDOW", window)
    expired = {"status": "SessionExpired", "found": False, "prev_value": ""}
    with Harness(3) as h:
        h.check_single_leader()
        a = new_ids()
        a_put = {"key": "a", "value": "1", **a}
        a_next = {**a_put, "request_id": 2}
        # b makes the entries that pass; c is a client that is silent.
        b = h.new_client(attempt_timeout=PATIENT)

        def b_puts(n: int) -> None:
            for i in range(n):
                h.check_put(b, "b", str(i))

        assert post_to_leader(h, "/put/", a_put) == ok(False, "")
        b_puts(window // 2)
        # Within the window: a copy still gets the original answer, and
        # the session lives on from there.
        assert post_to_leader(h, "/put/", a_put) == ok(False, "")
        c = h.new_client(attempt_timeout=PATIENT)
        h.check_put(c, "c", "1")

        # More than `window` entries later, a's and c's sessions are gone,
        # for a's copy as for a new request...
        b_puts(window + 2)
        assert post_to_leader(h, "/put/", a_put) == expired
        assert post_to_leader(h, "/put/", a_next) == expired
        with pytest.raises(KVSessionExpiredError):
            c.put("c", "2", timeout=CHECK_DEADLINE)
        # ... and nothing was applied. The client starts a new session.
        assert h.check_put(c, "c", "3") == ("1", True)

        # After another window, a is forgotten: its new request is applied
        # (a copy of its first one would be too: the limit of the bound).
        b_puts(window + 2)
        assert post_to_leader(h, "/put/", a_next) == ok(True, "1")

        # Every replica holds the same sessions, and the same data.
        def replicas_agree() -> bool:
            states = [(s.sessions.snapshot(), s.datastore.data) for s in h.services]
            return all(state == states[0] for state in states)

        wait_until(replicas_agree, "every replica has the same sessions and data")


def sessions_survive_restart(h: Harness) -> None:
    """An append is applied; every service crashes and restarts; a copy of
    the append, sent then, must get the original answer and change nothing.
    Raises AssertionError otherwise."""
    append = {"key": "k", "value": "a", **new_ids()}
    assert post_to_leader(h, "/append/", append) == ok(False, "")
    wait_until(
        lambda: all(s.datastore.get("k") == ("a", True) for s in h.services),
        "every service applied the append",
    )
    for i in range(h.n):
        h.crash_service(i)
    for i in range(h.n):
        h.restart_service(i)

    # The copy commits in the new leader's term, and with it the entries
    # before it, which every service replays.
    reply = post_to_leader(h, "/append/", append)
    assert reply == ok(False, ""), f"the copy after the restart got {reply}"
    c = h.new_client()
    h.check_get(c, "k", "a")


def test_sessions_rebuilt_after_restart() -> None:
    with Harness(3) as h:
        sessions_survive_restart(h)


class ForgetfulSessions(SessionTable):
    """BUG: a session table that is not rebuilt by replaying the log: it
    applies the entries below ``replayed`` as new, without their
    sessions."""

    def __init__(self, window: int, budget: int, replayed: int) -> None:
        super().__init__(window, budget)
        self.replayed = replayed

    def execute(
        self,
        index: int,
        client_id: int,
        request_id: int,
        apply: Callable[[], tuple[str, bool]],
    ) -> tuple[Outcome, str, bool]:
        if index < self.replayed:
            value, found = apply()
            return Outcome.APPLIED, value, found
        return super().execute(index, client_id, request_id, apply)


class ForgetfulService(KVService):
    """BUG: a service whose sessions are lost when it restarts, while its
    data is rebuilt from the log."""

    def __init__(
        self,
        id: int,
        peer_ids: list[int],
        storage: SizedStorage,
        ready: threading.Event,
        max_raft_state: int,
    ) -> None:
        super().__init__(id, peer_ids, storage, ready, max_raft_state)
        # Nothing is applied before the harness connects the service, so
        # the table can still be replaced.
        with self.raft_server.cm.mu:
            replayed = len(self.raft_server.cm.log)
        self.sessions = ForgetfulSessions(
            kvservice.SESSION_WINDOW, kvservice.RESPONSE_BUDGET, replayed
        )


def test_planted_bug_sessions_lost_on_restart_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(part6kv.harness, "KVService", ForgetfulService)
    with (
        Harness(3) as h,
        pytest.raises(AssertionError, match="the copy after the restart got"),
    ):
        sessions_survive_restart(h)


def retry_after_snapshot_and_restart(h: Harness) -> tuple[Any, tuple[str, bool]]:
    """An append is applied, and every service takes a snapshot that covers
    it (``h`` takes one after every entry); every service crashes and
    restarts, from its snapshot alone: no entry is left to replay. A copy
    of the append is sent then. Return its answer, and what the key holds
    afterwards."""
    append = {"key": "k", "value": "a", **new_ids()}
    assert post_to_leader(h, "/append/", append) == ok(False, "")
    wait_until(
        lambda: all(s.datastore.get("k") == ("a", True) for s in h.services),
        "every service applied the append",
    )

    def compacted(service: KVService) -> bool:
        cm = service.raft_server.cm
        with cm.mu:
            return not cm.log and cm.last_included_index >= 0

    wait_until(
        lambda: all(compacted(s) for s in h.services),
        "every service's snapshot covers its whole log",
    )
    for i in range(h.n):
        h.crash_service(i)
    for i in range(h.n):
        h.restart_service(i)
    assert all(compacted(s) for s in h.services)

    reply = post_to_leader(h, "/append/", append)
    return reply, h.check_call(h.new_client(), Request("get", "k"))


def test_sessions_survive_a_snapshot_and_restart() -> None:
    with Harness(3, max_raft_state=0) as h:
        reply, value = retry_after_snapshot_and_restart(h)
        # The copy gets the original answer, and is not applied again.
        assert reply == ok(False, "")
        assert value == ("a", True)


class SessionlessSnapshots(KVService):
    """BUG: a service whose snapshots hold the DataStore, but not the
    session table."""

    def snapshot_state(self) -> bytes:
        return pickle.dumps((self.datastore.snapshot(), {}, {}))


def test_planted_bug_sessions_left_out_of_the_snapshot_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(part6kv.harness, "KVService", SessionlessSnapshots)
    with Harness(3, max_raft_state=0) as h:
        reply, value = retry_after_snapshot_and_restart(h)
        # The restored services do not know the append: the copy is applied
        # a second time.
        assert reply == ok(True, "a")
        assert value == ("aa", True)
