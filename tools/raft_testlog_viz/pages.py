"""HTML pages: one per test, and an index of the run.

A test's page has an overview strip, the cluster at a chosen moment (each
server's state, term and log), and the timeline table with the messages
drawn beside it as a space-time diagram.

Pages are self-contained (style, script and data inline) and every piece of
log text is HTML-escaped; the data the script draws from is JSON in which
``<``, ``>`` and ``&`` are escaped too. Rows are plain table rows, so a page
still shows its table with scripts off; the script adds the controls, the
cluster panel and the diagram. A page is built as one list of strings joined
at the end: with tens of thousands of rows that is what keeps rendering a
whole run to a few seconds.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

from .assets import MARKER_COLOURS, MESSAGE_COLOURS, SCRIPT, STYLE
from .cluster import CommitOp, History, LogOp, Op, PeerOp, StateOp, build_history
from .messages import LOST, REPLY, Message
from .parse import Entry, RunLog, TestLog
from .timeline import Marker, Row, Segment, State, Timeline, build_timeline

DEFAULT_OUTDIR = Path(tempfile.gettempdir()) / "raftviz"
"""Where pages go unless told otherwise: ``raftviz`` in the temp dir."""

STATE_CLASS = {
    State.FOLLOWER: "F",
    State.CANDIDATE: "C",
    State.LEADER: "L",
    State.DEAD: "D",
}
"""The CSS class of each state (short: it is written once per cell)."""

# The empty cell of a server in each state.
_EMPTY_CELL = {state: f"<td class={cls}>" for state, cls in STATE_CLASS.items()}
CHUNK_ROWS = 100
"""Rows per chunk of the timeline table (see ``_append_table``)."""

# Time and TEST get fixed widths; the servers share the rest.
_COLUMNS = "<colgroup><col style=width:7.5em><col style=width:11%></colgroup>"
_CHUNK_START = f"<div class=chunk><table class=log>{_COLUMNS}<tbody>\n"
_CHUNK_END = "</tbody></table></div>\n"
_GUIDED = frozenset({"disconnect", "reconnect", "crash", "restart"})
_UNSAFE_FILENAME = re.compile(r"[^\w.\[\]-]")


@dataclass(frozen=True, slots=True)
class Page:
    """A written page of one test."""

    test: TestLog
    path: Path

    @property
    def url(self) -> str:
        """The page's ``file://`` URL."""
        return self.path.as_uri()


@dataclass(frozen=True, slots=True)
class Site:
    """The pages of a run and their index."""

    pages: list[Page]
    index: Path


def write_site(run: RunLog, outdir: Path) -> Site:
    """Write one page per test of ``run`` and ``index.html`` into ``outdir``."""
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    pages: list[Page] = []
    for test, filename in zip(run.tests, page_filenames(run.tests), strict=True):
        path = outdir / filename
        timeline = build_timeline(test)
        html = render_page(timeline, build_history(timeline))
        path.write_text(html, encoding="utf-8")
        pages.append(Page(test, path))
    index = outdir / "index.html"
    index.write_text(render_index(run, pages), encoding="utf-8")
    return Site(pages, index)


def page_filenames(tests: list[TestLog]) -> list[str]:
    """A distinct, file-system-safe file name for each test's page.

    A name seen again (the same test run twice in one log) gets ``_2``,
    ``_3``...; no page may be called ``index.html``.
    """
    used = {"index.html"}
    names: list[str] = []
    for test in tests:
        stem = _UNSAFE_FILENAME.sub("_", test.name) or "test"
        name, n = f"{stem}.html", 1
        while name in used:
            n += 1
            name = f"{stem}_{n}.html"
        used.add(name)
        names.append(name)
    return names


def format_duration(test: TestLog) -> str:
    """The test's duration as its frame gave it, e.g. ``0.87s``."""
    return "-" if test.duration is None else f"{test.duration:.2f}s"


def render_page(timeline: Timeline, history: History | None = None) -> str:
    """The HTML page of one test (``history``: its cluster history, built
    from ``timeline`` if not given)."""
    if history is None:
        history = build_history(timeline)
    test = timeline.test
    title = escape(f"{test.name} — {test.status}")
    parts = [
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>",
        f"<title>{title}</title><style>{STYLE}{_column_rules(timeline)}</style>",
        "</head><body>\n",
        f"<h1>{escape(test.name)} <span class='status {escape(test.status)}'>",
        f"{escape(test.status)}</span></h1>\n",
        _meta(timeline),
        _legend(),
        _malformed(timeline),
    ]
    if timeline.rows:
        parts.append(_overview(timeline))
    else:
        parts.append("<p>This test logged no Raft lines.</p>\n")
    parts.append(_controls(timeline))
    _append_table(parts, timeline)
    parts.append("<div id=tip hidden></div>\n")
    parts.append(
        f"<script type=application/json id=data>{_data(timeline, history)}</script>\n"
    )
    parts.append(f"<script>{SCRIPT}</script>\n</body></html>\n")
    return "".join(parts)


