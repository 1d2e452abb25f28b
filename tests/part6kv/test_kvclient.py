"""Tests of KVClient and of the command-line client.

Stub services (small HTTP servers that answer what a test wants) check the
client's rules exactly; clusters check failover for real.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from part6kv import kvclient
from part6kv.api import MAX_BODY
from part6kv.harness import Harness
from part6kv.kvclient import (
    KVClient,
    KVDuplicateRequestError,
    KVSessionExpiredError,
    KVTimeoutError,
)
from tests.part6kv.helpers import run_concurrently, wait_until

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


def read_request(connection: socket.socket) -> Any:
    """Read an HTTP request with a Content-Length from ``connection``;
    return its JSON body. EOFError if the client closes the connection
    first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise EOFError("the client closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return json.loads(body)


def send_json(
    connection: socket.socket, reply: object, version: str = "HTTP/1.0"
) -> None:
    """Send ``reply`` as a JSON HTTP response."""
    body = json.dumps(reply).encode()
    connection.sendall(
        f"{version} 200 OK\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def answer_json(
    reply: object, requests: list[Any] | None = None, version: str = "HTTP/1.0"
) -> Callable[[socket.socket], None]:
    """A stub response: read the request (and append it to ``requests``),
    answer ``reply`` in HTTP ``version``."""

    def respond(connection: socket.socket) -> None:
        request = read_request(connection)
        if requests is not None:
            requests.append(request)
        send_json(connection, reply, version)

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


def reply_of(status: str) -> dict[str, object]:
    """A reply to a put with ``status``, and nothing else."""
    return {"status": status, "found": False, "prev_value": ""}


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


def closed_port_addrs(n: int) -> list[str]:
    """``n`` different addresses where nothing listens."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in socks]


def closed_port_addr() -> str:
    """An address where nothing listens."""
    return closed_port_addrs(1)[0]


def port_of(addr: str) -> str:
    """The port of ``HOST:PORT``, as ``:PORT``."""
    return ":" + addr.rpartition(":")[2]


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
        c.close()
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


def test_timeout_error_says_what_each_service_did(
    stubs: Callable[..., Stub],
) -> None:
    follower = stubs(answer_json(NOT_LEADER))
    closed = closed_port_addr()
    hole = stubs(black_hole)
    stray = stubs(answer_raw(b"HTTP/1.0 404 Not Found\r\n\r\n"))
    c = KVClient([follower.addr, closed, hole.addr, stray.addr], attempt_timeout=0.1)
    with pytest.raises(KVTimeoutError) as raised:
        c.put("k", "v", timeout=1.0)
    assert str(raised.value) == (
        f"no leader applied put('k', 'v')#{c.client_id}.1 within 1.0s: NotLeader from "
        f"{follower.addr}; connection refused by {port_of(closed)}; no answer "
        f"in time from {port_of(hole.addr)}; a bad answer from {port_of(stray.addr)}"
    )
    c.close()


def test_backs_off_after_a_round_without_leader(stubs: Callable[..., Stub]) -> None:
    followers = [stubs(answer_json(NOT_LEADER)) for _ in range(2)]
    c = KVClient([f.addr for f in followers])
    with pytest.raises(KVTimeoutError):
        c.get("k", timeout=0.5)
    # A pause after each round of two: at most this many rounds fit.
    rounds = 0.5 / kvclient.ROUND_BACKOFF + 1
    assert sum(f.connections for f in followers) <= 2 * rounds


def test_every_attempt_of_a_call_sends_the_same_ids(
    stubs: Callable[..., Stub],
) -> None:
    # Each service that fails the call differently; the last one applies it.
    requests: list[Any] = []
    failing = [
        stubs(answer_json(reply_of(status), requests))
        for status in ["NotLeader", "FailedCommit", "Timeout"]
    ]
    hole = stubs(black_hole)
    leader = stubs(answer_json(OK, requests))
    addrs = [closed_port_addr(), hole.addr, *(f.addr for f in failing), leader.addr]
    c = KVClient(addrs, attempt_timeout=0.2)
    assert c.put("k", "v") == ("old", True)
    assert c.put("k", "w") == ("old", True)

    ids = [(r["client_id"], r["request_id"]) for r in requests]
    assert ids == [(c.client_id, 1)] * 4 + [(c.client_id, 2)]
    assert hole.connections == 1
    assert 1 <= c.client_id < 2**63


@pytest.mark.parametrize("status", ["FailedCommit", "Timeout"])
def test_commit_errors_are_retried(stubs: Callable[..., Stub], status: str) -> None:
    leader = stubs(answer_json(reply_of(status)))
    other = stubs(answer_json(OK))
    c = KVClient([leader.addr, other.addr], attempt_timeout=PATIENT)
    assert c.put("k", "v") == ("old", True)
    assert (leader.connections, other.connections) == (1, 1)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("DuplicateRequest", KVDuplicateRequestError),
        ("SessionExpired", KVSessionExpiredError),
    ],
)
def test_duplicate_and_expired_are_not_retried(
    stubs: Callable[..., Stub], status: str, error: type[Exception]
) -> None:
    leader = stubs(answer_json(reply_of(status)))
    other = stubs(answer_json(OK))
    c = KVClient([leader.addr, other.addr], attempt_timeout=PATIENT)
    with pytest.raises(error):
        c.put("k", "v")
    assert (leader.connections, other.connections) == (1, 0)


def test_new_session_after_session_expired(stubs: Callable[..., Stub]) -> None:
    requests: list[Any] = []
    replies = iter([reply_of("OK"), reply_of("SessionExpired"), reply_of("OK")])

    def respond(connection: socket.socket) -> None:
        requests.append(read_request(connection))
        send_json(connection, next(replies))

    c = KVClient([stubs(respond).addr], attempt_timeout=PATIENT)
    c.put("k", "v")
    with pytest.raises(KVSessionExpiredError):
        c.put("k", "v")
    c.put("k", "v")

    ids = [(r["client_id"], r["request_id"]) for r in requests]
    old, new = ids[0][0], ids[2][0]
    assert ids == [(old, 1), (old, 2), (new, 1)]
    assert old != new


def test_clients_have_different_ids() -> None:
    ids = {KVClient(["127.0.0.1:1"]).client_id for _ in range(100)}
    assert len(ids) == 100


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
    """Run ``python -m part6kv.kvclient ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "part6kv.kvclient", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_command_line_client() -> None:
    with Harness(3) as h:
        h.check_single_leader()
        # The addresses as python -m part6kv prints them work too.
        addrs = ",".join([h.addrs[0], f"http://{h.addrs[1]}/", h.addrs[2]])
        for args, printed, said in [
            (["put", "k", "v"], {"found": False, "value": ""}, ""),
            (["append", "k", "w"], {"found": True, "value": "v"}, ""),
            (["cas", "k", "vw", "x"], {"found": True, "value": "vw"}, ""),
            (["get", "k"], {"found": True, "value": "x"}, ""),
            (["get", "absent"], {"found": False, "value": ""}, ""),
            (
                ["cas", "k", "vw", "y"],
                {"found": True, "value": "x"},
                "cas did not swap: 'k' holds 'x', not 'vw'\n",
            ),
            (
                ["cas", "absent", "", "y"],
                {"found": False, "value": ""},
                "cas did not swap: there is no key 'absent' "
                "(a cas never creates one)\n",
            ),
        ]:
            result = run_cli(addrs, *args)
            assert result.returncode == 0, result
            assert json.loads(result.stdout) == printed
            assert result.stderr == said


def test_command_line_client_timeout_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    addrs = closed_port_addrs(3)
    status = kvclient.main([",".join(addrs), "--timeout", "0.3", "get", "k"])
    assert status == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: no service answered: connection refused by {addrs[0]}, "
        f"{port_of(addrs[1])}, {port_of(addrs[2])}\n"
    )


