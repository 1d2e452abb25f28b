"""A client of the key/value service: it finds the leader on its own.

A client knows the addresses of the services, not which one leads. It
sends each request to the service that answered last (at first, the first
address). A follower answers NotLeader; a crashed service refuses the
connection; a leader cut off from the others never answers in time. In
each case the client moves on to the next address and sends the request
again, pausing briefly after a whole round without a leader (an election
is probably under way), until the call's deadline.

A slow answer is not always a dead service: a leader whose disk takes tens
of milliseconds a write commits slowly. So an attempt that times out
doubles how long the next one waits (up to MAX_ATTEMPT_TIMEOUT), and an
answer that comes within a quarter of that halves it again (down to
``attempt_timeout``). Each attempt and each call has one deadline, which
holds whatever a service does, even one that sends its answer a byte at a
time. The client keeps its connection to the service that answered last
open for the next call.

Resending is safe: the first attempt may have been applied all the same,
but every request carries the client's ``client_id`` and a ``request_id``
drawn once per call, every attempt sends the same ids, and the services
apply a request once however many copies of it they get (see
``sessions``); a copy gets the response of the one execution. So the
client also resends after FailedCommit or Timeout, until the deadline. It
raises KVDuplicateRequestError on DuplicateRequest and
KVSessionExpiredError on SessionExpired, and does not resend those.

As a program::

    python -m part6kv.kvclient ADDR[,ADDR...] get KEY
    python -m part6kv.kvclient ADDR[,ADDR...] put KEY VALUE
    python -m part6kv.kvclient ADDR[,ADDR...] cas KEY OLD NEW
    python -m part6kv.kvclient ADDR[,ADDR...] append KEY VALUE

prints ``{"found": bool, "value": str}`` (the value read, or the value
before the operation) and exits 0; 1 on a timeout, a duplicate request or
an expired session; 2 on a usage error; 130 on Ctrl-C. A cas that did not
swap exits 0 too, and says why on standard error, in one line, as every
error does.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import logging
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import replace
from http import HTTPStatus

from .api import (
    MAX_BODY,
    DeadlineReader,
    Reply,
    Request,
    Status,
    brief,
    decode_json,
    route,
)

log = logging.getLogger(__name__)

ROUND_BACKOFF = 0.05
"""Seconds to pause after a whole round of addresses without a leader."""

MAX_ATTEMPT_TIMEOUT = 2.0
"""The longest an attempt waits, however slow the answers have been: more
than a service's commit timeout (1 s), after which it answers Timeout."""

ATTEMPT_ERRORS = (OSError, ValueError)
"""What a failed attempt raises: no connection, no answer in time, or an
answer that is not from a service of this API (a stray process)."""

MAX_LINE = 65536
"""The longest line of an answer's head (status line or header), in bytes."""

MAX_HEADERS = 100
"""The most header lines an answer may have."""

client_ids = itertools.count(1)
"""Numbers the clients of this process, for their log lines."""


class KVTimeoutError(TimeoutError):
    """No leader answered before the call's deadline."""


class KVDuplicateRequestError(Exception):
    """The service answered DuplicateRequest: a later request of the client
    was applied already, so this one was not. A client that sends one
    request at a time never gets it, unless another uses its client_id."""


class KVSessionExpiredError(Exception):
    """The service answered SessionExpired: the client made no request for
    so long that its session expired. This request was not applied; an
    earlier attempt of it may have been. The client's next call starts a
    new session."""


def new_client_id() -> int:
    """A random 63-bit client_id of at least 1: unique across processes
    with overwhelming odds, and unaffected by seeding ``random``."""
    return secrets.randbelow((1 << 63) - 1) + 1