DIAGRAM_WIDTH = 36
"""Pixels of the messages diagram per server (at least 120 in all)."""


def _column_rules(timeline: Timeline) -> str:
    # Hiding server s hides its column, and its line in the messages
    # diagram: class x<s> on #timeline. Columns are time, TEST, then the
    # servers, so server i is the (i + 3)rd child.
    width = max(120, DIAGRAM_WIDTH * len(timeline.servers))
    return f"#msgs,#mhead{{width:{width}px}}" + "".join(
        f"#timeline.x{server} tr>:nth-child({i + 3}),"
        f"#timeline.x{server} #mhead>:nth-child({i + 1}){{display:none}}"
        for i, server in enumerate(timeline.servers)
    )


def _meta(timeline: Timeline) -> str:
    test = timeline.test
    return (
        f"<p class=meta>pytest duration {format_duration(test)} · "
        f"{len(timeline.servers)} servers · {len(timeline.rows)} log lines · "
        f"log span {timeline.span_ms:.1f} ms · "
        "<a href=index.html>all tests of the run</a></p>\n"
    )


def _legend() -> str:
    states = "".join(
        f"<span class={cls}>{state}</span>" for state, cls in STATE_CLASS.items()
    )
    marks = "".join(f"<i class='key k-{kind}'></i>{kind}" for kind in MARKER_COLOURS)
    arrows = "".join(
        f"<i class=arrow style=background:{colour}></i>{kind}"
        for kind, colour in MESSAGE_COLOURS.items()
    )
    return (
        f"<p class=legend>States: {states} · TEST actions:{marks} · "
        "<b>n</b> = the server's term, <b style=color:#c92a2a>a→b</b> = "
        "term change · time in ms since the test's first line (hover for "
        f"the wall clock)<br>Messages:{arrows} · ✕ lost · ⊣ not connected · "
        "dashed: still in flight when the test ended · log entries: "
        "<i class='t1 c'>1</i> committed, <i class='t1 u'>1</i> not (yet), "
        "<i class=q>?</i> unknown</p>\n"
    )


def _malformed(timeline: Timeline) -> str:
    test, messages = timeline.test, timeline.messages
    parts: list[str] = []
    if test.malformed:
        items = "".join(
            f"<li>line {m.lineno} ({escape(m.reason)}): <code>{escape(m.text)}</code>"
            for m in test.malformed
        )
        count = len(test.malformed)
        plural = "s" if count > 1 else ""
        parts.append(
            f"<details><summary>{count} malformed line{plural} skipped</summary>"
            f"<ul>{items}</ul></details>\n"
        )
    unpaired = [
        (row, "its message was not sent in this test") for row in messages.orphans
    ] + messages.malformed
    if unpaired:
        items = "".join(
            f"<li>line {timeline.rows[row].entry.lineno} ({escape(why)}): "
            f"<code>{escape(timeline.rows[row].entry.message)}</code>"
            for row, why in sorted(unpaired)
        )
        count = len(unpaired)
        plural = "s" if count > 1 else ""
        parts.append(
            f"<details><summary>{count} message line{plural} not drawn</summary>"
            f"<ul>{items}</ul></details>\n"
        )
    if test.late:
        items = "".join(
            f"<li>line {e.lineno}: <code>{escape(_logged(e))}</code>" for e in test.late
        )
        count = len(test.late)
        plural = "s were" if count > 1 else " was"
        parts.append(
            f"<details><summary>{count} line{plural} logged after the test "
            "ended (a thread of its servers finishing), not drawn</summary>"
            f"<ul>{items}</ul></details>\n"
        )
    return "".join(parts)


def _logged(entry: Entry) -> str:
    """An entry as its line showed it, from its ``[ID]`` on."""
    who = "TEST" if entry.server is None else str(entry.server)
    if entry.source == "kv":
        who = f"kv {entry.server}"
    elif entry.source:
        who = entry.source
    return f"{entry.wall} [{who}] {entry.message}"


