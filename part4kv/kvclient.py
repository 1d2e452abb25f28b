"""A client of the key/value service: it finds the leader on its own.

A client knows the addresses of the services, not which one leads. It
sends each request to the service that answered last (at first, the first
address). A follower answers NotLeader; a crashed service refuses the
connection; a leader cut off from the others never answers in time. In
each case the client moves on to the next address and sends the request
again, pausing briefly after a whole round without a leader (an election
is probably under way), until the call's deadline.

Resending after an attempt timeout is unsafe: the first attempt may have
been applied all the same, slowly, and then the command is applied twice.
part4kv cannot tell; that is what part5kv fixes. It does not resend after
FailedCommit or Timeout either: it raises KVCommitError.

As a program::

    python -m part4kv.kvclient ADDR[,ADDR...] get KEY
    python -m part4kv.kvclient ADDR[,ADDR...] put KEY VALUE
    python -m part4kv.kvclient ADDR[,ADDR...] cas KEY OLD NEW
    python -m part4kv.kvclient ADDR[,ADDR...] append KEY VALUE

prints ``{"found": bool, "value": str}`` (the value read, or the value
before the operation) and exits 0; 1 on a timeout or commit error; 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import logging
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence

from .api import MAX_BODY, Reply, Request, Status, brief, decode_json, route

log = logging.getLogger(__name__)

ROUND_BACKOFF = 0.05
"""Seconds to pause after a whole round of addresses without a leader."""

ATTEMPT_ERRORS = (OSError, http.client.HTTPException, ValueError)
"""What a failed attempt raises: no connection, no answer in time, or an
answer that is not from a service of this API (a stray process)."""

client_ids = itertools.count(1)
"""Numbers the clients of this process, for their log lines."""


class KVTimeoutError(TimeoutError):
    """No leader answered before the call's deadline."""


class KVCommitError(Exception):
    """The leader answered FailedCommit or Timeout: the command was not
    applied, or its outcome is unknown."""


class KVClient:
    """A client of the services at ``service_addrs`` (``"HOST:PORT"``
    each). Each attempt waits at most ``attempt_timeout`` seconds for a
    service to answer. Calls are serialized, and no thread is started."""

    def __init__(self, service_addrs: list[str], attempt_timeout: float = 0.1) -> None:
        if not service_addrs:
            raise ValueError("a client needs at least one service address")
        for addr in service_addrs:
            check_addr(addr)
        self.addrs = list(service_addrs)
        self.attempt_timeout = attempt_timeout
        # The index in addrs of the service we believe leads.
        self.assumed_leader = 0
        self.id = next(client_ids)
        self.mu = threading.Lock()

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

        Raises KVCommitError on FailedCommit or Timeout, and ValueError for
        a request larger than a service accepts.
        """
        body = json.dumps(request.to_json()).encode()
        if len(body) > MAX_BODY:
            raise ValueError(f"the request has {len(body)} bytes, over {MAX_BODY}")
        with self.mu:
            deadline = time.monotonic() + timeout
            misses = 0  # attempts in a row that found no leader
            while (remaining := deadline - time.monotonic()) > 0:
                addr = self.addrs[self.assumed_leader]
                self.clientlog("sending %r to %s", request, addr)
                try:
                    reply = self.post(
                        addr, request.op, body, min(self.attempt_timeout, remaining)
                    )
                except ATTEMPT_ERRORS as error:
                    self.clientlog("%s: %s", addr, describe(error))
                else:
                    self.clientlog(
                        "%s: %s, found=%s, value=%s",
                        addr,
                        reply.status,
                        reply.found,
                        brief(reply.value),
                    )
                    if reply.status == Status.OK:
                        return reply.value, reply.found
                    if reply.status != Status.NOT_LEADER:
                        raise KVCommitError(
                            f"commit failed ({reply.status}); please retry"
                        )
                self.assumed_leader = (self.assumed_leader + 1) % len(self.addrs)
                misses += 1
                if misses % len(self.addrs) == 0:
                    time.sleep(
                        max(0.0, min(ROUND_BACKOFF, deadline - time.monotonic()))
                    )
            raise KVTimeoutError(f"no leader applied {request!r} within {timeout}s")

    def post(self, addr: str, op: str, body: bytes, timeout: float) -> Reply:
        """POST ``body`` to the route of ``op`` at ``addr`` and return the
        reply; each socket operation waits at most ``timeout`` seconds."""
        connection = http.client.HTTPConnection(addr, timeout=timeout)
        try:
            connection.request(
                "POST",
                route(op),
                body,
                {"Content-Type": "application/json", "Connection": "close"},
            )
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status != http.HTTPStatus.OK:
            raise ValueError(f"HTTP {response.status}: {data[:200]!r}")
        return Reply.from_json(op, decode_json(data))

    def clientlog(self, message: str, *args: object) -> None:
        """Log a debug line as ``[client id] message``."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[client %d] " + message, self.id, *args)


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


def parse_addrs(text: str) -> list[str]:
    """Split ``ADDR[,ADDR...]``; each is ``HOST:PORT`` or, as ``python -m
    part4kv`` prints them, ``http://HOST:PORT/``."""
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
        prog="python -m part4kv.kvclient",
        description="Send one request to a part4kv cluster and print the "
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
    except (KVTimeoutError, KVCommitError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"found": found, "value": value}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
