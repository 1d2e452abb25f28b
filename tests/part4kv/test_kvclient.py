"""Tests of KVClient and of the command-line client.

Stub services (small HTTP servers that answer what a test wants) check the
client's rules exactly; clusters check failover for real.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from part4kv import kvclient
from part4kv.api import MAX_BODY
from part4kv.harness import Harness
from part4kv.kvclient import KVClient, KVCommitError, KVTimeoutError
from tests.part4kv.helpers import run_concurrently

ROOT = Path(__file__).resolve().parents[2]

NOT_LEADER = {"status": "NotLeader", "found": False, "prev_value": ""}
OK = {"status": "OK", "found": True, "prev_value": "old"}

PATIENT = 5.0
"""An attempt timeout no stub answer takes longer than, even on a loaded
machine: a client with it never resends to a stub that answers."""


class Stub(socketserver.ThreadingTCPServer):
    """A server on 127.0.0.1 that runs ``respond(connection)`` for each
    connection it accepts, and counts them."""

    def __init__(self, respond: Callable[[socket.socket], None]) -> None:
        self.respond = respond
        self.mu = threading.Lock()
        self.connections = 0
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,))
        self.thread.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.thread.join()
        self.server_close()


class StubHandler(socketserver.BaseRequestHandler):
    server: Stub

    def handle(self) -> None:
        with self.server.mu:
            self.server.connections += 1
        self.server.respond(self.request)


def read_request(connection: socket.socket) -> None:
    """Read an HTTP request with a Content-Length from ``connection``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)


def send_json(connection: socket.socket, reply: object) -> None:
    """Send ``reply`` as a JSON HTTP response."""
    body = json.dumps(reply).encode()
    connection.sendall(
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def answer_json(reply: object) -> Callable[[socket.socket], None]:
    """A stub response: read the request, answer ``reply``."""

    def respond(connection: socket.socket) -> None:
        read_request(connection)
        send_json(connection, reply)

    return respond


def answer_raw(response: bytes) -> Callable[[socket.socket], None]:
    """A stub response: read the request, answer ``response`` as it is."""

    def respond(connection: socket.socket) -> None:
        read_request(connection)
        connection.sendall(response)

    return respond


def black_hole(connection: socket.socket) -> None:
    """A stub response: none. Wait until the client gives up."""
    while connection.recv(65536):
        pass


@pytest.fixture
def stubs() -> Iterator[Callable[[Callable[[socket.socket], None]], Stub]]:
    """Makes stubs, and closes them after the test."""
    made: list[Stub] = []

    def make(respond: Callable[[socket.socket], None]) -> Stub:
        made.append(Stub(respond))
        return made[-1]

    yield make
    for stub in made:
        stub.close()


def closed_port_addr() -> str:
    """An address where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_failover_past_a_crashed_service() -> None:
    with Harness(3) as h:
        h.check_single_leader()
        c = h.new_client()
        # The first address refuses connections from now on.
        h.crash_service(0)
        h.check_single_leader()
        h.check_put(c, "k", "v")
        h.check_get(c, "k", "v")


def test_failover_when_the_leader_crashes() -> None:
    with Harness(3) as h:
        lid = h.check_single_leader()
        c = h.new_client()
        h.check_put(c, "k", "v")
        assert c.addrs[c.assumed_leader] == h.service_addr(lid)

        h.crash_service(lid)
        h.check_get(c, "k", "v")
        assert c.addrs[c.assumed_leader] != h.service_addr(lid)


def test_moves_on_past_stray_processes(stubs: Callable[..., Stub]) -> None:
    html = b"<html>not found</html>"
    strays = [
        stubs(answer_raw(b"HTTP/1.0 404 Not Found\r\n\r\n" + html)),
        stubs(black_hole),
        stubs(answer_raw(b"HTTP/1.0 200 OK\r\n\r\nnot json")),
        stubs(answer_raw(b"garbage\r\n\r\n")),
        stubs(answer_json({"status": "OK"})),  # not a whole reply
        stubs(answer_json({"status": "Maybe", "found": True, "prev_value": ""})),
    ]
    with Harness(3) as h:
        h.check_single_leader()
        c = KVClient([stray.addr for stray in strays] + h.addrs)
        c.put("k", "v")
        assert c.get("k") == ("v", True)
    assert all(stray.connections >= 1 for stray in strays)


@pytest.mark.parametrize("kind", ["not leader", "black hole", "closed port"])
def test_timeout_error_at_the_deadline(stubs: Callable[..., Stub], kind: str) -> None:
    if kind == "not leader":
        addrs = [
            stubs(answer_json(NOT_LEADER)).addr,
            stubs(answer_json(NOT_LEADER)).addr,
        ]
    elif kind == "black hole":
        addrs = [stubs(black_hole).addr]
    else:
        addrs = [closed_port_addr()]
    c = KVClient(addrs, attempt_timeout=0.1)
    start = time.monotonic()
    with pytest.raises(KVTimeoutError):
        c.put("k", "v", timeout=0.5)
    elapsed = time.monotonic() - start
    # No earlier than the deadline minus an attempt, at most 1 s after it.
    assert 0.5 - 0.1 <= elapsed <= 0.5 + 1.0
    assert isinstance(KVTimeoutError(), TimeoutError)


def test_backs_off_after_a_round_without_leader(stubs: Callable[..., Stub]) -> None:
    followers = [stubs(answer_json(NOT_LEADER)) for _ in range(2)]
    c = KVClient([f.addr for f in followers])
    with pytest.raises(KVTimeoutError):
        c.get("k", timeout=0.5)
    # A pause after each round of two: at most this many rounds fit.
    rounds = 0.5 / kvclient.ROUND_BACKOFF + 1
    assert sum(f.connections for f in followers) <= 2 * rounds


@pytest.mark.parametrize("status", ["FailedCommit", "Timeout"])
def test_commit_errors_are_not_retried(stubs: Callable[..., Stub], status: str) -> None:
    leader = stubs(answer_json({"status": status, "found": False, "prev_value": ""}))
    other = stubs(answer_json(OK))
    c = KVClient([leader.addr, other.addr], attempt_timeout=PATIENT)
    with pytest.raises(KVCommitError, match=status):
        c.put("k", "v")
    assert (leader.connections, other.connections) == (1, 0)


def test_remembers_the_leader(stubs: Callable[..., Stub]) -> None:
    follower = stubs(answer_json(NOT_LEADER))
    leader = stubs(answer_json(OK))
    c = KVClient([follower.addr, leader.addr], attempt_timeout=PATIENT)
    for _ in range(3):
        assert c.put("k", "v") == ("old", True)
    assert (follower.connections, leader.connections) == (1, 3)


def test_calls_are_serialized(stubs: Callable[..., Stub]) -> None:
    # The stub notes when each request arrived and when it began to answer.
    # A serialized client sends a request only after the answer to the one
    # before, so the stretches do not overlap.
    mu = threading.Lock()
    stretches: list[tuple[float, float]] = []

    def respond(connection: socket.socket) -> None:
        read_request(connection)
        arrived = time.monotonic()
        time.sleep(0.02)
        with mu:
            stretches.append((arrived, time.monotonic()))
        send_json(connection, OK)

    leader = stubs(respond)
    c = KVClient([leader.addr], attempt_timeout=PATIENT)

    def put_three_times() -> None:
        for _ in range(3):
            assert c.put("k", "v") == ("old", True)

    run_concurrently([put_three_times] * 4)
    assert leader.connections == 12
    stretches.sort()
    for (_, answered), (arrived, _) in itertools.pairwise(stretches):
        assert answered <= arrived, stretches


def test_request_too_large_is_refused_before_sending(
    stubs: Callable[..., Stub],
) -> None:
    leader = stubs(answer_json(OK))
    c = KVClient([leader.addr])
    with pytest.raises(ValueError, match="bytes"):
        c.put("k", "x" * MAX_BODY)
    assert leader.connections == 0


@pytest.mark.parametrize(
    "addrs",
    [
        [],
        [""],
        ["127.0.0.1"],
        ["127.0.0.1:http"],
        ["127.0.0.1:0"],
        ["127.0.0.1:99999"],
        ["http://127.0.0.1:80/"],
        ["127.0.0.1:80/get/"],
        [":80"],
    ],
)
def test_bad_addresses(addrs: list[str]) -> None:
    with pytest.raises(ValueError, match="address"):
        KVClient(addrs)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m part4kv.kvclient ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "part4kv.kvclient", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_command_line_client() -> None:
    with Harness(3) as h:
        h.check_single_leader()
        # The addresses as python -m part4kv prints them work too.
        addrs = ",".join([h.addrs[0], f"http://{h.addrs[1]}/", h.addrs[2]])
        for args, printed in [
            (["put", "k", "v"], {"found": False, "value": ""}),
            (["append", "k", "w"], {"found": True, "value": "v"}),
            (["cas", "k", "vw", "x"], {"found": True, "value": "vw"}),
            (["get", "k"], {"found": True, "value": "x"}),
            (["get", "absent"], {"found": False, "value": ""}),
        ]:
            result = run_cli(addrs, *args)
            assert result.returncode == 0, result
            assert json.loads(result.stdout) == printed


def test_command_line_client_timeout_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = kvclient.main([closed_port_addr(), "--timeout", "0.3", "get", "k"])
    assert status == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no leader" in captured.err


def test_command_line_client_commit_error_exits_1(
    stubs: Callable[..., Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    failed = {"status": "FailedCommit", "found": False, "value": ""}
    leader = stubs(answer_json(failed))
    assert kvclient.main([leader.addr, "get", "k"]) == 1
    assert "commit failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["127.0.0.1:1"],
        ["127.0.0.1:1", "delete", "k"],
        ["127.0.0.1:1", "get"],
        ["127.0.0.1:1", "put", "k"],
        ["127.0.0.1:1", "cas", "k", "old"],
        ["127.0.0.1:1", "get", "k", "extra"],
        ["nonsense", "get", "k"],
        ["127.0.0.1:1,", "get", "k"],
        ["--timeout", "0", "127.0.0.1:1", "get", "k"],
        ["--timeout", "soon", "127.0.0.1:1", "get", "k"],
    ],
)
def test_command_line_client_usage_error_exits_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        kvclient.main(args)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err
