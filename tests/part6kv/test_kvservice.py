"""White-box tests of KVService: the way from a handler to the log and
back, snapshots, shutdown, ports, and the delayed response.

Where a test must see a handler's own answer, it sends the request by hand:
a client would resend it, and its copy could answer in the handler's place.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from typing import Any

import pytest

from part6.raft import CommitEntry, SnapshotEntry
from part6.storage import MapStorage
from part6kv import harness, kvservice
from part6kv.api import Reply, Request, Status
from part6kv.harness import CHECK_DEADLINE, Harness
from part6kv.kvservice import (
    DELAYED_RESPONSE,
    Command,
    CommitSubscription,
    KVService,
)
from tests.part6kv.helpers import Background, new_ids, wait_until
from tests.part6kv.test_api import post_json


def test_no_commit_missed_between_submit_and_subscribe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        service = h.services[lid]
        submit = service.raft_server.submit

        def submit_then_wait_for_the_updater(command: Any) -> int:
            # Hold the handler between submit and its subscription until the
            # updater has applied the entry: the commit must still reach it.
            index = submit(command)
            wait_until(
                lambda: service.datastore.get("k") == ("v", True),
                "the updater applied the put",
            )
            return index

        monkeypatch.setattr(
            service.raft_server, "submit", submit_then_wait_for_the_updater
        )
        put = {"key": "k", "value": "v", **new_ids()}
        reply = post_json(h.service_addr(lid), "/put/", put).json()
        assert reply == {"status": "OK", "found": False, "prev_value": ""}
        assert service.commit_subs == {}


def test_handler_that_times_out_leaves_no_subscription() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        h.disconnect_service_from_peers(lid)

        # The cut-off leader takes the request but cannot commit it.
        put = {"key": "k", "value": "v", **new_ids()}
        reply = post_json(h.service_addr(lid), "/put/", put).json()
        assert reply == {"status": "Timeout", "found": False, "prev_value": ""}
        assert h.services[lid].commit_subs == {}


def dormant_service() -> KVService:
    """A service whose Raft stays dormant: a test puts the entries on its
    commit channel itself, and its updater applies them."""
    return KVService(0, [1, 2], MapStorage(), threading.Event())


def put_entry(index: int, key: str, value: str) -> CommitEntry:
    """A committed put, the first request of a client of its own."""
    client_id = new_ids()["client_id"]
    request = Request("put", key, value, client_id=client_id, request_id=1)
    return CommitEntry(Command(request, 0, f"put{index}"), index, 1)


def test_snapshot_entry_replaces_the_state_and_answers_the_handlers_it_skips() -> None:
    source, service = dormant_service(), dormant_service()
    try:
        # The source applies two puts; its snapshot covers them.
        applied = CommitSubscription(1)
        source.commit_subs[1] = [applied]
        source.commit_chan.put(put_entry(0, "a", "1"))
        source.commit_chan.put(put_entry(1, "b", "2"))
        assert applied.done.wait(CHECK_DEADLINE)
        snapshot = SnapshotEntry(source.snapshot_state(), 1, 1)

        # The service applied index 0 only, and handlers wait for 1 and 2.
        service.commit_chan.put(put_entry(0, "a", "0"))
        skipped, after = CommitSubscription(1), CommitSubscription(2)
        service.commit_subs.update({1: [skipped], 2: [after]})
        service.commit_chan.put(snapshot)
        # Index 1 will never be applied here: its handler is answered now,
        # with nothing applied (Timeout).
        assert skipped.done.wait(CHECK_DEADLINE)
        assert skipped.applied is None
        assert service.datastore.snapshot() == {"a": "1", "b": "2"}
        assert service.sessions.snapshot() == source.sessions.snapshot()
        # The next entry is applied on top of the snapshot.
        service.commit_chan.put(put_entry(2, "b", "3"))
        assert after.done.wait(CHECK_DEADLINE)
        assert after.applied is not None
        assert (after.applied.value, after.applied.found) == ("2", True)
    finally:
        source.shutdown()
        service.shutdown()


def test_shutdown_answers_waiting_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Handlers wait far longer than the test: only shutdown answers them.
    monkeypatch.setattr(kvservice, "COMMIT_TIMEOUT", 60.0)
    with Harness(3) as h:
        lid = h.check_single_leader()
        h.disconnect_service_from_peers(lid)
        service = h.services[lid]
        addr = h.service_addr(lid)

        replies: list[object] = []

        def put(key: str) -> None:
            put = {"key": key, "value": "v", **new_ids()}
            replies.append(post_json(addr, "/put/", put).json())

        requests = [Background(functools.partial(put, f"k{i}")) for i in range(3)]
        wait_until(
            lambda: sum(len(s) for s in service.commit_subs.values()) == 3,
            "three handlers wait",
        )
        h.crash_service(lid)  # shuts the service down

        for request in requests:
            request.join()
        assert replies == [{"status": "Timeout", "found": False, "prev_value": ""}] * 3
        assert service.commit_subs == {}
        host, _, port = addr.rpartition(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5).close()


def test_only_the_submitter_gets_ok_at_a_shared_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two handlers of one service can wait at one index: a leader's handler
    # waits at index i, the leader loses leadership, its log is cut back
    # before i, and it leads again, putting another command of its own at
    # i. Only the handler whose command is applied there may answer OK;
    # comparing the submitting service's id cannot tell them apart. Here
    # the first handler is told its command went to the index the next
    # command takes.
    with Harness(3) as h:
        lid = h.check_single_leader()
        service = h.services[lid]
        submit = service.raft_server.submit
        cm = service.raft_server.cm

        def claim_the_next_index(command: Any) -> int:
            with cm.mu:
                return len(cm.log)

        monkeypatch.setattr(service.raft_server, "submit", claim_the_next_index)
        replies: list[Reply] = []
        first_put = Request("put", "k", "a", client_id=1, request_id=1)
        first = Background(lambda: replies.append(service.handle_request(first_put)))
        wait_until(lambda: bool(service.commit_subs), "the first handler waits")
        monkeypatch.setattr(service.raft_server, "submit", submit)

        second = service.handle_request(
            Request("put", "k", "b", client_id=2, request_id=1)
        )
        first.join()
        assert second == Reply(Status.OK, False, "")
        assert replies == [Reply(Status.FAILED_COMMIT)]
        assert service.commit_subs == {}


def test_failed_commit_when_another_leader_takes_the_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scenario takes its time; the old leader's handler must hear of
    # the new leader's entry, not give up first.
    monkeypatch.setattr(kvservice, "COMMIT_TIMEOUT", 60.0)
    with Harness(3) as h:
        lid = h.check_single_leader()
        h.disconnect_service_from_peers(lid)
        old_leader = h.services[lid]

        replies: list[object] = []
        stale = Background(
            lambda: replies.append(
                post_json(
                    h.service_addr(lid),
                    "/put/",
                    {"key": "k", "value": "old", **new_ids()},
                ).json()
            )
        )
        wait_until(lambda: bool(old_leader.commit_subs), "the old leader took the put")

        # The others elect a leader, which commits another put at that index;
        # the old leader, back, gets it in place of its own.
        new_lid = h.check_single_leader()
        c = h.new_client_single_service(new_lid)
        assert h.check_put(c, "k", "new") == ("", False)
        h.reconnect_service_to_peers(lid)

        stale.join()
        assert replies == [{"status": "FailedCommit", "found": False, "prev_value": ""}]
        h.check_get(c, "k", "new")


def test_cut_off_leader_never_answers_from_stale_data() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        c = h.new_client()
        h.check_put(c, "k", "old")
        h.disconnect_service_from_peers(lid)
        new_lid = h.check_single_leader()
        h.check_put(h.new_client_single_service(new_lid), "k", "new")

        # The old leader still holds k=old, and still believes it leads; but
        # a get is a command it must commit first, which it cannot.
        assert h.services[lid].datastore.get("k") == ("old", True)
        get = {"key": "k", **new_ids()}
        reply = post_json(h.service_addr(lid), "/get/", get).json()
        assert reply == {"status": "Timeout", "found": False, "value": ""}


def test_busy_port_raises_and_the_service_goes_on() -> None:
    with socket.socket() as stray:
        stray.bind(("127.0.0.1", 0))
        stray.listen()
        busy_port = stray.getsockname()[1]

        service = KVService(0, [1, 2], MapStorage(), threading.Event())
        try:
            # The message names the port.
            with pytest.raises(OSError, match=rf":{busy_port}: .*in use"):
                service.serve_http(busy_port)
            addr = service.serve_http()
            reply = post_json(addr, "/get/", {"key": "k", **new_ids()}).json()
            assert reply == {"status": "NotLeader", "found": False, "value": ""}
        finally:
            service.shutdown()


def test_restart_on_a_port_taken_meanwhile() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        follower = (lid + 1) % 3
        addr = h.service_addr(follower)
        h.crash_service(follower)

        host, _, port = addr.rpartition(":")
        with socket.socket() as stray:
            stray.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            stray.bind((host, int(port)))
            stray.listen()
            with pytest.raises(OSError, match=rf":{port}: .*in use"):
                h.restart_service(follower)

        # The port is free again; the service comes back at its address.
        h.restart_service(follower)
        assert h.service_addr(follower) == addr
        h.check_put(h.new_client(), "k", "v")
        wait_until(
            lambda: h.services[follower].datastore.get("k") == ("v", True),
            "the restarted follower has k",
        )


def test_harness_on_a_port_in_use_shuts_down_what_it_started() -> None:
    with socket.socket() as stray:
        stray.bind(("127.0.0.1", 0))
        stray.listen()
        port = stray.getsockname()[1]
        # Service 0 would serve on the stray's port. The services built
        # so far must be shut down: the leak check of every test sees
        # their threads.
        with pytest.raises(OSError, match=rf":{port}: .*in use"):
            Harness(3, port=port)


def test_two_clusters_at_once() -> None:
    with Harness(3) as h1, Harness(3) as h2:
        assert not set(h1.addrs) & set(h2.addrs)
        h1.check_single_leader()
        h2.check_single_leader()
        c1 = h1.new_client()
        c2 = h2.new_client()
        h1.check_put(c1, "k", "one")
        h2.check_put(c2, "k", "two")
        h1.check_get(c1, "k", "one")
        h2.check_get(c2, "k", "two")


def test_delay_next_http_response_delays_the_next_one_whatever_it_is() -> None:
    with Harness(3) as h:
        follower = (h.check_single_leader() + 1) % 3
        addr = h.service_addr(follower)
        h.delay_next_http_response_from_service(follower)

        start = time.monotonic()
        response = post_json(addr, "/nope/", {})
        assert response.status == 404
        assert time.monotonic() - start >= DELAYED_RESPONSE
        # Only that one: the next response goes out at once.
        http_server = h.services[follower].http_server
        assert http_server is not None
        assert http_server.next_delay == 0


def refuses_connections(addr: str) -> bool:
    """True iff nothing listens at ``addr`` any more."""
    host, _, port = addr.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


class FailingStorage(MapStorage):
    """A MapStorage whose writes fail, once ``fail_writes()`` was called,
    as on a full disk."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    def fail_writes(self) -> None:
        self.failing = True

    def set(self, key: str, value: bytes) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")
        super().set(key, value)


