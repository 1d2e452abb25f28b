"""Tests of ``python -m part6kv``: a cluster in a process of its own,
stopped with Ctrl-C or killed, and restarted on its data directory, which
stays bounded."""

from __future__ import annotations

import contextlib
import functools
import os
import pty
import queue
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import pytest

from part6.raft import (
    AppendEntriesArgs,
    CommitEntry,
    ConsensusModule,
    LogEntry,
    SnapshotEntry,
)
from part6kv.__main__ import HELP
from part6kv.kvclient import KVClient, KVTimeoutError
from part6kv.sqlitestorage import SqliteStorage
from tests.part6kv.helpers import run_concurrently

ROOT = Path(__file__).resolve().parents[2]

START_DEADLINE = 20.0
"""Seconds a cluster process may take to print its addresses and leader."""

SERVICE_LINE = re.compile(r"service (\d): http://(127\.0\.0\.1:\d+)/\Z")
LEADER_LINE = re.compile(r"leader: service (\d) \(term (\d+)\)\Z")


class Cluster:
    """``python -m part6kv ARGS`` (or another ``stage``) in a subprocess,
    once it printed the addresses of its services and its first leader.
    Its standard input is a pipe (``command`` writes to it), unless
    ``stdin`` says otherwise; standard error goes to a file in
    ``tmp_path``. Leaving the ``with`` block kills it if it still runs."""

    def __init__(
        self,
        tmp_path: Path,
        *args: str,
        stage: str = "part6kv",
        stdin: int = subprocess.PIPE,
    ) -> None:
        self.stderr_path = tmp_path / f"stderr-{random.getrandbits(32)}.txt"
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", stage, *args],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        # A thread reads standard output, so that waiting for a line can
        # have a deadline; it ends when the process does.
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self.read_stdout)
        self.reader.start()
        self.stdout: list[str] = []
        self.leaders: list[tuple[int, int]] = []
        """Each leader the cluster printed, as (service, term)."""

    def read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self) -> str:
        """The next line of standard output; fail at its end or after
        START_DEADLINE seconds."""
        try:
            line = self.lines.get(timeout=START_DEADLINE)
        except queue.Empty:
            raise AssertionError(f"no output after {START_DEADLINE}s") from None
        if line is None:
            raise AssertionError(f"the cluster exited: {self.stderr()}")
        self.stdout.append(line)
        return line

    def start(self) -> list[str]:
        """Wait for the service lines and the leader line; return the
        services' addresses."""
        addrs = []
        for i in range(3):
            match = SERVICE_LINE.match(self.next_line())
            assert match, self.stdout
            assert int(match[1]) == i
            addrs.append(match[2])
        self.next_leader()
        return addrs

    def next_leader(self) -> tuple[int, int]:
        """Wait for the next line, which must say who leads; return the
        leader and its term."""
        assert self.is_leader_line(self.next_line()), self.stdout
        return self.leaders[-1]

    def answer(self) -> str:
        """The next line of standard output that does not say who leads
        (a leader may be elected at any moment)."""
        while self.is_leader_line(line := self.next_line()):
            pass
        return line

    def is_leader_line(self, line: str) -> bool:
        """Whether ``line`` says who leads; if so, note it in ``leaders``."""
        match = LEADER_LINE.match(line)
        if match:
            self.leaders.append((int(match[1]), int(match[2])))
        return bool(match)

    def command(self, line: str) -> None:
        """Type ``line`` on the cluster's standard input."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def status(self) -> list[str]:
        """The answer to ``status``: a line per service."""
        self.command("status")
        return [self.answer() for _ in range(3)]

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, signum: int) -> int:
        """Send ``signum``; wait for the process to end and return its exit
        status."""
        self.process.send_signal(signum)
        status = self.process.wait(timeout=START_DEADLINE)
        self.reader.join()
        return status

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join()
        assert self.process.stdout is not None
        self.process.stdout.close()
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()


def test_ctrl_c_stops_the_cluster(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        addrs = cluster.start()
        c = KVClient(addrs)
        assert c.put("k", "v") == ("", False)
        assert c.get("k") == ("v", True)
        c.close()

        assert cluster.stop(signal.SIGINT) == 0
    stderr = cluster.stderr()
    assert "Traceback" not in stderr
    assert "becomes Leader" in stderr
    for addr in addrs:
        assert_refuses(addr)


def assert_refuses(addr: str) -> None:
    """Nothing listens at ``addr`` (``HOST:PORT``)."""
    host, _, port = addr.rpartition(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5).close()


# --- Commands on standard input ---------------------------------------------

STATUS_LINE = re.compile(
    r"service (\d) \(http://(127\.0\.0\.1:\d+)/\): (?:crashed|(Follower|Candidate"
    r"|Leader), term (\d+), commit index (-1|\d+), log length (\d+)"
    r"(?: after a snapshot to index (\d+))?(, disconnected)?)\Z"
)


def test_failover_by_hand(tmp_path: Path) -> None:
    # The README's failover: crash the leader, see another win, use it,
    # and restart the old one on its port. Then crash and restart every
    # service: the data comes back from their storage alone.
    with Cluster(tmp_path) as cluster:
        addrs = cluster.start()
        old, term = cluster.leaders[-1]
        c = KVClient(addrs)
        c.put("k", "v")

        cluster.command(f"crash {old}")
        assert cluster.answer() == f"service {old} crashed"
        assert_refuses(addrs[old])
        new, new_term = cluster.leaders[-1]
        while new == old:
            new, new_term = cluster.next_leader()
        assert new_term > term
        assert c.get("k", timeout=10) == ("v", True)
        cluster.command(f"restart {old}")
        assert cluster.answer() == f"service {old} restarted: http://{addrs[old]}/"

        for i in range(3):
            cluster.command(f"crash {i}")
            assert cluster.answer() == f"service {i} crashed"
        assert cluster.status() == [
            f"service {i} (http://{addr}/): crashed" for i, addr in enumerate(addrs)
        ]
        for i in range(3):
            cluster.command(f"restart {i}")
            assert cluster.answer() == f"service {i} restarted: http://{addrs[i]}/"
        assert c.get("k", timeout=10) == ("v", True)
        c.close()
        assert cluster.stop(signal.SIGINT) == 0
    assert "Traceback" not in cluster.stderr()
    for addr in addrs:
        assert_refuses(addr)
    terms = [term for _, term in cluster.leaders]
    assert terms == sorted(set(terms)), cluster.leaders


def test_status_shows_the_snapshot_a_log_follows(tmp_path: Path) -> None:
    # With --max-raft-state 0 a service snapshots after every entry it
    # applies: its log is empty after a snapshot to its commit index.
    with Cluster(tmp_path, "--max-raft-state", "0") as cluster:
        addrs = cluster.start()
        c = KVClient(addrs)
        for i in range(3):
            c.put("k", f"v{i}")
        deadline = time.monotonic() + START_DEADLINE
        while True:
            lines = [STATUS_LINE.match(line) for line in cluster.status()]
            assert all(lines), lines
            if all(m[6] == "0" and m[7] == m[5] != "-1" for m in lines if m):
                break
            assert time.monotonic() < deadline, [m[0] for m in lines if m]
            time.sleep(0.1)
        c.close()
        assert cluster.stop(signal.SIGINT) == 0


def test_disconnect_and_reconnect_by_hand(tmp_path: Path) -> None:
    # A leader cut off from the others still believes it leads its term,
    # while they elect another in a later term: only that one is printed.
    # Reconnected, the old leader learns the new term.
    with Cluster(tmp_path) as cluster:
        addrs = cluster.start()
        old, term = cluster.leaders[-1]
        cluster.command(f"disconnect {old}")
        assert cluster.answer() == f"service {old} disconnected from the others"
        new, new_term = cluster.leaders[-1]
        while new == old:
            new, new_term = cluster.next_leader()
        assert new_term > term
        status = [STATUS_LINE.match(line) for line in cluster.status()]
        for i, match in enumerate(status):
            assert match, cluster.stdout
            assert (int(match[1]), match[2]) == (i, addrs[i])
            assert bool(match[8]) == (i == old), match[0]

        cluster.command(f"reconnect {old}")
        assert cluster.answer() == f"service {old} reconnected to the others"
        deadline = time.monotonic() + START_DEADLINE
        while True:
            match = STATUS_LINE.match(cluster.status()[old])
            assert match, cluster.stdout
            if match[8] is None and int(match[4]) >= new_term:
                break
            assert time.monotonic() < deadline, cluster.stdout
            time.sleep(0.1)
        assert cluster.stop(signal.SIGINT) == 0
    assert "Traceback" not in cluster.stderr()
    terms = [term for _, term in cluster.leaders]
    assert terms == sorted(set(terms)), cluster.leaders


def test_commands_it_cannot_carry_out_are_answered(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        addrs = cluster.start()
        usage = "usage: crash N, where N is a service id, 0 to 2"
        for command, answer in [
            ("frob 1", "unknown command 'frob': type help for the commands"),
            ("crash 3", "no service 3 in a cluster of 3"),
            ("crash", usage),
            ("crash one", usage),
            ("crash -1", usage),
            ("crash 1 2", usage),
            ("status please", "status takes no argument"),
            ("restart 1", "service 1 is running: crash it first"),
            ("reconnect 1", "service 1 is connected already"),
            ("crash 1", "service 1 crashed"),
            ("crash 1", "service 1 is crashed already"),
            ("disconnect 1", "service 1 is crashed"),
            ("reconnect 1", "service 1 is crashed: restart it"),
        ]:
            cluster.command(command)
            assert cluster.answer() == answer, command
        host, _, port = addrs[1].rpartition(":")
        with socket.socket() as stray:
            stray.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            stray.bind((host, int(port)))
            stray.listen()
            cluster.command("restart 1")
            assert cluster.answer() == (
                f"service 1 cannot restart: cannot serve HTTP on {addrs[1]}: "
                "Address already in use"
            )
        for command, answer in [
            ("restart 1", f"service 1 restarted: http://{addrs[1]}/"),
            ("disconnect 2", "service 2 disconnected from the others"),
            ("disconnect 2", "service 2 is disconnected already"),
            ("reconnect 2", "service 2 reconnected to the others"),
        ]:
            cluster.command(command)
            assert cluster.answer() == answer, command
        cluster.command("")  # no answer
        cluster.command("help")
        assert [cluster.answer() for _ in range(6)] == HELP.splitlines()
        assert all(STATUS_LINE.match(line) for line in cluster.status())
        assert cluster.stop(signal.SIGINT) == 0
    assert "Traceback" not in cluster.stderr()


@pytest.mark.parametrize("stdin", ["closed", "/dev/null"])
def test_end_of_input_does_not_stop_the_cluster(tmp_path: Path, stdin: str) -> None:
    with Cluster(
        tmp_path,
        stdin=subprocess.PIPE if stdin == "closed" else subprocess.DEVNULL,
    ) as cluster:
        addrs = cluster.start()
        if cluster.process.stdin is not None:
            cluster.process.stdin.close()
        time.sleep(1.0)  # it might stop meanwhile: a fixed wait
        assert cluster.process.poll() is None
        c = KVClient(addrs)
        assert c.get("k", timeout=10) == ("", False)
        c.close()
        assert cluster.stop(signal.SIGINT) == 0
    assert "Traceback" not in cluster.stderr()


def test_commands_from_a_terminal(tmp_path: Path) -> None:
    # Standard input is a terminal, though not the process's controlling
    # terminal (as in an IDE's console): it reads commands from it, and
    # says how to get help. Ctrl-D does not end them.
    controller, terminal = pty.openpty()
    try:
        with Cluster(tmp_path, stdin=terminal) as cluster:
            cluster.start()
            os.write(controller, b"status\n")
            assert all(STATUS_LINE.match(cluster.answer()) for _ in range(3))
            os.write(controller, b"\x04")  # Ctrl-D
            os.write(controller, b"help\n")
            assert cluster.answer() == HELP.splitlines()[0]
            assert cluster.stop(signal.SIGINT) == 0
    finally:
        os.close(controller)
        os.close(terminal)
    assert "type help for the commands\n" in cluster.stderr()
    assert "Traceback" not in cluster.stderr()


def test_data_dir_keeps_the_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"  # created, parents too
    with Cluster(tmp_path, "--data-dir", str(data_dir)) as cluster:
        c = KVClient(cluster.start())
        c.put("k", "v")
        c.append("k", "w")
        c.close()
        assert cluster.stop(signal.SIGTERM) == 0
    assert (data_dir / "stage").read_text() == "part6kv\n"

    with Cluster(tmp_path, "--data-dir", str(data_dir)) as cluster:
        c = KVClient(cluster.start())
        assert c.get("k") == ("vw", True)
        c.close()
        assert cluster.stop(signal.SIGINT) == 0
    assert "Traceback" not in cluster.stderr()


def test_killed_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    # A client appends numbered tokens to one key, until the cluster is
    # killed (SIGKILL) at a random moment; then the cluster restarts on its
    # data directory. Every token acknowledged must be there, once and in
    # order; tokens never acknowledged may be there too, also once and in
    # order. An append whose answer is slow is resent, and lands once all
    # the same.
    data_dir = tmp_path / "data"
    acknowledged: list[int] = []
    attempted = 0
    for _ in range(3):
        with Cluster(tmp_path, "--data-dir", str(data_dir)) as cluster:
            c = KVClient(cluster.start())
            value, _ = c.get("log", timeout=10)
            check_tokens(value, acknowledged, attempted)

            killer = threading.Timer(random.uniform(0.05, 0.5), cluster.process.kill)
            killer.start()
            while True:
                token = attempted
                attempted += 1
                try:
                    c.append("log", f"{token},")
                except KVTimeoutError:
                    break  # killed: the outcome is unknown
                acknowledged.append(token)
            killer.join()
            cluster.process.wait()
            c.close()

    with Cluster(tmp_path, "--data-dir", str(data_dir)) as cluster:
        c = KVClient(cluster.start())
        value, _ = c.get("log", timeout=10)
        check_tokens(value, acknowledged, attempted)
        c.close()
        assert cluster.stop(signal.SIGINT) == 0
    assert acknowledged, "no append was acknowledged"


def check_tokens(value: str, acknowledged: list[int], attempted: int) -> None:
    """``value`` holds ``token,`` for increasing tokens below ``attempted``,
    every acknowledged one among them."""
    tokens = [int(token) for token in value.split(",")[:-1]]
    assert value == "".join(f"{token}," for token in tokens)
    assert tokens == sorted(set(tokens)), f"a token twice or out of order: {tokens}"
    assert all(token < attempted for token in tokens), tokens
    lost = sorted(set(acknowledged) - set(tokens))
    assert not lost, f"acknowledged tokens lost: {lost}"


def test_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Cluster(tmp_path, "--data-dir", str(data_dir)) as first:
        first.start()
        with Cluster(tmp_path, "--data-dir", str(data_dir)) as second:
            assert second.process.wait(timeout=START_DEADLINE) == 1
            assert "in use" in second.stderr()
            assert "Traceback" not in second.stderr()
        assert first.stop(signal.SIGINT) == 0


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as stray:
        stray.bind(("127.0.0.1", 0))
        stray.listen()
        port = stray.getsockname()[1]
        # Service 0 would serve on the stray's port.
        with Cluster(tmp_path, "--port", str(port)) as cluster:
            assert cluster.process.wait(timeout=START_DEADLINE) == 1
    assert "in use" in cluster.stderr()
    assert "Traceback" not in cluster.stderr()


def run_once(tmp_path: Path, data_dir: Path, stage: str = "part6kv") -> None:
    """Start a cluster of ``stage`` on ``data_dir``, and stop it."""
    with Cluster(tmp_path, "--data-dir", str(data_dir), stage=stage) as cluster:
        cluster.start()
        assert cluster.stop(signal.SIGINT) == 0


def refusal(tmp_path: Path, data_dir: Path) -> str:
    """Start a cluster on ``data_dir``, which must refuse to run (status 1);
    return what it wrote on standard error."""
    with Cluster(tmp_path, "--data-dir", str(data_dir)) as cluster:
        assert cluster.process.wait(timeout=START_DEADLINE) == 1
    return cluster.stderr()


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_once(tmp_path, data_dir)
    (data_dir / "service-1.sqlite").write_text("not a database\n" * 100)
    assert refusal(tmp_path, data_dir) == (
        f"error: opening {data_dir / 'service-1.sqlite'} failed: "
        "file is not a database\n"
    )


def test_data_dir_of_another_stage_is_refused(tmp_path: Path) -> None:
    # Its log holds another stage's commands, which this stage is not
    # built to apply.
    data_dir = tmp_path / "data"
    run_once(tmp_path, data_dir, stage="part4kv")
    assert refusal(tmp_path, data_dir) == (
        f"error: {data_dir} was written by 'part4kv', and part6kv cannot read "
        "it: give part6kv another directory\n"
    )


def test_data_dir_that_no_stage_marked_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_once(tmp_path, data_dir)
    # As the data of an older version, which did not mark its directory.
    (data_dir / "stage").unlink()
    assert refusal(tmp_path, data_dir) == (
        f"error: {data_dir} holds data that no stage marked as its own (there "
        f"is no {data_dir / 'stage'}): give part6kv another directory\n"
    )


def plant_entry(path: Path, service_id: int, command: object) -> None:
    """Put ``command`` in the log kept at ``path`` by service
    ``service_id``, as a leader of term 1 would."""
    storage = SqliteStorage(path)
    peer_ids = [p for p in range(3) if p != service_id]
    commits: queue.Queue[CommitEntry | SnapshotEntry] = queue.Queue()
    cm = ConsensusModule(
        service_id, peer_ids, None, storage, threading.Event(), commits
    )
    reply = cm.append_entries(
        AppendEntriesArgs(
            term=1,
            leader_id=peer_ids[0],
            prev_log_index=-1,
            prev_log_term=-1,
            entries=[LogEntry(command, 1)],
            leader_commit=-1,
        )
    )
    assert reply.success
    cm.stop()
    storage.close()


def test_updater_failure_stops_the_cluster(tmp_path: Path) -> None:
    # Every service's log starts with an entry that no updater can apply,
    # as in a log written by another program. The first request commits
    # it: every service stops, and the cluster exits with the error.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "stage").write_text("part6kv\n")
    for i in range(3):
        plant_entry(data_dir / f"service-{i}.sqlite", i, "not a command")
    with Cluster(tmp_path, "--data-dir", str(data_dir)) as cluster:
        c = KVClient(cluster.start())
        with pytest.raises(KVTimeoutError):
            c.put("k", "v")
        c.close()
        assert cluster.process.wait(timeout=START_DEADLINE) == 1
    stderr = cluster.stderr()
    assert "the updater failed\nTraceback" in stderr
    assert re.fullmatch(
        r"error: service \d failed: AttributeError: 'str' object has no "
        r"attribute 'request'; the cluster stopped",
        stderr.splitlines()[-1],
    ), stderr


def test_failed_write_stops_the_cluster(tmp_path: Path) -> None:
    # As on a disk that fills up: once the cluster runs, no file of its
    # process may grow by more than 64 KiB. Writes to the log fail soon;
    # the cluster stops with an error that names the file. Restarted with
    # room to write, it has every acknowledged write back.
    data_dir = tmp_path / "data"
    value = "x" * 8192
    acknowledged: list[str] = []
    with Cluster(tmp_path, "--data-dir", str(data_dir)) as cluster:
        c = KVClient(cluster.start())
        limit = max(f.stat().st_size for f in data_dir.iterdir()) + 64 * 1024
        resource.prlimit(cluster.process.pid, resource.RLIMIT_FSIZE, (limit, limit))
        for i in range(3 * limit // len(value)):
            if cluster.process.poll() is not None:
                break
            try:
                c.put(f"k{i}", value)
            except KVTimeoutError:
                continue  # the outcome is unknown
            acknowledged.append(f"k{i}")
        c.close()
        assert cluster.process.wait(timeout=START_DEADLINE) == 1
    stderr = cluster.stderr()
    assert "Traceback" not in stderr
    assert "becomes Dead: storage write failed" in stderr
    assert re.fullmatch(
        rf"error: a write to {re.escape(str(data_dir))}/service-\d\.sqlite "
        r"failed: .+; the cluster stopped",
        stderr.splitlines()[-1],
    ), stderr

    with Cluster(tmp_path, "--data-dir", str(data_dir)) as cluster:
        c = KVClient(cluster.start())
        for key in acknowledged:
            assert c.get(key, timeout=10) == (value, True)
        c.close()
        assert cluster.stop(signal.SIGINT) == 0


DIRECTORY_BOUND = 1024 * 1024
"""What the directory of a stopped part6kv cluster stays under, with the
default --max-raft-state (64 KiB): each of its three SQLite files holds
at most that many bytes of log, the entries of one more round of
AppendEntries and a snapshot of a few kilobytes, in pages that SQLite
fills to half or more."""

ROUND_PUTS = 1_500
"""Puts in each round of the bounded directory's test: 20,000 would take
over a minute per round on two cores, and 1,500 add over a megabyte to
part5kv's directory already."""