def _overview(timeline: Timeline) -> str:
    span = timeline.span_ms or 1.0  # a one-line test still gets a strip
    lanes: dict[int, list[str]] = {server: [] for server in timeline.servers}
    for segment in timeline.segments:
        lanes[segment.server].append(_segment(segment, span))
    parts = [f"<div id=overview data-span={span:.3f} title='click: go to that time'>"]
    for server, segments in lanes.items():
        parts.append(
            f"<div class=lane id=lane{server}><span>{server}</span>"
            f"<div class=bar>{''.join(segments)}</div></div>"
        )
    marks = "".join(_marker(marker, span) for marker in timeline.markers)
    parts.append(
        f"<div class='lane marks'><span>TEST</span><div class=bar>{marks}</div></div>"
    )
    axis = _ticks(span)
    parts.append(
        f"<div class='lane axis'><span>ms</span><div class=bar>{axis}</div></div>"
    )
    # Lines across the servers' bars only for actions that change the
    # cluster: a chaos test submits thousands of commands, whose lines would
    # hide the states.
    guides = "".join(
        f"<i class=k-{m.kind} style='left:{_pct(m.ms, span)}'></i>"
        for m in timeline.markers
        if m.kind in _GUIDED
    )
    parts.append(f"<div id=guides>{guides}</div></div>\n")
    return "".join(parts)


def _pct(ms: float, span: float) -> str:
    return f"{100 * ms / span:.3f}%"


def _segment(segment: Segment, span: float) -> str:
    tip = (
        f"server {segment.server}: {segment.state}, term {segment.term}, "
        f"{segment.start_ms:.1f} to {segment.end_ms:.1f} ms"
    )
    return (
        f"<i class={STATE_CLASS[segment.state]} style='left:"
        f"{_pct(segment.start_ms, span)};width:"
        f"{_pct(segment.end_ms - segment.start_ms, span)}' title='{tip}'>"
        f"{segment.term}</i>"
    )


def _marker(marker: Marker, span: float) -> str:
    tip = escape(f"{marker.ms:.1f} ms: {marker.text}")
    return (
        f"<i class='mk k-{marker.kind}' style='left:{_pct(marker.ms, span)}' "
        f"title='{tip}'></i>"
    )


