"""Run a cluster of three key/value services in this process, and crash
them by hand.

    python -m part6kv [--data-dir DIR] [--max-raft-state BYTES] [--port PORT]
                      [--verbose]

It prints one line ``service N: http://127.0.0.1:PORT/`` per service and,
each time a new leader is elected, ``leader: service N (term T)``; state
changes (``becomes Leader``...) are logged on standard error. Send it
requests with ``curl`` or ``python -m part6kv.kvclient``. Ctrl-C stops it.

The cluster is the tests' (``harness.Harness``), and commands typed on
standard input inject their faults: ``crash N``, ``restart N``,
``disconnect N``, ``reconnect N``; ``status`` shows each service's state,
term, commit index and log length, and ``help`` lists the commands. Each
gets its answer on standard output; a command it cannot carry out gets a
line that says why, and the cluster goes on. The end of the input (a
closed pipe, ``< /dev/null``) ends the commands, not the cluster.

With ``--data-dir DIR`` (created if missing) the Raft state of each service
is kept in ``DIR/service-N.sqlite``, so the cluster restarted on the same
directory has its data back, also after the process was killed. ``DIR/stage``
says which stage wrote the data: a directory of another stage is refused,
since its log holds commands this stage cannot apply.

Each service takes a snapshot of its data and sessions when the Raft state
it keeps (its log, mostly) outgrows ``--max-raft-state`` bytes, and its
Raft server deletes the entries the snapshot covers: the data directory
stays bounded however many requests the cluster serves.

If a service fails for good (a write to its storage failed, or its updater
raised), the cluster stops, and the process exits with status 1 and a
one-line error; so does it on a bad data directory or a port in use.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import fcntl
import logging
import os
import re
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from part6.storage import MapStorage

from .api import brief
from .harness import Harness
from .kvservice import SizedStorage
from .sqlitestorage import SqliteStorage, StorageError

CLUSTER_SIZE = 3
"""How many services the cluster has."""

STAGE = "part6kv"
"""What this stage writes in a data directory's ``stage`` file."""

WATCH_INTERVAL = 0.05
"""Seconds between two looks for a new leader."""

MAX_RAFT_STATE = 64 * 1024
"""The default of ``--max-raft-state``: the bytes of Raft state (besides
the snapshot) a service keeps before it takes a snapshot. Its Raft server
deletes the entries a snapshot covers while it holds its lock: a few
hundred entries each time keep that well within an election timeout."""

MAX_COMMAND = 1024
"""The longest command line read, in bytes; what follows is another line."""

HELP = """\
crash N        crash service N: it stops, its port refuses connections
restart N      restart crashed service N, on its storage and its port
disconnect N   cut service N off from the others (clients still reach it)
reconnect N    connect service N to the others again
status         each service's state, term, commit index and log length
help           this list"""


def add_raft_time(record: logging.LogRecord) -> bool:
    """Give a log record a ``raft_time`` field, ``HH:MM:SS.ffffff``: the
    time format the project's tools read (logging's own stops at
    milliseconds)."""
    moment = datetime.datetime.fromtimestamp(record.created)
    record.raft_time = moment.strftime("%H:%M:%S.%f")
    return True


class ClusterError(Exception):
    """The cluster cannot run, or stopped because a service failed; the
    message says why, in one line."""


def configure_logging(verbose: bool) -> None:
    """Log to standard error: every line with ``verbose``, else only the
    servers' state changes, cut to a readable length (a new leader logs its
    whole log), and errors with their traceback."""
    handler = logging.StreamHandler()
    handler.addFilter(add_raft_time)
    if verbose:
        handler.setFormatter(logging.Formatter("%(raft_time)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(raft_time)s %(message).160s"))
        handler.addFilter(
            lambda record: (
                record.levelno >= logging.ERROR or "becomes " in record.getMessage()
            )
        )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold the lock of ``data_dir``: two clusters on one directory would
    overwrite each other's Raft state. Raises BlockingIOError if another
    process holds it."""
    with open(data_dir / "lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


def check_stage(data_dir: Path) -> None:
    """Make sure that ``data_dir`` holds this stage's data, or none yet: then
    mark it as this stage's. Raises ClusterError for another stage's
    data, or data that no stage marked."""
    marker = data_dir / "stage"
    if marker.exists():
        stage = marker.read_text(errors="replace").strip()
        if stage != STAGE:
            raise ClusterError(
                f"{data_dir} was written by {stage!r}, and {STAGE} cannot read "
                f"it: give {STAGE} another directory"
            )
        return
    if any(data_dir.glob("service-*")):
        raise ClusterError(
            f"{data_dir} holds data that no stage marked as its own (there is "
            f"no {marker}): give {STAGE} another directory"
        )
    # Written whole or not at all: a crash leaves no half-written marker.
    new_marker = data_dir / "stage.new"
    new_marker.write_text(f"{STAGE}\n")
    new_marker.replace(marker)


def describe_failure(service_id: int, error: Exception) -> str:
    """Why service ``service_id`` failed, in one line."""
    if isinstance(error, StorageError):  # it names the file
        return str(error)
    return f"service {service_id} failed: {type(error).__name__}: {error}"


def run(
    storages: Sequence[SizedStorage],
    max_raft_state: int,
    port: int,
    stop: threading.Event,
    commands: TextIO | None,
) -> None:
    """Run the cluster on ``storages`` until ``stop`` is set, and carry out
    the commands that come on ``commands``. Raises ClusterError if a
    service fails."""
    with Harness(len(storages), storages, port, max_raft_state) as h:
        for i, addr in enumerate(h.addrs):
            print(f"service {i}: http://{addr}/", flush=True)
        reader = CommandReader(commands)
        if reader.terminal:
            print("type help for the commands", file=sys.stderr, flush=True)
        leader_term = -1
        while not stop.is_set():
            for line in reader.read(WATCH_INTERVAL, stop):
                answer = execute(h, line)
                if answer:
                    print(answer, flush=True)
            for i, service in enumerate(h.services):
                error = service.failure() if h.alive[i] else None
                if error is not None:
                    message = describe_failure(i, error)
                    raise ClusterError(f"{message}; the cluster stopped")
            leader_term = announce_leader(h, leader_term)


def announce_leader(h: Harness, last_term: int) -> int:
    """Print the leader of the latest term if that term is after
    ``last_term``; return the term of the last leader printed.

    A leader cut off from the others still believes it leads its old term
    while another wins a later one: only the later one is news.
    """
    leaders = []
    for service in h.services:  # a crashed service is Dead, not a leader
        _, term, is_leader = service.raft_server.cm.report()
        if is_leader:
            leaders.append((term, service.id))
    if leaders and max(leaders)[0] > last_term:
        term, leader = max(leaders)
        print(f"leader: service {leader} (term {term})", flush=True)
        return term
    return last_term


class CommandReader:
    """The lines that come on a stream (standard input), read without ever
    holding up the cluster.

    The end of the input ends the commands, not the cluster; at a terminal
    (Ctrl-D) it ends nothing, since more may be typed. A cluster started in
    the background of a shell (``&``) leaves the terminal to the shell: it
    reads only while it is in the foreground.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self.fd: int | None = None
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # no file behind it
                self.fd = stream.fileno()
        self.terminal = self.fd is not None and os.isatty(self.fd)
        self.pending = b""

    def read(self, timeout: float, stop: threading.Event) -> list[str]:
        """The whole lines that came within ``timeout`` seconds (or until
        ``stop`` is set)."""
        if self.fd is None or self.in_background():
            stop.wait(timeout)
            return []
        try:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            data = os.read(self.fd, 4096) if ready else b""
        except OSError as error:
            if error.errno != errno.EIO:  # EIO: sent to the background
                self.fd = None  # nothing more will come
            stop.wait(timeout)
            return []
        if ready and not data:  # the end of the input
            if self.terminal:
                stop.wait(timeout)  # a terminal hung up would say so at once
            else:
                self.fd = None
            data = b"\n"  # the last line may lack its newline
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        if len(self.pending) > MAX_COMMAND:
            lines.append(self.pending)
            self.pending = b""
        return [line.decode(errors="replace") for line in lines]

    def in_background(self) -> bool:
        """Whether the stream is the terminal of a shell that runs this
        process in the background: reading it would stop the process."""
        if not self.terminal:
            return False
        assert self.fd is not None
        try:
            return os.tcgetpgrp(self.fd) != os.getpgrp()
        except OSError:  # a terminal, but not this process's own
            return False


def execute(h: Harness, line: str) -> str:
    """Carry out one command line; return the answer to print ("" for an
    empty line)."""
    words = line.split()
    if not words:
        return ""
    name, args = words[0], words[1:]
    if name in ("help", "status"):
        if args:
            return f"{name} takes no argument"
        return HELP if name == "help" else status(h)
    fault = FAULTS.get(name)
    if fault is None:
        return f"unknown command {brief(name)}: type help for the commands"
    if len(args) != 1 or not re.fullmatch("[0-9]+", args[0]):
        return f"usage: {name} N, where N is a service id, 0 to {h.n - 1}"
    try:
        return fault(h, int(args[0]))
    except ValueError as error:  # no such service, or not in that state
        return str(error)


def status(h: Harness) -> str:
    """One line per service: its address, and its Raft server's state,
    term, commit index and log length (and the snapshot the log follows),
    or that it is crashed."""
    lines = []
    for i, service in enumerate(h.services):
        line = f"service {i} (http://{h.addrs[i]}/): "
        if not h.alive[i]:
            lines.append(line + "crashed")
            continue
        cm = service.raft_server.cm
        with cm.mu:
            line += (
                f"{cm.state}, term {cm.current_term}, commit index "
                f"{cm.commit_index}, log length {len(cm.log)}"
            )
            if cm.last_included_index >= 0:
                line += f" after a snapshot to index {cm.last_included_index}"
        if not h.connected[i]:
            line += ", disconnected"
        lines.append(line)
    return "\n".join(lines)