ENTRY_BYTES = 200
"""Less than what a put's log entry takes in part5kv's storage."""


def put_round(tmp_path: Path, data_dir: Path, stage: str) -> int:
    """Start ``python -m stage`` on ``data_dir``, have 10 clients put
    ROUND_PUTS values on 10 keys, stop it with Ctrl-C, and return the size
    of the directory."""
    with Cluster(tmp_path, "--data-dir", str(data_dir), stage=stage) as cluster:
        addrs = cluster.start()

        def put(key: int) -> None:
            # part5kv's HTTP API is part6kv's: one client does for both.
            c = KVClient(addrs)
            for i in range(ROUND_PUTS // 10):
                c.put(f"k{key}", f"value {i}", timeout=10)
            c.close()

        run_concurrently([functools.partial(put, key) for key in range(10)])
        assert cluster.stop(signal.SIGINT) == 0
    return sum(path.stat().st_size for path in data_dir.iterdir())


@pytest.mark.timeout(180)
def test_data_dir_stays_bounded_where_part5kv_grows(tmp_path: Path) -> None:
    # Two rounds of puts, each on a cluster started again on the directory
    # the round before left (part6kv's restores its snapshots).
    compacted = [put_round(tmp_path, tmp_path / "part6kv", "part6kv") for _ in range(2)]
    growing = [put_round(tmp_path, tmp_path / "part5kv", "part5kv") for _ in range(2)]
    assert all(size < DIRECTORY_BOUND for size in compacted), compacted
    # part5kv's log keeps every put, on each of the three services.
    assert growing[1] - growing[0] > 3 * ROUND_PUTS * ENTRY_BYTES, growing


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "70000"],
        ["--port", "x"],
        ["--data-dir"],
        ["extra"],
        ["--max-raft-state", "-1"],
        ["--max-raft-state", "lots"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "part6kv", *args],
        capture_output=True,
        text=True,
        timeout=START_DEADLINE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr
