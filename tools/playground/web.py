"""The playground's web server: the page, and the JSON API it drives.

Standard library only (``http.server``), on 127.0.0.1. The routes:

- ``GET /``: the page;
- ``GET /api/state?run=R&since=V``: the cluster, once it changed since
  version ``V`` of run ``R`` (a long poll: at most ``POLL_SECONDS``);
- ``GET /api/scenarios``: the scenarios (name, title, stage, about);
- ``POST /api/control``: ``{"do": "pause"}``, ``resume``, ``step``, or
  ``{"do": "speed", "speed": 0.1}``;
- ``POST /api/action``: an action, as in a session but without ``at``
  (``{"do": "crash", "server": 2}``); answered once the run did it;
- ``POST /api/save``: write the session and its log into the output folder;
- ``POST /api/log``: write the log and its visualizer page; answers their
  paths and the page's URL;
- ``POST /api/start``: start another run: ``{"scenario": NAME}``, or
  ``{"part": ..., "servers": ..., "seed": ...}`` (no seed: a random one);
- ``GET /files/NAME``: a file the playground wrote (a visualizer page).

Every answer is JSON but the page and the files; an error is
``{"error": "..."}`` with a status that says what kind (400 bad input, 404
no such route, 409 the action cannot be done now). A request must be
addressed to the server's own address (``Host``), and a POST must carry
JSON (``Content-Type: application/json``): a web page of another site
cannot drive the cluster through the user's browser.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tools.raft_testlog_viz.cluster import build_history
from tools.raft_testlog_viz.pages import render_page as render_viz_page
from tools.raft_testlog_viz.parse import parse_log
from tools.raft_testlog_viz.timeline import build_timeline
from tools.sim.args import SEED_LIMIT

from .live import LiveRun
from .page import render_page
from .scenarios import SCENARIOS, load_scenario
from .session import (
    BadSessionError,
    Session,
    parse_action,
    parse_session,
    parse_speed,
)

POLL_SECONDS = 10.0
"""The longest a request for the state waits for a change."""

ACTION_SECONDS = 10.0
"""The longest a request for an action (or a save) waits for the run to
reach a moment to do it at."""

MAX_BODY = 64 * 1024
"""The largest request body, in bytes."""


class HTTPError(Exception):
    """An answer that is an error: its status and what to say."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Answer:
    """What to send back."""

    body: bytes
    content_type: str = "application/json"
    status: HTTPStatus = HTTPStatus.OK


def json_answer(data: object, status: HTTPStatus = HTTPStatus.OK) -> Answer:
    """``data`` as a JSON answer."""
    return Answer(json.dumps(data).encode(), status=status)


