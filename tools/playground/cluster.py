"""The cluster the playground runs: a stage's own test harness, driven by
the user's actions and read for the page.

The playground builds the stage's ``Harness(n)`` (``part3/harness.py``),
the very cluster the stage's tests run, and does each action through it:
``crash_peer``, ``restart_peer``, ``disconnect_peer``, ``submit_to_server``,
which log the ``[TEST]`` lines the visualizer marks, and in part6
``snapshot``. The harness has no partitions; the playground makes one by
cutting every link between the two groups, in both directions, and its
``reconnect`` (also the one a restart calls) connects a server only to its
own group while the partition lasts.

A snapshot (part6) is the one the harness's own ``snapshot_every`` takes:
the commands the server delivered so far, up to the last of them
(``encode_snapshot``). So the harness's safety checks stay exact, and a
follower that installs it from its leader delivers those commands.

Everything here runs in the simulated run, on the playground's driver
thread, except ``view`` and ``problem``, which only read: they are called
when no simulated thread runs, and must never call into the simulation
(no lock, no ``report()``): they read the fields as they are.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from .session import Action
from .stages import Stage


class StageCM(Protocol):
    """What the playground reads of a stage's ConsensusModule."""

    state: object
    """A CMState, whose ``str()`` is Follower, Candidate, Leader or Dead."""
    current_term: int
    voted_for: int
    log: list[Any]
    """LogEntry(command, term) objects."""
    commit_index: int
    next_index: dict[int, int]
    match_index: dict[int, int]
    election_reset_event: float


class SnapshotCM(StageCM, Protocol):
    """What the playground reads besides of a ConsensusModule of part6."""

    last_included_index: int
    """The base of the log: the last index its snapshot covers (-1: none)."""
    last_included_term: int


class StageServer(Protocol):
    """What the playground uses of a stage's Server."""

    peer_clients: dict[int, object]
    """The server's outgoing connections, by peer."""

    @property
    def cm(self) -> StageCM: ...

    def get_listen_addr(self) -> object: ...

    def connect_to_peer(self, peer_id: int, addr: Any) -> None: ...

    def disconnect_peer(self, peer_id: int) -> None: ...


class StageHarness(Protocol):
    """What the playground uses of a stage's Harness (``crash_peer``,
    ``restart_peer`` and ``alive`` only from part3 on, ``snapshot`` only in
    part6)."""

    n: int
    cluster: list[StageServer]
    connected: list[bool]
    mu: Any
    """Guards ``commits``."""
    commits: list[list[Any]]
    """The CommitEntry objects each server delivered, from index 0 (since
    its last restart)."""
    found: list[object]
    """The safety violations the harness found."""
    reconnect_peer: Callable[[int], None]

    def disconnect_peer(self, id: int) -> None: ...

    def crash_peer(self, id: int) -> None: ...

    def restart_peer(self, id: int) -> None: ...

    def submit_to_server(self, server_id: int, command: Any) -> int | bool: ...

    def snapshot(self, i: int, index: int, data: bytes) -> None: ...

    def tlog(self, message: str) -> None: ...

    def shutdown(self) -> None: ...