@pytest.mark.parametrize(
    ("status", "message"),
    [("DuplicateRequest", "older than"), ("SessionExpired", "session")],
)
def test_command_line_client_duplicate_or_expired_exits_1(
    stubs: Callable[..., Stub],
    capsys: pytest.CaptureFixture[str],
    status: str,
    message: str,
) -> None:
    leader = stubs(answer_json({"status": status, "found": False, "value": ""}))
    assert kvclient.main([leader.addr, "get", "k"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


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


# --- Deadlines, slow services and kept connections --------------------------


def trickle(response: bytes) -> Callable[[socket.socket], None]:
    """A stub response: read the request, then send ``response`` a byte
    every 50 ms, until the client hangs up."""

    def respond(connection: socket.socket) -> None:
        read_request(connection)
        with contextlib.suppress(OSError):
            for byte in response:
                connection.sendall(bytes([byte]))
                time.sleep(0.05)

    return respond


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 200,
        b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + b" " * 200,
    ],
    ids=["head", "body"],
)
def test_deadline_holds_against_a_trickling_service(
    stubs: Callable[..., Stub], response: bytes
) -> None:
    c = KVClient([stubs(trickle(response)).addr], attempt_timeout=0.1)
    start = time.monotonic()
    with pytest.raises(KVTimeoutError):
        c.put("k", "v", timeout=1.0)
    elapsed = time.monotonic() - start
    assert 1.0 - 0.1 <= elapsed <= 1.0 + 1.0


