"""Run a cluster of three key/value services in this process.

    python -m part6kv [--data-dir DIR] [--max-raft-state BYTES] [--port PORT]
                      [--verbose]

It prints one line ``service N: http://127.0.0.1:PORT/`` per service and,
each time a new leader is elected, ``leader: service N (term T)``; state
changes (``becomes Leader``...) are logged on standard error. Send it
requests with ``curl`` or ``python -m part6kv.kvclient``. Ctrl-C stops it.

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
import fcntl
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from part6.storage import MapStorage

from .kvservice import KVService, SizedStorage
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
    storages: list[SizedStorage], max_raft_state: int, port: int, stop: threading.Event
) -> None:
    """Run the cluster on ``storages`` until ``stop`` is set. Raises
    ClusterError if a service fails."""
    ready = threading.Event()
    ids = range(len(storages))
    services = [
        KVService(i, [p for p in ids if p != i], storages[i], ready, max_raft_state)
        for i in ids
    ]
    try:
        for service in services:
            for peer in services:
                if peer is not service:
                    service.connect_to_raft_peer(peer.id, peer.get_raft_listen_addr())
        ready.set()
        for service in services:
            addr = service.serve_http(port + service.id if port else 0)
            print(f"service {service.id}: http://{addr}/", flush=True)
        leader: tuple[int, int] | None = None
        while not stop.wait(WATCH_INTERVAL):
            for service in services:
                error = service.failure()
                if error is not None:
                    message = describe_failure(service.id, error)
                    raise ClusterError(f"{message}; the cluster stopped")
                _, term, is_leader = service.raft_server.cm.report()
                if is_leader and (service.id, term) != leader:
                    leader = service.id, term
                    print(f"leader: service {service.id} (term {term})", flush=True)
    finally:
        for service in services:
            service.disconnect_from_all_raft_peers()
        for service in services:
            service.shutdown()


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
            storages = [MapStorage() for _ in range(CLUSTER_SIZE)]
            run(list(storages), args.max_raft_state, args.port, stop)
        else:
            run_on_disk(args.data_dir, args.max_raft_state, args.port, stop)
    except BlockingIOError:
        print(f"error: {args.data_dir} is in use by another cluster", file=sys.stderr)
        return 1
    except (OSError, StorageError, ClusterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run_on_disk(
    data_dir: Path, max_raft_state: int, port: int, stop: threading.Event
) -> None:
    """Run the cluster on storage in ``data_dir`` until ``stop`` is set."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with locked(data_dir):
        check_stage(data_dir)
        storages = [
            SqliteStorage(data_dir / f"service-{i}.sqlite") for i in range(CLUSTER_SIZE)
        ]
        try:
            run(list(storages), max_raft_state, port, stop)
        finally:
            for storage in storages:
                storage.close()


if __name__ == "__main__":
    sys.exit(main())
