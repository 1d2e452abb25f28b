"""Randomized fault tests of part 6: crashes, partitions, lost messages,
with snapshots.

The scenarios are part 3's, which follow the well-known lab test suites for
Raft (figure 8, churn, backup, persistence), scaled to this implementation's
timing. Each runs twice: with a snapshot after every entry a server delivers
(``snapshot_every=1``, the dissertation's advice while developing: every
follower that lags gets an InstallSnapshot), and after every 7. All along,
the harness checks Election Safety, State Machine Safety and Leader
Completeness at every election and every delivery, snapshots included (see
part6/harness.py); each test adds what its scenario means: in the end every
server agrees on one log, holding every value a client saw committed.

Each test draws its faults from a random generator whose seed it prints, as
``RAFT_SEED=...``; a failure's message repeats it. To replay a run::

    RAFT_SEED=1234 python -m pytest tests/part6/test_chaos.py -k figure8

The seed fixes the test's own decisions (what to submit, whom to crash,
how long to wait); the servers' timers and the thread scheduling stay
random, so a replay follows the same script, not the same interleaving.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from part6.harness import CHECK_DEADLINE, POLL_INTERVAL, Harness, sleep_ms
from part6.server import Server

ELECTION_TIMEOUT_MS = 300
"""The longest election timeout of a server (part6.raft draws 150-300 ms)."""

ONE_DEADLINE = 10.0
"""Seconds ``one`` may take to get a command committed, retries included."""

ATTEMPT_DEADLINE = 2.0
"""Seconds ``one`` waits for one submission to be committed before it tries
again: the leader it went to may have lost its leadership, and the command."""


@pytest.fixture(params=[1, 7], ids=["snapshot_every=1", "snapshot_every=7"])
def snapshot_every(request: pytest.FixtureRequest) -> int:
    """How often each server of a cluster is snapshotted: every test runs
    with both."""
    value: int = request.param
    return value


@contextlib.contextmanager
def cluster(n: int, seed: int, snapshot_every: int) -> Iterator[Harness]:
    """A Harness of ``n`` servers, each snapshotted every ``snapshot_every``
    entries, whose failures tell how to replay the run."""
    try:
        with Harness(n, snapshot_every) as h:
            yield h
    except BaseException as e:
        e.add_note(f"replay with RAFT_SEED={seed}")
        raise


def n_committed(h: Harness, index: int) -> tuple[int, Any]:
    """How many servers have delivered ``index``, and its command (None if
    no server has). The harness checks that they all delivered the same."""
    delivered = h.deliveries_at(index)
    return len(delivered), delivered[0].command if delivered else None


def one(h: Harness, command: Any, expected: int) -> int:
    """Get ``command`` committed by at least ``expected`` servers and return
    its index: submit it to the first connected server that takes it and
    wait for its delivery; again if that leader lost it, until ONE_DEADLINE."""
    deadline = time.monotonic() + ONE_DEADLINE
    while time.monotonic() < deadline:
        index = -1
        for i in range(h.n):
            if h.connected[i] and (index := h.submit_to_server(i, command)) != -1:
                break
        if index == -1:
            time.sleep(POLL_INTERVAL)
            continue
        attempt_deadline = min(deadline, time.monotonic() + ATTEMPT_DEADLINE)
        while time.monotonic() < attempt_deadline:
            count, delivered = n_committed(h, index)
            if count and delivered != command:
                break  # another leader's entry took the index: try again
            if count >= expected:
                return index
            time.sleep(POLL_INTERVAL)
    raise AssertionError(
        f"{command!r} not committed by {expected} servers in {ONE_DEADLINE}s; "
        f"commands delivered: {h.delivered_commands()}"
    )


def final_log(h: Harness) -> list[Any]:
    """The commands every server agrees on, once check_committed passed."""
    return [entry.command for entry in h.delivered(0)]


class Client(threading.Thread):
    """Submits values to whichever server leads, until stopped, and keeps
    those it saw committed: delivered at the index it was given.

    Like a real client it gives up on a value after a while (its leader may
    have lost it) and goes on with the next one.
    """

    def __init__(self, h: Harness, client_id: int, stop: threading.Event) -> None:
        super().__init__(name=f"chaos-client-{client_id}")
        self.h = h
        self.client_id = client_id
        self.stop = stop
        self.committed: list[str] = []

    def run(self) -> None:
        """Submit values one after the other until stopped."""
        for n in itertools.count():
            if self.stop.is_set():
                return
            value = f"c{self.client_id}-{n}"
            # Try every server: any may think it leads.
            index = -1
            for i in range(self.h.n):
                if (accepted := self.h.submit_to_server(i, value)) != -1:
                    index = accepted
            if index == -1:
                # Nobody leads: wait a bit (each client its own time).
                self.stop.wait((79 + 17 * self.client_id) / 1000)
            elif self.was_committed(value, index):
                self.committed.append(value)

    def was_committed(self, value: str, index: int) -> bool:
        """Wait a little for ``index`` to be delivered; True if it was, with
        ``value`` there."""
        for wait_ms in (10, 20, 50, 100, 200):
            count, command = n_committed(self.h, index)
            if count:
                return bool(command == value)
            time.sleep(wait_ms / 1000)
        return False


@contextlib.contextmanager
def clients(h: Harness, count: int) -> Iterator[list[Client]]:
    """Run ``count`` clients against ``h``; they stop when the block ends."""
    stop = threading.Event()
    running = [Client(h, i, stop) for i in range(count)]
    for client in running:
        client.start()
    try:
        yield running
    finally:
        stop.set()
        for client in running:
            client.join()


def check_client_values_in(h: Harness, running: list[Client]) -> None:
    """Every value a client saw committed is in the final agreed log."""
    final = set(final_log(h))
    seen = [value for client in running for value in client.committed]
    missing = [value for value in seen if value not in final]
    assert not missing, f"committed values lost from the final log: {missing}"


# --- Figure 8 -----------------------------------------------------------------

FIGURE8_ITERATIONS = 800
"""Rounds of submit, wait, crash or cut off the leader: leaders by the
dozen come and go."""


def test_figure8(seed: int, snapshot_every: int) -> None:
    """Figure 8 of the paper: entries of an old term, stored on a majority,
    can still be overwritten. Submit to whoever leads, then crash it at
    once, with high probability, before it can commit; restart servers to
    keep a majority up. Leaders come and go, each with its own entries."""
    rng = random.Random(seed)
    with cluster(5, seed, snapshot_every) as h:
        one(h, "first", 1)
        up = 5
        for iteration in range(FIGURE8_ITERATIONS):
            leader = -1
            for i in range(5):
                if h.alive[i] and h.submit_to_server(i, iteration) != -1:
                    leader = i
            if rng.random() < 0.1:
                sleep_ms(rng.randrange(ELECTION_TIMEOUT_MS // 2))
            else:
                sleep_ms(rng.randrange(13))
            if leader != -1:
                h.crash_peer(leader)
                up -= 1
            if up < 3:
                i = rng.randrange(5)
                if not h.alive[i]:
                    h.restart_peer(i)
                    up += 1

        for i in range(5):
            if not h.alive[i]:
                h.restart_peer(i)
        one(h, "last", 5)
        h.check_committed_n("last", 5)


def test_figure8_unreliable(
    seed: int, snapshot_every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Figure 8 over a network that loses and delays messages, partitioning
    leaders away instead of crashing them: they live on, and keep taking
    commands that can never be committed."""
    monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    rng = random.Random(seed)
    with cluster(5, seed, snapshot_every) as h:
        one(h, "first", 1)
        up = 5
        for iteration in range(FIGURE8_ITERATIONS):
            leader = -1
            for i in range(5):
                if h.submit_to_server(i, iteration) != -1 and h.connected[i]:
                    leader = i
            if rng.random() < 0.1:
                sleep_ms(rng.randrange(ELECTION_TIMEOUT_MS // 2))
            else:
                sleep_ms(rng.randrange(13))
            if leader != -1 and rng.random() < 0.5:
                h.disconnect_peer(leader)
                up -= 1
            if up < 3:
                i = rng.randrange(5)
                if not h.connected[i]:
                    h.reconnect_peer(i)
                    up += 1

        for i in range(5):
            if not h.connected[i]:
                h.reconnect_peer(i)
        one(h, "last", 5)
        h.check_committed_n("last", 5)


# --- Churn --------------------------------------------------------------------


def churn(h: Harness, rng: random.Random, iterations: int) -> None:
    """Crash, restart, disconnect and reconnect servers at random."""
    for _ in range(iterations):
        if rng.random() < 0.2:
            i = rng.randrange(h.n)
            if h.alive[i]:
                h.disconnect_peer(i)
        if rng.random() < 0.5:
            i = rng.randrange(h.n)
            if h.alive[i]:
                h.reconnect_peer(i)
            else:
                h.restart_peer(i)
        if rng.random() < 0.2:
            i = rng.randrange(h.n)
            if h.alive[i]:
                h.crash_peer(i)
        # Often enough that the cluster rarely settles between two
        # changes, rarely enough that it often catches up.
        sleep_ms(ELECTION_TIMEOUT_MS * 7 // 10)


def heal(h: Harness) -> None:
    """Restart every crashed server and reconnect every server."""
    for i in range(h.n):
        if not h.alive[i]:
            h.restart_peer(i)
        elif not h.connected[i]:
            h.reconnect_peer(i)


@pytest.mark.parametrize("unreliable", [False, True], ids=["reliable", "unreliable"])
def test_churn(
    seed: int, snapshot_every: int, monkeypatch: pytest.MonkeyPatch, unreliable: bool
) -> None:
    """Three clients keep submitting while servers crash, restart, leave and
    come back. A value a client saw committed must survive all of it."""
    if unreliable:
        monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    rng = random.Random(seed)
    with cluster(5, seed, snapshot_every) as h:
        with clients(h, 3) as running:
            churn(h, rng, 40)
            sleep_ms(ELECTION_TIMEOUT_MS)
            monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)
            heal(h)
        sleep_ms(ELECTION_TIMEOUT_MS)

        one(h, "last", 5)
        h.check_committed_n("last", 5)
        assert any(client.committed for client in running), "nothing committed"
        check_client_values_in(h, running)


# --- Backup -------------------------------------------------------------------

MAX_REJECTIONS = 10
"""How many AppendEntries a new leader may see refused by one follower
while it backs up over that follower's divergent suffix (30 to 60 entries).
With the conflict hints (ConflictTerm, ConflictIndex) it takes one or two
per term of the suffix; backing up one entry per refusal would take 30 or
more."""


class Rejections:
    """Counts the AppendEntries refused for a log mismatch, by (leader,
    follower, term): those whose reply fails in the request's own term."""

    def __init__(self, h: Harness) -> None:
        self.mu = threading.Lock()
        self.counts: dict[tuple[int, int, int], int] = {}
        for server in h.cluster:
            self.watch(server)

    def watch(self, server: Server) -> None:
        """Wrap ``server.call`` to count its refused AppendEntries."""
        call = server.call

        def counted_call(peer_id: int, service_method: str, args: Any) -> Any:
            reply = call(peer_id, service_method, args)
            refused = service_method.endswith("AppendEntries") and not reply.success
            if refused and reply.term == args.term:
                key = (server.server_id, peer_id, args.term)
                with self.mu:
                    self.counts[key] = self.counts.get(key, 0) + 1
            return reply

        server.call = counted_call  # type: ignore[method-assign]

    def in_term(self, term: int) -> dict[tuple[int, int], int]:
        """The refusals of ``term``, by (leader, follower)."""
        with self.mu:
            return {(a, b): n for (a, b, t), n in self.counts.items() if t == term}


def settled_leader(h: Harness, min_term: int) -> int:
    """Wait until one connected server leads, in a term of ``min_term`` or
    later, and no connected server has a later term; return that term.

    A server that was alone in a partition comes back with a term inflated
    by its failed elections, and unseats the leader (there is no PreVote);
    a leader of an older term is a stale one that came back. Neither is the
    leader that will do the work.
    """
    deadline = time.monotonic() + CHECK_DEADLINE
    while True:
        reports = [h.cluster[i].cm.report() for i in range(h.n) if h.connected[i]]
        leader_terms = [term for _, term, is_leader in reports if is_leader]
        top_term = max([min_term, *(term for _, term, _ in reports)])
        if len(leader_terms) == 1 and leader_terms[0] >= top_term:
            return leader_terms[0]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no settled leader of term >= {min_term} after "
                f"{CHECK_DEADLINE}s: (id, term, leads) = {reports}"
            )
        time.sleep(POLL_INTERVAL)


def one_after_backup(
    h: Harness, rejections: Rejections, command: Any, expected: int, min_term: int
) -> int:
    """``one``, once the connected servers settle on a leader of
    ``min_term`` or later, which must back up over the followers' divergent
    suffixes in a few round trips; return that leader's term."""
    term = settled_leader(h, min_term)
    one(h, command, expected)
    refused = rejections.in_term(term)
    print(f"{command!r} committed in term {term}; refused AppendEntries: {refused}")
    assert all(n <= MAX_REJECTIONS for n in refused.values()), (
        f"the leader of term {term} was refused {refused} AppendEntries by "
        f"(leader, follower): it backs up over a divergent suffix too slowly"
    )
    return term


def test_backup(seed: int, snapshot_every: int) -> None:
    """A leader and a follower, cut off, take commands that cannot commit;
    the other three commit as many of their own meanwhile. When the two
    come back, a leader must replace their divergent suffix quickly. Then
    the same again with the roles changed."""
    rng = random.Random(seed)
    lost1, lost2, kept1, kept2 = (
        [f"{name}-{k}" for k in range(rng.randint(30, 60))]
        for name in ("lost1", "lost2", "kept1", "kept2")
    )
    with cluster(5, seed, snapshot_every) as h:
        rejections = Rejections(h)
        one(h, "first", 5)

        # Put the leader and one follower in a minority partition.
        leader1, _ = h.check_single_leader()
        follower1 = rng.choice([i for i in range(5) if i != leader1])
        majority = [i for i in range(5) if i not in (leader1, follower1)]
        for i in majority:
            h.disconnect_peer(i)
        for command in lost1:
            h.submit_to_server(leader1, command)
        sleep_ms(ELECTION_TIMEOUT_MS // 2)

        # The majority side elects a leader and commits commands.
        h.disconnect_peer(leader1)
        h.disconnect_peer(follower1)
        for i in majority:
            h.reconnect_peer(i)
        for command in kept1:
            one(h, command, 3)

        # Now its leader and one follower are cut off, and take commands
        # that cannot commit.
        leader2, term2 = h.check_single_leader()
        other = rng.choice([i for i in majority if i != leader2])
        h.disconnect_peer(other)
        for command in lost2:
            h.submit_to_server(leader2, command)
        sleep_ms(ELECTION_TIMEOUT_MS // 2)

        # The first minority comes back with `other`, whose log is the most
        # up to date of the three: it leads, and replaces their suffix.
        for i in range(5):
            h.disconnect_peer(i)
        for i in (leader1, follower1, other):
            h.reconnect_peer(i)
        term3 = one_after_backup(h, rejections, kept2[0], 3, term2 + 1)
        for command in kept2[1:]:
            one(h, command, 3)

        # Everyone: the second minority's suffix is replaced too.
        for i in range(5):
            if not h.connected[i]:
                h.reconnect_peer(i)
        one_after_backup(h, rejections, "last", 5, term3)
        h.check_committed_n("last", 5)
        final = final_log(h)
        assert not set(lost1 + lost2) & set(final), "an uncommitted entry won"
        assert set(kept1 + kept2) <= set(final), "a committed entry was lost"


# --- Persistence --------------------------------------------------------------


ROUNDS = 10
"""How many times the persistence torture crashes and restarts everyone."""


def test_persistence_torture(seed: int, snapshot_every: int) -> None:
    """All servers crash, one after the other, and restart, again and again,
    while clients submit. Terms, votes and logs come back from storage;
    the volatile commit index does not, yet nothing committed is lost and
    the restarted cluster commits again."""
    rng = random.Random(seed)
    with cluster(5, seed, snapshot_every) as h:
        with clients(h, 2) as running:
            for r in range(ROUNDS):
                sleep_ms(rng.randint(50, 400))
                for i in rng.sample(range(5), 5):
                    h.crash_peer(i)
                    sleep_ms(rng.randrange(30))
                sleep_ms(rng.randrange(ELECTION_TIMEOUT_MS))
                for i in rng.sample(range(5), 5):
                    h.restart_peer(i)
                    sleep_ms(rng.randrange(30))
                one(h, f"round-{r}", 5)

        h.check_committed_n(f"round-{ROUNDS - 1}", 5)
        assert all(f"round-{r}" in final_log(h) for r in range(ROUNDS))
        check_client_values_in(h, running)