class Cluster:
    """A stage's harness of ``n`` servers, and the partition, if any."""

    def __init__(self, stage: Stage, n: int) -> None:
        module = importlib.import_module(f"{stage.name}.harness")
        self.stage = stage
        self.module = module
        self.harness: StageHarness = module.Harness(n)
        # A restart reconnects the server through this method: shadowing
        # it on the instance (as the harness does with a CM's start_leader)
        # keeps a restarted server inside its group.
        self.harness.reconnect_peer = self.reconnect
        self.groups: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        # The terms of the entries known to be committed, by index: an
        # entry is, once some server's commit index has reached it.
        self.committed: list[int] = []

    # --- Acting (on the driver thread, in the run) --------------------------

    def apply(self, action: Action) -> str:
        """Do ``action`` (one of CLUSTER_ACTIONS, checked by ``problem``);
        return what came of it, in a few words."""
        h = self.harness
        server = -1 if action.server is None else action.server
        if action.do == "crash":
            h.crash_peer(server)
        elif action.do == "restart":
            h.restart_peer(server)
        elif action.do == "disconnect":
            h.disconnect_peer(server)
        elif action.do == "reconnect":
            self.reconnect(server)
        elif action.do == "partition":
            assert action.groups is not None
            self.partition(action.groups)
        elif action.do == "heal":
            self.heal()
        elif action.do == "submit":
            return self.submit(server, action.command)
        elif action.do == "snapshot":
            return self.snapshot(server)
        else:
            raise ValueError(f"{action.do} is not an action on the cluster")
        return "done"

    def submit(self, server: int, command: object) -> str:
        """Submit ``command`` to ``server``; say what it did with it."""
        taken = self.harness.submit_to_server(server, command)
        if taken is False or taken == -1:
            return f"refused: server {server} is not the leader"
        if taken is True:  # part2 tells only that the leader took it
            return f"server {server} appended it to its log"
        return f"server {server} appended it at index {taken}"

    def snapshot(self, server: int) -> str:
        """Have ``server`` snapshot every command it delivered, as the
        harness's ``snapshot_every`` does; say up to where."""
        h = self.harness
        with h.mu:
            delivered = list(h.commits[server])
        last = delivered[-1]
        h.tlog(f"Snapshot {server} at index {last.index}")
        h.snapshot(server, last.index, self.module.encode_snapshot(delivered))
        return (
            f"server {server}'s snapshot covers its log up to index "
            f"{last.index} (term {last.term})"
        )

    def reconnect(self, id: int) -> None:
        """Connect server ``id`` again, in both directions, to every
        connected server of its group (to all of them when there is no
        partition): the harness's ``reconnect_peer``, partition-aware."""
        h = self.harness
        if not self.alive()[id]:
            raise ValueError(f"server {id} is crashed: restart it")
        h.tlog(f"Reconnect {id}")
        for j in range(h.n):
            if j != id and h.connected[j] and self.same_side(id, j):
                h.cluster[id].connect_to_peer(j, h.cluster[j].get_listen_addr())
                h.cluster[j].connect_to_peer(id, h.cluster[id].get_listen_addr())
        h.connected[id] = True

    def partition(self, groups: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
        """Cut every link between the two groups, in both directions."""
        h = self.harness
        first, second = groups
        h.tlog(f"Partition {' '.join(map(str, first))} | {' '.join(map(str, second))}")
        self.groups = groups
        for i in first:
            for j in second:
                h.cluster[i].disconnect_peer(j)
                h.cluster[j].disconnect_peer(i)

    def heal(self) -> None:
        """End the partition: connect the two groups again, between the
        servers that are connected."""
        h = self.harness
        assert self.groups is not None
        first, second = self.groups
        h.tlog("Heal the partition")
        self.groups = None
        for i in first:
            for j in second:
                if h.connected[i] and h.connected[j]:
                    h.cluster[i].connect_to_peer(j, h.cluster[j].get_listen_addr())
                    h.cluster[j].connect_to_peer(i, h.cluster[i].get_listen_addr())

    def shutdown(self) -> None:
        """Shut every server down; their threads end."""
        self.harness.shutdown()

    # --- Reading (between two runs of the simulated threads) ---------------

    def same_side(self, i: int, j: int) -> bool:
        """Whether servers ``i`` and ``j`` are on one side of the partition."""
        return self.groups is None or any(
            i in group and j in group for group in self.groups
        )

    def alive(self) -> list[bool]:
        """Which servers run (part2's never crash)."""
        alive: list[bool] | None = getattr(self.harness, "alive", None)
        return alive if alive is not None else [True] * self.harness.n

    def problem(self, action: Action) -> str | None:
        """Why ``action`` cannot be done now, if it cannot."""
        if action.do == "partition" and self.groups is not None:
            return "the cluster is partitioned already: heal it first"
        if action.do == "heal" and self.groups is None:
            return "the cluster is not partitioned"
        s = action.server
        if s is None:
            return None
        alive = self.alive()[s]
        connected = self.harness.connected[s]
        if action.do == "restart":
            return f"server {s} is running: crash it first" if alive else None
        if not alive:
            if action.do == "crash":
                return f"server {s} is crashed already"
            if action.do == "reconnect":
                return f"server {s} is crashed: restart it (that reconnects it)"
            return f"server {s} is crashed"
        if action.do == "snapshot":
            return self.snapshot_problem(s)
        if action.do == "disconnect" and not connected:
            return f"server {s} is disconnected already"
        if action.do == "reconnect" and connected:
            return f"server {s} is connected already"
        return None

    def snapshot_problem(self, s: int) -> str | None:
        """Why running server ``s`` cannot take a snapshot now, if it
        cannot: a snapshot must cover something new it delivered."""
        delivered = len(self.harness.commits[s])
        if delivered == 0:
            return f"server {s} has delivered nothing yet: nothing to snapshot"
        base = self.base(self.harness.cluster[s].cm)[0]
        if base >= delivered - 1:
            return (
                f"server {s}'s snapshot already covers all it delivered "
                f"(up to index {base})"
            )
        return None

    def view(self, timeouts: dict[int, float]) -> dict[str, Any]:
        """The cluster as the page draws it: each server's state, term,
        vote, log, commit index, next/match indices (a leader's), links and
        election timer (when it was last reset, and its timeout from
        ``timeouts``), the entries known to be committed, the partition,
        and the safety violations the harness found. A log is shown from
        index 0, also when a snapshot (part6) covers its first entries:
        ``base`` and ``baseTerm`` say up to where (-1: no snapshot)."""
        h = self.harness
        alive = self.alive()
        servers = []
        for i, server in enumerate(h.cluster):
            cm = server.cm
            state = str(cm.state)[0]
            log = self.whole_log(cm)
            self.note_committed(log, cm.commit_index)
            base, base_term = self.base(cm)
            timer = None
            if state in "FC" and alive[i] and i in timeouts:
                timer = [cm.election_reset_event, timeouts[i]]
            peers = []
            if state == "L":
                peers = [
                    [p, cm.next_index[p], cm.match_index[p]]
                    for p in sorted(cm.next_index)
                ]
            servers.append(
                {
                    "id": i,
                    "state": state,
                    "term": cm.current_term,
                    "vote": cm.voted_for,
                    "log": [entry.term for entry in log],
                    "commands": [str(entry.command) for entry in log],
                    "base": base,
                    "baseTerm": base_term,
                    "commit": cm.commit_index,
                    "peers": peers,
                    "alive": alive[i],
                    "connected": h.connected[i],
                    "links": sorted(server.peer_clients),
                    "timer": timer,
                }
            )
        return {
            "servers": servers,
            "committed": list(self.committed),
            "partition": None
            if self.groups is None
            else [list(g) for g in self.groups],
            "violations": [str(v) for v in h.found],
        }

    def whole_log(self, cm: StageCM) -> Sequence[Any]:
        """``cm``'s log from index 0: in part6, the entries its snapshot
        covers, then its log (the harness's ``whole_log``, which expects the
        CM's lock held: here no thread runs that could change them)."""
        if not self.stage.snapshots:
            return cm.log
        log: Sequence[Any] = self.module.whole_log(cm)
        return log

    def base(self, cm: StageCM) -> tuple[int, int]:
        """The last index ``cm``'s snapshot covers and its term; (-1, -1)
        without a snapshot, and in a stage that has none."""
        if not self.stage.snapshots:
            return -1, -1
        compacting = cast(SnapshotCM, cm)
        return compacting.last_included_index, compacting.last_included_term

    def note_committed(self, log: Sequence[Any], commit_index: int) -> None:
        """Extend the entries known to be committed with those of ``log``
        (LogEntry objects from index 0) up to ``commit_index``."""
        for index in range(len(self.committed), commit_index + 1):
            self.committed.append(log[index].term)
