"""The HTTP API of the key/value service: its routes and JSON shapes, and
the HTTP server (standard library ``http.server``) that speaks them.

Every route takes a POST whose body is a JSON object, and answers a JSON
object (``Content-Type: application/json`` both ways):

==============  =================================  ==============================
route           request                            response
==============  =================================  ==============================
``/get/``       key                                status, found, value
``/put/``       key, value                         status, found, prev_value
``/cas/``       key, compare_value, value          status, found, prev_value
``/append/``    key, value                         status, found, prev_value
==============  =================================  ==============================

Request fields are strings, and every request also carries ``client_id``
and ``request_id``, integers of at least 1 (else 400): the client, and its
request, which a retry sends again with the same id (see ``sessions``).
``status`` is one of ``Status``, with HTTP 200; for any status but ``OK``,
``found`` is false and the value ``""``.

Bad input gets a JSON ``{"error": "<what is wrong>"}`` and never reaches
the Raft log: 400 for a body that is not a JSON object, a missing, unknown
or mistyped field, or a missing or wrong Content-Type (parameters such as
``charset=utf-8`` are fine), or JSON nested too deeply to decode; 411
without a Content-Length; 413 for a body over ``MAX_BODY``; 404 for any
other path (no redirects: ``/get`` and ``/get/x`` are 404); 405 for a
method other than POST; 408 when the body has not arrived by the request's
deadline; 503 when the service already serves ``MAX_CONNECTIONS``
connections; and what ``http.server`` finds wrong itself (a malformed
request line, an oversized header) in JSON too.

Connections are kept open for the client's next request (HTTP/1.1), but
not forever. A connection waits at most ``IDLE_TIMEOUT`` for a request to
begin; once it has begun, the request line, the headers and the body must
all have arrived within ``REQUEST_TIMEOUT``, however slowly the bytes come.
A client that trickles its request is cut off, and one that sends nothing
is closed, so a slow client holds a connection only for a while, and at
most ``MAX_CONNECTIONS`` connections are served at once.
"""

from __future__ import annotations

import contextlib
import enum
import http.server
import io
import json
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

MAX_BODY = 1024 * 1024
"""Largest request body accepted, in bytes (1 MiB)."""

IDLE_TIMEOUT = 5.0
"""Seconds a connection may wait for its next request to begin."""

REQUEST_TIMEOUT = 5.0
"""Seconds a client has, from the first byte of a request, to send all of
it (request line, headers and body); also the time it has to take the
answer."""

MAX_CONNECTIONS = 100
"""Connections a service serves at once; beyond them, it answers 503."""

LINGER = 1.0
"""Seconds to wait, after answering, for the client to close its side."""

POLL_INTERVAL = 0.05
"""Seconds between two checks of the accepting thread for a shutdown."""


class Status(enum.StrEnum):
    """What became of a request."""

    OK = "OK"
    """Applied; the reply holds its result."""
    NOT_LEADER = "NotLeader"
    """This service is not the leader: try another one."""
    FAILED_COMMIT = "FailedCommit"
    """Another entry took the request's place in the log: not applied."""
    TIMEOUT = "Timeout"
    """No commit in time: the outcome is unknown, it may still be applied."""
    DUPLICATE_REQUEST = "DuplicateRequest"
    """Older than the client's last applied request: not applied."""
    SESSION_EXPIRED = "SessionExpired"
    """The client's session expired: not applied, and what its last request
    answered is forgotten."""


SESSION_FIELDS: dict[str, type] = {"client_id": int, "request_id": int}
"""The fields that say which client sent a request, and which request of
its own it is; each must be at least 1."""

REQUEST_FIELDS: dict[str, dict[str, type]] = {
    "get": {"key": str, **SESSION_FIELDS},
    "put": {"key": str, "value": str, **SESSION_FIELDS},
    "cas": {"key": str, "compare_value": str, "value": str, **SESSION_FIELDS},
    "append": {"key": str, "value": str, **SESSION_FIELDS},
}
"""The operations, each with the fields its request must have, and their
types."""

ROUTES = {f"/{op}/": op for op in REQUEST_FIELDS}
"""The path of each operation's route."""