class Playground:
    """The web server and the run it shows, one run at a time."""

    def __init__(
        self, session: Session, *, port: int, outdir: Path, source: str = ""
    ) -> None:
        self.outdir = outdir
        self.lock = threading.Lock()  # guards the switch to another run
        self.run_id = 0
        self.run = LiveRun(session)
        self.source = source
        self.written: dict[str, Path] = {}  # files served under /files/
        self.closed = False
        self.server = PlaygroundServer(("127.0.0.1", port), self)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="playground web"
        )

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """The page's address."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Start the run and the web server."""
        self.run.start()
        self.thread.start()

    def close(self) -> None:
        """Stop the run and the web server; every thread they started ends
        and the port is closed. Closing again does nothing."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.run.quit()
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join()
        self.server.close_connections()
        self.server.server_close()

    def switch(self, session: Session, source: str) -> LiveRun:
        """Stop the run and start ``session`` instead."""
        with self.lock:
            self.run.quit()
            self.run_id += 1
            self.run = LiveRun(session)
            self.source = source
            self.run.start()
            return self.run

    # --- Routes -------------------------------------------------------------

    def answer(self, method: str, target: str, body: bytes) -> Answer:
        """The answer to a request (the handler does only the I/O)."""
        url = urlsplit(target)
        route = ROUTES.get((method, url.path))
        if route is None:
            if url.path.startswith("/files/") and method == "GET":
                return self.file(url.path.removeprefix("/files/"))
            known = sorted({path for _, path in ROUTES} | {"/files/NAME"})
            allowed = sorted(m for m, path in ROUTES if path == url.path)
            if allowed:
                raise HTTPError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"{url.path} takes {' or '.join(allowed)}, not {method}",
                )
            raise HTTPError(
                HTTPStatus.NOT_FOUND,
                f"no route {url.path!r}: the routes are {', '.join(known)}",
            )
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        data = read_json(body) if method == "POST" else {}
        result: Answer = route(self, query, data)
        return result

    def page(self, query: dict[str, str], data: dict[str, Any]) -> Answer:
        """The page."""
        return Answer(render_page().encode(), "text/html; charset=utf-8")

    def state(self, query: dict[str, str], data: dict[str, Any]) -> Answer:
        """The cluster, once it changed (see LiveRun.state)."""
        run_id = whole(query.get("run", "-1"), "run")
        since = whole(query.get("since", "-1"), "since")
        with self.lock:
            run, current, source = self.run, self.run_id, self.source
        if run_id != current:
            since = -1  # another run: it starts from nothing
        state = run.state(since, POLL_SECONDS)
        session = run.session
        state.update(
            run=current,
            source=source,
            session={
                "part": session.part,
                "lesson": session.stage.lesson,
                "servers": session.servers,
                "seed": session.seed,
                "title": session.title,
                "about": session.about,
                "crashes": session.stage.crashes,
                "snapshots": session.stage.snapshots,
            },
        )
        return json_answer(state)

    def scenarios(self, query: dict[str, str], data: dict[str, Any]) -> Answer:
        """The scenarios the page's menu offers."""
        listed = []
        for name in SCENARIOS:
            scenario = load_scenario(name)
            listed.append(
                {
                    "name": name,
                    "title": scenario.title,
                    "part": scenario.part,
                    "about": scenario.about,
                }
            )
        return json_answer(listed)

    def control(self, query: dict[str, str], data: dict[str, Any]) -> Answer:
        """Pause, resume, step, or change the speed."""
        do = data.get("do")
        if do not in ("pause", "resume", "step", "speed"):
            raise HTTPError(
                HTTPStatus.BAD_REQUEST,
                f"'do' is {do!r}: the controls are pause, resume, step and speed",
            )
        speed = None
        if do == "speed":
            try:
                speed = parse_speed(data.get("speed"))
            except BadSessionError as error:
                raise HTTPError(HTTPStatus.BAD_REQUEST, str(error)) from None
        elif set(data) != {"do"}:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"{do} takes no other field")
        self.run.control(str(do), speed)
        return json_answer({"done": do})

    def action(self, query: dict[str, str], data: dict[str, Any]) -> Answer:
        """Do an action on the cluster, at the run's next moment."""
        run = self.run
        try:
            action = parse_action(data, run.session, timed=False)
        except BadSessionError as error:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(error)) from None
        if action.do in ("pause", "note"):
            raise HTTPError(
                HTTPStatus.BAD_REQUEST,
                f"{action.do} belongs in a session's script, not in the "
                "controls: use /api/control to pause",
            )
        request = run.act(action, ACTION_SECONDS)
        if request.outcome is None:
            raise HTTPError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"{action.describe()}: not done after {ACTION_SECONDS:g} s: "
                "the run is busy; it will be done when it can",
            )
        if request.done is None:
            raise HTTPError(
                HTTPStatus.CONFLICT, f"{action.describe()}: {request.outcome}"
            )
        return json_answer(
            {
                "done": request.done.to_json(),
                "describe": request.done.describe(),
                "outcome": request.outcome,
            }
        )

    def save(self, query: dict[str, str], data: dict[str, Any]) -> Answer:
        """Write the session played so far, and its log, into the output
        folder."""
        save = self.run.save(ACTION_SECONDS)
        if save is None or save.session is None:
            raise HTTPError(HTTPStatus.CONFLICT, "the run is over: nothing to save")
        stem = session_name(save.session)
        session_path = self.write(f"{stem}.json", save.session.to_json())
        log_path = self.write(
            f"{stem}.log", "".join(f"{line}\n" for line in save.lines)
        )
        return json_answer(
            {
                "session": str(session_path),
                "log": str(log_path),
                "end": save.session.end,
                "replay": f"python -m tools.playground --replay {session_path}",
            }
        )

    def open_log(self, query: dict[str, str], data: dict[str, Any]) -> Answer:
        """Write the run's log so far, and its visualizer page."""
        run = self.run
        lines = run.log_lines()
        session = run.session
        stem = f"{session_name(session)}-log-{len(lines)}-lines"
        log_path = self.write(f"{stem}.log", "".join(f"{line}\n" for line in lines))
        title = (
            f"playground {session.part}, {session.servers} servers, seed {session.seed}"
        )
        run_log = parse_log(lines, unframed_name=title)
        timeline = build_timeline(run_log.tests[0])
        page = render_viz_page(timeline, build_history(timeline))
        page_path = self.write(f"{stem}.html", page)
        return json_answer(
            {
                "log": str(log_path),
                "page": str(page_path),
                "url": f"/files/{page_path.name}",
            }
        )

    def start_run(self, query: dict[str, str], data: dict[str, Any]) -> Answer:
        """Start another run: a scenario, or a new cluster."""
        try:
            if "scenario" in data:
                if set(data) != {"scenario"}:
                    raise BadSessionError("a scenario takes no other field")
                name = data["scenario"]
                session = load_scenario(str(name))
                source = f"scenario {name}"
            else:
                fields = {"part": "part3", "servers": 5, "actions": []}
                fields.update(data)
                if fields.get("seed") is None:
                    fields["seed"] = random.randrange(SEED_LIMIT)
                session = parse_session(json.dumps(fields))
                if session.actions or session.end is not None:
                    raise BadSessionError("a new run takes part, servers and seed")
                source = "a new run"
        except BadSessionError as error:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(error)) from None
        self.switch(session, source)
        return json_answer({"run": self.run_id, "source": source})

    def file(self, name: str) -> Answer:
        """A file the playground wrote."""
        path = self.written.get(name)
        if path is None or not path.exists():
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no file {name!r} here")
        kind = "text/html; charset=utf-8" if name.endswith(".html") else "text/plain"
        return Answer(path.read_bytes(), kind)

    def write(self, name: str, text: str) -> Path:
        """Write ``text`` to the output folder as ``name``."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        path = self.outdir / name
        path.write_text(text, encoding="utf-8")
        self.written[name] = path
        return path


ROUTES = {
    ("GET", "/"): Playground.page,
    ("GET", "/api/state"): Playground.state,
    ("GET", "/api/scenarios"): Playground.scenarios,
    ("POST", "/api/control"): Playground.control,
    ("POST", "/api/action"): Playground.action,
    ("POST", "/api/save"): Playground.save,
    ("POST", "/api/log"): Playground.open_log,
    ("POST", "/api/start"): Playground.start_run,
}


def session_name(session: Session) -> str:
    """A file name for a session: its stage, size, seed and end."""
    end = "" if session.end is None else f"-at-{session.end:.3f}s"
    return f"{session.part}-{session.servers}-servers-seed-{session.seed}{end}"


def read_json(body: bytes) -> dict[str, Any]:
    """A request's JSON object."""
    try:
        data = json.loads(body or b"{}")
    except ValueError as error:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"the body is not JSON: {error}"
        ) from None
    if not isinstance(data, dict):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"the body must be a JSON object, not {data!r}"
        )
    return data