def test_failed_storage_write_stops_the_service(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(harness, "MapStorage", FailingStorage)
    with Harness(3) as h:
        lid = h.check_single_leader()
        storage = h.storage[lid]
        assert isinstance(storage, FailingStorage)
        storage.fail_writes()

        # The leader cannot write the put to its log: its Raft server stops,
        # and the service with it. It tells this client to look elsewhere...
        addr = h.service_addr(lid)
        put = {"key": "k", "value": "v", **new_ids()}
        reply = post_json(addr, "/put/", put).json()
        assert reply == {"status": "NotLeader", "found": False, "prev_value": ""}
        # ... and answers no one after it.
        assert refuses_connections(addr)
        error = h.services[lid].failure()
        assert isinstance(error, OSError)
        assert error.errno == 28
        assert f"[{lid}] becomes Dead: storage write failed" in caplog.text

        # The others elect a leader among themselves and carry on.
        c = h.new_client()
        h.check_put(c, "k", "v")
        h.check_get(c, "k", "v")


class SnapshotFailingStorage(MapStorage):
    """A MapStorage whose writes of a snapshot fail, once
    ``fail_snapshots()`` was called, as on a full disk."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    def fail_snapshots(self) -> None:
        self.failing = True

    def set(self, key: str, value: bytes) -> None:
        if self.failing and key == "snapshot":
            raise OSError(28, "No space left on device")
        super().set(key, value)


def test_failed_snapshot_write_stops_the_service(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(harness, "MapStorage", SnapshotFailingStorage)
    # A snapshot after every entry.
    with Harness(3, max_raft_state=0) as h:
        lid = h.check_single_leader()
        storage = h.storage[lid]
        assert isinstance(storage, SnapshotFailingStorage)
        storage.fail_snapshots()

        # The leader applies the put, but cannot save the snapshot that
        # follows: its Raft server stops, and the service with it.
        c = h.new_client()
        h.check_put(c, "k", "v")
        service = h.services[lid]
        # The updater ends once it has stopped the service.
        service.updater.join(CHECK_DEADLINE)
        assert not service.updater.is_alive()
        assert refuses_connections(h.service_addr(lid))
        error = service.failure()
        assert isinstance(error, OSError)
        assert error.errno == 28
        assert f"[{lid}] becomes Dead: storage write failed" in caplog.text
        assert "the updater failed" not in caplog.text

        # The others elect a leader among themselves and carry on.
        h.check_get(c, "k", "v")
        h.check_put(c, "k", "w")


def test_updater_that_raises_stops_its_service(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Long enough that only the service's stop answers the handler in time.
    monkeypatch.setattr(kvservice, "COMMIT_TIMEOUT", 30.0)
    with Harness(3) as h:
        lid = h.check_single_leader()
        service = h.services[lid]

        def apply(request: Request) -> tuple[str, bool]:
            raise RuntimeError("planted bug")

        # Only the leader's updater fails; the other replicas apply the put.
        monkeypatch.setattr(service, "apply", apply)
        addr = h.service_addr(lid)
        start = time.monotonic()
        put = {"key": "k", "value": "v", **new_ids()}
        reply = post_json(addr, "/put/", put).json()
        # The handler is answered when the service stops: the put's outcome
        # is unknown to this service.
        assert reply == {"status": "Timeout", "found": False, "prev_value": ""}
        assert time.monotonic() - start < kvservice.COMMIT_TIMEOUT / 2
        assert refuses_connections(addr)
        error = service.failure()
        assert isinstance(error, RuntimeError)
        assert str(error) == "planted bug"
        (record,) = [r for r in caplog.records if "the updater failed" in r.message]
        assert record.exc_info is not None
        assert record.exc_info[1] is error

        # The others elect a leader among themselves and carry on.
        c = h.new_client()
        h.check_get(c, "k", "v")