def test_waits_longer_after_attempts_time_out(stubs: Callable[..., Stub]) -> None:
    # A service that takes 0.25 s to answer; later, no time at all.
    delay = [0.25]

    def respond(connection: socket.socket) -> None:
        read_request(connection)
        time.sleep(delay[0])
        with contextlib.suppress(OSError):  # the client gave up on it
            send_json(connection, OK)

    slow = stubs(respond)
    c = KVClient([slow.addr], attempt_timeout=0.1)
    assert c.put("k", "v") == ("old", True)
    # Attempts of 0.1 s and 0.2 s timed out; one of 0.4 s got the answer.
    assert slow.connections >= 3
    assert c.patience >= 0.4
    # The next call waits long enough at once.
    sent = slow.connections
    assert c.put("k", "v") == ("old", True)
    assert slow.connections == sent + 1

    # Quick answers bring the wait back down.
    delay[0] = 0
    for _ in range(10):
        c.put("k", "v")
    assert c.patience == 0.1


def slowed(
    write: Callable[[str, bytes], None], seconds: float
) -> Callable[[str, bytes], None]:
    """``write``, taking ``seconds`` longer."""

    def write_slowly(key: str, value: bytes) -> None:
        time.sleep(seconds)
        write(key, value)

    return write_slowly


def test_calls_complete_when_commits_are_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A disk that takes 30 ms a write (an SD card's fsync) makes every
    commit slower than an attempt of 0.1 s: two writes on the leader, then
    two on a follower. Calls still complete, and do not fill the log with
    copies of their requests.

    (Not slower: a leader holds its lock over the two writes of an entry,
    and sends no heartbeat meanwhile. At 60 ms a write, a submit just before
    a heartbeat was due keeps followers waiting 170 ms, more than the
    shortest election timeout (150 ms): now and then, more often on a
    loaded machine, an election breaks out whatever the client does.)
    """
    write_seconds = 0.03
    with Harness(3) as h:
        lid = h.check_single_leader()
        c = h.new_client()
        h.check_put(c, "k", "fast")
        # From now on every write to storage takes write_seconds, more
        # than once per commit: longer than an attempt of 0.1 s.
        for storage in h.storage:
            monkeypatch.setattr(storage, "set", slowed(storage.set, write_seconds))
        cm = h.services[lid].raft_server.cm
        with cm.mu:
            entries_before = len(cm.log)
        calls = 8
        for i in range(calls):
            h.check_put(c, "k", f"slow{i}")
        with cm.mu:
            entries = len(cm.log) - entries_before
        # Each attempt that timed out left a copy of its request in the log.
        assert entries <= 1.5 * calls, f"{entries} entries for {calls} calls"


def answer_each_request(connection: socket.socket) -> None:
    """A stub response: answer OK to each request on the connection, over
    HTTP/1.1, until the client closes it."""
    with contextlib.suppress(OSError, EOFError):
        while True:
            read_request(connection)
            body = json.dumps(OK).encode()
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )


def test_keeps_its_connection_between_calls(stubs: Callable[..., Stub]) -> None:
    leader = stubs(answer_each_request)
    c = KVClient([leader.addr], attempt_timeout=PATIENT)
    for _ in range(3):
        assert c.put("k", "v") == ("old", True)
    assert leader.connections == 1
    c.close()


def test_reconnects_when_the_kept_connection_was_closed(
    stubs: Callable[..., Stub],
) -> None:
    # It answers one request per connection, over HTTP/1.1 (so the client
    # keeps the connection), and then closes it, as a service closes an
    # idle one.
    requests: list[Any] = []
    leader = stubs(answer_json(OK, requests, version="HTTP/1.1"))
    other = stubs(answer_json(OK))
    c = KVClient([leader.addr, other.addr], attempt_timeout=PATIENT)
    for _ in range(3):
        assert c.put("k", "v") == ("old", True)
    assert (leader.connections, other.connections) == (3, 0)
    assert len(requests) == 3
    c.close()


def sigint_by_default() -> None:
    """Give SIGINT its default action in a child about to start, as at a
    terminal: a shell that runs pytest in the background (``&`` in a
    script) makes it ignore SIGINT, and its children too, and a Python
    started so turns no Ctrl-C into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_command_line_client_ctrl_c_exits_130(stubs: Callable[..., Stub]) -> None:
    hole = stubs(black_hole)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["--timeout", "30", hole.addr, "get", "k"]
    process = subprocess.Popen(
        [sys.executable, "-m", "part6kv.kvclient", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=sigint_by_default,
    )
    try:
        wait_until(lambda: hole.connections >= 1, "the client sent its request")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert (out, err) == ("", "")