def whole(text: str, name: str) -> int:
    """A whole number of the query, such as ``since=12``."""
    try:
        return int(text)
    except ValueError:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"{name}={text!r}: want a whole number"
        ) from None


class PlaygroundServer(ThreadingHTTPServer):
    """The HTTP server: a thread per request, each of which ends, and the
    connections still open closed at the end (a long poll's too)."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], playground: Playground) -> None:
        self.playground = playground
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Note the connection, then handle it on a thread of its own."""
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, and close it."""
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every connection still open: their threads then end."""
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):  # closed already
                    connection.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """One request: read it, ask the Playground for the answer, send it."""

    server: PlaygroundServer
    timeout = 30  # seconds a client may take to send its request

    def do_GET(self) -> None:
        """Answer a GET."""
        self.handle_method("GET")

    def do_POST(self) -> None:
        """Answer a POST."""
        self.handle_method("POST")

    def do_PUT(self) -> None:
        """Refuse a PUT."""
        self.handle_method("PUT")

    def do_DELETE(self) -> None:
        """Refuse a DELETE."""
        self.handle_method("DELETE")

    def handle_method(self, method: str) -> None:
        """Answer a request, or say why not."""
        playground = self.server.playground
        try:
            self.check_host(playground.port)
            body = self.read_body() if method == "POST" else b""
            answer = playground.answer(method, self.path, body)
        except HTTPError as error:
            answer = json_answer({"error": error.message}, error.status)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(OSError):  # the browser went away
            self.wfile.write(answer.body)

    def check_host(self, port: int) -> None:
        """Answer only requests addressed to this server."""
        host = self.headers.get("Host", "")
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            raise HTTPError(
                HTTPStatus.FORBIDDEN,
                f"this server answers only at http://127.0.0.1:{port}/",
            )

    def read_body(self) -> bytes:
        """A POST's body: JSON, of a sensible size."""
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        if kind != "application/json":
            raise HTTPError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"a POST carries JSON (Content-Type: application/json), not {kind!r}",
            )
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "a bad Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise HTTPError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"a body of {length} bytes: at most {MAX_BODY}",
            )
        return self.rfile.read(length)

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: the terminal is the user's."""