def route(op: str) -> str:
    """The path of the route of operation ``op``."""
    return f"/{op}/"


def value_field(op: str) -> str:
    """The name of the value in a reply: ``value`` for what a get read,
    ``prev_value`` for the value before a put, cas or append."""
    return "value" if op == "get" else "prev_value"


class BadRequestError(Exception):
    """A request that gets an HTTP error instead of being applied."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DeadlineReader(io.RawIOBase):
    """What comes in on a socket, up to a deadline: a read raises
    TimeoutError once ``deadline`` (a ``time.monotonic()`` time) has passed,
    however slowly the bytes arrive. (A socket's own timeout bounds each
    read, not all of them: a peer that sends a byte now and then would hold
    a reader forever.) Wrap it in an ``io.BufferedReader`` to read lines."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Read what has come, at most ``len(buffer)`` bytes, waiting until
        the deadline at most; 0 means the peer closed its side."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the deadline has passed")
        self.sock.settimeout(remaining)
        return self.sock.recv_into(buffer)


@dataclass(frozen=True, repr=False)
class Request:
    """A client's request. ``value`` and ``compare_value`` are ``""`` for
    the operations that don't use them. ``client_id`` and ``request_id``
    are 0 until a client's ``send`` gives the request its ids."""

    op: str
    key: str
    value: str = ""
    compare_value: str = ""
    client_id: int = 0
    request_id: int = 0

    def __repr__(self) -> str:
        """The request as a call, with long strings cut short, and its ids
        once it has them: ``put('k', 'v')``, then ``put('k', 'v')#7.1``
        (request 1 of client 7)."""
        args = [
            brief(getattr(self, name))
            for name in REQUEST_FIELDS[self.op]
            if name not in SESSION_FIELDS
        ]
        ids = f"#{self.client_id}.{self.request_id}" if self.request_id else ""
        return f"{self.op}({', '.join(args)}){ids}"

    def to_json(self) -> dict[str, object]:
        """The JSON object a client sends: the fields of its operation."""
        return {name: getattr(self, name) for name in REQUEST_FIELDS[self.op]}

    @classmethod
    def from_json(cls, op: str, obj: object) -> Request:
        """Check a decoded request body for operation ``op``; raise
        BadRequestError if it is not exactly the object the route takes."""
        if not isinstance(obj, dict):
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST,
                f"the body must be a JSON object, not {json_type(obj)}",
            )
        fields = REQUEST_FIELDS[op]
        unknown = sorted(obj.keys() - fields.keys())
        if unknown:
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST,
                f"unknown field(s) {', '.join(map(repr, unknown))} for {op} "
                f"(it takes {', '.join(map(repr, fields))})",
            )
        missing = [name for name in fields if name not in obj]
        if missing:
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST,
                f"missing field(s) {', '.join(map(repr, missing))} for {op}",
            )
        for name, expected in fields.items():
            # Exact types: with isinstance(), JSON true would pass for an
            # integer.
            if type(obj[name]) is not expected:
                raise BadRequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"field {name!r} must be {JSON_TYPES[expected]}, "
                    f"not {json_type(obj[name])}",
                )
        for name in SESSION_FIELDS:
            if obj[name] < 1:
                raise BadRequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"field {name!r} must be at least 1, not {obj[name]}",
                )
        return cls(op=op, **obj)


@dataclass(frozen=True)
class Reply:
    """A service's answer to a request. ``value`` is what a get read, or the
    value before a put, cas or append."""

    status: Status
    found: bool = False
    value: str = ""

    def to_json(self, op: str) -> dict[str, object]:
        """The JSON object a service answers to operation ``op``."""
        return {
            "status": str(self.status),
            "found": self.found,
            value_field(op): self.value,
        }

    @classmethod
    def from_json(cls, op: str, obj: object) -> Reply:
        """Check a decoded reply to operation ``op``; raise ValueError if it
        is not one that a service of this API sends."""
        name = value_field(op)
        if (
            isinstance(obj, dict)
            and obj.keys() == {"status", "found", name}
            and obj["status"] in list(Status)
            and type(obj["found"]) is bool
            and type(obj[name]) is str
        ):
            return cls(Status(obj["status"]), obj["found"], obj[name])
        raise ValueError(f"not a reply to {op}: {brief(json.dumps(obj))}")