def _ticks(span: float) -> str:
    # A round step (1, 2 or 5 times a power of ten) giving at most 10 ticks.
    magnitude = 10 ** math.floor(math.log10(span / 10)) if span > 10 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if span / (m * magnitude) <= 10)
    return "".join(
        f"<u style='left:{_pct(k * step, span)}'>{k * step:g}</u>"
        for k in range(int(span // step) + 1)
    )


def _controls(timeline: Timeline) -> str:
    boxes = "".join(
        f"<label><input type=checkbox data-server={s} checked> server {s}</label>"
        for s in timeline.servers
    )
    total = len(timeline.rows)
    return (
        f"<div id=controls>{boxes}"
        "<label><input type=checkbox id=hb> hide heartbeats</label>"
        "<label title='the lines that the messages diagram draws'>"
        "<input type=checkbox id=rp> hide rpc lines</label>"
        "<label>filter <input type=search id=filter "
        "placeholder='text in the line'></label>"
        f"<span id=count>{total} of {total} rows shown</span></div>\n"
    )


def _moment(timeline: Timeline) -> str:
    # The cluster panel, filled by the script for the moment chosen with the
    # slider (over the test's time), the step buttons or a click on a row.
    if not timeline.rows:
        return ""
    span = f"{timeline.span_ms:.3f}"
    return (
        "<div id=moment><button id=prev title='previous line'>&#9664;</button>"
        f"<input type=range id=slider min=0 max={span} step=0.001 value={span} "
        "aria-label='moment of the test'>"
        "<button id=next title='next line'>&#9654;</button> <span id=at></span></div>"
        "<div id=cluster><div id=who></div><div id=logs></div><div id=peers></div>"
        "</div>\n"
    )


def _append_table(parts: list[str], timeline: Timeline) -> None:
    # The rows come in chunks of CHUNK_ROWS, each its own table in a
    # ``content-visibility: auto`` block, so that the browser lays out only
    # the chunks near the viewport: that is what keeps a page of 50,000 rows
    # responsive. Fixed layout with the same column widths lines the chunks
    # up under the header, which is a table of its own (sticky).
    heads = "".join(f"<th>{server}" for server in timeline.servers)
    labels = "".join(f"<span>{server}</span>" for server in timeline.servers)
    parts.append(
        f"<div id=timeline><div id=top>{_moment(timeline)}"
        f"<div id=head><div id=mhead title='messages'>{labels}</div>"
        f"<table class=log>{_COLUMNS}"
        f"<thead><tr><th>ms<th>TEST{heads}</table></div></div>\n"
        "<div id=body><div id=msgs><canvas id=arrows></canvas></div><div id=rows>\n"
    )
    column = {server: i for i, server in enumerate(timeline.servers)}
    # Cells of servers that did not log the row depend only on the states
    # tuple, which rows share until a state changes: build them once.
    states: tuple[State, ...] | None = None
    cells: list[str] = []
    for n, row in enumerate(timeline.rows):
        if n % CHUNK_ROWS == 0:
            if n:
                parts.append(_CHUNK_END)
            parts.append(_CHUNK_START)
        if row.states is not states:
            states = row.states
            cells = [_EMPTY_CELL[state] for state in states]
        entry = row.entry
        head = f"<td title={entry.wall}>{row.ms:.3f}"
        message = _message_text(entry)
        if entry.server is None:
            parts.append(f"<tr class=sT>{head}<td class=X>{message}{''.join(cells)}\n")
            continue
        i = column[entry.server]
        hb = " hb" if row.heartbeat else ""
        parts.append(
            f"<tr class='s{entry.server}{hb}'>{head}<td>{''.join(cells[:i])}"
            f"{_message_cell(row, i, message)}{''.join(cells[i + 1 :])}\n"
        )
    if timeline.rows:
        parts.append(_CHUNK_END)
    parts.append("</div></div></div>\n")


def _message_text(entry: Entry) -> str:
    # A key/value service's or client's line names who logged it.
    message = escape(entry.message, quote=False)
    if entry.source:
        return f"<em>{escape(entry.source)}</em> {message}"
    return message


def _message_cell(row: Row, i: int, message: str) -> str:
    cls = STATE_CLASS[row.states[i]]
    if row.term_change is None:
        return f"<td class={cls}><b>{row.terms[i]}</b>{message}"
    old, new = row.term_change
    return f"<td class='{cls} tc'><b>{old}→{new}</b>{message}"


KIND_CODE = {"RequestVote": 0, "AppendEntries": 1, "heartbeat": 2}
"""How the page's data names a message's kind; any other kind is 3."""
OUTCOME_CODE = {"": 0, REPLY: 1, LOST: 2}
"""How the page's data names a message's outcome."""


def _data(timeline: Timeline, history: History) -> str:
    """The JSON the page's script draws the messages and the cluster from."""
    data = {
        "servers": timeline.servers,
        "rows": {
            "ms": [row.ms for row in timeline.rows],
            "server": [
                -1 if row.entry.server is None else row.entry.server
                for row in timeline.rows
            ],
            "flags": "".join(_flags(row) for row in timeline.rows),
        },
        "chunk": CHUNK_ROWS,
        "hasLog": history.has_log,
        "colours": list(MESSAGE_COLOURS.values()),
        "msgs": [_message_data(m) for m in timeline.messages.messages],
        "ops": [[_op_data(op) for op in history.ops[s]] for s in timeline.servers],
        "cmds": {f"{i}:{t}": command for (i, t), command in history.commands.items()},
    }
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Inside <script>, "</script>" or "<!--" in a command would end it.
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _flags(row: Row) -> str:
    """Whether a row is heartbeat noise (1), an rpc line (2), or both."""
    rpc = not row.entry.source and row.entry.message.startswith("rpc ")
    return "0123"[row.heartbeat + 2 * rpc]


def _message_data(m: Message) -> list[object]:
    return [
        m.id,
        m.sender,
        m.receiver,
        KIND_CODE.get(m.kind, 3),
        m.send_row,
        m.deliver_row,
        m.drop_row,
        m.end_row,
        OUTCOME_CODE[m.outcome],
        int(m.never_sent),
    ]


def _op_data(op: Op) -> list[object]:
    match op:
        case StateOp():
            return [op.row, "s", STATE_CLASS[op.state], op.term]
        case LogOp():
            return [op.row, "l", op.start, list(op.terms)]
        case CommitOp():
            return [op.row, "c", op.commit_index]
        case PeerOp():
            return [op.row, "p", op.peer, op.next_index, op.match_index]


def render_index(run: RunLog, pages: list[Page]) -> str:
    """The index page: every test of the run with its status and a link."""
    failed = sum(page.test.failed for page in pages)
    overall = run.status
    rows = "".join(
        f"<tr><td>{n}<td><a href='{quote(page.path.name)}'>{escape(page.test.name)}</a>"
        f"<td><span class='status {escape(page.test.status)}'>"
        f"{escape(page.test.status)}</span><td>{format_duration(page.test)}"
        f"<td>{len(page.test.servers)}<td>{len(page.test.entries)}"
        f"<td>{len(page.test.malformed)}\n"
        for n, page in enumerate(pages, start=1)
    )
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>Raft test run — {overall}</title><style>{STYLE}"
        "#index td,#index th{padding:2px 8px;border-bottom:1px solid #ddd;"
        "text-align:left}</style></head><body>\n"
        f"<h1>Raft test run <span class='status {overall}'>{overall}</span></h1>\n"
        f"<p class=meta>{len(pages)} tests, {failed} failed</p>\n"
        "<table id=index><thead><tr><th>#<th>test<th>status<th>duration"
        "<th>servers<th>entries<th>malformed lines</thead><tbody>\n"
        f"{rows}</tbody></table>\n</body></html>\n"
    )