def crash(h: Harness, i: int) -> str:
    """Crash service ``i``: its storage survives, its port is closed."""
    h.check_id(i)
    if not h.alive[i]:
        raise ValueError(f"service {i} is crashed already")
    h.crash_service(i)
    return f"service {i} crashed"


def restart(h: Harness, i: int) -> str:
    """Restart crashed service ``i`` on its storage and its port."""
    h.check_id(i)
    if h.alive[i]:
        raise ValueError(f"service {i} is running: crash it first")
    try:
        h.restart_service(i)
    except OSError as error:  # another process took its port
        raise ValueError(f"service {i} cannot restart: {error.strerror}") from None
    return f"service {i} restarted: http://{h.addrs[i]}/"


def disconnect(h: Harness, i: int) -> str:
    """Cut service ``i`` off from the others, both ways."""
    h.check_id(i)
    if not h.alive[i]:
        raise ValueError(f"service {i} is crashed")
    if not h.connected[i]:
        raise ValueError(f"service {i} is disconnected already")
    h.disconnect_service_from_peers(i)
    return f"service {i} disconnected from the others"


def reconnect(h: Harness, i: int) -> str:
    """Connect service ``i`` to the others again."""
    h.check_id(i)
    if not h.alive[i]:
        raise ValueError(f"service {i} is crashed: restart it")
    if h.connected[i]:
        raise ValueError(f"service {i} is connected already")
    h.reconnect_service_to_peers(i)
    return f"service {i} reconnected to the others"


FAULTS: dict[str, Callable[[Harness, int], str]] = {
    "crash": crash,
    "restart": restart,
    "disconnect": disconnect,
    "reconnect": reconnect,
}
"""The commands that take a service id, and what each does."""


def base_port(text: str) -> int:
    """An argparse type: a port such that the cluster's ports all exist."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= port <= 65536 - CLUSTER_SIZE:
        raise argparse.ArgumentTypeError(
            f"{text} is not between 1 and {65536 - CLUSTER_SIZE}"
        )
    return port


def byte_count(text: str) -> int:
    """An argparse type: a number of bytes, 0 or more."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"{text} is below 0")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cluster until SIGINT or SIGTERM; return the exit status."""
    stop = threading.Event()
    # First thing: Ctrl-C must stop the cluster cleanly, not raise
    # KeyboardInterrupt in the middle of whatever runs.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stop.set())
    # Sent to the background just as it reads the terminal, the process
    # gets an error (EIO) instead of being stopped.
    signal.signal(signal.SIGTTIN, signal.SIG_IGN)

    parser = argparse.ArgumentParser(
        prog="python -m part6kv",
        description=f"Run a cluster of {CLUSTER_SIZE} key/value services "
        "in this process, until Ctrl-C.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="keep the Raft state in DIR (created if missing), so that a "
        "restarted cluster has its data back; default: in memory",
    )
    parser.add_argument(
        "--max-raft-state",
        type=byte_count,
        default=MAX_RAFT_STATE,
        metavar="BYTES",
        help="take a snapshot when a service's Raft state (its log, mostly) "
        "outgrows BYTES (default: %(default)s, 64 KiB)",
    )
    parser.add_argument(
        "--port",
        type=base_port,
        default=0,
        help="serve service N on PORT+N (default: free ports)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log everything the services and their Raft servers do",
    )
    args = parser.parse_args(argv)
    configure_logging(args.verbose)

    try:
        if args.data_dir is None:
            memory = [MapStorage() for _ in range(CLUSTER_SIZE)]
            run(memory, args.max_raft_state, args.port, stop, sys.stdin)
        else:
            run_on_disk(args.data_dir, args.max_raft_state, args.port, stop, sys.stdin)
    except BlockingIOError:
        print(f"error: {args.data_dir} is in use by another cluster", file=sys.stderr)
        return 1
    except (OSError, StorageError, ClusterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run_on_disk(
    data_dir: Path,
    max_raft_state: int,
    port: int,
    stop: threading.Event,
    commands: TextIO | None,
) -> None:
    """Run the cluster on storage in ``data_dir`` until ``stop`` is set."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with locked(data_dir):
        check_stage(data_dir)
        storages = [
            SqliteStorage(data_dir / f"service-{i}.sqlite") for i in range(CLUSTER_SIZE)
        ]
        try:
            run(storages, max_raft_state, port, stop, commands)
        finally:
            for storage in storages:
                storage.close()


if __name__ == "__main__":
    sys.exit(main())
