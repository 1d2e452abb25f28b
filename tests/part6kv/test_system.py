"""System tests of part6kv: a cluster of services and its clients.

These are the scenarios of the Go original's system tests, plus the append
tests of its part 5. Where the original sleeps and hopes, these wait for a
condition with a deadline (the harness's checks do); the sleeps left are
part of a scenario.

Every client here resends freely (the default attempt timeout is short),
also the ones that check the results of writes exactly: a request sent
twice takes effect once. The last two tests show it with a lost answer.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

from part6kv.api import Reply
from part6kv.harness import CHECK_DEADLINE, Harness, History, RecordedClient
from part6kv.kvclient import ATTEMPT_ERRORS
from tests.part6kv.helpers import (
    Background,
    committed_copies,
    run_concurrently,
    wait_until,
)
from tools.lincheck import assert_linearizable


def sleep_ms(ms: int) -> None:
    """Sleep ``ms`` milliseconds: part of a scenario."""
    time.sleep(ms / 1000)


def test_setup_harness() -> None:
    # A cluster starts, runs a little, and shuts down cleanly.
    with Harness(3):
        sleep_ms(80)


def test_client_request_before_consensus() -> None:
    with Harness(3) as h:
        sleep_ms(10)
        # No leader yet: the client keeps cycling through the services
        # until one is elected and applies the put.
        c1 = h.new_client()
        h.check_put(c1, "llave", "cosa")
        h.check_get(c1, "llave", "cosa")


def test_basic_put_get_single_client() -> None:
    with Harness(3) as h:
        h.check_single_leader()

        c1 = h.new_client()
        h.check_put(c1, "llave", "cosa")
        h.check_get(c1, "llave", "cosa")


def test_put_prev_value() -> None:
    with Harness(3) as h:
        h.check_single_leader()

        c1 = h.new_client()
        assert h.check_put(c1, "llave", "cosa") == ("", False)
        assert h.check_put(c1, "llave", "frodo") == ("cosa", True)
        assert h.check_put(c1, "mafteah", "davar") == ("", False)


def test_basic_put_get_different_clients() -> None:
    with Harness(3) as h:
        h.check_single_leader()

        c1 = h.new_client()
        h.check_put(c1, "k", "v")

        c2 = h.new_client()
        h.check_get(c2, "k", "v")


def test_cas_basic() -> None:
    with Harness(3) as h:
        h.check_single_leader()

        c1 = h.new_client()
        h.check_put(c1, "k", "v")
        assert h.check_cas(c1, "k", "v", "newv") == ("v", True)
        h.check_get(c1, "k", "newv")


def test_cas_concurrent() -> None:
    # One client keeps trying CAS(foo, bar -> bomba) while another puts
    # foo=bar: the CAS fails until the put is applied, then swaps once.
    with Harness(3) as h:
        h.check_single_leader()
        c = h.new_client()
        h.check_put(c, "foo", "mexico")

        prevs: list[str] = []
        first_cas_done = threading.Event()

        def cas_until_swapped() -> None:
            c = h.new_client()
            deadline = time.monotonic() + CHECK_DEADLINE
            while not prevs or prevs[-1] != "bar":
                assert time.monotonic() < deadline, f"no swap; CAS saw {prevs}"
                prev, found = h.check_cas(c, "foo", "bar", "bomba")
                assert found
                prevs.append(prev)
                first_cas_done.set()
            # The swap is done: later ones find bomba and change nothing.
            for _ in range(3):
                prevs.append(h.check_cas(c, "foo", "bar", "bomba")[0])

        cas_thread = Background(cas_until_swapped)
        # The put goes in while the CAS client is busy, not before it starts
        # (the original assumed 20 CAS calls would take longer than 50 ms).
        first_cas_done.wait(CHECK_DEADLINE)
        c2 = h.new_client()
        h.check_put(c2, "foo", "bar")
        cas_thread.join()

        h.check_get(c2, "foo", "bomba")
        swapped_at = prevs.index("bar")
        assert set(prevs[:swapped_at]) == {"mexico"}
        assert prevs[swapped_at + 1 :] == ["bomba"] * 3


def concurrent_clients_puts_and_gets(n_services: int) -> None:
    # Nine clients put at once, each its own key; then nine get at once.
    with Harness(n_services) as h:
        h.check_single_leader()
        n = 9

        def put(i: int) -> None:
            c = h.new_client()
            assert h.check_put(c, f"key{i}", f"value{i}") == ("", False)

        def get(i: int) -> None:
            c = h.new_client()
            h.check_get(c, f"key{i}", f"value{i}")

        run_concurrently([functools.partial(put, i) for i in range(n)])
        run_concurrently([functools.partial(get, i) for i in range(n)])


def test_concurrent_clients_puts_and_gets() -> None:
    concurrent_clients_puts_and_gets(3)


def test_5_server_concurrent_clients_puts_and_gets() -> None:
    concurrent_clients_puts_and_gets(5)


def put_keys(h: Harness, n: int) -> None:
    """Put ``key<i> = value<i>`` for i < n, each from a new client; none
    of the keys may exist before."""
    for i in range(n):
        c = h.new_client()
        assert h.check_put(c, f"key{i}", f"value{i}") == ("", False)


def test_disconnect_leader_after_puts() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        n = 4
        put_keys(h, n)

        h.disconnect_service_from_peers(lid)
        new_lid = h.check_single_leader()
        assert new_lid != lid

        # The old leader still believes it leads, but cannot commit: a
        # client that talks only to it times out.
        c = h.new_client_single_service(lid)
        h.check_get_times_out(c, "key1")

        # Clients of all services get past it (an attempt to it times out)
        # and read every value from the new leader.
        for _ in range(5):
            c = h.new_client_with_random_addrs_order()
            for j in range(n):
                h.check_get(c, f"key{j}", f"value{j}")

        h.reconnect_service_to_peers(lid)


def test_disconnect_leader_and_follower() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        n = 4
        put_keys(h, n)

        # Cut off the leader and one follower: no majority, no commits.
        h.disconnect_service_from_peers(lid)
        other_id = (lid + 1) % 3
        h.disconnect_service_from_peers(other_id)
        sleep_ms(100)

        c = h.new_client()
        h.check_get_times_out(c, "key0")

        # Reconnect the follower, and only it: the old leader stays cut off
        # (the original's reconnect healed it too). The two connected
        # services elect a leader that has every value.
        h.reconnect_service_to_peers(other_id)
        assert h.check_single_leader() != lid
        for i in range(n):
            h.check_get(c, f"key{i}", f"value{i}")

        # Reconnect the old leader. We should still get all the right data.
        h.reconnect_service_to_peers(lid)
        h.check_single_leader()
        for i in range(n):
            h.check_get(c, f"key{i}", f"value{i}")


def test_crash_follower() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        n = 3
        put_keys(h, n)

        other_id = (lid + 1) % 3
        h.crash_service(other_id)

        # Talking to the leader alone still works...
        for i in range(n):
            c = h.new_client_single_service(lid)
            h.check_get(c, f"key{i}", f"value{i}")

        # ... and so does talking to every live service.
        for i in range(n):
            c = h.new_client()
            h.check_get(c, f"key{i}", f"value{i}")


def test_crash_leader() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        n = 3
        put_keys(h, n)

        h.crash_service(lid)
        h.check_single_leader()

        for i in range(n):
            c = h.new_client()
            h.check_get(c, f"key{i}", f"value{i}")


def test_crash_then_restart_leader() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        n = 3
        put_keys(h, n)

        h.crash_service(lid)
        h.check_single_leader()
        for i in range(n):
            c = h.new_client()
            h.check_get(c, f"key{i}", f"value{i}")

        # The old leader comes back on its storage and at its address, and
        # rebuilds its data by applying the committed log again.
        h.restart_service(lid)
        wait_until(
            lambda: all(
                h.services[lid].datastore.get(f"key{i}") == (f"value{i}", True)
                for i in range(n)
            ),
            f"restarted service {lid} has every key",
        )

        for _ in range(5):
            c = h.new_client_with_random_addrs_order()
            for j in range(n):
                h.check_get(c, f"key{j}", f"value{j}")


def test_basic_append_same_client() -> None:
    with Harness(3) as h:
        h.check_single_leader()

        c1 = h.new_client()
        h.check_put(c1, "foo", "bar")

        # Append to a key that exists...
        assert h.check_append(c1, "foo", "baz") == ("bar", True)
        h.check_get(c1, "foo", "barbaz")

        # ... and to one that does not.
        assert h.check_append(c1, "mix", "match") == ("", False)
        h.check_get(c1, "mix", "match")


def test_basic_append_different_clients() -> None:
    with Harness(3) as h:
        h.check_single_leader()

        c1 = h.new_client()
        h.check_put(c1, "foo", "bar")

        c2 = h.new_client()
        assert h.check_append(c2, "foo", "baz") == ("bar", True)
        h.check_get(c1, "foo", "barbaz")

        assert h.check_append(c2, "mix", "match") == ("", False)
        h.check_get(c1, "mix", "match")


def test_append_different_leaders() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()

        c1 = h.new_client()
        h.check_append(c1, "foo", "bar")
        h.check_get(c1, "foo", "bar")

        # A new leader appends to what the old one applied.
        h.crash_service(lid)
        h.check_single_leader()
        c2 = h.new_client()
        h.check_append(c2, "foo", "baz")
        h.check_get(c2, "foo", "barbaz")

        # The old leader, restarted, catches up with both appends.
        h.restart_service(lid)
        wait_until(
            lambda: h.services[lid].datastore.get("foo") == ("barbaz", True),
            f"restarted service {lid} has foo=barbaz",
        )
        c3 = h.new_client()
        h.check_get(c3, "foo", "barbaz")


def test_append_linearizable_after_delay(tmp_path: Path) -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        # Attempts time out before the delayed response comes.
        c1 = h.new_client(attempt_timeout=0.1)

        h.check_put(c1, "foo", "bar")
        h.check_append(c1, "foo", "baz")
        h.check_get(c1, "foo", "barbaz")

        # The leader applies the next append, but its answer comes later than
        # the client waits for one attempt: the client sends the append again,
        # with the same ids, and the copy goes into the log too. It is not
        # applied again: it is answered with the first one's response.
        h.delay_next_http_response_from_service(lid)
        assert h.check_append(c1, "foo", "mira") == ("barbaz", True)
        append = c1.client_id, c1.last_request_id
        h.check_get(c1, "foo", "barbazmira")

        assert len(committed_copies(h.services[lid], *append)) >= 2
        assert_linearizable(h.history(), tmp_path / "history.html")


class HeldClient(RecordedClient):
    """A client whose first failed attempt at ``held_addr`` waits for
    ``resume`` before the client goes on, so that the test can crash that
    service in between."""

    def __init__(self, addrs: list[str], history: History, held_addr: str) -> None:
        super().__init__(addrs, 0.1, history)
        self.held_addr = held_addr
        self.held = threading.Event()
        self.resume = threading.Event()

    def post(self, addr: str, op: str, body: bytes, timeout: float) -> Reply:
        try:
            return super().post(addr, op, body, timeout)
        except ATTEMPT_ERRORS:
            if addr == self.held_addr and not self.held.is_set():
                self.held.set()
                self.resume.wait(CHECK_DEADLINE)
            raise


def test_append_linearizable_after_crash(tmp_path: Path) -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        c1 = HeldClient(h.addrs, h.recorded, h.service_addr(lid))
        h.clients.append(c1)  # closed with the harness
        h.check_append(c1, "foo", "bar")
        h.check_get(c1, "foo", "bar")

        # The leader applies the next append and holds its answer back; the
        # client's attempt times out, and the leader crashes before the
        # client tries again. The client's next attempts go to the others,
        # until one of them leads and takes the append again.
        h.delay_next_http_response_from_service(lid)
        replies: list[tuple[str, bool]] = []
        append = Background(lambda: replies.append(h.check_append(c1, "foo", "mira")))
        wait_until(c1.held.is_set, "the attempt at the leader timed out")
        wait_until(
            lambda: h.services[lid].datastore.get("foo") == ("barmira", True),
            "the leader applied the append",
        )
        request = c1.client_id, c1.last_request_id
        h.crash_service(lid)
        c1.resume.set()
        append.join()

        # The client got the answer of the one execution...
        assert replies == [("bar", True)]
        new_lid = h.check_single_leader()
        c2 = h.new_client()
        h.check_get(c2, "foo", "barmira")
        # ... which the new leader gave to a copy of the request it took:
        # the retry met the session of the first copy, applied before the
        # crash. (A client that gave up on a refused connection would not
        # have put a copy there.)
        copies = committed_copies(h.services[new_lid], *request)
        assert copies[0][1] == lid
        assert any(submitter != lid for _, submitter in copies[1:]), copies
        assert_linearizable(h.history(), tmp_path / "history.html")