class KVClient:
    """A client of the services at ``service_addrs`` (``"HOST:PORT"``
    each). Each attempt waits at least ``attempt_timeout`` seconds for a
    service to answer, longer after attempts that timed out. Calls are
    serialized, and no thread is started. ``close()`` closes the connection
    it keeps between calls.

    Serialized calls are what the services' sessions need: a session holds
    only the client's last request, so a client must not send a request
    before the one before it is answered (see ``sessions``).
    """

    def __init__(self, service_addrs: list[str], attempt_timeout: float = 0.1) -> None:
        if not service_addrs:
            raise ValueError("a client needs at least one service address")
        for addr in service_addrs:
            check_addr(addr)
        self.addrs = list(service_addrs)
        self.attempt_timeout = attempt_timeout
        # How long the next attempt waits for an answer (see send).
        self.patience = attempt_timeout
        # The connection to the service that answered last, if it is open.
        self.connection: Connection | None = None
        # The index in addrs of the service we believe leads.
        self.assumed_leader = 0
        self.id = next(client_ids)
        self.mu = threading.Lock()
        self.start_session()

    def start_session(self) -> None:
        """Take a new client_id; the request ids start again from 1."""
        self.client_id = new_client_id()
        self.last_request_id = 0
        self.clientlog("client_id %d", self.client_id)

    def get(self, key: str, timeout: float = 2.0) -> tuple[str, bool]:
        """Return ``(value, found)`` for ``key``; ``("", False)`` if absent."""
        return self.send(Request("get", key), timeout)

    def put(self, key: str, value: str, timeout: float = 2.0) -> tuple[str, bool]:
        """Store ``value`` under ``key``; return ``(prev_value, found)``."""
        return self.send(Request("put", key, value), timeout)

    def cas(
        self, key: str, compare_value: str, value: str, timeout: float = 2.0
    ) -> tuple[str, bool]:
        """Store ``value`` under ``key`` if the key holds ``compare_value``;
        return ``(prev_value, found)``. A CAS never creates a key."""
        return self.send(Request("cas", key, value, compare_value), timeout)

    def append(self, key: str, value: str, timeout: float = 2.0) -> tuple[str, bool]:
        """Append ``value`` to the value of ``key`` (absent: ``""``); return
        ``(prev_value, found)``."""
        return self.send(Request("append", key, value), timeout)

    def send(self, request: Request, timeout: float) -> tuple[str, bool]:
        """Send ``request`` until a leader applies it, or ``timeout``
        seconds pass (KVTimeoutError); return the reply's value and found.

        Every attempt sends the same request id, drawn for this call.
        Raises KVDuplicateRequestError on DuplicateRequest,
        KVSessionExpiredError on SessionExpired, and ValueError for a
        request larger than a service accepts.
        """
        with self.mu:
            # Drawn under mu: the requests go out in the order of their ids.
            self.last_request_id += 1
            request = replace(
                request, client_id=self.client_id, request_id=self.last_request_id
            )
            body = json.dumps(request.to_json()).encode()
            if len(body) > MAX_BODY:
                raise ValueError(f"the request has {len(body)} bytes, over {MAX_BODY}")
            deadline = time.monotonic() + timeout
            misses = 0  # attempts in a row that found no leader
            outcomes: dict[str, str] = {}  # what each service did last
            while (remaining := deadline - time.monotonic()) > 0:
                addr = self.addrs[self.assumed_leader]
                wait = min(self.patience, remaining)
                self.clientlog("sending %r to %s", request, addr)
                sent = time.monotonic()
                try:
                    reply = self.post(addr, request.op, body, wait)
                except ATTEMPT_ERRORS as error:
                    self.clientlog("%s: %s", addr, describe(error))
                    outcomes[addr] = outcome(error)
                    if isinstance(error, TimeoutError) and wait == self.patience:
                        # Perhaps its commits are slow: wait longer next time.
                        self.patience = min(2 * wait, MAX_ATTEMPT_TIMEOUT)
                else:
                    self.clientlog(
                        "%s: %s, found=%s, value=%s",
                        addr,
                        reply.status,
                        reply.found,
                        brief(reply.value),
                    )
                    outcomes[addr] = f"{reply.status} from"
                    if reply.status == Status.OK:
                        if time.monotonic() - sent < self.patience / 4:
                            self.patience = max(self.patience / 2, self.attempt_timeout)
                        return reply.value, reply.found
                    if reply.status == Status.DUPLICATE_REQUEST:
                        raise KVDuplicateRequestError(
                            f"{request!r} is older than a request applied already"
                        )
                    if reply.status == Status.SESSION_EXPIRED:
                        self.start_session()
                        raise KVSessionExpiredError(
                            f"the session of client {request.client_id} expired: "
                            f"{request!r} was not applied"
                        )
                    # NotLeader, FailedCommit or Timeout: not applied, or
                    # maybe applied; either way the same request may go again.
                self.assumed_leader = (self.assumed_leader + 1) % len(self.addrs)
                misses += 1
                if misses % len(self.addrs) == 0:
                    time.sleep(
                        max(0.0, min(ROUND_BACKOFF, deadline - time.monotonic()))
                    )
            raise KVTimeoutError(timeout_message(request, timeout, outcomes))

    def post(self, addr: str, op: str, body: bytes, timeout: float) -> Reply:
        """POST ``body`` to the route of ``op`` at ``addr`` and return the
        reply, within ``timeout`` seconds whatever the service does.

        It goes on the connection kept from the call before, if that went to
        ``addr``. A service closes a connection that stays idle for a while;
        if it did that before our request got there, no answer comes, and
        the request goes once more, on a new connection.
        """
        deadline = time.monotonic() + timeout
        kept, self.connection = self.connection, None
        if kept is not None and kept.addr == addr:
            try:
                return self.exchange(kept, op, body, deadline)
            except ConnectionError as error:
                self.clientlog("%s: %s; reconnecting", addr, describe(error))
        elif kept is not None:
            kept.close()
        return self.exchange(Connection(addr, deadline), op, body, deadline)

    def exchange(
        self, connection: Connection, op: str, body: bytes, deadline: float
    ) -> Reply:
        """Send a request on ``connection`` and return the reply; keep the
        connection for the next call if the service keeps it open too."""
        try:
            status, data, keep_open = connection.post(route(op), body, deadline)
            if status != HTTPStatus.OK:
                raise ValueError(f"HTTP {status}: {data[:200]!r}")
            reply = Reply.from_json(op, decode_json(data))
        except BaseException:
            # Whatever the service sends now would be taken for the answer
            # to the next request.
            connection.close()
            raise
        if keep_open:
            self.connection = connection
        else:
            connection.close()
        return reply

    def close(self) -> None:
        """Close the connection kept for the next call (a call after this
        opens a new one)."""
        with self.mu:
            if self.connection is not None:
                self.connection.close()
                self.connection = None

    def clientlog(self, message: str, *args: object) -> None:
        """Log a debug line as ``[client id] message``."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[client %d] " + message, self.id, *args)


class Connection:
    """An HTTP/1.1 connection to the service at ``addr``, open by
    ``deadline``, that can carry one request after another."""

    def __init__(self, addr: str, deadline: float) -> None:
        self.addr = addr
        parts = urllib.parse.urlsplit(f"//{addr}")
        self.sock = socket.create_connection(
            (parts.hostname, parts.port), timeout=time_left(deadline)
        )
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.input = DeadlineReader(self.sock)
        self.rfile = io.BufferedReader(self.input)

    def post(self, path: str, body: bytes, deadline: float) -> tuple[int, bytes, bool]:
        """POST ``body`` to ``path`` and read the answer, all by
        ``deadline`` (else TimeoutError). Return its status, its body and
        whether the connection stays open. ConnectionError if the service
        closed it before any answer; ValueError for an answer that is not
        HTTP/1.x with a Content-Length."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.addr}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.sock.settimeout(time_left(deadline))
        self.sock.sendall(head.encode() + body)
        self.input.deadline = deadline
        status_line = self.rfile.readline(MAX_LINE)
        if not status_line:
            raise ConnectionError("closed without an answer")
        fields = status_line.split(None, 2)
        if not (
            len(fields) >= 2
            and fields[0].startswith(b"HTTP/1.")
            and fields[1].isdigit()
        ):
            raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
        version, status = fields[0], int(fields[1])
        headers = {}
        for _ in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_LINE)
            if line in (b"\r\n", b"\n"):
                break
            name, colon, value = line.partition(b":")
            if not (colon and line.endswith(b"\n")):
                raise ValueError(f"not an HTTP header: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ValueError(f"more than {MAX_HEADERS} headers")
        length = headers.get(b"content-length", b"")
        if not (length.isdigit() and len(length) < 19):
            raise ValueError(f"bad Content-Length: {length[:80]!r}")
        data = self.read_body(int(length))
        keep_open = version == b"HTTP/1.1" and headers.get(b"connection") != b"close"
        return status, data, keep_open

    def read_body(self, length: int) -> bytes:
        """Read ``length`` bytes, a chunk at a time: a stray ``length``
        must not allocate them all at once."""
        chunks = []
        while length > 0:
            chunk = self.rfile.read1(min(length, 65536))
            if not chunk:
                raise ConnectionError("closed in the middle of an answer")
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def time_left(deadline: float) -> float:
    """Seconds until ``deadline``; TimeoutError if it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline has passed")
    return left


def check_addr(addr: str) -> None:
    """Raise ValueError unless ``addr`` is ``HOST:PORT``."""
    try:
        parts = urllib.parse.urlsplit(f"//{addr}")
        valid = bool(parts.port and parts.hostname) and parts.netloc == addr
    except ValueError:  # a port that is not a number, for one
        valid = False
    if not valid:
        raise ValueError(f"service address {addr!r} is not HOST:PORT")


def describe(error: Exception) -> str:
    """An exception for a log line: its type and message."""
    return f"{type(error).__name__}: {error}"


def outcome(error: OSError | ValueError) -> str:
    """What a failed attempt met, as the start of a phrase that ends with
    the service's address: ``connection refused by``."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused by"
    if isinstance(error, TimeoutError):
        return "no answer in time from"
    if isinstance(error, ConnectionError):
        return "connection closed by"
    if isinstance(error, ValueError):
        return "a bad answer from"
    return f"error ({error.strerror or type(error).__name__}) from"


def timeout_message(request: Request, timeout: float, outcomes: dict[str, str]) -> str:
    """Why a call timed out, in one line: what each service it tried did
    last (``outcomes`` maps an address to its ``outcome``)."""
    by_outcome: dict[str, list[str]] = {}
    for addr, what in outcomes.items():
        by_outcome.setdefault(what, []).append(addr)
    # After the first address, those on the same host are named by port.
    listed = list(outcomes)
    host = listed[0].rpartition(":")[0] if listed else ""
    short = {
        addr: ":" + addr.rpartition(":")[2]
        for addr in listed[1:]
        if addr.rpartition(":")[0] == host
    }
    what = "; ".join(
        f"{phrase} {', '.join(short.get(addr, addr) for addr in addrs)}"
        for phrase, addrs in by_outcome.items()
    )
    if list(by_outcome) == ["connection refused by"]:
        return f"no service answered: {what}"
    if not what:  # the deadline passed before any attempt
        return f"no leader applied {request!r} within {timeout}s"
    return f"no leader applied {request!r} within {timeout}s: {what}"


def parse_addrs(text: str) -> list[str]:
    """Split ``ADDR[,ADDR...]``; each is ``HOST:PORT`` or, as ``python -m
    part6kv`` prints them, ``http://HOST:PORT/``."""
    addrs = []
    for item in text.split(","):
        addr = item.strip().removeprefix("http://").removesuffix("/")
        check_addr(addr)
        addrs.append(addr)
    return addrs


def positive(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command-line client; return its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m part6kv.kvclient",
        description="Send one request to a part6kv cluster and print the "
        'reply as {"found": bool, "value": str}.',
    )
    parser.add_argument(
        "addrs",
        metavar="ADDR[,ADDR...]",
        help="the services, as HOST:PORT or http://HOST:PORT/",
    )
    parser.add_argument(
        "--timeout",
        type=positive,
        default=2.0,
        help="seconds to try before giving up (default: 2)",
    )
    parser.add_argument(
        "--attempt-timeout",
        type=positive,
        default=0.1,
        help="seconds to wait for one service's answer (default: 0.1)",
    )
    ops = parser.add_subparsers(dest="op", required=True, metavar="OPERATION")
    ops.add_parser("get", help="read KEY").add_argument("key")
    put = ops.add_parser("put", help="store VALUE under KEY")
    put.add_argument("key")
    put.add_argument("value")
    cas = ops.add_parser("cas", help="store NEW under KEY if it holds OLD")
    cas.add_argument("key")
    cas.add_argument("compare_value", metavar="old")
    cas.add_argument("value", metavar="new")
    append = ops.add_parser("append", help="append VALUE to the value of KEY")
    append.add_argument("key")
    append.add_argument("value")
    args = parser.parse_args(argv)

    try:
        addrs = parse_addrs(args.addrs)
    except ValueError as error:
        parser.error(str(error))
    client = KVClient(addrs, attempt_timeout=args.attempt_timeout)
    request = Request(
        args.op,
        args.key,
        getattr(args, "value", ""),
        getattr(args, "compare_value", ""),
    )
    try:
        value, found = client.send(request, args.timeout)
    except (KVTimeoutError, KVDuplicateRequestError, KVSessionExpiredError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C
        return 130
    finally:
        client.close()
    print(json.dumps({"found": found, "value": value}))
    if request.op == "cas" and not (found and value == request.compare_value):
        print(
            f"cas did not swap: {why_no_swap(request, value, found)}", file=sys.stderr
        )
    return 0


def why_no_swap(request: Request, value: str, found: bool) -> str:
    """Why a cas that returned ``(value, found)`` did not store its value."""
    if not found:
        return f"there is no key {brief(request.key)} (a cas never creates one)"
    return (
        f"{brief(request.key)} holds {brief(value)}, not {brief(request.compare_value)}"
    )


if __name__ == "__main__":
    sys.exit(main())
