"""Tests of the HTTP API: the documented replies, and bad input.

Every bad request gets a JSON ``{"error": ...}`` with the right status,
is never applied, and leaves the service serving. Requests are written by
hand on a socket, so that each can be as broken as a test needs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from part6kv import api
from part6kv.api import MAX_BODY
from part6kv.harness import Harness
from tests.part6kv.helpers import new_ids, wait_until

IDS = {"client_id": 1, "request_id": 1}
"""The ids of a request that is refused for another reason."""

BAD_PUT = json.dumps({"key": "bad", "value": "x", **IDS}).encode()
"""A put that would be applied, were it not for what a test does to the
request that carries it."""


@dataclass(frozen=True)
class Response:
    """An HTTP response as it came over the wire."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        """The body, which must be JSON on one line, as the Content-Type
        says."""
        assert self.headers.get("content-type") == "application/json", self.headers
        assert self.body.endswith(b"\n"), self.body
        assert b"\n" not in self.body[:-1], self.body
        return json.loads(self.body)


def exchange(addr: str, request: bytes) -> Response:
    """Send ``request`` as it is, half-close, and read the whole response."""
    host, _, port = addr.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse_response(data)


def parse_response(data: bytes) -> Response:
    """The response whose bytes are ``data``."""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(int(status_line.split()[1]), headers, body)


def http_request(
    addr: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Response:
    """Send a request with ``headers`` (by default, a JSON Content-Type and
    the body's Content-Length) and return the response."""
    if headers is None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    head = f"{method} {path} HTTP/1.1\r\nHost: {addr}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return exchange(addr, head.encode("iso-8859-1") + b"\r\n" + body)


def post_json(addr: str, path: str, obj: object) -> Response:
    """POST ``obj`` as JSON to ``path``."""
    return http_request(addr, path, json.dumps(obj).encode())


def check_error(response: Response, status: int, case: object = None) -> None:
    """The response (to ``case``) must be ``status`` with a JSON
    ``{"error": "<a message>"}``."""
    assert response.status == status, (case, response)
    obj = response.json()
    assert isinstance(obj, dict), (case, obj)
    assert obj.keys() == {"error"}, (case, obj)
    assert isinstance(obj["error"], str), (case, obj)
    assert obj["error"], (case, obj)


@pytest.fixture
def leader() -> Iterator[tuple[Harness, str]]:
    """A cluster and its leader's HTTP address. After the test, the leader
    must still serve, and no request of the test with key "bad" may have
    been applied."""
    with Harness(3) as h:
        addr = h.service_addr(h.check_single_leader())
        yield h, addr
        c = h.new_client()
        h.check_get_not_found(c, "bad")
        h.check_put(c, "k", "v")
        h.check_get(c, "k", "v")


def test_replies_have_the_documented_shapes(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    put = {"key": "k", "value": "v", **new_ids()}
    assert post_json(addr, "/put/", put).json() == {
        "status": "OK",
        "found": False,
        "prev_value": "",
    }
    assert post_json(addr, "/get/", {"key": "k", **new_ids()}).json() == {
        "status": "OK",
        "found": True,
        "value": "v",
    }
    cas = {"key": "k", "compare_value": "v", "value": "w", **new_ids()}
    assert post_json(addr, "/cas/", cas).json() == {
        "status": "OK",
        "found": True,
        "prev_value": "v",
    }
    append = {"key": "k", "value": "x", **new_ids()}
    assert post_json(addr, "/append/", append).json() == {
        "status": "OK",
        "found": True,
        "prev_value": "w",
    }
    assert post_json(addr, "/get/", {"key": "k", **new_ids()}).json() == {
        "status": "OK",
        "found": True,
        "value": "wx",
    }


def test_follower_answers_not_leader() -> None:
    with Harness(3) as h:
        follower = (h.check_single_leader() + 1) % 3
        addr = h.service_addr(follower)
        for path, obj in [
            ("/get/", {"key": "k", **new_ids()}),
            ("/put/", {"key": "k", "value": "v", **new_ids()}),
        ]:
            reply = post_json(addr, path, obj).json()
            value_field = "value" if path == "/get/" else "prev_value"
            assert reply == {"status": "NotLeader", "found": False, value_field: ""}


def test_body_not_json(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for body in [
        b"",
        b"not json",
        b'{"key": "bad"',
        b'{"key": "bad\xff", "client_id": 1, "request_id": 1}',  # not UTF-8
        b'{"key": NaN, "client_id": 1, "request_id": 1}',
        b'{"key": "bad", "key": "bad", "client_id": 1, "request_id": 1}',
    ]:
        check_error(http_request(addr, "/get/", body), 400, body)


def test_body_not_an_object(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for body in [b"[]", b'["bad"]', b'"bad"', b"null", b"1", b"true"]:
        check_error(http_request(addr, "/get/", body), 400, body)


def test_missing_field(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for path, obj in [
        ("/get/", IDS),
        ("/put/", {"key": "bad", **IDS}),
        ("/put/", {"value": "bad", **IDS}),
        ("/cas/", {"key": "bad", "value": "x", **IDS}),
        ("/append/", {"key": "bad", **IDS}),
        # The ids are required.
        ("/get/", {"key": "bad"}),
        ("/put/", {"key": "bad", "value": "x", "client_id": 1}),
        ("/append/", {"key": "bad", "value": "x", "request_id": 1}),
    ]:
        check_error(post_json(addr, path, obj), 400, (path, obj))


def test_unknown_field(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for path, obj in [
        ("/get/", {"key": "bad", "value": "x", **IDS}),
        ("/put/", {"key": "bad", "value": "x", "compare_value": "y", **IDS}),
        ("/get/", {"key": "bad", "Key": "bad", **IDS}),
        ("/get/", {"key": "bad", "session_id": 1, **IDS}),
    ]:
        check_error(post_json(addr, path, obj), 400, (path, obj))


def test_wrong_type(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for path, obj in [
        ("/get/", {"key": 1, **IDS}),
        ("/get/", {"key": None, **IDS}),
        ("/get/", {"key": True, **IDS}),
        ("/get/", {"key": ["bad"], **IDS}),
        ("/get/", {"key": {"bad": "bad"}, **IDS}),
        ("/put/", {"key": "bad", "value": 1.5, **IDS}),
        ("/cas/", {"key": "bad", "compare_value": False, "value": "x", **IDS}),
        # The ids are JSON integers; true is not one.
        ("/get/", {"key": "bad", "client_id": True, "request_id": 1}),
        ("/get/", {"key": "bad", "client_id": 1, "request_id": True}),
        ("/get/", {"key": "bad", "client_id": 1.0, "request_id": 1}),
        ("/get/", {"key": "bad", "client_id": 1, "request_id": 2.5}),
        ("/get/", {"key": "bad", "client_id": "1", "request_id": 1}),
        ("/get/", {"key": "bad", "client_id": 1, "request_id": None}),
        ("/get/", {"key": "bad", "client_id": [1], "request_id": 1}),
    ]:
        check_error(post_json(addr, path, obj), 400, (path, obj))


def test_ids_below_1(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for ids in [
        {"client_id": 0, "request_id": 1},
        {"client_id": -1, "request_id": 1},
        {"client_id": 1, "request_id": 0},
        {"client_id": 1, "request_id": -(2**70)},
    ]:
        obj = {"key": "bad", "value": "x", **ids}
        check_error(post_json(addr, "/put/", obj), 400, obj)


def test_wrong_content_type(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    body = BAD_PUT
    for content_type in [
        None,
        "",
        "text/plain",
        "application/jsonx",
        "application/x-www-form-urlencoded",
    ]:
        headers = {"Content-Length": str(len(body))}
        if content_type is not None:
            headers["Content-Type"] = content_type
        check_error(http_request(addr, "/put/", body, headers), 400, content_type)


def test_content_type_parameters_and_case_are_fine(
    leader: tuple[Harness, str],
) -> None:
    _, addr = leader
    for i, content_type in enumerate(
        ["application/json; charset=utf-8", "Application/JSON"]
    ):
        body = json.dumps({"key": f"k{i}", "value": "x", **new_ids()}).encode()
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        assert http_request(addr, "/put/", body, headers).json() == {
            "status": "OK",
            "found": False,
            "prev_value": "",
        }, content_type


def body_of_size(size: int, key: str) -> bytes:
    """A put of ``key``, with the ids IDS, whose JSON body has exactly
    ``size`` bytes."""
    body = json.dumps({"key": key, "value": "", **IDS}).encode()
    padded = json.dumps({"key": key, "value": "x" * (size - len(body)), **IDS}).encode()
    assert len(padded) == size
    return padded


def test_body_of_max_size_is_accepted(leader: tuple[Harness, str]) -> None:
    h, addr = leader
    response = http_request(addr, "/put/", body_of_size(MAX_BODY, "big"))
    assert response.json() == {"status": "OK", "found": False, "prev_value": ""}
    value, found = h.new_client().get("big")
    assert found
    empty = json.dumps({"key": "big", "value": "", **IDS}).encode()
    assert len(value) == MAX_BODY - len(empty)


def test_body_too_large(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    # The service answers without reading the body, and yet the answer
    # reaches the client, which is still sending.
    check_error(http_request(addr, "/put/", body_of_size(MAX_BODY + 1, "bad")), 413)
    check_error(http_request(addr, "/put/", body_of_size(4 * MAX_BODY, "bad")), 413)


def test_no_content_length(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    body = BAD_PUT
    check_error(
        http_request(addr, "/put/", body, {"Content-Type": "application/json"}), 411
    )
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    check_error(http_request(addr, "/put/", chunked, headers), 411)


def test_bad_content_length(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    body = BAD_PUT
    for length in ["abc", "-1", "1e3", "", "²"]:
        headers = {"Content-Type": "application/json", "Content-Length": length}
        check_error(http_request(addr, "/put/", body, headers), 400, length)


def test_two_content_lengths(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    body = BAD_PUT
    head = (
        f"POST /put/ HTTP/1.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nContent-Length: 2\r\n\r\n"
    )
    check_error(exchange(addr, head.encode() + body), 400)


def test_body_shorter_than_content_length(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    body = BAD_PUT
    headers = {"Content-Type": "application/json", "Content-Length": "100"}
    check_error(http_request(addr, "/put/", body, headers), 400)


def test_unknown_path(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for path in ["/get", "/get/x", "/", "/nope/", "/get/?key=bad", "//get/", "/GET/"]:
        response = post_json(addr, path, {"key": "bad", **IDS})
        check_error(response, 404, path)
        assert "location" not in response.headers  # no redirect
        check_error(http_request(addr, path, method="GET"), 404, path)


def test_method_not_allowed(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    body = BAD_PUT
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO"]:
        response = http_request(addr, "/put/", body, method=method)
        check_error(response, 405, method)
        assert response.headers["allow"] == "POST"


def test_head_not_allowed_and_bodiless(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    response = http_request(addr, "/get/", method="HEAD")
    assert response.status == 405
    assert response.headers["content-type"] == "application/json"
    assert response.body == b""


def test_malformed_request(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    long_header = "X-Long: " + "x" * 70000
    for request, status in [
        ("POST /get/ HTTP/1.1x\r\n\r\n", 400),
        ("garbage\r\n\r\n", 400),
        (f"POST /get/ HTTP/1.1\r\n{long_header}\r\n\r\n", 431),
    ]:
        check_error(exchange(addr, request.encode()), status, request[:30])


def test_content_length_of_thousands_of_digits(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for length in ["9" * 5000, "0" * 5000 + str(MAX_BODY + 1)]:
        headers = {"Content-Type": "application/json", "Content-Length": length}
        check_error(http_request(addr, "/put/", BAD_PUT, headers), 413, length[:10])
    # Leading zeros do not make a length too large.
    body = json.dumps({"key": "k", "value": "v", **new_ids()}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": f"000{len(body)}"}
    assert http_request(addr, "/put/", body, headers).json() == {
        "status": "OK",
        "found": False,
        "prev_value": "",
    }


def test_json_nested_too_deeply(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    for body in [b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 100_000]:
        check_error(http_request(addr, "/put/", body), 400, body[:10])


# --- Connections: kept open, within deadlines and bounds -------------------


def request_bytes(addr: str, path: str, obj: object) -> bytes:
    """A POST of ``obj`` as JSON to ``path``, as sent on the wire."""
    body = json.dumps(obj).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def read_response(sock: socket.socket) -> Response:
    """Read one response with a Content-Length from ``sock``, and no more."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, f"the connection ended after {data!r}"
        data += chunk
    response = parse_response(data)
    body = b""
    while len(body) < int(response.headers["content-length"]):
        body += sock.recv(65536)
    return Response(response.status, response.headers, body)


def connect(addr: str) -> socket.socket:
    """A connection to ``addr`` whose reads wait at most 10 s."""
    host, _, port = addr.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


def wait_for_end(sock: socket.socket, seconds: float) -> bytes | None:
    """What ``sock`` receives until the service closes it, or None if it is
    still open after ``seconds``."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return None
    return data


def test_connection_is_kept_for_the_next_request(
    leader: tuple[Harness, str],
) -> None:
    _, addr = leader
    with connect(addr) as sock:
        for i in range(3):
            put = {"key": f"k{i}", "value": "v", **new_ids()}
            sock.sendall(request_bytes(addr, "/put/", put))
            response = read_response(sock)
            assert response.json() == {"status": "OK", "found": False, "prev_value": ""}
            assert response.headers.get("connection") != "close"


def test_error_answer_closes_the_connection(leader: tuple[Harness, str]) -> None:
    _, addr = leader
    with connect(addr) as sock:
        # The body after the refused head is not read as a next request.
        too_large = (
            "POST /put/ HTTP/1.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n"
        )
        sock.sendall(too_large.encode() + request_bytes(addr, "/put/", {"key": "bad"}))
        response = read_response(sock)
        check_error(response, 413)
        assert response.headers["connection"] == "close"
        assert wait_for_end(sock, 5) == b""


def test_idle_connection_is_closed(
    leader: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, addr = leader
    monkeypatch.setattr(api, "IDLE_TIMEOUT", 0.3)
    # Timed from before the connection: the service's wait starts once it
    # accepts it, and on a busy machine that may be before this thread
    # runs again after connect().
    start = time.monotonic()
    with connect(addr) as sock:
        assert wait_for_end(sock, 5) == b""
        assert time.monotonic() - start >= 0.3


@pytest.mark.parametrize("part", ["head", "body"])
def test_client_that_trickles_its_request_is_cut_off(
    leader: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch, part: str
) -> None:
    _, addr = leader
    monkeypatch.setattr(api, "REQUEST_TIMEOUT", 0.5)
    request = request_bytes(addr, "/put/", json.loads(BAD_PUT))
    body_at = request.index(b"\r\n\r\n") + 4
    with connect(addr) as sock:
        if part == "body":
            sock.sendall(request[:body_at])
            request = request[body_at:]
        # A byte every 0.1 s: each arrives long before a read would time
        # out, but the whole request would take seconds.
        start = time.monotonic()
        answer = None
        for byte in request[:-1]:
            sock.sendall(bytes([byte]))
            answer = wait_for_end(sock, 0.1)
            if answer is not None:
                break
        cut_after = time.monotonic() - start
        assert answer is not None, "the service waited for the whole request"
        assert 0.5 <= cut_after <= 0.5 + 2.0
    if part == "body":
        # The request line and headers came: it gets an answer.
        check_error(parse_response(answer), 408)
    else:
        assert answer == b""


def test_connections_beyond_the_cap_get_503(
    leader: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    h, addr = leader
    monkeypatch.setattr(api, "MAX_CONNECTIONS", 3)
    http_server = h.services[h.check_single_leader()].http_server
    assert http_server is not None
    idle = [connect(addr) for _ in range(3)]
    try:
        wait_until(
            lambda: sum(t.is_alive() for t in http_server.threads) == 3,
            "the service serves the three idle connections",
        )
        response = http_request(addr, "/put/", BAD_PUT)
        check_error(response, 503)
        assert "3 connections" in str(response.json())
    finally:
        idle.pop().close()
    # One is free again.
    put = {"key": "k", "value": "v", **new_ids()}
    wait_until(
        lambda: post_json(addr, "/put/", put).status == 200,
        "a connection is served once another has closed",
    )
    for sock in idle:
        sock.close()


def test_connection_refused_when_no_thread_starts(
    leader: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, addr = leader
    start = threading.Thread.start

    def start_unless_http_conn(thread: threading.Thread) -> None:
        if thread.name.endswith("-http-conn"):
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_unless_http_conn)
    check_error(http_request(addr, "/put/", BAD_PUT), 503)
    monkeypatch.undo()
    # The leader fixture then checks that the service still serves, and
    # shutting the harness down must not trip over the thread that never
    # started.