def decode_json(data: bytes) -> object:
    """Decode a JSON document strictly: NaN, Infinity and an object with a
    key twice are errors too (ValueError), not quietly taken."""

    def no_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            raise ValueError("an object has the same key twice")
        return obj

    try:
        return json.loads(
            data, parse_constant=no_constant, object_pairs_hook=no_duplicates
        )
    except RecursionError:
        raise ValueError("arrays or objects are nested too deeply") from None


def json_line(obj: dict[str, object]) -> bytes:
    """The body of a response: ``obj`` as JSON, on a line of its own (so
    that ``curl`` prints it as one)."""
    return json.dumps(obj).encode() + b"\n"


def brief(text: str, limit: int = 40) -> str:
    """``repr(text)``, cut to about ``limit`` characters, for log lines."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[: limit - 10]!r}...({len(text)} chars)"


JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}
"""The JSON name of each type ``decode_json`` returns, for error messages."""


def json_type(value: object) -> str:
    """The JSON name of the type of a decoded ``value``."""
    return JSON_TYPES.get(type(value), type(value).__name__)


class APIServer(http.server.HTTPServer):
    """Serves the API on ``127.0.0.1:port`` (0 picks a free port), one
    thread per connection, and hands each valid request to ``handle``.

    Creating it binds the port, so a port in use raises OSError right there
    instead of killing a thread later. ``start()`` starts accepting;
    ``stop_accepting()`` and then ``close()`` end every thread it started.
    A connection stays open for the client's next request, within the
    deadlines of the module docstring; an error answer closes it. ``name``
    (like ``kv0``) names the threads; ``log`` is called like
    ``logging.debug`` for each event.
    """

    def __init__(
        self,
        port: int,
        name: str,
        handle: Callable[[Request], Reply],
        log: Callable[..., None],
    ) -> None:
        self.name = name
        self.handle = handle
        self.log = log
        # mu guards the fields below.
        self.mu = threading.Lock()
        self.next_delay = 0.0
        self.connections: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        # Set by close(): no new connection is served, and a delayed
        # answer stops waiting.
        self.closed = threading.Event()
        # Connections answered 503, each with the time by which it is
        # closed even if the client has not closed its side; only the
        # accepting thread uses this list, until close().
        self.refused: list[tuple[socket.socket, float]] = []
        try:
            super().__init__(("127.0.0.1", port), APIHandler)
        except OSError as error:
            raise OSError(
                error.errno, f"cannot serve HTTP on 127.0.0.1:{port}: {error.strerror}"
            ) from None
        self.accepter = threading.Thread(
            target=self.serve_forever,
            args=(POLL_INTERVAL,),
            name=f"{name}-http",
            daemon=True,
        )

    def start(self) -> None:
        """Start accepting connections, on a thread of its own."""
        self.accepter.start()

    def stop_accepting(self) -> None:
        """Stop accepting connections; those accepted are still served."""
        if self.accepter.is_alive():
            self.shutdown()
            self.accepter.join()

    def close(self) -> None:
        """Close the port, cut what clients still send, and wait until every
        connection is done. Call ``stop_accepting()`` first."""
        self.server_close()
        for connection, _ in self.refused:
            self.close_request(connection)
        self.refused.clear()
        with self.mu:
            self.closed.set()
            for connection in self.connections:
                # A handler reading the request now sees its end, and one
                # that has answered stops waiting for the client to close.
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RD)
            threads = list(self.threads)
        for thread in threads:
            thread.join()

    def delay_next_response(self, seconds: float) -> None:
        """Hold back the next response written, whatever it is, for
        ``seconds``."""
        with self.mu:
            self.next_delay = seconds

    def hold_if_delayed(self) -> None:
        """Before a response: wait if it is the one ``delay_next_response``
        asked to hold back (or until ``close()``)."""
        with self.mu:
            delay, self.next_delay = self.next_delay, 0.0
        if delay:
            self.log("delaying this response by %.0fms", delay * 1000)
            self.closed.wait(delay)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Serve a new connection on a thread of its own, or answer 503 if
        MAX_CONNECTIONS are served already or no thread can be started."""
        assert isinstance(request, socket.socket)
        with self.mu:
            self.threads = [t for t in self.threads if t.is_alive()]
            busy = len(self.threads)
        if busy >= MAX_CONNECTIONS:
            self.refuse(request, f"{self.name} serves {busy} connections already")
            return
        thread = threading.Thread(
            target=self.serve_connection,
            args=(request, client_address),
            name=f"{self.name}-http-conn",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError as error:  # the process has no thread to spare
            self.refuse(request, f"{self.name} cannot start a thread: {error}")
            return
        with self.mu:
            self.threads.append(thread)

    def refuse(self, connection: socket.socket, why: str) -> None:
        """Answer 503 on the accepting thread, without waiting for anything.

        The answer fits in the socket's empty send buffer. Closing at once,
        with the request still unread, would make the kernel reset the
        connection, and the client could lose the answer: the connection
        is closed later, by ``service_actions``.
        """
        self.log("refusing a connection: %s", why)
        body = json_line({"error": f"{why}: try again later"})
        head = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        connection.setblocking(False)
        with contextlib.suppress(OSError):
            connection.send(head.encode() + body)
            connection.shutdown(socket.SHUT_WR)
        self.refused.append((connection, time.monotonic() + LINGER))

    def service_actions(self) -> None:
        """Called by the accepting thread between two polls: close each
        refused connection whose client has closed its side, or whose
        LINGER seconds are over."""
        now = time.monotonic()
        lingering = []
        for connection, close_by in self.refused:
            if now < close_by and not drained(connection):
                lingering.append((connection, close_by))
            else:
                self.close_request(connection)
        self.refused = lingering

    def serve_connection(self, connection: socket.socket, client_address: Any) -> None:
        """Serve the requests of ``connection`` until it ends, and close it."""
        with self.mu:
            if self.closed.is_set():
                self.close_request(connection)
                return
            self.connections.add(connection)
        try:
            self.finish_request(connection, client_address)
        except Exception:
            self.handle_error(connection, client_address)
        finally:
            self.shutdown_request(connection)
            with self.mu:
                self.connections.discard(connection)

    def shutdown_request(
        self, request: socket.socket | tuple[bytes, socket.socket]
    ) -> None:
        """Close a connection without losing the answer written to it.

        Closing a socket that still has unread input makes the kernel reset
        the connection, and the client may then lose our answer (a 413 for
        a body we did not read, say). So: end our side, read and drop what
        the client still sends until it closes its side (or LINGER seconds
        pass), and only then close.
        """
        assert isinstance(request, socket.socket)
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER
            while (remaining := deadline - time.monotonic()) > 0:
                request.settimeout(remaining)
                if not request.recv(65536):
                    break
        self.close_request(request)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Log an unexpected error in a handler (http.server would print it)."""
        self.log("error serving %s: %s", client_address, traceback.format_exc())


def drained(connection: socket.socket) -> bool:
    """Read and drop what has come on the non-blocking ``connection``; true
    once the client has closed its side (or the connection failed)."""
    try:
        while connection.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


class APIHandler(http.server.BaseHTTPRequestHandler):
    """Answers the HTTP requests of one connection on behalf of an
    APIServer."""

    server: APIServer
    protocol_version = "HTTP/1.1"  # keeps connections open between requests
    # An answer goes out in two writes (head and body): send each at once.
    disable_nagle_algorithm = True

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD> for each request (and answers 501
        # if there is none): send every method to serve(), which says 404 or
        # 405 in JSON.
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)

    def setup(self) -> None:
        """Read the connection through a DeadlineReader."""
        super().setup()
        self.rfile.close()  # http.server's reader, which has no deadline
        self.input = DeadlineReader(self.connection)
        self.reader = io.BufferedReader(self.input)
        self.rfile = self.reader

    def handle_one_request(self) -> None:
        """Wait at most IDLE_TIMEOUT for the next request to begin, then
        give it REQUEST_TIMEOUT to arrive whole, and answer it."""
        self.close_connection = True
        self.input.deadline = time.monotonic() + IDLE_TIMEOUT
        try:
            if not self.reader.peek(1):
                return  # the client closed the connection
        except OSError:  # TimeoutError: idle for too long
            return
        self.input.deadline = time.monotonic() + REQUEST_TIMEOUT
        # It reads the request line and the headers, and calls serve(); if
        # they do not arrive in time, it closes the connection.
        super().handle_one_request()

    def serve(self) -> None:
        """Check the request, have the service handle it, and answer."""
        # The path as sent: self.path has "//" collapsed into "/".
        path = self.requestline.split()[1]
        try:
            op = ROUTES.get(path)
            if op is None:
                raise BadRequestError(
                    HTTPStatus.NOT_FOUND,
                    f"no route {path!r}: the routes are {', '.join(ROUTES)}",
                )
            if self.command != "POST":
                raise BadRequestError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"method {self.command} is not allowed: use POST",
                )
            request = Request.from_json(op, self.read_json())
        except BadRequestError as error:
            self.answer(error.status, {"error": error.message})
            return
        reply = self.server.handle(request)
        self.answer(HTTPStatus.OK, reply.to_json(op))

    def read_json(self) -> object:
        """Read the request's body and decode it as JSON; raise
        BadRequestError if that cannot or may not be done."""
        if "Transfer-Encoding" in self.headers:
            raise BadRequestError(
                HTTPStatus.LENGTH_REQUIRED,
                "Transfer-Encoding is not supported: send a Content-Length",
            )
        lengths = self.headers.get_all("Content-Length", [])
        if not lengths:
            raise BadRequestError(HTTPStatus.LENGTH_REQUIRED, "no Content-Length")
        if len(lengths) > 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST, f"bad Content-Length: {', '.join(lengths)}"
            )
        # Measured as text first: int() refuses thousands of digits.
        digits = lengths[0].lstrip("0") or "0"
        if len(digits) > len(str(MAX_BODY)) or int(digits) > MAX_BODY:
            size = digits if len(digits) <= 20 else f"of {len(digits)} digits"
            raise BadRequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"Content-Length {size} is more than the {MAX_BODY} bytes accepted",
            )
        length = int(digits)
        content_type = self.headers.get("Content-Type")
        if content_type is None:
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST, "no Content-Type: send application/json"
            )
        if self.headers.get_content_type() != "application/json":
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST,
                f"Content-Type {content_type!r} is not application/json",
            )
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise BadRequestError(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request did not arrive whole within {REQUEST_TIMEOUT}s",
            ) from None
        except OSError as error:
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST, f"reading the body failed: {error}"
            ) from None
        if len(body) < length:
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST,
                f"the body ended after {len(body)} of {length} bytes",
            )
        try:
            return decode_json(body)
        except ValueError as error:  # UnicodeDecodeError is one too
            raise BadRequestError(
                HTTPStatus.BAD_REQUEST, f"the body is not JSON: {error}"
            ) from None

    def answer(self, status: HTTPStatus, body: dict[str, object]) -> None:
        """Write the response: ``body`` as JSON, with ``status``. An error
        closes the connection: what the client sent after the part we read
        (a body we refused, say) is not a next request."""
        data = json_line(body)
        self.server.hold_if_delayed()
        self.connection.settimeout(REQUEST_TIMEOUT)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == HTTPStatus.METHOD_NOT_ALLOWED:
                self.send_header("Allow", "POST")
            if status != HTTPStatus.OK:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError as error:
            self.server.log("could not answer %r: %s", self.requestline, error)
            self.close_connection = True

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        """Answer an error http.server itself found (a malformed request
        line or header) in JSON too."""
        # A request line it cannot parse leaves the version at HTTP/0.9,
        # whose responses have no status line: answer in HTTP/1.0.
        self.request_version = "HTTP/1.0"
        self.answer(HTTPStatus(code), {"error": message or HTTPStatus(code).phrase})

    def log_message(self, format: str, *args: Any) -> None:
        """Log through the service's logger, not on standard error."""
        self.server.log("HTTP " + format, *args)
